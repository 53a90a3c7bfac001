"""Evaluation of people flow against ground-truth tracks.

* gt_crossings: true crossings per direction by plain math on GT foot points (sign changes of
  side() between an id's consecutive samples, counted where the step meets the segment),
  independent of LineCounter's hysteresis and state;
* baseline_crossings: the peers' method (Ultralytics' ObjectCounter): box centre, a crossing
  where the step between an id's consecutive centres intersects the segment, at most once per
  id and line;
* run_line_counter: LineCounter fed frame by frame with any tracks (GT or predicted);
* tracking_quality: IDF1, ID switches and MOTA of predicted vs GT tracks (IoU >= 0.5), with
  motmetrics (its own iou_matrix uses np.asfarray, removed in numpy 2: IoU is crowdwatch.boxes).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from crowdwatch.analytics.lines import Line, LineCounter
from crowdwatch.analytics.tracks import IntArray, StateArray
from crowdwatch.boxes import box_iou, foot_points
from crowdwatch.config.flow import RelinkConfig

__all__ = [
    "TrackingQuality",
    "Tracks",
    "baseline_crossings",
    "gt_crossings",
    "run_line_counter",
    "tracking_quality",
]


@dataclass(frozen=True)
class Tracks:
    """Tracked boxes: one row per (frame, id), xyxy pixels."""

    frame: IntArray
    track_id: IntArray
    xyxy: StateArray

    @classmethod
    def from_csv(cls, path: str | Path) -> Tracks:
        """Read a frame,id,x,y,w,h CSV (x, y top-left, header line) like PETS2009's boxes."""
        data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
        xywh = data[:, 2:6]
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        return cls(data[:, 0].astype(np.int64), data[:, 1].astype(np.int64), xyxy)

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[int, int, float, float, float, float]]) -> Tracks:
        """From (frame, id, x1, y1, x2, y2) tuples."""
        data = np.asarray(rows, np.float64).reshape(-1, 6)
        return cls(data[:, 0].astype(np.int64), data[:, 1].astype(np.int64), data[:, 2:])

    def by_frame(self) -> Iterator[tuple[int, IntArray, StateArray]]:
        """(frame, ids, xyxy) for every frame that has rows, in frame order."""
        order = np.argsort(self.frame, kind="stable")
        frames = self.frame[order]
        starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]])
        ends = np.r_[starts[1:], len(frames)]
        for s, e in zip(starts, ends, strict=True):
            rows = order[s:e]
            yield int(frames[s]), self.track_id[rows], self.xyxy[rows]


def _side(points: StateArray, line: Line) -> StateArray:
    (x1, y1), (x2, y2) = line.start, line.end
    return (x2 - x1) * (points[:, 1] - y1) - (y2 - y1) * (points[:, 0] - x1)


def _steps(tracks: Tracks) -> tuple[IntArray, IntArray]:
    """Index pairs (previous, current) of each id's consecutive samples."""
    order = np.lexsort((tracks.frame, tracks.track_id))
    same = tracks.track_id[order][1:] == tracks.track_id[order][:-1]
    return order[:-1][same], order[1:][same]


def gt_crossings(tracks: Tracks, line: Line) -> tuple[int, int]:
    """True (in, out) crossings of the segment by foot points; every crossing of an id counts.

    Samples exactly on the line are skipped, so a step onto the line and off it to the other
    side is one crossing. The crossing point of a step must project onto [0, 1] of the segment.
    """
    feet = foot_points(tracks.xyxy)
    side = _side(feet, line)
    off = side != 0
    sub = Tracks(tracks.frame[off], tracks.track_id[off], tracks.xyxy[off])
    prev, cur = _steps(sub)
    p, q = feet[off][prev], feet[off][cur]
    sp, sq = side[off][prev], side[off][cur]
    changed = np.sign(sp) != np.sign(sq)
    u = sp[changed] / (sp[changed] - sq[changed])
    cross = p[changed] + u[:, None] * (q[changed] - p[changed])
    a, b = np.asarray(line.start, float), np.asarray(line.end, float)
    t = ((cross - a) @ (b - a)) / ((b - a) @ (b - a))
    on = (t >= 0) & (t <= 1)
    went_in = on & (sp[changed] < 0)
    return int(went_in.sum()), int((on & ~went_in).sum())


