"""FFmpeg's own stderr lines come out in crowdwatch's format, and a frame FFmpeg reports as
damaged (decoded with concealment: a smeared picture), or one that depends on it, is skipped
and counted, not counted."""

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
def test_damaged_frames_are_skipped_and_stderr_stays_crowdwatchs(
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
    (skipped,) = [line for line in lines if "undecodable frame(s)" in line]
    count = int(skipped.split("skipped ")[1].split()[0])
    frames = [json.loads(line)["frame"] for line in events.read_text().splitlines()]
    # The damage is past the middle and the sample's only keyframe is its first frame: the
    # damaged frame and every one after it (smeared before: counted 9-11 people against 6)
    # are skipped; every frame is analysed or counted as skipped.
    assert max(frames) < 100
    assert len(frames) + count == 200


def test_native_lines_are_reformatted_summarised_and_damage_counted() -> None:
    # What OpenCV's FFmpeg (live streams) and libjpeg write to fd 2.
    script = """
import os
from crowdwatch import native_log
native_log.install()
for n in range(5):
    os.write(2, b"[h264 @ 0x55d08d085dc0] error while decoding MB %d 13, bytestream -7\\n" % n)
os.write(2, b"[h264 @ 0x55d08d085dc0] SEI type 5 size 600 truncated at 48\\n")
os.write(2, b"Corrupt JPEG data: 2 extraneous bytes before marker 0xd9\\n")
print(native_log.decode_errors(), flush=True)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "6"  # 5 decode errors + the corrupt JPEG: damage
    lines = result.stderr.splitlines()
    assert all(line.startswith("crowdwatch: warning: ") for line in lines), lines
    decoding = [ln for ln in lines if ln.startswith("crowdwatch: warning: ffmpeg (h264): error")
                and not ln.endswith("times")]
    assert len(decoding) == 3  # the first 3 of a kind, then counted
    assert "further ones counted" in decoding[-1]
    assert any("SEI type 5" in ln for ln in lines)
    assert any(ln.startswith("crowdwatch: warning: libjpeg: Corrupt JPEG") for ln in lines)
    assert any("error while decoding MB N N, bytestream -N: 5 times" in ln for ln in lines)
