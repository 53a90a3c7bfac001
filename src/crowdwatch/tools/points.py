"""Score people boxes against head-point ground truth (crowd datasets such as Mall).

Crowd-counting datasets mark one point per person, on the head, and have no boxes. This
module reads such points (CSV ``frame,x,y``) and a region of interest (a PNG mask, white
inside, or a polygon), and scores detections two ways:

- **count**: people per frame inside the ROI, boxes against points: MAE, RMSE, bias, exact
  (``scoring.CountErrors``);
- **detection**: each point matched to at most one box and each box to at most one point,
  one to one (``scipy.optimize.linear_sum_assignment``); precision = matched boxes / boxes,
  recall = matched points / points.

Rules (both sides are treated alike, so a person is in or out of the ROI for both):

- A point may match a box when it lies in the box's **head region**: horizontally within the
  box (widened by ``HEAD_X_SLACK`` of its width each side), vertically from ``HEAD_TOP_SLACK``
  of the box height above its top to ``HEAD_DEPTH`` of its height below the top. The cost of
  a pair is the distance from the point to the box's expected head point (centre x, top +
  ``HEAD_POINT`` of the height), divided by the box height; the assignment minimises the total.
- **ROI**: points outside the ROI are dropped; a box is dropped when its expected head point
  lies outside. The head point is used (not the bottom centre) because the ground truth are
  heads: a person whose head is inside counts on both sides, whatever the feet do.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from crowdwatch.tools.scoring import CountErrors, count_errors

Points = npt.NDArray[np.float64]
Boxes = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]

HEAD_X_SLACK = 0.1  # share of box width a head may stick out on each side
HEAD_TOP_SLACK = 0.1  # share of box height a head point may lie above the box top
HEAD_DEPTH = 0.4  # the head lies in this upper share of the box
HEAD_POINT = 0.1  # expected head point: this share of the height below the top
_INFEASIBLE = 1e6


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def load_points(path: str | Path) -> dict[int, Points]:
    """Head points per frame from a CSV with a ``frame,x,y`` header (0-based frames)."""
    rows: dict[int, list[tuple[float, float]]] = {}
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"frame", "x", "y"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            try:
                frame, x, y = int(row["frame"]), float(row["x"]), float(row["y"])
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: not frame,x,y numbers: {row}") from None
            if frame < 0 or not (np.isfinite(x) and np.isfinite(y)):
                raise ValueError(f"{path}:{line}: bad frame or coordinate: {row}")
            rows.setdefault(frame, []).append((x, y))
    return {f: np.array(p, np.float64).reshape(-1, 2) for f, p in sorted(rows.items())}


def load_mask(path: str | Path) -> Mask:
    """ROI mask from an image file: True where the pixel is bright (white = inside)."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"{path}: cannot read the ROI mask image")
    return image > 127


def polygon_mask(polygon: Sequence[tuple[float, float]], width: int, height: int) -> Mask:
    """ROI mask (height, width) of a polygon in pixels: True at pixel centres inside it."""
    import shapely

    ys, xs = np.mgrid[0:height, 0:width]
    inside = shapely.contains_xy(shapely.Polygon(polygon), xs + 0.5, ys + 0.5)
    return np.asarray(inside, bool).reshape(height, width)


def in_mask(mask: Mask | None, xy: Points) -> npt.NDArray[np.bool_]:
    """Whether each point (N, 2) falls on a True pixel; points outside the image are out."""
    if mask is None:
        return np.ones(len(xy), bool)
    col = np.floor(xy[:, 0]).astype(np.int64)
    row = np.floor(xy[:, 1]).astype(np.int64)
    h, w = mask.shape
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    out = np.zeros(len(xy), bool)
    out[inside] = mask[row[inside], col[inside]]
    return out


# ---------------------------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------------------------


