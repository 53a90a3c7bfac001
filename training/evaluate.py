"""Score a density head through the runtime (OpenVINO, no torch): the validation images as
the detector sees them, plus the cost of density per 1024x768 frame.

    python -m training.evaluate --shared ../shared --head src/crowdwatch/models/yolo11n_density_head

Counts: shb-train 350-399 (whole image), mall-tune 600-799 (inside the dataset's ROI),
PETS2009 S2.L1 every 5th frame (sparse; whole frame); very dense frames on tiles as the runtime
counts them (counting.density_tiles, unless --no-density-tiles). Cost: the detector alone vs the
detector with the head spliced on, alternated, medians; memory: each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import shapely

from crowdwatch.config import CountingConfig, DetectorConfig
from crowdwatch.density.choice import ChoiceRule, MethodChooser, vote
from crowdwatch.density.counter import DensityCounter, DensityResult
from crowdwatch.density.neck import NeckModel
from crowdwatch.density.scoring import game
from crowdwatch.density.tiles import DenseTiles
from crowdwatch.density.zones import ZoneIntegrator
from training.data import SPLITS, pets_samples, samples
from training.features import DETECTOR


def roi_polygons(roi: np.ndarray) -> list[shapely.Geometry]:
    """The ROI mask as shapely polygons (its outer contours)."""
    contours, _ = cv2.findContours(roi.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    return [shapely.Polygon(c[:, 0, :].astype(float)).buffer(0) for c in contours
            if len(c) >= 3]


def score(errors: list[float]) -> dict[str, float]:
    e = np.asarray(errors)
    return {"n": len(e), "mae": round(float(np.abs(e).mean()), 3),
            "rmse": round(float(np.sqrt((e ** 2).mean())), 3), "bias": round(float(e.mean()), 3)}


class Tally:
    """One dataset's errors: density, boxes, and the automatic choice between them."""

    def __init__(self) -> None:
        self.density: list[float] = []
        self.boxes: list[float] = []
        self.auto: list[float] = []
        self.games: list[float] = []
        self.votes = {"density": 0, "boxes": 0, "none": 0}
        self.chooser = MethodChooser(ChoiceRule())

    def add(self, result: DensityResult, density_count: float, truth: int,
            points: np.ndarray | None = None, ignore: list[shapely.Geometry] | None = None
            ) -> None:
        xyxy = result.detections.xyxy
        heights = xyxy[:, 3] - xyxy[:, 1]
        frame_h = result.density.letterbox.frame_hw[0]
        self.votes[vote(self.chooser.rule, heights, density_count, frame_h) or "none"] += 1
        method = self.chooser.update(heights, density_count, frame_h)
        self.density.append(density_count - truth)
        self.boxes.append(len(xyxy) - truth)
        self.auto.append((density_count if method == "density" else len(xyxy)) - truth)
        if points is not None:
            self.games.append(game(result.density, points, 2, ignore or []))

    def report(self) -> dict[str, object]:
        out: dict[str, object] = {"density": score(self.density), "boxes": score(self.boxes),
                                  "auto": score(self.auto), "votes": self.votes}
        if self.games:
            out["density_game2"] = round(float(np.mean(self.games)), 3)
        return out


def counts(counter: DensityCounter, shared: Path, sha: range) -> dict[str, object]:
    """Per dataset: density, boxes (the same pass, whole frame) and auto (ChoiceRule's
    defaults over the images in order; for shb and sha, independent images, only its votes
    mean much)."""
    results: dict[str, object] = {}
    if sha:
        # Only meaningful for a head not trained on these images (--sha names them).
        tally = Tally()
        for sample in samples(shared, "sha", sha):
            result = counter.run(cv2.imread(str(sample.path)))
            tally.add(result, result.density.total(), len(sample.points))
        results[f"sha_{sha.start}_{sha.stop - 1}"] = tally.report()
    tally = Tally()
    for sample in samples(shared, "shb", SPLITS["shb"]["val"]):
        result = counter.run(cv2.imread(str(sample.path)))
        tally.add(result, result.density.total(), len(sample.points), sample.points)
    results["shb_val"] = tally.report()
    mall = list(samples(shared, "mall", SPLITS["mall"]["val"]))
    roi = ZoneIntegrator(roi_polygons(mall[0].roi))
    outside = [shapely.box(-1, -1, 641, 481).difference(shapely.union_all(roi.zones))]
    tally = Tally()
    for sample in mall:
        result = counter.run(cv2.imread(str(sample.path)))
        # Boxes: whole frame (the ROI holds 99.99 % of the heads).
        tally.add(result, float(roi.counts(result.density).sum()), len(sample.points),
                  sample.points, outside)
    results["mall_val_roi"] = tally.report()
    tally = Tally()
    for _, image, truth in pets_samples(shared, step=5):
        result = counter.run(image)
        tally.add(result, result.density.total(), truth)
    results["pets_every_5th"] = tally.report()
    return results


