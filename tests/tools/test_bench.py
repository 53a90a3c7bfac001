"""The benchmark's code path on a few frames (speed is not asserted), and its report."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crowdwatch.tools.bench import BenchOptions, format_report, make_clip, run_bench


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
