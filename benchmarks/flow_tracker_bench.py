"""Tracker cost per frame for a few and for many people (median ms); prints, asserts nothing.

PYTHONPATH=src python benchmarks/flow_tracker_bench.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from crowdwatch.analytics.lines import Line, LineCounter
from crowdwatch.boxes import foot_points
from crowdwatch.config.flow import TrackerConfig
from crowdwatch.track import TRACKERS, build_tracker
from crowdwatch.types import Detections


def frames(people: int, count: int, seed: int = 0):
    """People 40 x 100 px walking at random speeds on a 1920 x 1080 image, 10 fps, jittered."""
    rng = np.random.default_rng(seed)
    start = rng.uniform([0, 0], [1880, 980], (people, 2))
    velocity = rng.uniform(-60, 60, (people, 2))
    for i in range(count):
        t = i / 10
        xy = (start + velocity * t) % [1880, 980] + rng.normal(0, 1.5, (people, 2))
        xyxy = np.concatenate([xy, xy + np.array([40, 100])], axis=1).astype(np.float32)
        yield t, Detections(xyxy, rng.uniform(0.15, 0.95, people).astype(np.float32))


def main() -> None:
    lines = [Line(f"l{i}", (0, 100 + 200 * i), (1920, 150 + 200 * i)) for i in range(4)]
    for people in (6, 50):
        for name in TRACKERS:
            tracker = build_tracker(TrackerConfig(name=name))
            counter = LineCounter(lines)
            track_ms, line_ms = [], []
            for t, detections in frames(people, 300):
                t0 = time.perf_counter()
                tracked = tracker.update(detections, t)
                t1 = time.perf_counter()
                assert tracked.tracker_id is not None
                counter.update(tracked.tracker_id, foot_points(tracked.xyxy), t)
                t2 = time.perf_counter()
                track_ms.append((t1 - t0) * 1000)
                line_ms.append((t2 - t1) * 1000)
            track = statistics.median(track_ms[20:])
            line = statistics.median(line_ms[20:])
            print(f"{people:3d} people  {name:9s}  tracker median {track:6.2f} ms/frame   "
                  f"LineCounter (4 lines) {line:5.2f} ms/frame")


if __name__ == "__main__":
    main()
