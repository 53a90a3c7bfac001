"""MQTT output: zone, line, camera and site values, availability and Home Assistant discovery.

Topics (README: Integrations), `<p>` the topic prefix:
  <p>/status                            online / offline (retained; offline is the Last Will)
  <p>/cameras/<camera>/availability     online / offline (retained; offline after
                                        camera_timeout_s without an analysed frame)
  <p>/cameras/<camera>/people           {"people", "time"} (retained)
  <p>/cameras/<camera>/zones/<zone>     {"people", "occupancy", "level", "time"} (retained)
  <p>/cameras/<camera>/lines/<line>     {"in", "out", "time"} totals (retained)
  <p>/cameras/<camera>/lines/<line>/crossings   {"in", "out", "time"}: new since the last
                                        message (not retained)
  <p>/sites/<site>                      {"people", "occupancy", "occupancy_ratio", "level",
                                        "drift", "time"} (retained)
`time` is the Unix capture time of the frame the values come from.

Never blocks counting: a camera thread only leaves its newest result in a mailbox (one per
camera, so memory is bounded whatever the broker does); a publisher thread compares it with
what was sent and publishes changes, each topic at most every min_interval_s. Messages the
broker cannot take (disconnected, or `queue` messages not yet written) are dropped and
counted; every retained topic's newest payload is kept and published again after each
(re)connect, so the broker's retained state is right again whatever was dropped. paho
reconnects on its own thread with a doubling backoff.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from crowdwatch import __version__
from crowdwatch.config import CameraConfig
from crowdwatch.config.integrations import MqttConfig, SiteConfig
from crowdwatch.types import FrameResult, LineTotals, SiteStats, ZoneStats

log = logging.getLogger("crowdwatch.mqtt")

ONLINE, OFFLINE = "online", "offline"
TICK_S = 0.25
_NOT_TOPIC = re.compile(r"[/+#\x00]")
_NOT_ID = re.compile(r"[^a-z0-9]+")


def topic_level(name: str) -> str:
    """A name as one topic level: '/', '+', '#' (MQTT's separators and wildcards) become _."""
    return _NOT_TOPIC.sub("_", name)


def object_id(*parts: str) -> str:
    """A Home Assistant id ([a-z0-9_]) unique for these names: the names themselves when
    they already are one ("zone", "plaza" -> zone_plaza), else a slug plus a short hash, so
    'Zone A' and 'zone-a' (or two Unicode names) never share an entity."""
    raw = "_".join(parts)
    slug = _NOT_ID.sub("_", raw.lower()).strip("_")[:48]
    if slug == raw:
        return slug
    return f"{slug}_{hashlib.sha1(chr(31).join(parts).encode()).hexdigest()[:6]}"


@dataclass(slots=True)
class _Update:
    captured_at: float
    received: float
    people: int
    zones: dict[str, ZoneStats]
    lines: dict[str, LineTotals]


@dataclass(slots=True)
class _Topic:
    payload: bytes | None = None  # last published (values without time)
    values: Any = None
    sent_at: float = -1e18
    pending: tuple[Any, bytes] | None = None  # newer values held back by min_interval_s


@dataclass
class MqttStats:
    published: int = 0
    dropped: int = 0
    reconnects: int = 0
    by_topic: dict[str, _Topic] = field(default_factory=dict)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class MqttSink:
    """A Sink that publishes to an MQTT broker on its own threads."""

    def __init__(self, config: MqttConfig, cameras: list[CameraConfig],
                 sites: Sequence[SiteConfig] = (),
                 line_totals: Mapping[str, Mapping[str, tuple[int, int]]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """line_totals: the totals the line counters start from (the state file), so the
        first crossings message counts from there."""
        self.config = config
        self._prefix = config.topic_prefix
        self._clock = clock
        self._cameras = [c.id for c in cameras]
        self._inbox: dict[str, _Update] = {}
        self._site_inbox: dict[str, tuple[float, SiteStats]] = {}
        self._inbox_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connected = False
        self._republish = False
        self._outstanding = 0
        self._count_lock = threading.Lock()
        self.stats = MqttStats()
        # Every retained topic's newest payload: published again after each (re)connect.
        self._retained: dict[str, bytes] = {}
        self._last_lines: dict[tuple[str, str], tuple[int, int]] = {
            (camera.id, line.name): tuple((line_totals or {}).get(camera.id, {}).get(
                line.name, (0, 0)))  # type: ignore[misc]
            for camera in cameras for line in camera.lines}
        self._last_frame: dict[str, float] = {}
        self._available: dict[str, bool] = {}
        self._connected_once = False
        self._refused = False
        self.status_topic = f"{self._prefix}/status"
        if config.home_assistant:
            for topic, payload in discovery_messages(config, cameras, list(sites)):
                self._retained[topic] = json.dumps(payload).encode()
        for camera in self._cameras:
            self._retained[self._availability_topic(camera)] = OFFLINE.encode()
        self.client = self._client()
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()

    # -- connection (paho's network thread) -------------------------------------------------
    def _client(self) -> paho.Client:
        c = self.config
        client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                             client_id=c.client_id or f"crowdwatch-{c.topic_prefix}")
        client.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        if c.username is not None:
            client.username_pw_set(c.username, c.password)
        if c.tls:
            client.tls_set(ca_certs=c.ca_file)
        client.reconnect_delay_set(1, int(c.max_backoff_s))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.connect_async(c.host, c.port, c.keepalive_s)
        client.loop_start()
        return client

    def _on_connect(self, client: paho.Client, userdata: object, flags: object,
                    reason: Any, properties: object = None) -> None:
        if getattr(reason, "is_failure", False):
            if not self._refused:  # once, not at every reconnect attempt
                log.error("the MQTT broker %s:%d refused the connection: %s; check "
                          "mqtt.username and mqtt.password; counting goes on", self.config.host,
                          self.config.port, reason)
            self._refused = True
            return
        self._refused = False
        with self._count_lock:
            self._outstanding = 0  # paho dropped what was not written on the old connection
        if self._connected_once:
            self.stats.reconnects += 1
            log.warning("connected to the MQTT broker %s:%d again; publishing the retained "
                        "state again", self.config.host, self.config.port)
        else:
            log.info("connected to the MQTT broker %s:%d", self.config.host, self.config.port)
        self._connected_once = True
        self._connected = True
        # The worker thread republishes: after paho's own resends on this connection.
        self._republish = True
        self._wake.set()

    def _on_disconnect(self, client: paho.Client, userdata: object, flags: object,
                       reason: Any, properties: object = None) -> None:
        if self._connected and not self._stop.is_set():
            log.warning("lost the MQTT broker %s:%d (%s); counting goes on, reconnecting",
                        self.config.host, self.config.port, reason)
        self._connected = False

    def _on_publish(self, client: paho.Client, userdata: object, mid: int, reason: object,
                    properties: object) -> None:
        with self._count_lock:
            self._outstanding = max(self._outstanding - 1, 0)

    def _publish(self, topic: str, payload: bytes, retain: bool) -> None:
        if retain:
            self._retained[topic] = payload
        with self._count_lock:
            full = self._outstanding >= self.config.queue
            if not self._connected or full:
                self.stats.dropped += 1
                return
            self._outstanding += 1
        info = self.client.publish(topic, payload, qos=0, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            with self._count_lock:
                self._outstanding = max(self._outstanding - 1, 0)
            self.stats.dropped += 1
            return
        self.stats.published += 1

    # -- camera threads ---------------------------------------------------------------------
    def write(self, result: FrameResult) -> None:
        """Leave the newest values for the publisher (never waits for the broker)."""
        now = self._clock()
        lines = result.flow.lines if result.flow is not None else {}
        update = _Update(result.captured_at, now, result.people, result.zones, lines)
        with self._inbox_lock:
            self._inbox[result.camera] = update
            for name, stats in result.sites.items():
                self._site_inbox[name] = (result.captured_at, stats)
        self._wake.set()

    # -- publisher thread -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(TICK_S)
            self._wake.clear()
            try:
                self._step()
            except Exception as error:  # the publisher must outlive a bad message
                log.error("MQTT publishing failed: %s", error)

    def _step(self, final: bool = False) -> None:
        if self._republish and self._connected:
            self._republish = False
            self._publish(self.status_topic, ONLINE.encode(), retain=True)
            for topic, payload in list(self._retained.items()):
                self._publish(topic, payload, retain=True)
        with self._inbox_lock:
            inbox, self._inbox = self._inbox, {}
            sites, self._site_inbox = self._site_inbox, {}
        now = self._clock()
        for camera, update in inbox.items():
            self._last_frame[camera] = update.received
            self._set_available(camera, True)
            self._camera_values(camera, update, now)
        for name, (captured_at, stats) in sites.items():
            self._offer(f"{self._prefix}/sites/{topic_level(name)}", {
                "people": stats.people, "occupancy": stats.occupancy,
                "occupancy_ratio": _round(stats.ratio),
                "level": None if stats.level is None else stats.level.label,
                "drift": stats.drift}, captured_at, now)
        for camera, seen in self._last_frame.items():
            if now - seen > self.config.camera_timeout_s:
                self._set_available(camera, False)
        for topic, state in self.stats.by_topic.items():
            if state.pending is not None and (
                    final or now - state.sent_at >= self.config.min_interval_s):
                values, payload = state.pending
                state.pending = None
                self._send(topic, state, values, payload, now)

    def _camera_values(self, camera: str, update: _Update, now: float) -> None:
        base = f"{self._prefix}/cameras/{camera}"
        at = update.captured_at
        self._offer(f"{base}/people", {"people": update.people}, at, now)
        for name, stats in update.zones.items():
            self._offer(f"{base}/zones/{topic_level(name)}", {
                "people": stats.people, "occupancy": _round(stats.occupancy),
                "level": None if stats.level is None else stats.level.label}, at, now)
        for name, totals in update.lines.items():
            topic = f"{base}/lines/{topic_level(name)}"
            now_totals = (totals.people_in, totals.people_out)
            before = self._last_lines.get((camera, name), (0, 0))
            self._last_lines[(camera, name)] = now_totals
            if now_totals != before:
                new = {"in": max(now_totals[0] - before[0], 0),
                       "out": max(now_totals[1] - before[1], 0), "time": round(at, 3)}
                self._publish(f"{topic}/crossings", json.dumps(new).encode(), retain=False)
            self._offer(topic, {"in": now_totals[0], "out": now_totals[1]}, at, now)

    def _offer(self, topic: str, values: dict[str, Any], captured_at: float,
               now: float) -> None:
        """Publish values that changed, at most every min_interval_s per topic."""
        state = self.stats.by_topic.get(topic)
        if state is None:
            state = self.stats.by_topic[topic] = _Topic()
        if values == state.values:
            state.pending = None  # changed and changed back within the interval
            return
        payload = json.dumps({**values, "time": round(captured_at, 3)}).encode()
        if now - state.sent_at < self.config.min_interval_s:
            state.pending = None if values == state.values else (values, payload)
            return
        self._send(topic, state, values, payload, now)

    def _send(self, topic: str, state: _Topic, values: Any, payload: bytes, now: float) -> None:
        state.values, state.payload, state.sent_at = values, payload, now
        self._publish(topic, payload, retain=True)

    def _availability_topic(self, camera: str) -> str:
        return f"{self._prefix}/cameras/{camera}/availability"

    def _set_available(self, camera: str, up: bool) -> None:
        if self._available.get(camera) == up:
            return
        self._available[camera] = up
        self._publish(self._availability_topic(camera), (ONLINE if up else OFFLINE).encode(),
                      retain=True)

    # -- metrics and close ------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        """crowdwatch_mqtt_* series (the metrics registry reads them at scrape time)."""
        yield GaugeMetricFamily("crowdwatch_mqtt_connected",
                                "1 while connected to the MQTT broker",
                                value=1 if self._connected else 0)
        yield CounterMetricFamily("crowdwatch_mqtt_messages_published",
                                  "Messages handed to the MQTT broker",
                                  value=self.stats.published)
        yield CounterMetricFamily(
            "crowdwatch_mqtt_messages_dropped",
            "Messages not sent (broker unreachable, or `queue` messages not yet written); "
            "retained state is published again after a reconnect", value=self.stats.dropped)
        yield CounterMetricFamily("crowdwatch_mqtt_reconnects",
                                  "Connections to the MQTT broker after the first",
                                  value=self.stats.reconnects)

    def close(self, timeout_s: float = 2.0) -> None:
        """Publish what is held back, mark the cameras and crowdwatch offline, disconnect."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)
        try:
            self._step(final=True)
            for camera in self._cameras:
                self._set_available(camera, False)
            if self._connected:
                info = self.client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
                info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as error:
            log.warning("could not say goodbye to the MQTT broker: %s", error)
        finally:
            self.client.disconnect()
            self.client.loop_stop()


def _device(config: MqttConfig, key: str, name: str, model: str) -> dict[str, Any]:
    return {"identifiers": [f"{config.topic_prefix}_{key}"], "name": name,
            "manufacturer": "crowdwatch", "model": model, "sw_version": __version__}


def discovery_messages(config: MqttConfig, cameras: list[CameraConfig],
                       sites: list[SiteConfig]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(topic, payload) of the Home Assistant discovery config of every sensor: per camera
    a device with its people, zones and lines; per site a device."""
    p = config.topic_prefix
    status = {"topic": f"{p}/status"}

    def sensor(node: str, key: str, name: str, state_topic: str, template: str,
               device: dict[str, Any], availability: list[dict[str, str]],
               unit: str | None = "people", state_class: str | None = "measurement",
               **extra: Any) -> tuple[str, dict[str, Any]]:
        uid = f"{p}_{node}_{key}"
        payload: dict[str, Any] = {
            # default_entity_id replaced object_id (Home Assistant 2025.10; object_id stops
            # working in 2026.4): sensor.crowdwatch_pets_zone_plaza_people.
            "name": name, "unique_id": uid, "default_entity_id": f"sensor.{uid}",
            "state_topic": state_topic,
            "value_template": template, "availability": availability,
            "availability_mode": "all", "device": device, **extra}
        if unit is not None:
            payload["unit_of_measurement"] = unit
        if state_class is not None:
            payload["state_class"] = state_class
        return f"{config.discovery_prefix}/sensor/{p}_{node}/{key}/config", payload

    level = {"device_class": "enum", "options": ["ok", "warning", "critical"]}
    for camera in cameras:
        node = object_id(camera.id)
        base = f"{p}/cameras/{camera.id}"
        device = _device(config, f"camera_{node}", f"crowdwatch {camera.id}", "camera")
        avail = [status, {"topic": f"{base}/availability"}]
        yield sensor(node, "people", "people", f"{base}/people", "{{ value_json.people }}",
                     device, avail, icon="mdi:account-group")
        for zone in camera.zones:
            key = object_id("zone", zone.name)
            topic = f"{base}/zones/{topic_level(zone.name)}"
            yield sensor(node, f"{key}_people", f"{zone.name} people", topic,
                         "{{ value_json.people }}", device, avail, icon="mdi:account-group")
            if zone.capacity is not None:
                yield sensor(node, f"{key}_occupancy", f"{zone.name} occupancy", topic,
                             "{{ (value_json.occupancy * 100) | round(1) }}", device, avail,
                             unit="%")
                yield sensor(node, f"{key}_level", f"{zone.name} level", topic,
                             "{{ value_json.level }}", device, avail, unit=None,
                             state_class=None, **level)
        for line in camera.lines:
            key = object_id("line", line.name)
            topic = f"{base}/lines/{topic_level(line.name)}"
            for direction in ("in", "out"):
                yield sensor(node, f"{key}_{direction}", f"{line.name} {direction}", topic,
                             f"{{{{ value_json['{direction}'] }}}}", device, avail,
                             state_class="total_increasing", icon="mdi:transit-transfer")
    for site in sites:
        node = object_id("site", site.name)
        topic = f"{p}/sites/{topic_level(site.name)}"
        device = _device(config, f"site_{node}", f"crowdwatch site {site.name}", "site")
        avail = [status]
        if site.zones:
            yield sensor(node, "people", f"{site.name} people", topic,
                         "{{ value_json.people }}", device, avail, icon="mdi:account-group")
        if site.entrances:
            yield sensor(node, "occupancy", f"{site.name} occupancy", topic,
                         "{{ value_json.occupancy }}", device, avail, icon="mdi:home-group")
            yield sensor(node, "drift", f"{site.name} occupancy drift", topic,
                         "{{ value_json.drift }}", device, avail,
                         state_class="total_increasing", entity_category="diagnostic")
        if site.capacity is not None:
            yield sensor(node, "occupancy_ratio", f"{site.name} occupancy ratio", topic,
                         "{{ (value_json.occupancy_ratio * 100) | round(1) }}", device, avail,
                         unit="%")
            yield sensor(node, "level", f"{site.name} level", topic, "{{ value_json.level }}",
                         device, avail, unit=None, state_class=None, **level)
