from __future__ import annotations

import dataclasses
import math
import time
import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from crowdwatch.config import parse_config
from crowdwatch.health import HealthState, SourceStatus
from crowdwatch.outputs.metrics import STAGES, MetricsSink
from crowdwatch.types import FlowResult, FrameResult, Level, LineTotals, ZoneDwell, ZoneStats
from crowdwatch.web.server import Server

CONFIG = parse_config({
    "cameras": [{"id": "gate", "source": "x.mp4", "zones": [
        {"name": "queue", "polygon": [[0, 0], [1, 0], [1, 1]], "capacity": 4, "area_m2": 10},
        {"name": "hall", "polygon": [[0, 0], [1, 0], [1, 1]]},
    ]}],
})


def samples(exporter: MetricsSink) -> dict[tuple[str, tuple], float]:
    text = generate_latest(exporter.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(all_samples: dict, name: str, **labels: str) -> float:
    return all_samples[(name, tuple(sorted(labels.items())))]


def sink(health: HealthState | None = None) -> MetricsSink:
    return MetricsSink(CONFIG, health or HealthState(["gate"]))


def test_before_the_first_frame_no_count_series_and_nothing_nan() -> None:
    s = samples(sink())
    names = {name for name, _ in s}
    for absent in ("crowdwatch_zone_people", "crowdwatch_zone_people_raw",
                   "crowdwatch_zone_density_people_per_square_meter",
                   "crowdwatch_zone_occupancy_ratio", "crowdwatch_zone_level",
                   "crowdwatch_camera_people", "crowdwatch_camera_people_raw"):
        assert absent not in names
    assert not any(name.endswith("_created") for name in names)
    assert not any(math.isnan(v) for v in s.values())
    # Capacity is configuration: there from start-up, for the zone that has one only.
    assert value(s, "crowdwatch_zone_capacity_people", camera="gate", zone="queue") == 4
    assert ("crowdwatch_zone_capacity_people", (("camera", "gate"), ("zone", "hall"))) not in s
    assert value(s, "crowdwatch_source_up", camera="gate") == 0
    assert value(s, "crowdwatch_frames_processed_total", camera="gate") == 0
    (build,) = [dict(labels) for name, labels in s if name == "crowdwatch_build_info"]
    assert build["version"] == "0.1.0" and build["model"] == "yolo11n_int8_openvino_model"
    assert set(build) == {"version", "model", "model_path", "model_sha256"}


def test_record_frame_updates_zone_and_camera_series() -> None:
    exporter = sink()
    exporter.write(FrameResult(
        camera="gate", frame_index=0, position_s=0.0, captured_at=1234.5, people=5,
        people_raw=6,
        zones={"queue": ZoneStats(3, people_raw=4, density=0.3, occupancy=0.75, level=Level.WARNING),
               "hall": ZoneStats(2, people_raw=2)},
        stage_seconds={"detect": 0.02, "zones": 0.0001}, tiles=6,
    ))
    s = samples(exporter)
    assert value(s, "crowdwatch_detector_tiles", camera="gate") == 6
    assert value(s, "crowdwatch_zone_people", camera="gate", zone="queue") == 3
    assert value(s, "crowdwatch_zone_people", camera="gate", zone="hall") == 2
    assert value(s, "crowdwatch_zone_density_people_per_square_meter", camera="gate", zone="queue") == 0.3
    assert value(s, "crowdwatch_zone_occupancy_ratio", camera="gate", zone="queue") == 0.75
    assert value(s, "crowdwatch_zone_level", camera="gate", zone="queue") == 1
    # hall has no capacity and no area: no level, occupancy or density series, ever.
    for name in ("crowdwatch_zone_level", "crowdwatch_zone_occupancy_ratio",
                 "crowdwatch_zone_density_people_per_square_meter",
                 "crowdwatch_zone_capacity_people"):
        assert (name, (("camera", "gate"), ("zone", "hall"))) not in s
    assert not any(math.isnan(v) for v in s.values())
    assert value(s, "crowdwatch_camera_people", camera="gate") == 5
    assert value(s, "crowdwatch_camera_people_raw", camera="gate") == 6
    assert value(s, "crowdwatch_zone_people_raw", camera="gate", zone="queue") == 4
    assert value(s, "crowdwatch_frames_processed_total", camera="gate") == 1
    assert value(s, "crowdwatch_last_frame_timestamp_seconds", camera="gate") == 1234.5
    assert value(s, "crowdwatch_stage_duration_seconds_count", camera="gate", stage="detect") == 1


def test_source_totals_become_monotonic_counters() -> None:
    health = HealthState(["gate"])
    exporter = sink(health)
    health.report("gate", SourceStatus(up=True, frames_dropped=3, reconnects=1))
    health.report("gate", SourceStatus(up=False, frames_dropped=5, reconnects=1))
    s = samples(exporter)
    assert value(s, "crowdwatch_frames_dropped_total", camera="gate") == 5
    assert value(s, "crowdwatch_source_reconnects_total", camera="gate") == 1
    assert value(s, "crowdwatch_source_up", camera="gate") == 0


def test_frames_received_and_the_streams_nominal_rate_are_exported() -> None:
    health = HealthState(["gate"])
    exporter = sink(health)
    health.report("gate", SourceStatus(up=True, frames_received=120))
    s = samples(exporter)
    assert value(s, "crowdwatch_source_frames_received_total", camera="gate") == 120
    # Unknown until the decoder says: absent, never a 0 that looks like a dead stream.
    assert not any(name == "crowdwatch_source_nominal_frames_per_second" for name, _ in s)
    health.report("gate", SourceStatus(up=True, frames_received=150, stream_fps=25.0))
    s = samples(exporter)
    assert value(s, "crowdwatch_source_nominal_frames_per_second", camera="gate") == 25.0
    assert value(s, "crowdwatch_source_frames_received_total", camera="gate") == 150


def test_names_follow_prometheus_conventions() -> None:
    text = generate_latest(sink().registry).decode()
    ours = [f for f in text_string_to_metric_families(text) if f.name.startswith("crowdwatch_")]
    assert len(ours) >= 14
    for family in ours:
        if family.type == "counter":
            assert all(x.name.endswith("_total") for x in family.samples)
        for sample in family.samples:
            # Bounded labels only: never a track id or a URL.
            assert set(sample.labels) <= {"camera", "zone", "stage", "le", "version", "model",
                                             "model_path", "model_sha256"}


def test_endpoint_serves_over_http() -> None:
    health = HealthState(["gate"])
    server = Server(health, "127.0.0.1", 0, sink(health).registry)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics",
                                    timeout=5) as response:
            body = response.read().decode()
    finally:
        server.close()
    names = {f.name for f in text_string_to_metric_families(body)}
    assert {"crowdwatch_zone_people", "crowdwatch_source_up", "crowdwatch_frames_processed"} <= names


