"""How far yolo11n can go on Mall: docs/ACCURACY.md, "What the detector can reach".

    PYTHONPATH=src python benchmarks/dense_ceiling.py dump      # ~4 min: every pass, conf 0.05
    PYTHONPATH=src python benchmarks/dense_ceiling.py report    # seconds, from the dump

`dump` runs the model once per frame on the whole frame, the zoom-2 tiles, both mirrored,
and zoom-3 tiles, keeping every person candidate above confidence 0.05 without NMS, so
`report` can replay any merge offline: per-pass NMS, the seam rule and the merge NMS as
detect/tiling.py does them (it reproduces the defaults' tiled figures exactly), and then:

- the recall ceiling: heads with any candidate box at all;
- precision / recall / count error against the confidence threshold, with and without the
  shop windows as ignore regions: the trade-off a threshold can buy;
- mirrored passes and zoom-3 tiles: recall they add, precision they cost;
- where the false positives of the defaults are;
- with scikit-learn installed (not a dependency), a rescoring upper bound: a boosted-tree
  classifier over each merged box's scores, pass agreement, size and overlap with stronger
  boxes, trained on the tune frames and tried on the held-out ones.

Data are read, never written into the repository (CROWDWATCH_MALL_DIR, CROWDWATCH_MODEL as in
dense_tune.py); the dump goes to CROWDWATCH_DENSE_CACHE (default /tmp/crowdwatch-dense-cache).
"""

from __future__ import annotations

import argparse
import time
from functools import cache

import cv2
import numpy as np
import numpy.typing as npt
from dense_tune import CACHE, HOLDOUT, MALL, MALL_IGNORE, MODEL, mall_frame
from scipy.optimize import linear_sum_assignment

from crowdwatch.analytics.ignore import ignore_geometry, ignored_mask
from crowdwatch.boxes import box_iou
from crowdwatch.config import DetectorConfig
from crowdwatch.config.detector import TilingConfig
from crowdwatch.detect import create_detector
from crowdwatch.detect.tiling import choose_tiles, nms, seam_mask
from crowdwatch.tools.points import (
    _INFEASIBLE,
    head_points,
    in_mask,
    load_mask,
    load_points,
    pair_costs,
    score_frames,
)

Boxes = npt.NDArray[np.float64]
DUMP = CACHE / "mall-ceiling.npz"
FRAMES = 800
# Passes: (grid, mirrored); grid "whole", "z2" (the default tiles) or "z3".
PASS_KINDS = [("whole", False), ("z2", False), ("whole", True), ("z2", True), ("z3", False)]


def grids(width: int, height: int) -> dict[str, npt.NDArray[np.int64]]:
    return {"whole": np.array([[0, 0, width, height]]),
            "z2": choose_tiles(width, height, TilingConfig(mode="on", zoom=2)),
            "z3": choose_tiles(width, height, TilingConfig(mode="on", zoom=3, max_tiles=64))}


def dump() -> None:
    detector = create_detector(DetectorConfig(model=MODEL, confidence=0.05, iou=1.0,
                                              max_det=100_000))
    rows = []
    started = time.perf_counter()
    for frame in range(FRAMES):
        image = mall_frame(frame)
        height, width = image.shape[:2]
        pending = []
        for kind, (grid, mirrored) in enumerate(PASS_KINDS):
            for x0, y0, x1, y1 in grids(width, height)[grid]:
                crop = image[y0:y1, x0:x1]
                crop = np.ascontiguousarray(crop[:, ::-1] if mirrored else crop)
                pending.append((kind, (x0, y0, x1, y1), detector.submit(crop)))
        for kind, (x0, y0, x1, y1), job in pending:
            found = job.result()
            boxes = found.xyxy.astype(np.float64)
            if PASS_KINDS[kind][1]:
                boxes[:, [0, 2]] = (x1 - x0) - boxes[:, [2, 0]]
            boxes += [x0, y0, x0, y0]
            tile = np.tile([x0, y0, x1, y1], (len(boxes), 1))
            rows.append(np.column_stack([np.full(len(boxes), frame), np.full(len(boxes), kind),
                                         tile, boxes, found.confidence]))
        if frame % 100 == 99:
            print(f"{frame + 1} frames, {time.perf_counter() - started:.0f} s", flush=True)
    DUMP.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(DUMP, rows=np.concatenate(rows), size=np.array([width, height]))


