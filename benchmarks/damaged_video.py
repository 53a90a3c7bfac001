"""Frames of a damaged MP4 that reach the detector, against the undamaged clip: docs/RELIABILITY.md.

    PYTHONPATH=src python benchmarks/damaged_video.py [--clip samples/vtest_h264.mp4]

Overwrites a stretch of the clip with seeded noise (1 % at the middle, a third from one third:
the damaged videos of tests/test_bad_inputs.py), reads each copy through `open_source` as
`crowdwatch run` does, and compares every frame handed over with the undamaged clip's frame of
the same index (PSNR). A frame below 30 dB is a smeared picture, not the scene: it would be
counted. Each copy is read twice: as crowdwatch reads files (PyAV, sources/decode.py) and
through OpenCV's VideoCapture (the file source before: FFmpeg's stderr messages counted).
Also times both over the undamaged clip (median of --repeats passes, interleaved).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from crowdwatch import native_log
from crowdwatch.config import CameraConfig
from crowdwatch.sources import open_source
from crowdwatch.sources.capture import CaptureFactory, CaptureLike
from crowdwatch.types import Image

REPO = Path(__file__).resolve().parents[1]
SMEARED_DB = 30.0
DAMAGE = {"1 % at the middle": (0.5, 0.01), "a third from one third": (1 / 3, 1 / 3)}


def damaged_copy(clip: Path, folder: Path, start: float, length: float) -> Path:
    """The clip with [start, start + length) (fractions of its size) replaced by noise."""
    data = bytearray(clip.read_bytes())
    first, count = int(len(data) * start), int(len(data) * length)
    data[first:first + count] = random.Random(6).randbytes(count)
    path = folder / f"damaged-{start:.3f}-{length:.3f}.mp4"
    path.write_bytes(bytes(data))
    return path


def psnr(a: Image, b: Image) -> float:
    error = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return 99.0 if error == 0 else 10 * np.log10(255.0 ** 2 / error)


def read_all(path: Path, factory: CaptureFactory | None = None
             ) -> tuple[list[tuple[int, Image]], int]:
    """(index, image) of every frame the file source hands over, and the frames it skipped."""
    frames = []
    with open_source(CameraConfig(id="cam", source=str(path)), factory) as source:
        while not source.finished:
            frame = source.read(5.0)
            if frame is not None:
                frames.append((frame.index, frame.image))
        return frames, source.frames_skipped


def opencv(source: str | int) -> CaptureLike:
    return cv2.VideoCapture(source)


READERS: dict[str, CaptureFactory | None] = {"PyAV (now)": None, "OpenCV (before)": opencv}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", type=Path, default=REPO / "samples" / "vtest_h264.mp4")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    native_log.install()  # as `crowdwatch run` does: FFmpeg's damage messages are counted
    clean, _ = read_all(args.clip)
    reference = dict(clean)
    print(f"undamaged: {len(clean)} frames")
    with tempfile.TemporaryDirectory() as folder:
        for name, (start, length) in DAMAGE.items():
            path = damaged_copy(args.clip, Path(folder), start, length)
            for reader, factory in READERS.items():
                frames, skipped = read_all(path, factory)
                scores = [psnr(image, reference[index]) for index, image in frames]
                smeared = sum(score < SMEARED_DB for score in scores)
                print(f"{name}, {reader}: {len(frames)} frames handed over, {skipped} skipped, "
                      f"{smeared} of them smeared (< {SMEARED_DB:.0f} dB against the undamaged "
                      f"frame; lowest {min(scores):.1f} dB)")
    seconds: dict[str, list[float]] = {reader: [] for reader in READERS}
    cpu: dict[str, list[float]] = {reader: [] for reader in READERS}
    for _ in range(args.repeats):  # interleaved: the machine's load hits both alike
        for reader, factory in READERS.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            read_all(args.clip, factory)
            seconds[reader].append(time.perf_counter() - started)
            cpu[reader].append(time.process_time() - cpu_started)
    for name, times in (("wall", seconds), ("CPU", cpu)):
        now, before = (statistics.median(times[reader]) for reader in READERS)
        print(f"file source over the undamaged {len(clean)} frames, {name} time, median of "
              f"{args.repeats}: PyAV {now * 1000:.0f} ms, OpenCV {before * 1000:.0f} ms "
              f"(ratio {now / before:.2f})")


if __name__ == "__main__":
    main()
