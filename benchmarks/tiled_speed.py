"""End-to-end frames/s of tiled detection through the pipeline (decode included).

    PYTHONPATH=src python benchmarks/tiled_speed.py [--frames 120] [--runs 3]

For each frame size (640x480, 1280x720, 1920x1080 H.264 copies of the PETS clip, made by
`crowdwatch bench`'s make_clip) and each tiling setting (off, on = whole frame + zoom-2 tiles),
one camera runs through the real Pipeline with the real detector for --frames frames; prints
the median frames/s over --runs and the share of wall time left to inference: 1 - (the camera
thread's own work: waiting for decoded frames, letterbox, merging tiles, zones) / wall time.
OpenVINO's request latencies are not used: with 7 requests queued per frame they include
the time each waits for the others. CROWDWATCH_MODEL and CROWDWATCH_PETS_DIR as in the tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from crowdwatch.app import CallbackSink
from crowdwatch.build import build_pipeline
from crowdwatch.config import AppConfig, CameraConfig, DetectorConfig
from crowdwatch.config.detector import TilingConfig
from crowdwatch.detect import create_detector
from crowdwatch.detect.base import available_cores
from crowdwatch.tools.clips import make_clip
from crowdwatch.types import FrameResult

ROOT = Path(__file__).resolve().parents[1]
PETS = Path(os.environ.get("CROWDWATCH_PETS_DIR", ROOT / "../shared/datasets/pets2009-s2l1"))
MODEL = os.environ.get("CROWDWATCH_MODEL",
                       str(ROOT / "../shared/models/yolo11n_int8_openvino_model"))
SIZES = ((640, 480), (1280, 720), (1920, 1080))
MODES = ("off", "on")


def run_once(clip: Path, mode: str, frames: int) -> tuple[float, float]:
    """(frames/s, inference share) of one pass of `frames` frames."""
    detector_config = DetectorConfig(model=MODEL, tiling=TilingConfig(mode=mode))
    config = AppConfig(cameras=[CameraConfig(id="speed", source=str(clip))],
                       detector=detector_config)
    detector = create_detector(detector_config)
    results: list[FrameResult] = []
    # Warm-up: compile for the frame and tile shapes outside the timed run.
    build_pipeline(config, detector, [CallbackSink(lambda _r: None)], max_frames=3).run()
    pipeline = build_pipeline(config, detector, [CallbackSink(results.append)], max_frames=frames)
    started = time.perf_counter()
    pipeline.run()
    wall = time.perf_counter() - started
    own = sum(r.stage_seconds.get(stage, 0.0) for r in results
              for stage in ("decode", "preprocess", "postprocess", "zones"))
    return len(results) / wall, 1 - own / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cache = Path(tempfile.gettempdir()) / "crowdwatch-bench"
    print(f"# {available_cores()} cores, load average {os.getloadavg()[0]:.1f} at start")
    print("| tiling | size | frames/s (median) | inference share |")
    print("|---|---|---|---|")
    for width, height in SIZES:
        clip = make_clip(PETS / "vtest.avi", (width, height), args.frames + 10, cache)
        for mode in MODES:
            runs = [run_once(clip, mode, args.frames) for _ in range(args.runs)]
            rate = statistics.median(r[0] for r in runs)
            share = statistics.median(r[1] for r in runs)
            print(f"| {mode} | {width}x{height} | {rate:.1f} | {share:.0%} |", flush=True)


if __name__ == "__main__":
    main()
