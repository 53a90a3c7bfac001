"""Metrics stage: exports per-camera and per-zone series on a Prometheus endpoint."""

from __future__ import annotations

import math
import threading

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from crowdwatch import __version__
from crowdwatch.config import AppConfig
from crowdwatch.server import HealthState, Server
from crowdwatch.types import FrameResult
from crowdwatch.zones import LEVELS

# detect is preprocess + inference + postprocess (OpenVINO backend) or the whole predict call.
STAGES = ("decode", "detect", "preprocess", "inference", "postprocess", "zones", "export")
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5)
AGE_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)


class MetricsExporter:
    """Owns the registry, the series and the HTTP endpoint."""

    def __init__(self, config: AppConfig, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        r = self.registry
        zone = ["camera", "zone"]
        self.zone_people = Gauge("crowdwatch_zone_people", "People in the zone", zone, registry=r)
        self.zone_people_raw = Gauge(
            "crowdwatch_zone_people_raw", "People in the zone in the last frame, before "
            "temporal smoothing", zone, registry=r)
        self.zone_density = Gauge(
            "crowdwatch_zone_density_people_per_square_meter",
            "People per square metre of the zone's ground area", zone, registry=r)
        self.zone_occupancy = Gauge(
            "crowdwatch_zone_occupancy_ratio", "People in the zone divided by its capacity",
            zone, registry=r)
        self.zone_capacity = Gauge(
            "crowdwatch_zone_capacity_people", "Configured capacity of the zone", zone, registry=r)
        self.zone_level = Gauge(
            "crowdwatch_zone_level", "Occupancy level: 0 ok, 1 warning, 2 critical", zone,
            registry=r)
        self.camera_people = Gauge(
            "crowdwatch_camera_people", "People detected in the whole frame", ["camera"],
            registry=r)
        self.camera_people_raw = Gauge(
            "crowdwatch_camera_people_raw",
            "People detected in the whole last frame, before temporal smoothing", ["camera"],
            registry=r)
        self.frames = Counter("crowdwatch_frames_processed_total", "Frames analysed", ["camera"],
                              registry=r)
        self.dropped = Counter(
            "crowdwatch_frames_dropped_total",
            "Live frames replaced by a newer one before analysis", ["camera"], registry=r)
        self.skipped = Counter(
            "crowdwatch_frames_skipped_total",
            "Frames a source could not decode and skipped (damaged video, unreadable image)",
            ["camera"], registry=r)
        self.source_up = Gauge("crowdwatch_source_up", "1 while the source delivers frames",
                               ["camera"], registry=r)
        self.reconnects = Counter("crowdwatch_source_reconnects_total",
                                  "Successful reopenings of a failed source", ["camera"],
                                  registry=r)
        self.last_frame = Gauge(
            "crowdwatch_last_frame_timestamp_seconds",
            "Unix time when the newest analysed frame was captured", ["camera"], registry=r)
        self.stage_seconds = Histogram(
            "crowdwatch_stage_duration_seconds", "Time per frame spent in each stage",
            ["camera", "stage"], buckets=STAGE_BUCKETS, registry=r)
        self.frame_age = Histogram(
            "crowdwatch_frame_age_seconds",
            "Age of a frame when its counts reach the metrics", ["camera"],
            buckets=AGE_BUCKETS, registry=r)
        build = Info("crowdwatch_build", "crowdwatch version and detector model", registry=r)
        build.info({"version": __version__, "model": config.detector.model})
        self._lock = threading.Lock()
        self._totals: dict[tuple[int, str], int] = {}
        self.health = HealthState(c.id for c in config.cameras)
        self._server: Server | None = None
        self._declare_series(config)

    def _declare_series(self, config: AppConfig) -> None:
        # Every series exists from start-up; counts read NaN (no data) until a frame is
        # analysed, never a misleading 0.
        for camera in config.cameras:
            cid = camera.id
            self.camera_people.labels(cid).set(math.nan)
            self.camera_people_raw.labels(cid).set(math.nan)
            self.frames.labels(cid)
            self.dropped.labels(cid)
            self.skipped.labels(cid)
            self.reconnects.labels(cid)
            self.source_up.labels(cid).set(0)
            self.last_frame.labels(cid).set(0)
            self.frame_age.labels(cid)
            for stage in STAGES:
                self.stage_seconds.labels(cid, stage)
            for zone in camera.zones:
                self.zone_people.labels(cid, zone.name).set(math.nan)
                self.zone_people_raw.labels(cid, zone.name).set(math.nan)
                self.zone_density.labels(cid, zone.name).set(math.nan)
                self.zone_occupancy.labels(cid, zone.name).set(math.nan)
                self.zone_capacity.labels(cid, zone.name).set(zone.capacity or math.nan)
                self.zone_level.labels(cid, zone.name).set(math.nan)

    def start(self, host: str, port: int) -> int:
        """Serve /metrics, /healthz and /readyz in a background thread; returns the port."""
        self._server = Server(self.registry, self.health, host, port)
        return self._server.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def record_frame(self, result: FrameResult) -> None:
        """Publish one analysed frame."""
        cid = result.camera
        self.camera_people.labels(cid).set(result.people)
        self.camera_people_raw.labels(cid).set(result.people_raw)
        for name, stats in result.zones.items():
            self.zone_people.labels(cid, name).set(stats.people)
            if stats.people_raw is not None:
                self.zone_people_raw.labels(cid, name).set(stats.people_raw)
            if stats.density is not None:
                self.zone_density.labels(cid, name).set(stats.density)
            if stats.occupancy is not None:
                self.zone_occupancy.labels(cid, name).set(stats.occupancy)
            if stats.level is not None:
                self.zone_level.labels(cid, name).set(LEVELS.index(stats.level))
        for stage, seconds in result.stage_seconds.items():
            self.stage_seconds.labels(cid, stage).observe(seconds)
        self.frames.labels(cid).inc()
        self.last_frame.labels(cid).set(result.captured_at)

    def record_frame_age(self, camera: str, seconds: float) -> None:
        self.frame_age.labels(camera).observe(seconds)

    def record_source(self, camera: str, up: bool, dropped: int, reconnects: int,
                      skipped: int = 0) -> None:
        """Publish a source's health; the counts are the source's running totals."""
        self.health.beat(camera, up)
        with self._lock:
            self.source_up.labels(camera).set(1 if up else 0)
            self._advance(self.dropped, camera, dropped)
            self._advance(self.reconnects, camera, reconnects)
            self._advance(self.skipped, camera, skipped)

    def _advance(self, counter: Counter, camera: str, total: int) -> None:
        """Raise a counter to a running total kept by the source (never lowers it)."""
        key = (id(counter), camera)
        delta = total - self._totals.get(key, 0)
        if delta > 0:
            counter.labels(camera).inc(delta)
            self._totals[key] = total