def frame(captured_at: float, people: int = 1) -> FrameResult:
    return FrameResult(camera="gate", frame_index=0, position_s=None, captured_at=captured_at,
                       people=people, people_raw=people)


def test_frame_age_is_the_clock_minus_the_capture_time() -> None:
    # Captured at 100.0; the clock reads 102.5, then 100.25, then 99.0 (a clock step back).
    readings = iter([102.5, 100.25, 99.0])
    exporter = MetricsSink(CONFIG, HealthState(["gate"]), clock=lambda: next(readings))
    for _ in range(3):
        exporter.write(frame(100.0))
    s = samples(exporter)
    assert value(s, "crowdwatch_frame_age_seconds_count", camera="gate") == 3
    # 2.5 + 0.25 + 0 (a negative age is clamped to 0, never subtracted)
    assert value(s, "crowdwatch_frame_age_seconds_sum", camera="gate") == 2.75
    assert value(s, "crowdwatch_frame_age_seconds_bucket", camera="gate", le="0.01") == 1
    assert value(s, "crowdwatch_frame_age_seconds_bucket", camera="gate", le="0.3") == 2
    assert value(s, "crowdwatch_frame_age_seconds_bucket", camera="gate", le="2.0") == 2
    assert value(s, "crowdwatch_frame_age_seconds_bucket", camera="gate", le="5.0") == 3


