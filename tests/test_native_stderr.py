"""FFmpeg's own stderr lines come out in crowdwatch's format, and a frame FFmpeg reports as
damaged (decoded with concealment: a smeared picture) is skipped and counted, not counted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _damaged(sample_clip: Path, folder: Path) -> Path:
    data = bytearray(sample_clip.read_bytes())
    start, length = len(data) // 2, len(data) // 100
    data[start:start + length] = bytes(length)
    path = folder / "damaged.mp4"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.model
def test_ffmpeg_lines_are_reformatted_and_damaged_frames_skipped(
        sample_clip: Path, model_path: Path, tmp_path: Path) -> None:
    source = _damaged(sample_clip, tmp_path)
    events = tmp_path / "events.jsonl"
    env = {**os.environ, "CROWDWATCH_MODEL": str(model_path),
           "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run([sys.executable, "-m", "crowdwatch", "run", "-s", str(source),
                             "--no-metrics", "--events", str(events)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert all(line.startswith("crowdwatch: ") for line in lines), result.stderr
    ffmpeg = [line for line in lines if line.startswith("crowdwatch: warning: ffmpeg (h264): ")]
    assert any("error while decoding" in line for line in ffmpeg)
    (skipped,) = [line for line in lines if "undecodable frame(s)" in line]
    count = int(skipped.split("skipped ")[1].split()[0])
    frames = [json.loads(line)["frame"] for line in events.read_text().splitlines()]
    # The frame FFmpeg decoded with concealed errors is skipped with the undecodable ones.
    assert count >= 2
    assert len(frames) + count <= 200