def cost(head: Path, repeats: int, imgsz: int = 640) -> dict[str, float]:
    """ms per 1024x768 frame: detector alone vs detector + neck outputs + head (1 thread each
    so the two cores' noise is shared alike), alternated; medians and their difference."""
    from crowdwatch.density.model import load_head

    image = np.random.default_rng(0).integers(0, 255, (768, 1024, 3), np.uint8)
    plain = NeckModel(DETECTOR, with_neck=False, threads=1, imgsz=imgsz)
    dense = NeckModel(DETECTOR, load_head(head / "density_head.xml"), threads=1, imgsz=imgsz)
    for model in (plain, dense):
        model.run(image)
    times: dict[str, list[float]] = {"plain": [], "density": []}
    for _ in range(repeats):
        for name, model in (("plain", plain), ("density", dense)):
            started = time.perf_counter()
            model.run(image)
            times[name].append(1000 * (time.perf_counter() - started))
    plain_ms, dense_ms = statistics.median(times["plain"]), statistics.median(times["density"])
    return {"detector_ms": round(plain_ms, 2), "detector_with_density_ms": round(dense_ms, 2),
            "density_extra_ms": round(dense_ms - plain_ms, 2),
            "ratio": round(dense_ms / plain_ms, 3)}


def resident_mb(head: Path | None) -> float:
    """Peak resident MB of a fresh process that compiles and runs one 1024x768 frame."""
    code = (
        "import resource, numpy as np, sys\n"
        "from pathlib import Path\n"
        "from crowdwatch.density.neck import NeckModel\n"
        "from crowdwatch.density.model import load_head\n"
        "from training.features import DETECTOR\n"
        f"head = {str(head / 'density_head.xml') if head else ''!r}\n"
        "m = NeckModel(DETECTOR, load_head(Path(head)) if head else None, with_neck=bool(head),"
        " threads=1)\n"
        "image = np.zeros((768, 1024, 3), np.uint8)\n"
        "for _ in range(5): m.run(image)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--head", type=Path, required=True, help="folder with density_head.xml")
    parser.add_argument("--imgsz", type=int,
                        default=CountingConfig().density_imgsz or DetectorConfig().imgsz,
                        help="whole frames' input long side (default: counting.density_imgsz, "
                             "as a camera counting from density runs it)")
    parser.add_argument("--tile-imgsz", type=int, default=DetectorConfig().imgsz,
                        help="density tiles' input long side (default: detector.imgsz)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--skip-counts", action="store_true")
    parser.add_argument("--sha", type=int, nargs=2, default=None, metavar=("FIRST", "END"),
                        help="also count sha-train images FIRST..END-1 (held out of training)")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--no-density-tiles", action="store_true",
                        help="count very dense frames from the whole-frame pass too (the "
                             "runtime's counting.density_tiles.mode off)")
    args = parser.parse_args()
    report: dict[str, object] = {"head": str(args.head), "imgsz": args.imgsz,
                                 "tile_imgsz": args.tile_imgsz,
                                 "density_tiles": not args.no_density_tiles}
    if not args.skip_counts:
        counter = DensityCounter(DETECTOR, args.head / "density_head.xml", imgsz=args.imgsz,
                                 threads=2, tile_imgsz=args.tile_imgsz,
                                 tiles=None if args.no_density_tiles else DenseTiles())
        report["counts"] = counts(counter, args.shared,
                                  range(*args.sha) if args.sha else range(0))
        print(json.dumps(report["counts"]), flush=True)
    if not args.skip_cost:
        report["cost_1024x768"] = cost(args.head, args.repeats, args.imgsz)
        plain, dense = resident_mb(None), resident_mb(args.head)
        report["peak_rss_mb"] = {"detector": round(plain, 1), "with_density": round(dense, 1),
                                 "delta": round(dense - plain, 1)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
