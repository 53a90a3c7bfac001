#!/usr/bin/env python3
"""What the heatmap costs (config `heatmap:`): adding one frame to a camera's map (100 boxes,
or a density map), drawing the overlay over a frame, and making heatmap.png.

    python benchmarks/heatmap_cost.py            # medians of 200 / 50 calls per figure

Synthetic frames (random pixels, 100 people, a density map of the detector's input grid) at
1024x768 and 1920x1080; no detector runs. Prints medians in milliseconds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from crowdwatch.analytics.heatmap import Heatmaps
from crowdwatch.config import HeatmapConfig
from crowdwatch.detect.densitymap import DensityMap
from crowdwatch.detect.yolo import Letterbox
from crowdwatch.outputs.heatmap import HeatmapRenderer
from crowdwatch.types import Detections, FrameResult


def median_ms(call: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(height: int, width: int, rng: np.random.Generator) -> str:
    """One frame size's figures, as a line."""
    image = rng.integers(0, 255, (height, width, 3), np.uint8)
    xs, ys = rng.uniform(0, width - 40, 100), rng.uniform(0, height - 100, 100)
    boxes = np.stack([xs, ys, xs + 40, ys + 100], axis=1).astype(np.float32)
    people = Detections(boxes, np.ones(100, np.float32))
    letterbox = Letterbox.fit((height, width), (480, 640) if width / height < 1.5
                              else (384, 640))
    cells = rng.random((letterbox.input_hw[0] // 8, letterbox.input_hw[1] // 8),
                       np.float32) * 0.05
    density = DensityMap(cells, letterbox)
    heatmaps = Heatmaps(HeatmapConfig())
    renderer = HeatmapRenderer(heatmaps, heatmaps.config)
    clock = [0.0]

    def add(method: str, density_map: DensityMap | None) -> None:
        clock[0] += 0.1
        heatmaps.write(FrameResult("cam", 0, clock[0], 0.0, 100, 100, detections=people,
                                   image=image, method=method, density=density_map))

    by_boxes = median_ms(lambda: add("boxes", None), 200)
    by_density = median_ms(lambda: add("density", density), 200)
    result = FrameResult("cam", 0, 0.0, 0.0, 0, 0)
    overlay = median_ms(lambda: renderer.overlay(image, result), 50)
    preview = np.ascontiguousarray(image[: height * 640 // width, :640])
    png = median_ms(lambda: renderer.png("cam", preview), 50)
    alone = median_ms(lambda: renderer.png("cam", None), 50)
    return (f"{width}x{height}: add a frame: boxes (100) {by_boxes:.3f} ms, density "
            f"{by_density:.3f} ms; overlay {overlay:.2f} ms; heatmap.png over a 640 px "
            f"frame {png:.2f} ms, alone {alone:.2f} ms")


def main() -> None:
    rng = np.random.default_rng(0)
    for height, width in ((768, 1024), (1080, 1920)):
        print(measure(height, width, rng))


if __name__ == "__main__":
    main()