@pytest.mark.parametrize(("statuses", "expected"), [
    # Totals only ever rise in the counters, whatever the source reports last.
    ([SourceStatus(up=True)], {"up": 1, "dropped": 0, "skipped": 0, "reconnects": 0}),
    ([SourceStatus(up=True, frames_dropped=2, frames_skipped=1, reconnects=0),
      SourceStatus(up=True, frames_dropped=7, frames_skipped=4, reconnects=3)],
     {"up": 1, "dropped": 7, "skipped": 4, "reconnects": 3}),
    ([SourceStatus(up=True, frames_dropped=2), SourceStatus(up=False, frames_dropped=2)],
     {"up": 0, "dropped": 2, "skipped": 0, "reconnects": 0}),
])
def test_source_series_are_the_reported_totals(statuses: list[SourceStatus],
                                               expected: dict[str, int]) -> None:
    health = HealthState(["gate"])
    exporter = sink(health)
    for status in statuses:
        health.report("gate", status)
    s = samples(exporter)
    assert value(s, "crowdwatch_source_up", camera="gate") == expected["up"]
    assert value(s, "crowdwatch_frames_dropped_total", camera="gate") == expected["dropped"]
    assert value(s, "crowdwatch_frames_skipped_total", camera="gate") == expected["skipped"]
    assert value(s, "crowdwatch_source_reconnects_total", camera="gate") == expected["reconnects"]


def test_every_frame_replaces_the_counts_and_adds_one_to_the_total() -> None:
    exporter = sink()
    for people in (4, 0, 2):
        exporter.write(frame(10.0 + people, people))
    s = samples(exporter)
    assert value(s, "crowdwatch_camera_people", camera="gate") == 2
    assert value(s, "crowdwatch_frames_processed_total", camera="gate") == 3
    assert value(s, "crowdwatch_last_frame_timestamp_seconds", camera="gate") == 12.0
    # A zone absent from every result was never measured: it has no series at all.
    assert ("crowdwatch_zone_people", (("camera", "gate"), ("zone", "queue"))) not in s


def test_counters_and_histograms_start_at_zero_before_the_first_frame() -> None:
    s = samples(sink())
    # No frame yet: no timestamp (0 would claim a frame in 1970).
    assert ("crowdwatch_last_frame_timestamp_seconds", (("camera", "gate"),)) not in s
    assert value(s, "crowdwatch_frame_age_seconds_count", camera="gate") == 0
    for stage in STAGES:
        assert value(s, "crowdwatch_stage_duration_seconds_count", camera="gate",
                     stage=stage) == 0
    for name in ("crowdwatch_frames_dropped_total", "crowdwatch_frames_skipped_total",
                 "crowdwatch_source_reconnects_total"):
        assert value(s, name, camera="gate") == 0
    # The process and platform collectors are on this registry, not the global one.
    assert value(s, "process_open_fds") > 0
    assert any(name == "python_info" for name, _labels in s)


def test_the_export_stage_is_timed_from_the_end_of_analysis() -> None:
    exporter = sink()
    result = frame(10.0)
    exporter.write(dataclasses.replace(result, analysed_at=time.perf_counter()))
    s = samples(exporter)
    assert value(s, "crowdwatch_stage_duration_seconds_count", camera="gate", stage="export") == 1
    # A duration since analysis ended (well under a minute), never a sum of two clocks.
    assert 0 <= value(s, "crowdwatch_stage_duration_seconds_sum", camera="gate",
                      stage="export") < 60


FLOW_CONFIG = parse_config({"cameras": [{
    "id": "gate", "source": "x.mp4",
    "zones": [{"name": "queue", "polygon": [[0, 0], [9, 0], [9, 9]], "dwell": True}],
    "lines": [{"name": "door", "points": [[0, 5], [9, 5]]}],
}]})


