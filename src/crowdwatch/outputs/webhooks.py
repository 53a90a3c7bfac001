"""Webhooks: a signed JSON POST when a zone's or a site's level changes.

Body (README: Integrations), one JSON object:
  zone_level: event, camera, zone, level, previous_level, people, occupancy, time, timestamp
  site_level: event, site, level, previous_level, people, occupancy, occupancy_ratio, drift,
              time, timestamp
`time` is ISO 8601 UTC and `timestamp` Unix seconds of the frame that changed the level;
previous_level is the level of the last event this endpoint was sent for that zone or site
(ok before the first). Headers: X-Crowdwatch-Signature: sha256=<hex HMAC-SHA256 of the raw
body with the secret>, X-Crowdwatch-Event, X-Crowdwatch-Delivery (one id per event, the same
on every retry: receivers can drop repeats).

Never blocks counting: a camera thread only compares levels and, on a change, puts a small
event in a bounded queue (full: dropped and counted). One worker thread per endpoint holds
each zone's newest change until min_interval_s has passed since its last event (a level that
flickers and comes back sends nothing), then POSTs it with a timeout, retrying with a
doubling backoff on timeouts, connection errors, 5xx, 408 and 429. An event still not
delivered stays the zone's pending one and is tried again every min_interval_s (at least
backoff_s) while it is the newest level, so a receiver that was down learns the current
levels within one interval of its return.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric

from crowdwatch import __version__
from crowdwatch.config.integrations import WebhookConfig
from crowdwatch.errors import CrowdwatchError
from crowdwatch.types import FrameResult, Level

log = logging.getLogger("crowdwatch.webhooks")

SIGNATURE_HEADER = "X-Crowdwatch-Signature"
# Longest sleep of a worker between looks at its clock (an injected clock moves in steps).
TICK_S = 0.05
RETRY_STATUS = frozenset({408, 429})

Event = dict[str, Any]


def signature(secret: bytes, body: bytes) -> str:
    """The X-Crowdwatch-Signature value of a body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