class Candidates:
    """The dump, per frame: columns frame, kind, tile x0 y0 x1 y1, box x0 y0 x1 y1, score."""

    def __init__(self) -> None:
        if not DUMP.exists():
            raise SystemExit(f"no dump at {DUMP}: run `dense_ceiling.py dump` first")
        with np.load(DUMP) as data:
            rows, (self.width, self.height) = data["rows"], data["size"]
        rows = rows[np.argsort(rows[:, 0], kind="stable")]
        self.starts = np.searchsorted(rows[:, 0], np.arange(FRAMES + 1))
        self.rows = rows

    def passes(self, frame: int, kinds: tuple[int, ...], conf: float, iou: float = 0.45,
               ) -> list[tuple[Boxes, npt.NDArray[np.float64], npt.NDArray[np.int64]]]:
        """Per pass of a frame: boxes after the pass's own NMS and the seam rule."""
        rows = self.rows[self.starts[frame]:self.starts[frame + 1]]
        out = []
        for kind in kinds:
            of_kind = rows[(rows[:, 1] == kind) & (rows[:, 10] > conf)]
            for tile in np.unique(of_kind[:, 2:6], axis=0):
                sel = of_kind[(of_kind[:, 2:6] == tile).all(1)]
                boxes, scores = sel[:, 6:10], sel[:, 10]
                xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])
                keep = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), conf, iou),
                                  np.int64).reshape(-1)
                boxes, scores = boxes[keep], scores[keep]
                if PASS_KINDS[kind][0] != "whole":
                    inside = seam_mask(boxes.astype(np.float32), tile.astype(np.int64),
                                       int(self.width), int(self.height), 2.0)
                    boxes, scores = boxes[inside], scores[inside]
                out.append((boxes, scores, np.full(len(boxes), kind)))
        return out

    def merged(self, frame: int, kinds: tuple[int, ...] = (0, 1), conf: float = 0.15,
               iou: float = 0.45, merge_iou: float = 0.5) -> tuple[Boxes, npt.NDArray]:
        parts = self.passes(frame, kinds, conf, iou)
        boxes = np.concatenate([p[0] for p in parts]).astype(np.float32)
        scores = np.concatenate([p[1] for p in parts]).astype(np.float32)
        if not len(boxes):
            return boxes.reshape(0, 4), scores
        keep = nms(boxes, scores, merge_iou)
        return boxes[keep], scores[keep]


@cache
def truth() -> tuple[dict[int, Boxes], npt.NDArray[np.bool_]]:
    """Mall's head points and ROI mask, read once."""
    return load_points(MALL / "points.csv"), load_mask(MALL / "roi_mask.png")


def score(boxes: dict[int, Boxes], frames: range) -> str:
    points, mask = truth()
    s = score_frames(boxes, points, frames, mask).summary()
    return (f"{s['mae']:.2f} | {s['bias']:+.2f} | {s['precision']:.3f} | {s['recall']:.3f}")


def row(label: str, boxes: dict[int, Boxes]) -> None:
    print(f"| {label} | {score(boxes, range(HOLDOUT))} | {score(boxes, range(HOLDOUT, FRAMES))} |")


def report() -> None:
    cands = Candidates()
    points, mask = truth()
    print("## Recall ceiling (all 800 frames): heads with any candidate box")
    for label, kinds, conf in [("whole + zoom-2 tiles, conf > 0.05", (0, 1), 0.05),
                               ("whole + zoom-2 tiles, conf > 0.10", (0, 1), 0.10),
                               ("all passes (+ mirrored, zoom-3), conf > 0.05", (0, 1, 2, 3, 4),
                                0.05)]:
        boxes = {f: np.concatenate([p[0] for p in cands.passes(f, kinds, conf)])
                 for f in range(FRAMES)}
        s = score_frames(boxes, points, range(FRAMES), mask)
        print(f"- {label}: recall {s.recall:.3f}, {np.mean(s.predicted):.1f} boxes per frame")
    header = ("| setting | tune MAE | bias | precision | recall | held-out MAE | bias | "
              "precision | recall |\n|---|---|---|---|---|---|---|---|---|")
    geometry = ignore_geometry(MALL_IGNORE)
    print("\n## Confidence threshold (whole + zoom-2 tiles, the defaults' merge)\n" + header)
    for ignore in (False, True):
        for conf in (0.1, 0.15, 0.2, 0.25, 0.3, 0.4):
            boxes = {f: cands.merged(f, conf=conf)[0] for f in range(FRAMES)}
            if ignore:
                boxes = {f: b[~ignored_mask(b, geometry)] for f, b in boxes.items()}
            row(f"conf {conf}{', shop windows ignored' if ignore else ''}", boxes)
    print("\n## Extra passes (conf 0.15)\n" + header)
    for label, kinds in [("defaults: whole + zoom-2 tiles", (0, 1)),
                         ("+ mirrored whole frame", (0, 1, 2)),
                         ("+ mirrored tiles", (0, 1, 3)),
                         ("+ both mirrored", (0, 1, 2, 3)),
                         ("+ zoom-3 tiles", (0, 1, 4))]:
        row(label, {f: cands.merged(f, kinds)[0] for f in range(FRAMES)})
    false_positives(cands, points, mask)
    rescoring(cands, points, mask)


