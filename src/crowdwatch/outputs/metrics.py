"""Metrics sink: per-camera and per-zone series in a Prometheus registry.

Frame series are set as each analysed frame is written; source series (up, dropped, skipped,
reconnects) are read from the pipeline's HealthState whenever Prometheus scrapes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from crowdwatch import __version__
from crowdwatch.config import AppConfig
from crowdwatch.detect.integrity import loaded_model
from crowdwatch.health import HealthState
from crowdwatch.types import STAGES, TRACK_STAGE, FlowResult, FrameResult

STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5)
# Queue-like waits: a few seconds at a door to half an hour in a queue.
DWELL_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0)
AGE_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)


# The label values of crowdwatch_counting_method (FrameResult.method).
COUNTING_METHODS = ("boxes", "density")


class _SourceCollector(Collector):
    """Source series from the running totals the camera loops report to HealthState."""

    def __init__(self, health: HealthState) -> None:
        self._health = health

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("crowdwatch_source_up", "1 while the source delivers frames",
                               labels=["camera"])
        dropped = CounterMetricFamily(
            "crowdwatch_frames_dropped", "Live frames replaced by a newer one before analysis",
            labels=["camera"])
        skipped = CounterMetricFamily(
            "crowdwatch_frames_skipped",
            "Frames a source could not decode and skipped (damaged video, unreadable image)",
            labels=["camera"])
        reconnects = CounterMetricFamily(
            "crowdwatch_source_reconnects", "Successful reopenings of a failed source",
            labels=["camera"])
        received = CounterMetricFamily(
            "crowdwatch_source_frames_received", "Frames the source delivered: analysed, "
            "skipped by analysis_fps, or replaced by a newer one before analysis",
            labels=["camera"])
        nominal = GaugeMetricFamily(
            "crowdwatch_source_nominal_frames_per_second", "The frame rate the stream "
            "declares (absent while unknown): what the camera should receive",
            labels=["camera"])
        for camera, status in self._health.sources().items():
            up.add_metric([camera], 1 if status.up else 0)
            dropped.add_metric([camera], status.frames_dropped)
            skipped.add_metric([camera], status.frames_skipped)
            reconnects.add_metric([camera], status.reconnects)
            received.add_metric([camera], status.frames_received)
            if status.stream_fps is not None:
                nominal.add_metric([camera], status.stream_fps)
        yield from (up, dropped, skipped, reconnects, received, nominal)


class MetricsSink:
    """Owns the registry and its series; a Sink of analysed frames."""

    def __init__(self, config: AppConfig, health: HealthState,
                 registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        # No *_created series: a start-up timestamp per label set that no dashboard reads.
        disable_created_metrics()
        self._clock = clock  # Unix time for frame ages; tests inject one
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
        self.detector_tiles = Gauge(
            "crowdwatch_detector_tiles", "Zoomed tiles the detector runs per frame besides the "
            "whole frame (0: whole frame only; detector.tiling auto follows the crowd)",
            ["camera"], registry=r)
        self.counting_method = Gauge(
            "crowdwatch_counting_method", "1 for the method the camera's counts come from "
            "(boxes or density; counting.method), 0 for the other", ["camera", "method"],
            registry=r)
        self.frames = Counter("crowdwatch_frames_processed_total", "Frames analysed", ["camera"],
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
        self.line_crossings = Counter(
            "crowdwatch_line_crossings", "People whose tracked foot point crossed the line; "
            "in: from its negative to its positive side (README: Lines)",
            ["camera", "line", "direction"], registry=r)
        self.zone_dwell = Histogram(
            "crowdwatch_zone_dwell_seconds", "Duration of completed visits of tracked people "
            "to the zone (zones with dwell: true)", zone, buckets=DWELL_BUCKETS, registry=r)
        self.zone_longest_stay = Gauge(
            "crowdwatch_zone_longest_stay_seconds", "Longest current stay of a tracked person "
            "in the zone (0 when nobody tracked is inside)", zone, registry=r)
        build = Info("crowdwatch_build", "crowdwatch version and detector model", registry=r)
        model = loaded_model()
        build.info({"version": __version__, "model": config.detector.model,
                    "model_path": str(model.path) if model else "",
                    "model_sha256": model.sha256 if model else ""})
        self.registry.register(_SourceCollector(health))
        # False: line_crossings is fed by someone else (the state file's exporter, issue 21).
        self.count_lines = True
        self._declare_series(config)

    def _declare_series(self, config: AppConfig) -> None:
        # A series exists only once it means something: counts, levels, density and occupancy
        # appear with the first analysed frame (never a NaN or a misleading 0 before it), and
        # a zone without capacity or area never has occupancy, level or density series.
        # Counters and stage histograms start at 0, which is true before the first frame;
        # the last frame's time appears with the first frame (0 would claim one in 1970).
        for camera in config.cameras:
            cid = camera.id
            self.frames.labels(cid)
            self.frame_age.labels(cid)
            for stage in STAGES:
                self.stage_seconds.labels(cid, stage)
            if config.tracks(camera):
                self.stage_seconds.labels(cid, TRACK_STAGE)
            for line in camera.lines:
                for direction in ("in", "out"):
                    self.line_crossings.labels(cid, line.name, direction)
            for zone in camera.zones:
                if zone.dwell:
                    # Completed visits: a histogram with no visit yet is an honest zero.
                    self.zone_dwell.labels(cid, zone.name)
                if zone.capacity is not None:
                    self.zone_capacity.labels(cid, zone.name).set(zone.capacity)

    def write(self, result: FrameResult) -> None:
        """Publish one analysed frame, its stage times and its age."""
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
                self.zone_level.labels(cid, name).set(int(stats.level))
        if result.flow is not None:
            self._write_flow(cid, result.flow)
        for stage, seconds in result.stage_seconds.items():
            self.stage_seconds.labels(cid, stage).observe(seconds)
        self.detector_tiles.labels(cid).set(result.tiles)
        for method in COUNTING_METHODS:
            self.counting_method.labels(cid, method).set(int(method == result.method))
        self.frames.labels(cid).inc()
        self.last_frame.labels(cid).set(result.captured_at)
        if result.analysed_at:
            self.stage_seconds.labels(cid, "export").observe(
                time.perf_counter() - result.analysed_at)
        self.frame_age.labels(cid).observe(max(self._clock() - result.captured_at, 0.0))

    def _write_flow(self, cid: str, flow: FlowResult) -> None:
        for name, line in flow.lines.items() if self.count_lines else ():
            if line.new_in:
                self.line_crossings.labels(cid, name, "in").inc(line.new_in)
            if line.new_out:
                self.line_crossings.labels(cid, name, "out").inc(line.new_out)
        for name, dwell in flow.dwell.items():
            self.zone_longest_stay.labels(cid, name).set(dwell.longest_s)
            for seconds in dwell.completed_s:
                self.zone_dwell.labels(cid, name).observe(seconds)

    def close(self) -> None:
        """Nothing to flush: the registry is read by the server."""
