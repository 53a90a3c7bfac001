"""Webhooks on level changes, against local receivers: one that answers, one that hangs and
one that answers 500."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from crowdwatch.config.integrations import WebhookConfig
from crowdwatch.errors import CrowdwatchError
from crowdwatch.outputs.webhooks import WebhookSender, WebhookSink
from crowdwatch.types import FrameResult, Level, SiteStats, ZoneStats

SECRET = "s3cret-for-tests"


class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST; `fail` answers 500 that many
    times first, `hang` keeps every request open until released."""

    def __init__(self, fail: int = 0, hang: bool = False, port: int = 0) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.attempts = 0
        self.delivery_ids: list[str] = []
        self.fail = fail
        self.release = threading.Event()
        if not hang:
            self.release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                receiver.delivery_ids.append(self.headers["X-Crowdwatch-Delivery"])
                receiver.release.wait(30)
                if receiver.fail > 0:
                    receiver.fail -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.requests.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/crowd"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]

    def wait(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"{len(self.requests)} of {count} requests"
            time.sleep(0.01)
        return self.bodies()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sink(url: str, clock: Clock | None = None, **extra: Any) -> WebhookSink:
    config = WebhookConfig.model_validate({"url": url, "secret_env": "HOOK_SECRET",
                                           "min_interval_s": 0, **extra})
    return WebhookSink.from_config([config], {"HOOK_SECRET": SECRET}, clock or Clock())


def frame(level: Level, people: int = 8, site: SiteStats | None = None,
          at: float = 1_796_172_000.25) -> FrameResult:
    zones = {"plaza": ZoneStats(people, people, None, people / 10, level),
             "no capacity": ZoneStats(3)}
    return FrameResult("pets", 0, None, at, people, people, zones=zones,
                       sites={"campus": site} if site else {})


def test_a_level_change_is_posted_signed_with_the_documented_body(receiver: Receiver) -> None:
    hooks = sink(receiver.url)
    hooks.write(frame(Level.OK, people=5))  # ok at start: nothing changed
    hooks.write(frame(Level.WARNING, people=8))
    hooks.write(frame(Level.WARNING, people=9))  # same level: nothing
    (body,) = receiver.wait(1)
    assert body == {"event": "zone_level", "camera": "pets", "zone": "plaza",
                    "level": "warning", "previous_level": "ok", "people": 8,
                    "occupancy": 0.8, "time": "2026-12-02T00:40:00.250Z",
                    "timestamp": 1_796_172_000.25}
    headers, raw = receiver.requests[0]
    expected = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert headers["X-Crowdwatch-Signature"] == f"sha256={expected}"
    assert headers["X-Crowdwatch-Event"] == "zone_level"
    assert headers["Content-Type"] == "application/json"
    hooks.close()
    assert len(receiver.requests) == 1


def test_site_level_changes_and_the_events_filter(receiver: Receiver) -> None:
    hooks = sink(receiver.url, events=["site_level"])
    hooks.write(frame(Level.CRITICAL, site=SiteStats(30, 42, 1.05, Level.CRITICAL, 2)))
    (body,) = receiver.wait(1)
    assert {k: v for k, v in body.items() if k not in ("time", "timestamp")} == {
        "event": "site_level", "site": "campus", "level": "critical", "previous_level": "ok",
        "people": 30, "occupancy": 42, "occupancy_ratio": 1.05, "drift": 2}
    hooks.close()
    assert len(receiver.requests) == 1  # the zone's change was not asked for


def test_a_flickering_level_sends_one_event_per_interval_and_ends_right(
        receiver: Receiver) -> None:
    clock = Clock()
    hooks = sink(receiver.url, clock, min_interval_s=60)
    hooks.write(frame(Level.WARNING))
    receiver.wait(1)
    for _ in range(10):  # 20 changes within the minute
        hooks.write(frame(Level.OK))
        hooks.write(frame(Level.WARNING))
    hooks.write(frame(Level.CRITICAL))
    time.sleep(0.3)
    assert len(receiver.requests) == 1
    clock.now = 61.0  # the interval passed: the newest level goes out, once
    bodies = receiver.wait(2)
    assert [(b["previous_level"], b["level"]) for b in bodies] == [
        ("ok", "warning"), ("warning", "critical")]
    clock.now = 200.0
    hooks.write(frame(Level.WARNING))
    hooks.write(frame(Level.CRITICAL))  # back to what the receiver knows: nothing to send
    time.sleep(0.3)
    hooks.close()
    assert len(receiver.requests) == 2


def test_a_receiver_that_answers_500_gets_the_event_again_with_backoff() -> None:
    failing = Receiver(fail=2)
    hooks = sink(failing.url, backoff_s=0.01, retries=3)
    hooks.write(frame(Level.WARNING))
    (body,) = failing.wait(1)
    assert body["level"] == "warning" and failing.attempts == 3
    hooks.close()
    series = {(s.name, tuple(s.labels.values())): s.value
              for m in hooks.collect() for s in m.samples}
    assert series[("crowdwatch_webhook_retries_total", ("0",))] == 2
    assert series[("crowdwatch_webhook_deliveries_total", ("0", "delivered"))] == 1
    # Retries carry one delivery id: the receiver can tell a repeat from a new event.
    assert len(set(failing.delivery_ids)) == 1
    failing.close()


def test_a_receiver_that_always_fails_is_given_up_and_counted() -> None:
    failing = Receiver(fail=100)
    # The clock stands still: no second round after min_interval_s.
    hooks = sink(failing.url, backoff_s=0.01, retries=2, min_interval_s=60)
    hooks.write(frame(Level.WARNING))
    deadline = time.monotonic() + 10
    while hooks.senders[0].failed == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert failing.attempts == 3
    hooks.close()
    failing.close()


def test_a_receiver_that_was_down_gets_the_current_level_within_one_interval() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clock = Clock()
    hooks = sink(f"http://127.0.0.1:{port}/hooks/crowd", clock, min_interval_s=10, retries=0)
    sender = hooks.senders[0]
    hooks.write(frame(Level.WARNING))  # nobody listens: refused
    deadline = time.monotonic() + 5
    while sender.failed == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    hooks.write(frame(Level.CRITICAL))  # the newest level while the receiver is down
    back = Receiver(port=port)
    time.sleep(0.3)
    assert back.requests == []  # not before the interval
    clock.now = 10.5
    (body,) = back.wait(1)
    # The receiver never heard of warning: it learns critical, coming from ok.
    assert (body["previous_level"], body["level"]) == ("ok", "critical")
    hooks.close()
    back.close()


def test_a_hanging_receiver_never_blocks_counting_and_the_queue_is_bounded() -> None:
    hanging = Receiver(hang=True)
    hooks = sink(hanging.url, timeout_s=0.2, retries=1, backoff_s=0.01, queue=5)
    sender: WebhookSender = hooks.senders[0]
    hooks.write(frame(Level.WARNING))
    deadline = time.monotonic() + 5
    while hanging.attempts == 0:  # the worker is stuck in its first POST
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # 2000 frames alternating levels while the receiver hangs: each write returns at once,
    # 5 events wait in the queue and the rest are dropped and counted.
    for i in range(1000):
        hooks.write(frame(Level.CRITICAL if i % 2 else Level.OK))
        hooks.write(frame(Level.WARNING))
    assert sender.dropped >= 2000 - 5 - 1
    deadline = time.monotonic() + 10
    while sender.failed == 0:  # timed out twice (first try and one retry)
        assert time.monotonic() < deadline
        time.sleep(0.01)
    hanging.release.set()
    hooks.close()
    hanging.close()


def test_an_unset_secret_is_an_error_naming_the_variable() -> None:
    config = WebhookConfig(url="http://127.0.0.1:9/x", secret_env="NOT_SET_HERE")
    with pytest.raises(CrowdwatchError, match=r"webhooks\[0\].secret_env: environment "
                                              r"variable NOT_SET_HERE is not set"):
        WebhookSink.from_config([config], {})