class WebhookSender:
    """One endpoint: a bounded queue of events and the worker thread that delivers them."""

    def __init__(self, index: int, config: WebhookConfig, secret: bytes | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.index = index
        self.config = config
        self._secret = secret
        self._clock = clock
        self._inbox: queue.Queue[tuple[tuple[str, ...], Event]] = queue.Queue(config.queue)
        self._stop = threading.Event()
        self.delivered = self.failed = self.dropped = self.retries = 0
        self._failing = False
        # The URL without its query (which may hold a token), for log lines.
        self._where = config.url.split("?")[0]
        self._thread = threading.Thread(target=self._run, name=f"webhook-{index}", daemon=True)
        self._thread.start()

    def offer(self, key: tuple[str, ...], event: Event) -> None:
        """From a camera thread: never waits."""
        try:
            self._inbox.put_nowait((key, event))
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        pending: dict[tuple[str, ...], Event] = {}
        sent_level: dict[tuple[str, ...], str] = {}
        allowed_at: dict[tuple[str, ...], float] = {}
        while True:
            stopping = self._stop.is_set()
            now = self._clock()
            due = [k for k in pending if stopping or allowed_at.get(k, -1e18) <= now]
            for key in due:
                event = pending.pop(key)
                previous = sent_level.get(key, Level.OK.label)
                if event["level"] == previous:
                    continue  # it came back to what the receiver knows: nothing to say
                delivered = self._deliver({**event, "previous_level": previous},
                                          retry=not stopping)
                if delivered:
                    sent_level[key] = event["level"]
                else:  # tried again while it is the newest level, so the receiver catches up
                    pending.setdefault(key, event)
                allowed_at[key] = self._clock() + max(self.config.min_interval_s,
                                                      self.config.backoff_s)
            if stopping:
                return
            try:
                key, event = self._inbox.get(timeout=TICK_S)
            except queue.Empty:
                continue
            pending[key] = event
            while True:  # take everything queued, newest per key
                try:
                    key, event = self._inbox.get_nowait()
                except queue.Empty:
                    break
                pending[key] = event

    def _deliver(self, event: Event, retry: bool = True) -> bool:
        body = json.dumps(event, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json",
                   "User-Agent": f"crowdwatch/{__version__}",
                   "X-Crowdwatch-Event": event["event"],
                   "X-Crowdwatch-Delivery": uuid.uuid4().hex}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = signature(self._secret, body)
        attempts = 1 + (self.config.retries if retry else 0)
        wait = self.config.backoff_s
        problem = ""
        for attempt in range(attempts):
            if attempt:
                self.retries += 1
                if self._stop.wait(wait) and retry:
                    attempts = attempt + 1  # closing: this is the last try
                wait *= 2
            request = urllib.request.Request(self.config.url, body, headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout_s) as answer:
                    answer.read(65536)
                self.delivered += 1
                if self._failing:
                    log.warning("webhook %d (%s) delivers again", self.index, self._where)
                    self._failing = False
                return True
            except urllib.error.HTTPError as error:
                problem = f"HTTP {error.code}"
                if error.code < 500 and error.code not in RETRY_STATUS:
                    break  # the receiver refuses this event: sending it again will not help
            except (OSError, ValueError) as error:  # timeouts, refused, DNS, TLS
                problem = str(getattr(error, "reason", error))
            if attempt + 1 >= attempts:
                break
        self.failed += 1
        if not self._failing:  # once per outage, not per event
            log.warning("webhook %d (%s): %s event not delivered after %d attempt(s): %s; "
                        "counting goes on, the newest level of each zone is sent again every "
                        "%g s until it is delivered", self.index, self._where, event["event"],
                        attempts, problem, max(self.config.min_interval_s,
                                               self.config.backoff_s))
            self._failing = True
        return False

    def close(self) -> None:
        """Send what is held back (one try each, no retries), within about one timeout."""
        self._stop.set()
        self._thread.join(self.config.timeout_s + 1.0)


class WebhookSink:
    """A Sink that turns level changes of zones and sites into webhook events."""

    def __init__(self, senders: list[WebhookSender]) -> None:
        self.senders = senders
        self._levels: dict[tuple[str, ...], Level] = {}
        self._site_lock = threading.Lock()
        self._zone_hooks = [s for s in senders if "zone_level" in s.config.events]
        self._site_hooks = [s for s in senders if "site_level" in s.config.events]

    @classmethod
    def from_config(cls, configs: list[WebhookConfig],
                    environ: Mapping[str, str] = os.environ,
                    clock: Callable[[], float] = time.monotonic) -> WebhookSink:
        """Senders with their secrets; CrowdwatchError naming an unset secret_env."""
        senders = []
        for i, config in enumerate(configs):
            secret = None
            if config.secret_env is not None:
                value = environ.get(config.secret_env)
                if not value:
                    raise CrowdwatchError(
                        f"webhooks[{i}].secret_env: environment variable {config.secret_env} "
                        f"is not set; export {config.secret_env}=<secret> (the receiver "
                        "checks the signature with the same secret)")
                secret = value.encode("utf-8")
            senders.append(WebhookSender(i, config, secret, clock))
        return cls(senders)

    def write(self, result: FrameResult) -> None:
        if self._zone_hooks:
            for name, stats in result.zones.items():
                level = stats.level
                if level is None:
                    continue
                key = ("zone", result.camera, name)
                previous = self._levels.get(key, Level.OK)
                if level == previous:
                    continue
                self._levels[key] = level  # only this camera's thread writes its zones
                event = {"event": "zone_level", "camera": result.camera, "zone": name,
                         "level": level.label, "people": stats.people,
                         "occupancy": None if stats.occupancy is None
                         else round(stats.occupancy, 4),
                         "time": _iso(result.captured_at),
                         "timestamp": round(result.captured_at, 3)}
                for sender in self._zone_hooks:
                    sender.offer(key, event)
        if self._site_hooks and result.sites:
            for name, site in result.sites.items():
                if site.level is None:
                    continue
                key = ("site", name)
                with self._site_lock:  # several cameras feed one site
                    if site.level == self._levels.get(key, Level.OK):
                        continue
                    self._levels[key] = site.level
                event = {"event": "site_level", "site": name, "level": site.level.label,
                         "people": site.people, "occupancy": site.occupancy,
                         "occupancy_ratio": None if site.ratio is None
                         else round(site.ratio, 4),
                         "drift": site.drift, "time": _iso(result.captured_at),
                         "timestamp": round(result.captured_at, 3)}
                for sender in self._site_hooks:
                    sender.offer(key, event)

    def collect(self) -> Iterator[Metric]:
        """crowdwatch_webhook_* series, read at scrape time."""
        deliveries = CounterMetricFamily(
            "crowdwatch_webhook_deliveries", "Webhook events by outcome: delivered, failed "
            "(after every retry), dropped (queue full)", labels=["webhook", "result"])
        retries = CounterMetricFamily("crowdwatch_webhook_retries",
                                      "Webhook attempts after a failed one", labels=["webhook"])
        for s in self.senders:
            i = str(s.index)
            deliveries.add_metric([i, "delivered"], s.delivered)
            deliveries.add_metric([i, "failed"], s.failed)
            deliveries.add_metric([i, "dropped"], s.dropped)
            retries.add_metric([i], s.retries)
        yield deliveries
        yield retries

    def close(self) -> None:
        for sender in self.senders:
            sender.close()
