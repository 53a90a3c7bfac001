"""Issue 19's smaller items, one test each: empty --source, booleans read as numbers, the
summary of zones without capacity, the timestamp of a camera that never delivered, events
after a partial line, quick mode on loopback, and outputs that fail (at start, or during the
run: counted, and the run ends non-zero)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from crowdwatch.config import parse_config, quick_config
from crowdwatch.errors import ConfigError
from crowdwatch.health import HealthState
from crowdwatch.outputs.events import EventWriter
from crowdwatch.outputs.metrics import MetricsSink
from crowdwatch.outputs.summary import SummarySink
from crowdwatch.types import FrameResult, ZoneStats

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "samples" / "vtest_h264.mp4"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "crowdwatch", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def _one_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("crowdwatch: error:")]
    return line


def test_an_empty_source_is_one_line() -> None:
    assert "--source is empty" in _one_error(_cli("run", "-s", ""))


@pytest.mark.parametrize(("key", "value"), [("capacity", True), ("capacity", False),
                                            ("area_m2", True)])
def test_yes_is_not_a_number(key: str, value: bool) -> None:
    zone = {"name": "z", "polygon": [[0, 0], [10, 0], [10, 10]], key: value}
    with pytest.raises(ConfigError, match=rf"zones\[0\]\.{key}: must be a number, not"):
        parse_config({"cameras": [{"id": "c", "source": "x.mp4", "zones": [zone]}]})


def test_a_zone_without_capacity_shows_no_time_at_levels() -> None:
    sink = SummarySink()
    for index in range(3):
        sink.write(FrameResult("cam", index, index * 0.5, 0.0, 2, 2,
                               zones={"hall": ZoneStats(people=2, level=None)}))
    hall = sink.lines()[3].split()
    assert hall == ["hall", "3", "2.00", "2", "-", "-"]


def test_a_camera_that_never_delivered_has_no_timestamp() -> None:
    text = generate_latest(MetricsSink(quick_config("clip.mp4"),
                                       HealthState(["cam0"])).registry).decode()
    assert "crowdwatch_last_frame_timestamp_seconds{" not in text


def test_quick_mode_serves_on_loopback_only() -> None:
    assert quick_config("clip.mp4").metrics.host == "127.0.0.1"


def test_events_after_a_partial_line_start_on_a_new_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"frame": 1}\n{"frame": 2, "cut')
    writer = EventWriter(path)
    writer.write(FrameResult("cam", 3, 0.3, 0.0, 1, 1))
    writer.close()
    lines = path.read_text().splitlines()
    assert lines[:2] == ['{"frame": 1}', '{"frame": 2, "cut']
    assert lines[2].startswith('{"') and '"frame":3' in lines[2]


def test_lost_events_are_exported(tmp_path: Path) -> None:
    writer = EventWriter("/dev/full")
    writer.write(FrameResult("cam", 0, 0.0, 0.0, 1, 1))
    (family,) = writer.collect()
    assert family.name == "crowdwatch_events_lost" and family.samples[0].value == 1
    writer.close()


@pytest.mark.model
def test_events_that_cannot_be_written_end_the_run_non_zero(model_path: Path) -> None:
    result = _cli("run", "-s", str(CLIP), "--max-frames", "5", "--no-metrics",
                  "--model", str(model_path), "--events", "/proc/version")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("crowdwatch: error:")]
    assert "cannot write events to /proc/version" in errors[0]  # said when it happened
    line = errors[-1]  # and summed up at the end
    assert "analysed 5 frames" in result.stderr  # counting went on
    assert "outputs lost data: 5 event line(s) could not be written to /proc/version" in line


def test_an_unwritable_recording_folder_fails_at_start(model_path: Path) -> None:
    result = _cli("run", "-s", str(CLIP), "--max-frames", "5", "--no-metrics",
                  "--model", str(model_path), "--save-video", "/sys")
    line = _one_error(result)
    assert "cannot write to the recording folder /sys" in line
    assert "analysed" not in result.stderr
