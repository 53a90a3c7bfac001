"""Reproduce docs/ACCURACY.md, "Dense crowds (Mall)": tiling settings on Mall, PETS, speed.

    PYTHONPATH=src python benchmarks/dense_tune.py mall [--every 4] [--only a,b]
    PYTHONPATH=src python benchmarks/dense_tune.py pets [--only a,b]
    PYTHONPATH=src python benchmarks/dense_tune.py speed [--only a,b]

Data are read, never written into the repository: CROWDWATCH_MALL_DIR (default
../shared/datasets/mall-tune), CROWDWATCH_PETS_DIR (default ../shared/datasets/pets2009-s2l1),
CROWDWATCH_MODEL (default ../shared/models/yolo11n_int8_openvino_model). Detections are
cached per setting in CROWDWATCH_DENSE_CACHE (default /tmp/crowdwatch-dense-cache).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from crowdwatch.analytics.ignore import ignore_geometry, ignored_mask
from crowdwatch.analytics.smoothing import make_smoother
from crowdwatch.config import DetectorConfig
from crowdwatch.config.detector import TilingConfig
from crowdwatch.detect import create_detector
from crowdwatch.detect.base import Pending
from crowdwatch.detect.tiling import TiledDetector, tiled
from crowdwatch.tools.points import load_mask, load_points, score_frames
from crowdwatch.types import Detections

ROOT = Path(__file__).resolve().parents[1]
MALL = Path(os.environ.get("CROWDWATCH_MALL_DIR", ROOT / "../shared/datasets/mall-tune"))
PETS = Path(os.environ.get("CROWDWATCH_PETS_DIR", ROOT / "../shared/datasets/pets2009-s2l1"))
MODEL = os.environ.get("CROWDWATCH_MODEL",
                       str(ROOT / "../shared/models/yolo11n_int8_openvino_model"))
CACHE = Path(os.environ.get("CROWDWATCH_DENSE_CACHE", "/tmp/crowdwatch-dense-cache"))
HOLDOUT = 600  # Mall frames >= this are the held-out check, never used to choose
OFF = {"mode": "off"}
# Ignore regions of the Mall camera (frame pixels, bottom-centre anchor): the glass of the shop
# windows on the left and right, where mannequins and reflections stand. Drawn on the
# architecture of the scene, as an operator would draw them; see docs/ACCURACY.md.
MALL_IGNORE = [
    [(0, 50), (100, 50), (100, 140), (85, 250), (0, 262)],
    [(520, 40), (548, 40), (548, 140), (520, 140)],
]

# name -> (detector overrides, tiling settings)
SETTINGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "defaults-notile": ({}, OFF),
    "imgsz960": ({"imgsz": 960}, OFF),
    "imgsz1280": ({"imgsz": 1280}, OFF),
    "imgsz1280-iou6": ({"imgsz": 1280, "iou": 0.6}, OFF),
    "imgsz1280-conf25": ({"imgsz": 1280, "confidence": 0.25}, OFF),
    "imgsz1280-conf10": ({"imgsz": 1280, "confidence": 0.10}, OFF),
    "conf05": ({"confidence": 0.05}, OFF),
    "tile-z2": ({}, {"mode": "on"}),
    "tile-z2-iou6": ({"iou": 0.6}, {"mode": "on", "merge_iou": 0.6}),
    "tile-z2-iou7": ({"iou": 0.7}, {"mode": "on", "merge_iou": 0.7}),
    "tile-z2-iou6-conf10": ({"iou": 0.6, "confidence": 0.1}, {"mode": "on", "merge_iou": 0.6}),
    "tile-z2-iou6-conf20": ({"iou": 0.6, "confidence": 0.2}, {"mode": "on", "merge_iou": 0.6}),
    "tile-z2-iou6-merge5": ({"iou": 0.6}, {"mode": "on", "merge_iou": 0.5}),
    "imgsz1280-iou7": ({"imgsz": 1280, "iou": 0.7}, OFF),
    "tile-z2-conf25": ({"confidence": 0.25}, {"mode": "on"}),
    "tile-z2-conf20": ({"confidence": 0.20}, {"mode": "on"}),
    "tile-z2-ov0": ({}, {"mode": "on", "overlap": 0.0}),
    "tile-z2-noseam": ({}, {"mode": "on", "edge_px": -1}),
    "tile-z1.5": ({}, {"mode": "on", "zoom": 1.5}),
    "tile-z3": ({}, {"mode": "on", "zoom": 3.0, "max_tiles": 16}),
    "auto": ({}, {}),
}
SMOOTHING = (("none", 1), ("persistence", 3), ("median", 3))


def make_detector(name: str) -> TiledDetector:
    overrides, tiling = SETTINGS[name]
    config = DetectorConfig(model=MODEL, **overrides)
    detector = create_detector(config)
    if tiling.get("edge_px") == -1:  # seam filter off: every tile box kept
        tiling = {**tiling, "edge_px": 0.0}
        import crowdwatch.detect.tiling as tiling_module

        tiling_module.seam_mask = lambda xyxy, *_args: np.ones(len(xyxy), bool)  # type: ignore
    return tiled(detector, TilingConfig(**tiling), config.imgsz)


def run_pipelined(submit: Callable[[np.ndarray], Pending], images: Iterable[np.ndarray],
                  depth: int = 3) -> list[Detections]:
    """Detections of every image, `depth` frames in flight (as the pipeline runs them)."""
    out: list[Detections] = []
    flight: deque[Pending] = deque()
    for image in images:
        if len(flight) >= depth:
            out.append(flight.popleft().result())
        flight.append(submit(image))
    out.extend(p.result() for p in flight)
    return out


# ---------------------------------------------------------------------------------------------
# Mall
# ---------------------------------------------------------------------------------------------


def mall_frame(index: int) -> np.ndarray:
    image = cv2.imread(str(MALL / "frames" / f"seq_{index + 1:06d}.jpg"))
    if image is None:
        raise SystemExit(f"cannot read Mall frame {index} under {MALL}")
    return image


def mall_boxes(name: str, frames: list[int]) -> dict[int, np.ndarray]:
    """Boxes per frame for a setting (cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"mall-{name}.npz"
    cached: dict[int, np.ndarray] = {}
    if path.exists():
        with np.load(path) as data:
            cached = {int(k): data[k] for k in data.files}
    todo = [f for f in frames if f not in cached]
    if todo:
        detector = make_detector(name)
        started = time.perf_counter()
        results = run_pipelined(detector.submit, (mall_frame(f) for f in todo))
        print(f"# {name}: {len(todo)} frames in {time.perf_counter() - started:.1f} s")
        cached.update({f: d.xyxy for f, d in zip(todo, results, strict=True)})
        np.savez(path, **{str(k): v for k, v in cached.items()})
    return {f: cached[f] for f in frames}


def smoothed_counts(raw: dict[int, int], smoothing: str, window: int) -> dict[int, int]:
    smoother = make_smoother(smoothing, window)
    return {f: int(smoother.update(np.array([c], np.int64))[0]) for f, c in sorted(raw.items())}


def mall(names: list[str], every: int, ignore: bool) -> None:
    truth = load_points(MALL / "points.csv")
    mask = load_mask(MALL / "roi_mask.png")
    frames = list(range(0, 800, every))
    tune = [f for f in frames if f < HOLDOUT]
    held = [f for f in frames if f >= HOLDOUT]
    geometry = ignore_geometry(MALL_IGNORE if ignore else [])
    print(f"Mall, every {every}. frame, ignore regions {'on' if ignore else 'off'}")
    print("| setting | smoothing | MAE tune / held-out | RMSE | bias | precision | recall |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        boxes = mall_boxes(name, frames)
        if geometry is not None:
            boxes = {f: b[~ignored_mask(b, geometry)] for f, b in boxes.items()}
        base = score_frames(boxes, truth, frames, mask)
        raw = dict(zip(frames, base.predicted, strict=True))
        filters = SMOOTHING if every == 1 else SMOOTHING[:1]
        for smoothing, window in filters:
            counts = smoothed_counts(raw, smoothing, window)
            a = score_frames(boxes, truth, tune, mask, counts).summary()
            b = score_frames(boxes, truth, held, mask, counts).summary()
            label = smoothing if smoothing == "none" else f"{smoothing}{window}"
            print(f"| {name} | {label} | {a['mae']:.2f} / {b['mae']:.2f} | {a['rmse']:.2f} "
                  f"| {a['bias']:+.2f} | {a['precision']:.3f} / {b['precision']:.3f} "
                  f"| {a['recall']:.3f} / {b['recall']:.3f} |", flush=True)


# ---------------------------------------------------------------------------------------------
# PETS
# ---------------------------------------------------------------------------------------------


def pets(names: list[str]) -> None:
    from crowdwatch.config import load_config
    from crowdwatch.tools.evaluate import eval_config, evaluate
    from crowdwatch.tools.groundtruth import load_ground_truth

    truth = load_ground_truth(PETS / "gt" / "PETS2009-S2L1.xml", "cvml")
    video = PETS / "vtest.avi"
    config = eval_config(load_config(ROOT / "configs" / "pets_full.yaml"), video)
    print("| setting | PETS MAE tune / test / all | bias | precision | recall |")
    print("|---|---|---|---|---|")
    for name in names:
        overrides, tiling = SETTINGS[name]
        # The pipeline wraps the detector in the tiler per camera (detector.tiling).
        cfg = config.model_copy(update={"detector": config.detector.model_copy(
            update={"model": MODEL, **overrides, "tiling": TilingConfig(**tiling)})})
        evaluation = evaluate(cfg, truth, baseline=False, split=398, name="x")
        rows = [r.result for r in evaluation.report.rows]
        whole = evaluation.report.result()
        tally = whole.detection
        assert tally is not None
        maes = " / ".join(f"{r.counts.mae:.3f}" for r in rows[1:] + rows[:1])
        print(f"| {name} | {maes} | {whole.counts.bias:+.3f} | {tally.precision:.3f} "
              f"| {tally.recall:.3f} |", flush=True)


# ---------------------------------------------------------------------------------------------
# Speed
# ---------------------------------------------------------------------------------------------


def speed(names: list[str], frames: int = 30, repeats: int = 3) -> None:
    """Frames/s (median of repeats) of each setting at 3 sizes, PETS frames scaled."""
    capture = cv2.VideoCapture(str(PETS / "vtest.avi"))
    source = []
    while len(source) < 10:
        ok, image = capture.read()
        if not ok:
            break
        source.append(image)
    sizes = ((640, 480), (1280, 720), (1920, 1080))
    print("| setting | size | tiles | frames/s (median) | inference share |")
    print("|---|---|---|---|---|")
    for name in names:
        detector = make_detector(name)
        for width, height in sizes:
            images = [cv2.resize(s, (width, height)) for s in source]
            tiles = len(detector.tiles_for(width, height))
            run_pipelined(detector.submit, images)  # compile and warm up
            rates, shares = [], []
            for _ in range(repeats):
                batch = [images[i % len(images)] for i in range(frames)]
                pendings: list[Pending] = []
                started = time.perf_counter()
                flight: deque[Pending] = deque()
                for image in batch:
                    if len(flight) >= 3:
                        done = flight.popleft()
                        done.result()
                        pendings.append(done)
                    flight.append(detector.submit(image))
                for p in flight:
                    p.result()
                    pendings.append(p)
                wall = time.perf_counter() - started
                rates.append(frames / wall)
                # Caller-thread work (letterbox, decode, merge) is what is not inference.
                other = sum(p.stage_seconds.get("preprocess", 0.0)
                            + p.stage_seconds.get("postprocess", 0.0) for p in pendings)
                shares.append(1 - other / wall)
            print(f"| {name} | {width}x{height} | {tiles} | {statistics.median(rates):.1f} "
                  f"| {statistics.median(shares):.0%} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("mall", "pets", "speed"))
    parser.add_argument("--only", default="", help="comma-separated setting names")
    parser.add_argument("--every", type=int, default=1, help="Mall: every k-th frame")
    parser.add_argument("--ignore", action="store_true", help="Mall: apply MALL_IGNORE")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(SETTINGS)
    unknown = sorted(set(names) - set(SETTINGS))
    if unknown:
        raise SystemExit(f"unknown settings {unknown}; known: {json.dumps(list(SETTINGS))}")
    {"mall": lambda: mall(names, args.every, args.ignore), "pets": lambda: pets(names),
     "speed": lambda: speed(names)}[args.what]()


if __name__ == "__main__":
    main()
