"""Per-camera rates: analysis_fps through the pipeline, the falling-behind warning, the
received and nominal-rate series on /metrics."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from test_pipeline import FakeAsyncDetect, FakeSource

from crowdwatch.build import build_pipeline
from crowdwatch.config import AppConfig, CameraConfig, parse_config
from crowdwatch.health import HealthState
from crowdwatch.outputs.metrics import MetricsSink
from crowdwatch.rates import RateGate, RateMonitor


def _config(detector: dict | None = None, **camera: object) -> AppConfig:
    return parse_config({"cameras": [{"id": "a", "source": "a.mp4", **camera}],
                         "detector": {"tiling": {"mode": "off"}, **(detector or {})}})


@pytest.mark.parametrize(("stream_fps", "jitter_s", "cap", "frames", "passed"), [
    (10.0, 0.0, 5.0, 40, 20),  # every other frame
    (10.0, 0.004, 5.0, 40, 20),  # a stream's timing jitters: still every other frame
    (25.0, 0.0, 10.0, 100, 40),  # 10 of 25: two frames in five
    (10.0, 0.0, 20.0, 30, 30),  # a cap above the stream's rate passes everything
    (10.0, 0.0, 1.0, 45, 5),  # one a second: t = 0, 1, 2, 3, 4
])
def test_the_gate_passes_at_most_its_rate_by_the_frames_own_times(
        stream_fps: float, jitter_s: float, cap: float, frames: int, passed: int) -> None:
    gate = RateGate(cap)
    times = [i / stream_fps + (jitter_s if i % 2 else -jitter_s) for i in range(frames)]
    assert sum(gate.admit(t) for t in times) == passed


def test_the_gate_passes_the_first_frame_after_a_gap_without_a_burst() -> None:
    gate = RateGate(5.0)
    assert [gate.admit(t) for t in (0.0, 0.2, 10.0, 10.1, 10.2, 10.3, 10.4)] == [
        True, True, True, False, True, False, True]


@pytest.mark.parametrize(("cap", "every", "analysed", "detected"), [
    (None, 1, 40, 40),  # default: every frame
    (5.0, 1, 20, 20),  # half of a 10 frames/s stream
    (5.0, 2, 20, 10),  # detect_every counts analysed frames: the detector runs 2.5 times/s
    (2.5, 1, 10, 10),
])
def test_analysis_fps_skips_frames_before_the_detector(cap: float | None, every: int,
                                                        analysed: int, detected: int) -> None:
    camera = {} if cap is None else {"analysis_fps": cap, "min_analysis_fps": None}
    cfg = _config({"detect_every": every}, **camera)
    detect = FakeAsyncDetect(ready=True)
    health = HealthState(["a"])
    source = FakeSource(40, fps=10.0)
    pipeline = build_pipeline(cfg, detect, [], health, source_opener=lambda _c: source)
    pipeline.run()
    assert pipeline.processed == {"a": analysed}
    assert len(detect.submitted) == detected
    if cap is not None:  # frames evenly spaced in the stream, by their position
        step = round(10.0 / cap)
        assert detect.submitted == [i % 256 for i in range(0, 40, step * every)]
    # Every frame was received, analysed or not.
    assert health.sources()["a"].frames_received == 40
    assert pipeline.workers[0].gated == 40 - analysed


def test_the_received_and_nominal_rate_series_are_exported() -> None:
    cfg = _config()
    health = HealthState(["a"])
    sink = MetricsSink(cfg, health)
    source = FakeSource(12, fps=10.0)
    source.stream_fps = 12.5
    build_pipeline(cfg, FakeAsyncDetect(ready=True), [sink], health,
                   source_opener=lambda _c: source).run()
    samples = {s.name: s.value for family in text_string_to_metric_families(
        generate_latest(sink.registry).decode()) for s in family.samples
        if s.labels.get("camera") == "a"}
    assert samples["crowdwatch_source_frames_received_total"] == 12
    assert samples["crowdwatch_frames_processed_total"] == 12
    assert samples["crowdwatch_source_nominal_frames_per_second"] == 12.5


def test_no_nominal_rate_series_while_the_stream_does_not_declare_one() -> None:
    cfg = _config()
    health = HealthState(["a"])
    sink = MetricsSink(cfg, health)
    build_pipeline(cfg, FakeAsyncDetect(ready=True), [sink], health,
                   source_opener=lambda _c: FakeSource(3)).run()
    text = generate_latest(sink.registry).decode()
    assert 'crowdwatch_source_frames_received_total{camera="a"} 3.0' in text
    assert 'crowdwatch_source_nominal_frames_per_second{' not in text


def _feed(monitor: RateMonitor, rates: list[tuple[float, float]], stream_fps: float | None,
          window: float = 30.0) -> None:
    """Windows of (received, analysed) frames/s, observed at the injected times."""
    t, received, analysed = 0.0, 0, 0
    monitor.observe(t, received, analysed, stream_fps)
    for received_fps, analysed_fps in rates:
        t += window
        received += round(received_fps * window)
        analysed += round(analysed_fps * window)
        monitor.observe(t - window / 2, received, analysed, stream_fps)  # mid-window: no verdict
        monitor.observe(t, received, analysed, stream_fps)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_camera_analysed_below_its_minimum_is_warned_about_once_per_episode(
        caplog: pytest.LogCaptureFixture) -> None:
    monitor = RateMonitor("gate", min_analysis_fps=2.0, min_received_ratio=0.8)
    with caplog.at_level(logging.INFO, "crowdwatch.rates"):
        # ok, low, still low, just above the minimum (inside the hysteresis), recovered,
        # low again: a second episode.
        _feed(monitor, [(10, 3.0), (10, 0.5), (10, 1.0), (10, 2.1), (10, 2.5), (10, 0.2)], 10.0)
    warnings = _warnings(caplog)
    assert len(warnings) == 2
    assert all("camera gate: analysed" in w and "min_analysis_fps 2" in w for w in warnings)
    assert "0.50 frames/s" in warnings[0] and "0.20 frames/s" in warnings[1]
    recovered = [r.getMessage() for r in caplog.records if "again" in r.getMessage()]
    assert recovered == ["camera gate: analysed 2.50 frames/s again"]


@pytest.mark.parametrize(("stream_fps", "received", "warned"), [
    (10.0, 9.0, False),
    (10.0, 7.5, True),  # 75 % of its stream
    (25.0, 12.0, True),
    (None, 1.0, False),  # a stream that declares no rate: nothing to compare with
])
def test_a_camera_receiving_well_below_its_stream_rate_is_warned_about(
        caplog: pytest.LogCaptureFixture, stream_fps: float | None, received: float,
        warned: bool) -> None:
    monitor = RateMonitor("hall", min_analysis_fps=None, min_received_ratio=0.8)
    with caplog.at_level(logging.WARNING, "crowdwatch.rates"):
        _feed(monitor, [(received, 1.0)] * 3, stream_fps)
    warnings = _warnings(caplog)
    assert len(warnings) == (1 if warned else 0)
    if warned:
        assert warnings[0].startswith(f"camera hall: received {received:.2f} frames/s")


def test_a_source_going_down_restarts_the_window() -> None:
    monitor = RateMonitor("a", min_analysis_fps=1.0, min_received_ratio=0.8)
    monitor.observe(0.0, 0, 0, 10.0)
    monitor.reset()  # an outage: its missing frames are CameraDown's business
    monitor.observe(100.0, 0, 0, 10.0)
    monitor.observe(130.0, 300, 300, 10.0)
    assert monitor.received_fps == 10.0 and not monitor.received_low


@pytest.mark.parametrize(("fields", "error"), [
    ({"analysis_fps": 0}, "greater than 0"),
    ({"analysis_fps": 500}, "less than or equal to 120"),
    ({"analysis_fps": 2, "min_analysis_fps": 3}, "min_analysis_fps (3) is above analysis_fps"),
    ({"min_received_ratio": 1.5}, "less than or equal to 1"),
])
def test_rate_fields_have_bounds(fields: dict, error: str) -> None:
    with pytest.raises(ValidationError, match=error.replace("(", r"\(").replace(")", r"\)")):
        CameraConfig(id="a", source="a.mp4", **fields)


def test_rate_defaults_leave_analysis_unchanged() -> None:
    camera = CameraConfig(id="a", source="a.mp4")
    assert camera.analysis_fps is None
    assert camera.min_analysis_fps == 1.0 and camera.min_received_ratio == 0.8



@pytest.mark.parametrize(("minimum", "warned"), [(2.0, True), (0.5, False)])
def test_the_camera_loop_warns_a_live_camera_analysed_too_slowly(
        caplog: pytest.LogCaptureFixture, minimum: float, warned: bool) -> None:
    cfg = _config(min_analysis_fps=minimum)
    source = FakeSource(100, live=True)
    pipeline = build_pipeline(cfg, FakeAsyncDetect(ready=True), [], HealthState(["a"]),
                              max_frames=100, source_opener=lambda _c: source)
    # The loop's clock: one second per look, so the camera is analysed about once a second.
    ticks = iter(range(10_000))
    pipeline.state.clock = lambda: float(next(ticks))
    with caplog.at_level(logging.WARNING, "crowdwatch.rates"):
        pipeline.run()
    assert pipeline.processed == {"a": 100}
    assert len([w for w in _warnings(caplog) if "camera a: analysed" in w]) == (
        1 if warned else 0)
