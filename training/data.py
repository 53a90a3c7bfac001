"""The head-point datasets in ../shared/datasets: images, head points, regions of interest.

Splits follow the datasets' READMEs: shb-train images 350-399 and mall-tune frames 600-799
are validation only, never trained on. sha-train images 0-99 are held out too: they score the
crowd head, which trains on the other 200.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

Points = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Sample:
    """One image of a dataset: where it is, its head points (frame pixels) and ROI."""

    dataset: str
    index: int
    path: Path
    points: Points
    roi: npt.NDArray[np.bool_] | None  # frame-sized, True inside; None: the whole frame


def read_points(csv_path: Path) -> dict[int, Points]:
    """frame -> (N, 2) head points (x, y) from a points.csv (frame,x,y)."""
    rows: dict[int, list[tuple[float, float]]] = defaultdict(list)
    with csv_path.open(newline="") as file:
        for row in csv.DictReader(file):
            rows[int(row["frame"])].append((float(row["x"]), float(row["y"])))
    return {frame: np.asarray(points, np.float32).reshape(-1, 2)
            for frame, points in rows.items()}


def read_counts(csv_path: Path) -> dict[int, int]:
    with csv_path.open(newline="") as file:
        return {int(row["frame"]): int(row["count"]) for row in csv.DictReader(file)}


# Which images of each dataset train and which validate (never trained on).
SPLITS: dict[str, dict[str, range]] = {
    "shb": {"train": range(0, 350), "val": range(350, 400)},
    "sha": {"train": range(100, 300), "val": range(0, 100)},
    "mall": {"train": range(0, 600), "val": range(600, 800)},
}
FOLDERS = {"shb": "shb-train", "sha": "sha-train", "mall": "mall-tune"}


def image_path(root: Path, dataset: str, index: int) -> Path:
    if dataset == "mall":
        return root / "frames" / f"seq_{index + 1:06d}.jpg"
    return root / "frames" / f"{index:06d}.jpg"


def samples(shared: Path, dataset: str, indices: range | list[int]) -> Iterator[Sample]:
    """The dataset's samples at these indices (an image without points has none)."""
    root = shared / "datasets" / FOLDERS[dataset]
    points = read_points(root / "points.csv")
    counts = read_counts(root / "counts.csv")
    roi = None
    if dataset == "mall":
        mask = cv2.imread(str(root / "roi_mask.png"), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise FileNotFoundError(root / "roi_mask.png")
        roi = mask > 127
    for index in indices:
        frame_points = points.get(index, np.zeros((0, 2), np.float32))
        if len(frame_points) != counts[index]:
            raise ValueError(f"{dataset} {index}: {len(frame_points)} points, "
                             f"count {counts[index]}")
        yield Sample(dataset, index, image_path(root, dataset, index), frame_points, roi)


def pets_samples(shared: Path, step: int) -> Iterator[tuple[int, npt.NDArray[np.uint8], int]]:
    """(frame, image, annotated count) of every step-th PETS2009 S2.L1 frame: a sparse check."""
    root = shared / "datasets" / "pets2009-s2l1"
    counts = read_counts(root / "gt" / "PETS2009-S2L1_counts.csv")
    capture = cv2.VideoCapture(str(root / "vtest.avi"))
    frame = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if frame % step == 0 and frame in counts:
            yield frame, image, counts[frame]
        frame += 1
    capture.release()
