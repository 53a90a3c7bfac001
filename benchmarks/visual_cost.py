#!/usr/bin/env python3
"""What seeing the counts costs: single-stream frames/s with the web page idle, with one
client watching the live preview, and with recording to an MP4, against a plain run.

    python benchmarks/visual_cost.py                 # 3 runs x 200 frames per setting
    python benchmarks/visual_cost.py --runs 5 --frames 400

Runs are interleaved (baseline, idle, watched, recording, baseline, ...) so that a slower
machine moment hits every setting alike; it prints each run and the medians with their
ratio to the baseline, in frames/s and in CPU milliseconds per frame (this process's CPU
time over the run: on a machine shared with other work it moves far less than frames/s).
The clip is $CROWDWATCH_PETS_DIR/vtest.avi, else the bundled samples/vtest_h264.mp4; the
weights are --model or $CROWDWATCH_MODEL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from crowdwatch.app import RunOptions, build_app
from crowdwatch.config import parse_config
from crowdwatch.detect import create_detector

REPO = Path(__file__).resolve().parents[1]
SETTINGS = ("baseline", "page_idle", "watched", "recording")


def _clip() -> Path:
    pets = os.environ.get("CROWDWATCH_PETS_DIR")
    if pets and (Path(pets) / "vtest.avi").exists():
        return Path(pets) / "vtest.avi"
    return REPO / "samples" / "vtest_h264.mp4"


def _config(setting: str, clip: Path, model: str, folder: str) -> dict:
    config: dict = {"cameras": [{"id": "cam0", "source": str(clip)}],
                    "detector": {"model": model},
                    "metrics": {"host": "127.0.0.1", "port": 0}}
    if setting in ("page_idle", "watched"):
        config["web"] = {"enabled": True, "token_env": None, "preview": {"enabled": True}}
    if setting == "recording":
        config["recording"] = {"enabled": True, "directory": folder}
    return config


def _watch(url: str, stop: threading.Event, parts: list[int]) -> None:
    """One browser-like client reading the MJPEG stream until stop."""
    with urllib.request.urlopen(url, timeout=30) as stream:
        while not stop.is_set():
            line = stream.readline()
            if line.startswith(b"Content-Length:"):
                parts[0] += 1


def run_once(setting: str, clip: Path, model: str, frames: int,
             detector: object) -> tuple[float, float]:
    """(frames/s, CPU ms per frame) of one run."""
    with tempfile.TemporaryDirectory() as folder:
        config = parse_config(_config(setting, clip, model, folder))
        app = build_app(config, RunOptions(max_frames=frames), detector=detector)  # type: ignore[arg-type]
        sinks = list(app.sinks)  # close() empties app.sinks
        stop = threading.Event()
        parts = [0]
        watcher = None
        if setting == "watched":
            assert app.web_url is not None
            watcher = threading.Thread(target=_watch, daemon=True, args=(
                app.web_url + "cameras/cam0/preview.mjpg", stop, parts))
            watcher.start()
            time.sleep(0.2)  # the client is connected before the first frame
        try:
            started = time.perf_counter()
            cpu_started = time.process_time()
            app.pipeline.run()
            elapsed = time.perf_counter() - started
        finally:
            stop.set()
            app.close()  # ends the preview stream, finishes the recording
            # The recorder's queue (<= 8 frames) is encoded in close(): its CPU time counts.
            cpu = time.process_time() - cpu_started
        if watcher is not None:
            watcher.join(5)
            hub = next(s for s in sinks if hasattr(s, "encode_seconds"))
            ms = 1000 * hub.encode_seconds / max(hub.frames_encoded, 1)
            print(f"    ({parts[0]} preview frames sent, {ms:.2f} ms each to annotate, "
                  "downscale and encode)", file=sys.stderr)
        for sink in sinks:
            if hasattr(sink, "recorders"):
                recorder = sink.recorders["cam0"]
                print(f"    ({recorder.frames_written} frames recorded, "
                      f"{recorder.frames_skipped} skipped)", file=sys.stderr)
        done = sum(app.pipeline.processed.values())
        return done / elapsed, 1000 * cpu / done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--model", default=os.environ.get("CROWDWATCH_MODEL"))
    args = parser.parse_args()
    if not args.model:
        print("visual_cost: error: give --model or set CROWDWATCH_MODEL", file=sys.stderr)
        return 2
    clip = _clip()
    detector = create_detector(parse_config(_config("baseline", clip, args.model, ".")).detector)
    run_once("baseline", clip, args.model, 30, detector)  # warm-up: compile, caches
    rates: dict[str, list[float]] = {s: [] for s in SETTINGS}
    cpu: dict[str, list[float]] = {s: [] for s in SETTINGS}
    for run in range(args.runs):
        for setting in SETTINGS:
            rate, ms = run_once(setting, clip, args.model, args.frames, detector)
            rates[setting].append(rate)
            cpu[setting].append(ms)
            print(f"run {run + 1} {setting:<10} {rate:6.2f} frames/s  {ms:6.2f} CPU ms/frame",
                  file=sys.stderr)
    base = statistics.median(rates["baseline"])
    base_cpu = statistics.median(cpu["baseline"])
    print(f"clip {clip.name}, {args.frames} frames, {args.runs} runs, medians:")
    for setting in SETTINGS:
        median = statistics.median(rates[setting])
        ms = statistics.median(cpu[setting])
        print(f"  {setting:<10} {median:6.2f} frames/s ({median / base:5.3f} x)  "
              f"{ms:6.2f} CPU ms/frame ({ms / base_cpu:5.3f} x)  "
              f"(frames/s: {', '.join(f'{r:.1f}' for r in rates[setting])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
