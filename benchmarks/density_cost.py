#!/usr/bin/env python3
"""What the density heads add to a frame through the openvino backend (issue 20): the
detector alone, the heads both in the pass, and the crowd head run apart (the runtime now,
density/serve.py), on a frame the dense rule does not pick; then one that it picks (the whole
TiledDensity step: the crowd head's map and its tiles').

    python benchmarks/density_cost.py                      # shipped heads, 3 runs of 40
    python benchmarks/density_cost.py --head OTHER_FOLDER  # another head IR beside them
    python benchmarks/density_cost.py --dense-image ../shared/datasets/sha-train/frames/000001.jpg

Each run alternates the arrangements pass by pass and prints medians in ms and the extra
over the detector alone; the machine is shared, so compare arrangements within a run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from crowdwatch.config import DetectorConfig
from crowdwatch.density.model import load_head, resolve_head
from crowdwatch.density.neck import splice_head
from crowdwatch.density.serve import use_head
from crowdwatch.density.tiles import DenseTiles, TiledDensity
from crowdwatch.detect.models import EMBEDDED_DIR
from crowdwatch.detect.openvino import OpenVINOBackend

DETECTOR = EMBEDDED_DIR / "yolo11n_int8_openvino_model"


def backend(head_xml: Path | None, apart: bool, threads: int | None) -> OpenVINOBackend:
    """The backend with no head, both heads in the pass, or the crowd head apart."""
    detector = OpenVINOBackend(DetectorConfig(threads=threads), DETECTOR)
    if head_xml is None:
        return detector
    head = load_head(head_xml)
    if apart:
        use_head(detector.use_density_head, head)  # as the runtime does
    else:
        detector.use_density_head(lambda m: splice_head(m, head.clone()))
    return detector


def timed(steps: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median ms of each step, the steps alternated, after two passes of each to warm up."""
    for step in steps.values():
        step()
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            times[name].append(1000 * (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in times.items()}


def untriggered(heads: dict[str, Path], repeats: int) -> dict[str, float]:
    image = np.random.default_rng(0).integers(0, 255, (768, 1024, 3), np.uint8)

    def step(detector: OpenVINOBackend) -> Callable[[], object]:
        def run() -> object:
            pending = detector.submit(image)
            pending.result()
            return pending.density.total() if pending.density is not None else None
        return run

    steps = {"detector alone": step(backend(None, False, 1))}
    for name, xml in heads.items():
        steps[f"{name}, both in the pass"] = step(backend(xml, False, 1))
        steps[f"{name}, crowd head apart"] = step(backend(xml, True, 1))
    return timed(steps, repeats)


def triggered(image_path: Path, repeats: int) -> dict[str, float]:
    image = cv2.imread(str(image_path))
    if image is None:
        raise SystemExit(f"cannot read {image_path}; give an image of a very dense crowd")
    detector = backend(resolve_head(), True, None)  # all cores, as cameras run

    def run() -> object:
        pending = detector.submit(image)
        pending.result()
        refine = TiledDensity(detector.submit, DenseTiles())
        total = refine(image, pending.density).total()
        if not refine.tiled_frames:
            raise SystemExit(f"{image_path} does not trigger the dense rule; pick a denser one")
        return total

    return timed({"crowd head apart, whole TiledDensity step": run}, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--head", type=Path, action="append", default=[],
                        help="another head folder (density_head.xml) to measure too")
    parser.add_argument("--dense-image", type=Path, default=None)
    args = parser.parse_args()
    heads = {"shipped": resolve_head()}
    heads.update({folder.name: folder / "density_head.xml" for folder in args.head})
    for run in range(1, args.runs + 1):
        medians = untriggered(heads, args.repeats)
        base = medians["detector alone"]
        print(f"run {run}: 1024x768 noise frame, 1 thread, medians of {args.repeats}")
        for name, ms in medians.items():
            print(f"  {name:40s} {ms:7.2f} ms  extra {ms - base:+6.2f}")
        if args.dense_image is not None:
            for name, ms in triggered(args.dense_image, args.repeats // 2).items():
                print(f"  {name:40s} {ms:7.1f} ms ({args.dense_image.name})")


if __name__ == "__main__":
    main()
