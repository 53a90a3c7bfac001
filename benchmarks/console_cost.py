#!/usr/bin/env python3
"""What the live console costs (issue 22): its work per analysed frame, its event stream,
and its memory, for 16 cameras x 10 zones; then the pipeline's CPU per frame with and
without the console and one open event stream, on the real detector.

    python benchmarks/console_cost.py                  # micro figures + 3 A/B runs x 150 frames
    python benchmarks/console_cost.py --runs 5 --frames 300
    python benchmarks/console_cost.py --cameras 16 --frames 60   # the page with 16 cameras
    python benchmarks/console_cost.py --no-pipeline    # micro figures only (no model)

Micro: `ConsoleState.write` per frame (camera thread), one `snapshot` with the full 10-minute
trends (a page connecting) and one with a second's new points (each later event), and the
rings' bytes after more than ten minutes of frames (injected clock; tracemalloc counts the
whole console too). A/B: interleaved runs of `crowdwatch run` on one clip with the web page
on, without the console sink ("no_console": the page before issue 22) and with it plus one
client reading /api/events ("console_open"); medians of this process's CPU ms per frame.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import threading
import time
import tracemalloc
import urllib.request
from pathlib import Path

from crowdwatch.health import HealthState, SourceStatus
from crowdwatch.types import FlowResult, FrameResult, Level, LineTotals, ZoneStats
from crowdwatch.web.console import CameraInfo, ConsoleState, ZoneInfo

REPO = Path(__file__).resolve().parents[1]
CAMERAS, ZONES, LINES = 16, 10, 2


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def _console(clock: Clock) -> tuple[ConsoleState, list[FrameResult]]:
    cameras = {f"cam{c}": CameraInfo({f"zone{z}": ZoneInfo(40, 25.0) for z in range(ZONES)},
                                     tuple(f"line{i}" for i in range(LINES)), 1.0, 0.8)
               for c in range(CAMERAS)}
    health = HealthState(cameras, clock=clock)
    for camera in cameras:
        health.report(camera, SourceStatus(True, frames_received=10, stream_fps=10.0))
    console = ConsoleState(cameras, {"site": 400}, health, clock)
    results = []
    for c in range(CAMERAS):
        for people in range(12):  # levels change now and then: alerts in and out
            zones = {f"zone{z}": ZoneStats(people + z, density=(people + z) / 25,
                                           occupancy=(people + z) / 40,
                                           level=Level(min(2, (people + z) // 14)))
                     for z in range(ZONES)}
            flow = FlowResult({f"line{i}": LineTotals(people, people // 2)
                               for i in range(LINES)})
            results.append(FrameResult(f"cam{c}", people, None, 0.0, people * ZONES,
                                       people * ZONES, zones, flow=flow))
    return console, results


def _fill(console: ConsoleState, results: list[FrameResult], clock: Clock) -> int:
    """11 minutes at 10 frames/s per camera: every ring full and wrapped."""
    frames = 0
    for tick in range(660 * 10):
        clock.t += 0.1
        for c in range(CAMERAS):
            console.write(results[c * 12 + (tick // 10) % 12])
            frames += 1
    return frames


def micro() -> None:
    clock = Clock()
    tracemalloc.start()  # the console as built and filled (not the example results)
    results = _console(clock)[1]  # the first console is freed here
    before = tracemalloc.get_traced_memory()[0]
    console, _ = _console(clock)
    _fill(console, results, clock)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del console
    console, results = _console(clock)
    started = time.perf_counter()
    frames = _fill(console, results, clock)
    elapsed = time.perf_counter() - started
    print(f"write: {1e6 * elapsed / frames:.1f} us per frame ({CAMERAS} cameras x {ZONES} "
          f"zones x {LINES} lines, {frames} frames)")
    print(f"memory: rings {console.nbytes / 1e6:.2f} MB; whole console (tracemalloc) "
          f"{held / 1e6:.2f} MB")
    full, delta = [], []
    for _ in range(7):  # what one event costs its HTTP thread: the snapshot and its JSON
        t0 = time.perf_counter()
        json.dumps(console.snapshot())
        full.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        json.dumps(console.snapshot(since=clock.t - 1.0))
        delta.append(time.perf_counter() - t0)

    size_full = len(json.dumps(console.snapshot()))
    size_delta = len(json.dumps(console.snapshot(since=clock.t - 1.0)))
    print(f"event (snapshot + JSON): full trends {1e3 * statistics.median(full):.1f} ms "
          f"({size_full / 1e3:.0f} kB), newest points {1e3 * statistics.median(delta):.2f} ms "
          f"({size_delta / 1e3:.1f} kB)")


def _read_events(url: str, stop: threading.Event, events: list[int]) -> None:
    with urllib.request.urlopen(url, timeout=30) as stream:
        while not stop.is_set():
            if stream.readline().startswith(b"event: state"):
                events[0] += 1


def run_once(setting: str, clip: Path, frames: int, detector: object,
             cameras: int = 1) -> float:
    """CPU ms per analysed frame of one run (`cameras` copies of the clip, 10 zones each)."""
    from crowdwatch.app import RunOptions, build_app
    from crowdwatch.config import parse_config

    config = parse_config({
        "cameras": [{"id": f"cam{c}", "source": str(clip), "realtime": False, "zones": [
            {"name": f"z{z}", "polygon": [[0, 0], [767, 0], [767, 575], [0, 575]],
             "capacity": 10} for z in range(ZONES)]} for c in range(cameras)],
        "metrics": {"host": "127.0.0.1", "port": 0},
        "web": {"enabled": True, "token_env": None, "preview": {"enabled": True}}})
    app = build_app(config, RunOptions(max_frames=frames), detector=detector)  # type: ignore[arg-type]
    console = next(s for s in app.sinks if isinstance(s, ConsoleState))
    stop, events, reader = threading.Event(), [0], None
    if setting == "no_console":
        app.pipeline.sinks.remove(console)
    else:
        assert app.web_url is not None
        reader = threading.Thread(target=_read_events, daemon=True,
                                  args=(app.web_url + "api/events", stop, events))
        reader.start()
        time.sleep(0.3)
    try:
        cpu_started = time.process_time()
        app.pipeline.run()
        cpu = time.process_time() - cpu_started
    finally:
        stop.set()
        app.close()
    if reader is not None:
        reader.join(5)
        print(f"    ({events[0]} events received)", file=sys.stderr)
    return 1000 * cpu / sum(app.pipeline.processed.values())


def pipeline(runs: int, frames: int, model: str | None, cameras: int) -> None:
    from crowdwatch.config import parse_config
    from crowdwatch.detect import create_detector

    pets = os.environ.get("CROWDWATCH_PETS_DIR")
    clip = Path(pets) / "vtest.avi" if pets and (Path(pets) / "vtest.avi").exists() else \
        REPO / "samples" / "vtest_h264.mp4"
    detector_config = {"model": model} if model else {}
    detector = create_detector(parse_config({"cameras": [{"id": "c", "source": str(clip)}],
                                             "detector": detector_config}).detector)
    run_once("no_console", clip, 30, detector)  # warm-up
    cpu: dict[str, list[float]] = {"no_console": [], "console_open": []}
    for run in range(runs):
        for setting in cpu:
            gc.collect()
            ms = run_once(setting, clip, frames, detector, cameras)
            cpu[setting].append(ms)
            print(f"run {run + 1} {setting:<13} {ms:6.2f} CPU ms/frame", file=sys.stderr)
    base = statistics.median(cpu["no_console"])
    print(f"pipeline ({cameras} x {clip.name}, {frames} frames each, {ZONES} zones each, "
          f"{runs} runs), medians:")
    for setting, values in cpu.items():
        ms = statistics.median(values)
        print(f"  {setting:<13} {ms:6.2f} CPU ms/frame ({ms / base:5.3f} x)  "
              f"({', '.join(f'{v:.1f}' for v in values)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--model", default=os.environ.get("CROWDWATCH_MODEL"))
    parser.add_argument("--cameras", type=int, default=1, help="copies of the clip in the "
                        "A/B runs, each a camera with 10 zones")
    parser.add_argument("--no-pipeline", action="store_true")
    args = parser.parse_args()
    micro()
    if not args.no_pipeline:
        pipeline(args.runs, args.frames, args.model, args.cameras)
    return 0


if __name__ == "__main__":
    sys.exit(main())
