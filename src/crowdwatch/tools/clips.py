"""Benchmark clips: H.264 copies of a clip at a size and rate (ffmpeg), and what OpenCV
reads of a clip (size, rate, decode time)."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from pathlib import Path

from crowdwatch.errors import CrowdwatchError


def make_clip(source: Path, size: tuple[int, int], frames: int, cache_dir: Path,
              fps: int | None = None) -> Path:
    """An H.264 copy of source at size (centre-cropped to its aspect first), cached.

    fps: the copy's frame rate (frames repeated or dropped to get it); None keeps the source's.
    """
    width, height = size
    rate = f"_{fps}fps" if fps else ""
    out = cache_dir / f"{source.stem}_{width}x{height}{rate}_{frames}f.mp4"
    if out.exists():
        return out
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise CrowdwatchError("ffmpeg not found: install it (Debian: apt install ffmpeg) to "
                              "make the 1280x720 and 1920x1080 clips")
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Crop before scaling so people keep their proportions.
    crop = f"crop='min(iw,ih*{width}/{height})':'min(ih,iw*{height}/{width})'"
    partial = out.with_suffix(".part.mp4")
    command = [ffmpeg, "-y", "-loglevel", "error", "-i", str(source), "-frames:v", str(frames),
               "-an", "-vf", f"{crop},scale={width}:{height}", *(["-r", str(fps)] if fps else []),
               "-c:v", "libx264",
               "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", str(partial)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise CrowdwatchError(f"ffmpeg failed making {out.name}: {done.stderr.strip()[-300:]}")
    partial.replace(out)
    return out


def decode_ms(clip: Path, frames: int) -> float:
    """Median milliseconds OpenCV takes to decode one frame of clip."""
    import cv2

    capture = cv2.VideoCapture(str(clip))
    times = []
    try:
        for _ in range(frames):
            started = time.perf_counter()
            ok, _image = capture.read()
            if not ok:
                break
            times.append(time.perf_counter() - started)
    finally:
        capture.release()
    return statistics.median(times) * 1000 if times else float("nan")


def clip_size(clip: Path) -> str:
    import cv2

    capture = cv2.VideoCapture(str(clip))
    try:
        return f"{int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))}x" \
               f"{int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))}"
    finally:
        capture.release()


def clip_fps(clip: Path) -> float:
    import cv2

    capture = cv2.VideoCapture(str(clip))
    try:
        return float(capture.get(cv2.CAP_PROP_FPS))
    finally:
        capture.release()
