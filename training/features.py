"""Neck features of the shipped INT8 detector IR, extracted once and cached (fp16, never
committed): the same letterbox, input size and graph as the runtime (crowdwatch.density.neck).

Each cached sample holds p3 (64, H/8, W/8), p4 (128, H/16, W/16), with fine=True p2 (64, H/4,
W/4: the backbone's stride-4 block, for heads with Settings.fine; not the shipped ones), the
head points mapped into model-input pixels and, for Mall, the region of interest per stride-8
cell.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from crowdwatch.density.neck import DENSITY_STRIDE, FEATURES, NeckModel
from crowdwatch.detect.yolo import Letterbox
from training.data import SPLITS, Sample, samples

log = logging.getLogger("training.features")
DETECTOR = (Path(__file__).resolve().parent.parent / "src" / "crowdwatch" / "models"
            / "yolo11n_int8_openvino_model" / "yolo11n.xml")


@dataclass(frozen=True)
class Variant:
    """What is extracted: a dataset's images at one detector imgsz, flipped or not."""

    dataset: str
    split: str
    imgsz: int
    flip: bool
    step: int = 1

    @property
    def folder(self) -> str:
        return f"{self.dataset}-{self.split}-{self.imgsz}{'-flip' if self.flip else ''}"


# The runtime input (imgsz 640) with flips for every training image; other scales add head
# sizes the cameras of users will show; validation only as the runtime sees it.
PLAN = [
    Variant("shb", "val", 640, False),
    Variant("mall", "val", 640, False),
    Variant("shb", "train", 640, False),
    Variant("shb", "train", 640, True),
    Variant("mall", "train", 640, False, step=2),
    Variant("mall", "train", 640, True, step=2),
    Variant("sha", "train", 640, False),
    Variant("sha", "train", 640, True),
    Variant("shb", "train", 512, False),
    Variant("shb", "train", 768, True),
    Variant("sha", "train", 512, True),
    Variant("sha", "train", 768, False),
    Variant("mall", "train", 512, False, step=4),
    Variant("mall", "train", 768, True, step=4),
    # The crowd head's: its held-out images, and the scales of zoom-2 and zoom-3 tiles.
    Variant("sha", "val", 640, False),
    Variant("sha", "train", 1280, False),
    Variant("sha", "train", 1920, True),
]


def cell_roi(roi: np.ndarray, letterbox: Letterbox) -> np.ndarray:
    """The ROI at the density map's cells: a cell is in if its centre's frame pixel is."""
    h, w = (s // DENSITY_STRIDE for s in letterbox.input_hw)
    (new_w, new_h), (pad_x, pad_y) = letterbox.resized_wh, letterbox.pad_xy
    xs = ((np.arange(w) + 0.5) * DENSITY_STRIDE - pad_x) * letterbox.frame_hw[1] / new_w
    ys = ((np.arange(h) + 0.5) * DENSITY_STRIDE - pad_y) * letterbox.frame_hw[0] / new_h
    inside_x = (xs >= 0) & (xs < letterbox.frame_hw[1])
    inside_y = (ys >= 0) & (ys < letterbox.frame_hw[0])
    xi = np.clip(xs.astype(int), 0, letterbox.frame_hw[1] - 1)
    yi = np.clip(ys.astype(int), 0, letterbox.frame_hw[0] - 1)
    return roi[np.ix_(yi, xi)] & inside_y[:, None] & inside_x[None, :]


def extract_one(model: NeckModel, sample: Sample, variant: Variant, out: Path,
                fine: bool = False) -> None:
    image = cv2.imread(str(sample.path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(sample.path)
    points = sample.points.copy()
    roi = sample.roi
    if variant.flip:
        image = np.ascontiguousarray(image[:, ::-1])
        points[:, 0] = image.shape[1] - points[:, 0]
        roi = roi[:, ::-1] if roi is not None else None
    result = model.run(image)
    box = result.letterbox
    (new_w, new_h), (pad_x, pad_y) = box.resized_wh, box.pad_xy
    scale = np.array([new_w / image.shape[1], new_h / image.shape[0]], np.float32)
    input_points = points * scale + np.array([pad_x, pad_y], np.float32)
    arrays = {name: feature.astype(np.float16)
              for name, feature in zip(FEATURES, result.extra, strict=True)
              if fine or name != "p2"}
    arrays.update(points=input_points.astype(np.float32), count=np.int32(len(points)))
    if roi is not None:
        arrays["roi"] = cell_roi(roi, box)
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.rename(out)


def has_p2(path: Path) -> bool:
    with np.load(path) as data:
        return "p2" in data.files


def extract(shared: Path, cache: Path, plan: list[Variant], threads: int,
            fine: bool = False) -> None:
    """Every variant's missing samples (fine: with p2, re-extracting those cached without)."""
    for variant in plan:
        folder = cache / variant.folder
        folder.mkdir(parents=True, exist_ok=True)
        model = NeckModel(DETECTOR, imgsz=variant.imgsz, threads=threads)
        indices = list(SPLITS[variant.dataset][variant.split])[::variant.step]
        started, done = time.perf_counter(), 0
        for sample in samples(shared, variant.dataset, indices):
            out = folder / f"{sample.index:06d}.npz"
            if out.exists() and (not fine or has_p2(out)):
                continue
            extract_one(model, sample, variant, out, fine)
            done += 1
        log.info("%s: %d extracted in %.0f s", variant.folder, done,
                 time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/crowdwatch-density-cache"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fine", action="store_true", help="with the stride-4 p2 features")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    extract(args.shared, args.cache, PLAN, args.threads, args.fine)


if __name__ == "__main__":
    main()
