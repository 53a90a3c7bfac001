"""The benchmark's code path on a few frames (speed is not asserted), and its report."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from crowdwatch.tools.bench import BenchOptions, run_bench
from crowdwatch.tools.bench_report import BenchReport, CapacityRow, format_report
from crowdwatch.tools.clips import make_clip

# Longer than the suite's default timeout (pyproject.toml): subprocess runs of the benchmark.
pytestmark = pytest.mark.timeout(900)


def test_generated_clip_has_the_asked_size(tmp_path: Path, sample_clip: Path) -> None:
    import cv2

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (apt-get install ffmpeg, as .ci/run does)")
    clip = make_clip(sample_clip, (1280, 720), 3, tmp_path)
    capture = cv2.VideoCapture(str(clip))
    size = (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    capture.release()
    assert size == (1280, 720)
    assert make_clip(sample_clip, (1280, 720), 3, tmp_path) == clip  # cached


@pytest.mark.model
def test_bench_runs_every_scenario_on_a_few_frames(tmp_path: Path, sample_clip: Path,
                                                   model_path: Path) -> None:
    # Four people in every frame, in the CSV ground-truth format eval reads.
    truth = tmp_path / "boxes.csv"
    truth.write_text("frame,id,x,y,w,h\n" + "".join(
        f"{i},{p},{10 + 50 * p},10,20,60\n" for i in range(200) for p in range(4)))
    options = BenchOptions(clip=sample_clip, model=str(model_path), ground_truth=truth,
                           cache_dir=tmp_path, runs=1, frames=5, streams=2, live_frames=3,
                           sizes=(),  # the multi scenario still makes a 1280x720 clip
                           variants={"square input": {"input_shape": "square"}})
    report = run_bench(options)
    settings = [(r.clip, r.setting) for r in report.single]
    assert ("768x576", "ultralytics loop") in settings
    assert ("768x576", "crowdwatch") in settings
    assert ("768x576", "crowdwatch, square input") in settings
    baseline = {r.clip: r.stream.fps for r in report.single if r.setting == "ultralytics loop"}
    for row in report.single:
        # Speed is a figure, not asserted; its ratio must be this row over the baseline's.
        assert row.stream.frames == 5 and row.stream.fps > 0
        assert row.ratio == pytest.approx(row.stream.fps / baseline[row.clip])
        assert row.peak_rss_mb > 0
    pets = [r for r in report.single if r.clip == "768x576"]
    assert all(r.stream.mae is not None for r in pets)
    assert report.live[0].age_p95_s >= report.live[0].age_p50_s >= 0
    # The multi-camera scenario needs ffmpeg (its 1280x720 clip): CI installs it (.ci/run).
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed: the multi-camera scenario did not run")
    assert len(report.multi[0].fps_per_stream) == 2
    text = format_report(report)
    assert "| 768x576 | crowdwatch |" in text and "ratio" in text


def _capacity_row(min_fps: float, age_p95_s: float | None) -> CapacityRow:
    return CapacityRow(cameras=4, setting="every frame", fps_per_camera=[min_fps, 10.0],
                       min_fps=min_fps, median_fps=10.0, total_fps=min_fps + 10.0,
                       dropped_per_s=3.0, age_p95_s=age_p95_s, cpu_ms_per_frame=20.0,
                       cpu_cores=1.5, peak_rss_mb=400)


@pytest.mark.parametrize(("min_fps", "age_p95_s", "served"), [
    (5.0, 0.999, True),  # at least 5 frames/s and p95 age under 1 s
    (4.99, 0.2, False),
    (9.0, 1.0, False),
    (9.0, None, False),  # no frame analysed in the window: no age, not served
])
def test_a_camera_count_is_served_at_5_frames_per_second_under_1_s_old(
        min_fps: float, age_p95_s: float | None, served: bool) -> None:
    row = _capacity_row(min_fps, age_p95_s)
    assert row.served is served
    report = BenchReport(hardware="cpu", model="m", runs=1, frames=1, python="3", versions={},
                         capacity=[row])
    share = f"{min_fps / 10:.2f}"
    assert (f"| 4 | every frame | {min_fps:.1f} | 10.0 | {share} | {min_fps + 10:.1f} | 3.0 | "
            in format_report(report))
    assert format_report(report).rstrip().endswith("| yes |" if served else "| no |")


@pytest.mark.model
def test_capacity_scenario_runs_two_live_cameras(tmp_path: Path, sample_clip: Path,
                                                 model_path: Path) -> None:
    from crowdwatch.tools.rtsp_server import probe

    why = probe() or (None if shutil.which("ffmpeg") else "ffmpeg not installed")
    if why is not None:
        message = (f"{why}; install ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 "
                   "gstreamer1.0-plugins-good (see .ci/run)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = BenchOptions(clip=sample_clip, model=str(model_path), cache_dir=tmp_path,
                           scenarios=("capacity",), cameras=(2,), seconds=3.0,
                           fair_clip=sample_clip)
    report = run_bench(options)
    assert [(r.cameras, r.setting) for r in report.capacity] == [
        (2, "every frame"), (2, "detect_every 2"), (2, "every frame"), (2, "analysis_fps 5")]
    # The second part: the clip itself (768x576 10 frames/s), a server per camera; received
    # rates per camera besides the analysed ones.
    per_server = report.capacity[2:]
    assert all(r.clip == "768x576 10 frames/s, a server per camera" for r in per_server)
    for row in per_server:
        assert len(row.received_per_camera) == 2 and row.min_received > 0
        # A camera cannot be analysed more often than it receives frames (up to the frames
        # in flight when the window opened).
        assert all(a <= r + 1.5 for a, r in zip(row.fps_per_camera, row.received_per_camera,
                                                strict=True))
    for row in report.capacity:
        # Speed is a figure, not asserted: every camera delivered in the window, ages are sane.
        assert len(row.fps_per_camera) == 2 and row.min_fps > 0
        assert row.total_fps == pytest.approx(sum(row.fps_per_camera))
        assert 0 <= row.age_p95_s < 30 and row.dropped_per_s >= 0
        assert row.cpu_ms_per_frame > 0 and row.peak_rss_mb > 0
    text = format_report(report)
    assert "| 2 | detect_every 2 |" in text and "| 2 | analysis_fps 5 |" in text
    assert "- 2 cameras, analysis_fps 5: 0: " in text


@pytest.mark.parametrize("fps", [25, 5])
def test_generated_clip_has_the_asked_frame_rate(tmp_path: Path, sample_clip: Path,
                                                 fps: int) -> None:
    import cv2

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (apt-get install ffmpeg, as .ci/run does)")
    clip = make_clip(sample_clip, (320, 240), 10, tmp_path, fps=fps)
    capture = cv2.VideoCapture(str(clip))
    got = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    assert got == pytest.approx(fps)