def _intersects(
    p: StateArray, q: StateArray, a: StateArray, b: StateArray
) -> npt.NDArray[np.bool_]:
    """Whether segments p-q (arrays) meet segment a-b, touching included (as shapely)."""

    def cross(o: StateArray, s: StateArray, r: StateArray) -> StateArray:
        return (s[..., 0] - o[..., 0]) * (r[..., 1] - o[..., 1]) - (s[..., 1] - o[..., 1]) * (
            r[..., 0] - o[..., 0])

    d1, d2 = cross(a, b, p), cross(a, b, q)
    d3, d4 = cross(p, q, a), cross(p, q, b)
    proper = (np.sign(d1) * np.sign(d2) <= 0) & (np.sign(d3) * np.sign(d4) <= 0)
    # Collinear steps need an overlap check; the sign test alone accepts any collinear pair.
    collinear = (d1 == 0) & (d2 == 0)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    overlap = np.all((np.maximum(np.minimum(p, q), lo) <= np.minimum(np.maximum(p, q), hi)),
                     axis=-1)
    return np.where(collinear, overlap, proper)


def baseline_crossings(tracks: Tracks, line: Line) -> tuple[int, int]:
    """The peers' (in, out): box centres, each id counted at most once per line.

    Like Ultralytics' ObjectCounter: a step between an id's consecutive centres that intersects
    the segment counts, but only the id's first such step. Direction uses this project's
    convention (side going up is `in`) instead of Ultralytics' axis rule, so it compares.
    """
    centres = np.stack([(tracks.xyxy[:, 0] + tracks.xyxy[:, 2]) / 2,
                        (tracks.xyxy[:, 1] + tracks.xyxy[:, 3]) / 2], axis=1)
    prev, cur = _steps(tracks)
    a, b = np.asarray(line.start, float), np.asarray(line.end, float)
    hits = _intersects(centres[prev], centres[cur], a, b)
    ids = tracks.track_id[cur][hits]
    frames = tracks.frame[cur][hits]
    order = np.lexsort((frames, ids))
    first = order[np.r_[True, ids[order][1:] != ids[order][:-1]]] if len(order) else order
    rising = _side(centres[cur][hits][first], line) > _side(centres[prev][hits][first], line)
    return int(rising.sum()), int((~rising).sum())


def run_line_counter(
    tracks: Tracks, lines: Sequence[Line], fps: float, relink: RelinkConfig | None = None
) -> dict[str, tuple[int, int]]:
    """LineCounter totals {line: (in, out)} after feeding tracks frame by frame at fps."""
    counter = LineCounter(lines, relink)
    totals = {line.name: (0, 0) for line in lines}
    for frame, ids, xyxy in tracks.by_frame():
        totals = counter.update_boxes(ids, xyxy, frame / fps).totals()
    return totals


@dataclass(frozen=True, slots=True)
class TrackingQuality:
    """CLEAR-MOT and identity figures of predicted tracks against GT."""

    idf1: float
    id_switches: int
    mota: float
    gt_boxes: int
    false_positives: int
    misses: int


def tracking_quality(gt: Tracks, predicted: Tracks, min_iou: float = 0.5) -> TrackingQuality:
    """IDF1, ID switches and MOTA; boxes match at IoU >= min_iou. Predicted rows with id < 0
    (unconfirmed) are ignored, as a counter ignores them."""
    import motmetrics as mm

    confirmed = predicted.track_id >= 0
    predicted = Tracks(predicted.frame[confirmed], predicted.track_id[confirmed],
                       predicted.xyxy[confirmed])
    acc = mm.MOTAccumulator(auto_id=True)
    pred_frames = {f: (ids, boxes) for f, ids, boxes in predicted.by_frame()}
    gt_frames = {f: (ids, boxes) for f, ids, boxes in gt.by_frame()}
    empty = (np.zeros(0, np.int64), np.zeros((0, 4)))
    for frame in sorted(set(pred_frames) | set(gt_frames)):
        gt_ids, gt_boxes = gt_frames.get(frame, empty)
        pr_ids, pr_boxes = pred_frames.get(frame, empty)
        iou = box_iou(gt_boxes, pr_boxes)
        acc.update(gt_ids.tolist(), pr_ids.tolist(), np.where(iou >= min_iou, 1 - iou, np.nan))
    summary = mm.metrics.create().compute(
        acc, metrics=["idf1", "num_switches", "mota", "num_objects", "num_false_positives",
                      "num_misses"], name="all")
    row = summary.loc["all"]
    return TrackingQuality(float(row["idf1"]), int(row["num_switches"]), float(row["mota"]),
                           int(row["num_objects"]), int(row["num_false_positives"]),
                           int(row["num_misses"]))
