"""Accuracy of predicted people counts and boxes against ground truth, and how to report it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from crowdwatch.boxes import box_iou
from crowdwatch.config import Anchor


@dataclass(frozen=True)
class CountErrors:
    """Per-frame count errors: mean absolute, root mean square, mean signed, share exact."""

    mae: float
    rmse: float
    bias: float  # mean(predicted - truth): positive means over-counting
    exact: float  # share of frames (0-1) where the count is exactly right
    frames: int

    def to_dict(self) -> dict[str, float | int]:
        return {"mae": self.mae, "rmse": self.rmse, "bias": self.bias, "exact": self.exact,
                "frames": self.frames}


def count_errors(predicted: npt.ArrayLike, truth: npt.ArrayLike) -> CountErrors:
    """Compare per-frame counts; both arrays have one value per frame, same shape."""
    pred = np.asarray(predicted, dtype=np.float64)
    true = np.asarray(truth, dtype=np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"predicted {pred.shape} and truth {true.shape} differ in shape")
    if pred.size == 0:
        raise ValueError("no frames to compare")
    diff = pred - true
    return CountErrors(
        mae=float(np.abs(diff).mean()),
        rmse=float(np.sqrt((diff**2).mean())),
        bias=float(diff.mean()),
        exact=float((diff == 0).mean()),
        frames=int(pred.size),
    )


def match_boxes(
    pred_xyxy: npt.ArrayLike,
    pred_conf: npt.ArrayLike,
    truth_xyxy: npt.ArrayLike,
    iou_threshold: float = 0.5,
) -> tuple[int, int, int]:
    """Count true positives, false positives and missed truths in one frame.

    Greedy one-to-one matching, the COCO rule: predictions are taken in order of descending
    confidence (ties keep input order), and each takes the still-unmatched truth box with the
    highest IoU, provided that IoU >= ``iou_threshold``; otherwise it is a false positive.
    Truth boxes left unmatched are false negatives. (PASCAL VOC differs slightly: it needs
    IoU > 0.5 and does not fall back to the next-best truth when the best one is taken.)
    """
    pred = np.asarray(pred_xyxy, dtype=np.float64).reshape(-1, 4)
    truth = np.asarray(truth_xyxy, dtype=np.float64).reshape(-1, 4)
    conf = np.asarray(pred_conf, dtype=np.float64).reshape(-1)
    if len(conf) != len(pred):
        raise ValueError(f"{len(pred)} predicted boxes but {len(conf)} confidences")
    if len(pred) == 0 or len(truth) == 0:
        return 0, len(pred), len(truth)

    iou = box_iou(pred, truth)
    taken = np.zeros(len(truth), dtype=bool)
    tp = 0
    # A loop over predictions is inherent to greedy matching; each step is one row of IoU.
    for p in np.argsort(-conf, kind="stable"):
        row = np.where(taken, -1.0, iou[p])
        best = int(np.argmax(row))
        if row[best] >= iou_threshold:
            taken[best] = True
            tp += 1
    return tp, len(pred) - tp, len(truth) - tp


@dataclass
class DetectionTally:
    """True/false positives and misses summed over frames, at one IoU threshold."""

    iou_threshold: float = 0.5
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, tp: int, fp: int, fn: int) -> None:
        """Add one frame's (or any batch's) counts."""
        self.tp += tp
        self.fp += fp
        self.fn += fn

    def add_frame(
        self, pred_xyxy: npt.ArrayLike, pred_conf: npt.ArrayLike, truth_xyxy: npt.ArrayLike
    ) -> None:
        """Match one frame's boxes (see match_boxes) and add the result."""
        self.add(*match_boxes(pred_xyxy, pred_conf, truth_xyxy, self.iou_threshold))

    @property
    def precision(self) -> float:
        """tp / (tp + fp); 0 when nothing was predicted."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        """tp / (tp + fn); 0 when there was nothing to find."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall; 0 when both are 0."""
        p, r = self.precision, self.recall
        return _ratio(2 * p * r, p + r)

    def to_dict(self) -> dict[str, float | int]:
        return {"iou_threshold": self.iou_threshold, "tp": self.tp, "fp": self.fp, "fn": self.fn,
                "precision": self.precision, "recall": self.recall, "f1": self.f1}


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else 0.0


def people_in_zone(
    xyxy: npt.ArrayLike,
    polygon: shapely.Polygon | npt.ArrayLike,
    anchor: Anchor = "bottom_center",
) -> int:
    """Number of boxes whose anchor point lies in the polygon (a shapely Polygon or (K, 2) points).

    Anchors: "bottom_center" = ((x1 + x2) / 2, y2), where the feet touch the ground;
    "center" = the box centre; a point on the boundary counts as inside. Written with plain
    shapely, apart from the zone stage (analytics.zones), so ground truth built with it does
    not share the code it judges.
    """
    if anchor not in ("bottom_center", "center"):
        raise ValueError(f"anchor must be 'bottom_center' or 'center', got {anchor!r}")
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    zone = polygon if isinstance(polygon, shapely.Polygon) else shapely.Polygon(polygon)
    x = (boxes[:, 0] + boxes[:, 2]) / 2
    y = (boxes[:, 1] + boxes[:, 3]) / 2 if anchor == "center" else boxes[:, 3]
    return int(zone.covers(shapely.points(x, y)).sum())


@dataclass(frozen=True)
class EvalResult:
    """What one setting or model scored over a clip; detection and zones are optional."""

    name: str
    counts: CountErrors
    detection: DetectionTally | None = None
    zones: Mapping[str, CountErrors] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "counts": self.counts.to_dict(),
            "detection": None if self.detection is None else self.detection.to_dict(),
            "zones": {name: errors.to_dict() for name, errors in self.zones.items()},
        }


def report_dict(results: Sequence[EvalResult]) -> dict[str, Any]:
    """JSON-serialisable form of a comparison (plain Python numbers only)."""
    return {"results": [result.to_dict() for result in results]}


_HEADERS = ("setting", "frames", "MAE", "RMSE", "bias", "exact%", "precision", "recall")


def format_table(results: Sequence[EvalResult]) -> str:
    """Plain-text table: one row per result, then an indented MAE row per zone of it."""
    rows: list[tuple[str, ...]] = []
    for result in results:
        detection = result.detection
        scores = ("-", "-") if detection is None else (
            f"{detection.precision:.3f}", f"{detection.recall:.3f}")
        rows.append((*_count_cells(result.name, result.counts), *scores))
        for zone, errors in result.zones.items():
            rows.append((*_count_cells(f"  zone {zone}", errors), "-", "-"))
    widths = [max(len(row[i]) for row in (_HEADERS, *rows)) for i in range(len(_HEADERS))]
    # Names read left to right; numbers line up on the right so their decimals align.
    lines = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in (_HEADERS, *rows)
    ]
    return "\n".join(lines)


def _count_cells(name: str, errors: CountErrors) -> tuple[str, ...]:
    return (name, str(errors.frames), f"{errors.mae:.3f}", f"{errors.rmse:.3f}",
            f"{errors.bias:+.3f}", f"{100 * errors.exact:.1f}")