def matched(boxes: Boxes, points: Boxes) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Boxes and heads that the one-to-one assignment of tools/points.py pairs."""
    box_hit, head_hit = np.zeros(len(boxes), bool), np.zeros(len(points), bool)
    if len(boxes) and len(points):
        costs = pair_costs(boxes, points)
        feasible = np.isfinite(costs)
        rows, cols = linear_sum_assignment(np.where(feasible, costs - _INFEASIBLE / 2,
                                                    _INFEASIBLE))
        pairs = feasible[rows, cols]
        box_hit[rows[pairs]] = True
        head_hit[cols[pairs]] = True
    return box_hit, head_hit


def false_positives(cands: Candidates, points: dict[int, Boxes], mask: np.ndarray) -> None:
    geometry = ignore_geometry(MALL_IGNORE)
    kinds = {"in the shop windows (mannequins, reflections)": 0,
             "mostly inside a matched box (part of a person)": 0,
             "head point within half a box height of an unmatched head": 0, "other": 0}
    for frame in range(FRAMES):
        boxes = cands.merged(frame)[0]
        boxes = boxes[in_mask(mask, head_points(boxes))]
        heads = points[frame][in_mask(mask, points[frame])]
        hit, head_hit = matched(boxes, heads)
        free_heads = heads[~head_hit]
        windows = ignored_mask(boxes, geometry)
        area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1)
        for i in np.flatnonzero(~hit):
            box = boxes[i]
            if windows[i]:
                kinds["in the shop windows (mannequins, reflections)"] += 1
                continue
            good = boxes[hit]
            inter = (np.clip(np.minimum(good[:, 2], box[2]) - np.maximum(good[:, 0], box[0]), 0,
                             None)
                     * np.clip(np.minimum(good[:, 3], box[3]) - np.maximum(good[:, 1], box[1]),
                               0, None))
            head = head_points(box[None])[0]
            gap = (np.hypot(*(free_heads - head).T).min() / (box[3] - box[1])
                   if len(free_heads) else np.inf)
            if len(good) and (inter / area[i]).max() > 0.6:
                kinds["mostly inside a matched box (part of a person)"] += 1
            elif gap < 0.5:
                kinds["head point within half a box height of an unmatched head"] += 1
            else:
                kinds["other"] += 1
    total = sum(kinds.values())
    print(f"\n## False positives of the defaults (all 800 frames): {total}, "
          f"{total / FRAMES:.1f} per frame")
    for label, n in kinds.items():
        print(f"- {label}: {n} ({n / total:.0%})")


def rescoring(cands: Candidates, points: dict[int, Boxes], mask: np.ndarray) -> None:
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
    except ImportError:
        print("\n(rescoring upper bound skipped: scikit-learn is not installed)")
        return
    features, labels, truth = {}, {}, {}
    for frame in range(FRAMES):
        parts = cands.passes(frame, (0, 1), 0.05)
        boxes = np.concatenate([p[0] for p in parts]).astype(np.float32)
        scores = np.concatenate([p[1] for p in parts])
        kinds = np.concatenate([p[2] for p in parts])
        order = np.argsort(-scores, kind="stable")
        boxes, scores, kinds = boxes[order], scores[order], kinds[order]
        overlap = box_iou(boxes, boxes)
        free = np.ones(len(boxes), bool)
        heads, rows = [], []
        for i in range(len(boxes)):  # greedy clusters, strongest box first
            if not free[i]:
                continue
            members = free & (overlap[i] > 0.5)
            free &= ~members
            heads.append(i)
            rows.append([scores[i], scores[members].sum(), members.sum(),
                         len(set(kinds[members]))])
        top = boxes[heads]
        height = top[:, 3] - top[:, 1]
        width = top[:, 2] - top[:, 0]
        stronger = np.tril(np.ones((len(top), len(top)), bool), -1)
        iou = np.where(stronger, box_iou(top, top), 0)
        x = np.column_stack([np.array(rows).reshape(-1, 4), np.log(np.maximum(height, 1)),
                             width / np.maximum(height, 1),
                             iou.max(1) if len(top) else np.zeros(0)])
        inside = in_mask(mask, head_points(top))
        heads_in = points[frame][in_mask(mask, points[frame])]
        features[frame], truth[frame] = x[inside], len(heads_in)
        labels[frame] = matched(top[inside], heads_in)[0]
    tune, held = range(HOLDOUT), range(HOLDOUT, FRAMES)
    model = HistGradientBoostingClassifier(max_iter=200).fit(
        np.concatenate([features[f] for f in tune]), np.concatenate([labels[f] for f in tune]))
    print("\n## Rescoring upper bound (trained on the tune frames of this very scene)")
    print("| threshold | held-out precision | recall | count MAE |\n|---|---|---|---|")
    for threshold in (0.3, 0.4, 0.5, 0.6):
        tp = fp = n = 0
        errors = []
        for f in held:
            kept = model.predict_proba(features[f])[:, 1] > threshold
            tp += int(labels[f][kept].sum())
            fp += int((~labels[f][kept]).sum())
            n += truth[f]
            errors.append(abs(int(kept.sum()) - truth[f]))
        print(f"| {threshold} | {tp / max(tp + fp, 1):.3f} | {tp / n:.3f} | "
              f"{np.mean(errors):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["dump", "report"])
    args = parser.parse_args()
    {"dump": dump, "report": report}[args.what]()


if __name__ == "__main__":
    main()