def head_points(xyxy: Boxes) -> Points:
    """Expected head point (N, 2) of each box: centre x, HEAD_POINT of the height below top."""
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    height = boxes[:, 3] - boxes[:, 1]
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 1] + HEAD_POINT * height], 1)


def pair_costs(xyxy: Boxes, points: Points) -> npt.NDArray[np.float64]:
    """(boxes, points) cost: head-point distance / box height, or inf outside the head region."""
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    x0, y0, x1, y1 = (boxes[:, i, None] for i in range(4))
    w, h = x1 - x0, np.maximum(y1 - y0, 1e-6)
    px, py = pts[None, :, 0], pts[None, :, 1]
    feasible = ((px >= x0 - HEAD_X_SLACK * w) & (px <= x1 + HEAD_X_SLACK * w)
                & (py >= y0 - HEAD_TOP_SLACK * h) & (py <= y0 + HEAD_DEPTH * h))
    head = head_points(boxes)
    distance = np.hypot(px - head[:, None, 0], py - head[:, None, 1]) / h
    return np.where(feasible, distance, np.inf)


def match_points(xyxy: Boxes, points: Points) -> tuple[int, int, int]:
    """(true positives, false positive boxes, missed points) of one frame, one to one.

    The assignment maximises the number of matched pairs, then minimises their total cost.
    """
    n_boxes, n_points = len(xyxy), len(points)
    if n_boxes == 0 or n_points == 0:
        return 0, n_boxes, n_points
    costs = pair_costs(xyxy, points)
    feasible = np.isfinite(costs)
    # Each feasible pair is worth far more than any cost difference: most pairs first.
    weights = np.where(feasible, costs - _INFEASIBLE / 2, _INFEASIBLE)
    rows, cols = linear_sum_assignment(weights)
    tp = int(feasible[rows, cols].sum())
    return tp, n_boxes - tp, n_points - tp


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


@dataclass
class PointScore:
    """Counts and matches over many frames."""

    predicted: list[int] = field(default_factory=list)
    truth: list[int] = field(default_factory=list)
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def counts(self) -> CountErrors:
        return count_errors(self.predicted, self.truth)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def summary(self) -> dict[str, float]:
        c = self.counts
        return {"mae": c.mae, "rmse": c.rmse, "bias": c.bias, "precision": self.precision,
                "recall": self.recall, "frames": float(c.frames)}


def roi_filter(xyxy: Boxes, points: Points, mask: Mask | None) -> tuple[Boxes, Points]:
    """Boxes whose head point is in the ROI, and points in the ROI."""
    boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    return boxes[in_mask(mask, head_points(boxes))], pts[in_mask(mask, pts)]


def score_frames(boxes: Mapping[int, Boxes], truth: Mapping[int, Points],
                 frames: Iterable[int], mask: Mask | None = None,
                 counts: Mapping[int, int] | None = None) -> PointScore:
    """Score the boxes of each frame against its points, inside the ROI.

    counts, if given, replaces the number of ROI boxes as the predicted count of a frame
    (e.g. counts after a temporal filter); matching always uses the boxes.
    """
    result = PointScore()
    empty = np.zeros((0, 2), np.float64)
    for frame in frames:
        xyxy, pts = roi_filter(boxes.get(frame, np.zeros((0, 4), np.float32)),
                               truth.get(frame, empty), mask)
        result.predicted.append(len(xyxy) if counts is None else int(counts[frame]))
        result.truth.append(len(pts))
        tp, fp, fn = match_points(xyxy, pts)
        result.tp += tp
        result.fp += fp
        result.fn += fn
    return result


def roi_ignore(mask: np.ndarray) -> list:
    """What lies outside an ROI mask, as polygons the density integration leaves out."""
    import cv2
    import shapely

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    inside = shapely.union_all([shapely.Polygon(c[:, 0, :].astype(float)).buffer(0)
                                for c in contours if len(c) >= 3])
    h, w = mask.shape
    return [shapely.box(-1, -1, w + 1, h + 1).difference(inside)]