def test_line_crossings_and_dwell_are_exported_per_camera_line_and_zone() -> None:
    exporter = MetricsSink(FLOW_CONFIG, HealthState(["gate"]))
    s = samples(exporter)
    # Declared before any frame: crossings and completed visits start at an honest zero.
    assert value(s, "crowdwatch_line_crossings_total", camera="gate", line="door",
                 direction="in") == 0
    assert value(s, "crowdwatch_zone_dwell_seconds_count", camera="gate", zone="queue") == 0
    assert value(s, "crowdwatch_line_crossings_total", camera="gate", line="door",
                 direction="out") == 0
    assert value(s, "crowdwatch_stage_duration_seconds_count", camera="gate",
                 stage="track") == 0
    frames = [({"door": LineTotals(2, 1, new_in=2, new_out=1)},
               {"queue": ZoneDwell(inside=1, longest_s=4.0, completed_s=(3.0, 12.0))}),
              ({"door": LineTotals(3, 1, new_in=1)},
               {"queue": ZoneDwell(inside=0, longest_s=0.0, completed_s=(7.0,))})]
    for index, (lines, dwell) in enumerate(frames):
        exporter.write(FrameResult(camera="gate", frame_index=index, position_s=index / 10,
                                   captured_at=1.0, people=1, people_raw=1,
                                   flow=FlowResult(lines, dwell)))
        s = samples(exporter)
        if index == 0:
            assert value(s, "crowdwatch_zone_longest_stay_seconds", camera="gate",
                         zone="queue") == 4.0
    # The counters add each frame's new crossings: 2 + 1 in, 1 + 0 out.
    assert value(s, "crowdwatch_line_crossings_total", camera="gate", line="door",
                 direction="in") == 3
    assert value(s, "crowdwatch_line_crossings_total", camera="gate", line="door",
                 direction="out") == 1
    assert value(s, "crowdwatch_zone_longest_stay_seconds", camera="gate", zone="queue") == 0.0
    # Three completed visits, 3 + 12 + 7 = 22 s; two of them end within the 10 s bucket.
    assert value(s, "crowdwatch_zone_dwell_seconds_count", camera="gate", zone="queue") == 3
    assert value(s, "crowdwatch_zone_dwell_seconds_sum", camera="gate", zone="queue") == 22.0
    assert value(s, "crowdwatch_zone_dwell_seconds_bucket", camera="gate", zone="queue",
                 le="10.0") == 2


@pytest.mark.parametrize(("method", "boxes", "density"), [("boxes", 1, 0), ("density", 0, 1)])
def test_the_counting_method_gauge_marks_the_method_in_use(method: str, boxes: int,
                                                           density: int) -> None:
    exporter = sink()
    assert "crowdwatch_counting_method" not in {name for name, _ in samples(exporter)}
    exporter.write(FrameResult(camera="gate", frame_index=0, position_s=0.0, captured_at=1.0,
                               people=1, people_raw=1, method=method))
    s = samples(exporter)
    assert value(s, "crowdwatch_counting_method", camera="gate", method="boxes") == boxes
    assert value(s, "crowdwatch_counting_method", camera="gate", method="density") == density


def test_line_counters_fed_elsewhere_are_not_moved_by_frames() -> None:
    # With a state file, its saves move crowdwatch_line_crossings_total
    # (integrations.LineCountersFromState); frames counting them too would count twice.
    exporter = MetricsSink(FLOW_CONFIG, HealthState(["gate"]))
    exporter.count_lines = False
    exporter.write(FrameResult(camera="gate", frame_index=0, position_s=0.0, captured_at=1.0,
                               people=1, people_raw=1,
                               flow=FlowResult({"door": LineTotals(2, 1, new_in=2, new_out=1)},
                                               {"queue": ZoneDwell(inside=1, longest_s=4.0)})))
    s = samples(exporter)
    for direction in ("in", "out"):
        assert value(s, "crowdwatch_line_crossings_total", camera="gate", line="door",
                     direction=direction) == 0
    # Dwell is still the frames'.
    assert value(s, "crowdwatch_zone_longest_stay_seconds", camera="gate", zone="queue") == 4.0
