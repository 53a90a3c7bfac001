"""`crowdwatch eval` against head-point ground truth (crowd datasets): counts and
point-matched detections inside a region of interest."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from crowdwatch.config import AppConfig, CountingConfig
from crowdwatch.errors import CrowdwatchError
from crowdwatch.tools.replay import DetectFactory, run_settings
from crowdwatch.tools.settings import PRIMARY, Setting
from crowdwatch.types import FrameResult

if TYPE_CHECKING:
    from crowdwatch.density.zones import ZoneIntegrator


def is_points_file(path: Path) -> bool:
    """Whether a ground-truth file is head points: a CSV whose header is frame,x,y."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            header = handle.readline()
    except OSError:
        return False
    return [c.strip().lower() for c in header.split(",")] == ["frame", "x", "y"]


def load_roi(roi: str, width: int, height: int) -> npt.NDArray[np.bool_]:
    """ROI mask of a frame size: a mask image (white inside) or a polygon "x,y;x,y;x,y"."""
    from crowdwatch.tools.points import load_mask, polygon_mask

    path = Path(roi)
    if path.exists():
        try:
            mask = load_mask(path)
        except ValueError as error:
            raise CrowdwatchError(f"--roi {error}; give a PNG mask, white inside") from None
        if mask.shape != (height, width):
            raise CrowdwatchError(f"--roi {roi}: mask is {mask.shape[1]}x{mask.shape[0]}, the "
                                  f"frames are {width}x{height}; give a mask of the frame size")
        return mask
    try:
        points = [tuple(float(v) for v in pair.split(",")) for pair in roi.split(";")]
    except ValueError:
        points = []
    if len(points) < 3 or any(len(p) != 2 for p in points):
        raise CrowdwatchError(f"--roi {roi}: neither a mask image nor a polygon; give a PNG "
                              "mask (white inside) or x,y;x,y;x,y in pixels")
    return polygon_mask(points, width, height)  # type: ignore[arg-type]


@dataclass
class PointsRow:
    """One scored frame range of a points evaluation."""

    name: str
    frames: int
    mae: float
    rmse: float
    bias: float
    precision: float
    recall: float

    def to_dict(self) -> dict[str, float | int | str]:
        return {"name": self.name, "frames": self.frames, "mae": self.mae, "rmse": self.rmse,
                "bias": self.bias, "precision": self.precision, "recall": self.recall}


@dataclass
class PointsEvaluation:
    """What `crowdwatch eval --gt points.csv` measured: all frames first, then the split."""

    rows: list[PointsRow]
    first: int
    last: int
    seconds: float
    # The count filter as it ran on this source (persistence 0.2 s, none ...).
    filter: str = "none"


def score_points(results: Sequence[FrameResult], truth: Mapping[int, npt.NDArray[np.float64]],
                 mask: npt.NDArray[np.bool_] | None, counting: CountingConfig, timed: bool,
                 split: int | None = None, name: str = PRIMARY) -> list[PointsRow]:
    """Score each frame's people against head points inside the ROI.

    The count of a frame is its people whose head point lies in the ROI (or, on a frame
    counted from density, its density map integrated over the ROI, rounded), through the
    config's temporal filter as the pipeline runs it (counting_smoother; timed: the frames
    have real times, not an image folder's); matching uses the boxes themselves.
    Frames beyond the ground truth's last frame are not scored.
    """
    from crowdwatch.analytics.smoothing import counting_smoother
    from crowdwatch.tools.points import head_points, in_mask, score_frames

    last_truth = max(truth) if truth else -1
    ordered = [r for r in sorted(results, key=lambda r: r.frame_index)
               if r.frame_index <= last_truth]
    if not ordered:
        raise CrowdwatchError("no analysed frame has ground truth; check --gt and --video")
    boxes = {r.frame_index: r.detections.xyxy for r in ordered}
    smoother = counting_smoother(counting, timed)
    counts = {}
    # One per frame size: an image folder's frames (ShanghaiTech's) differ in size.
    integrators: dict[tuple[int, int], ZoneIntegrator] = {}
    for r in ordered:
        if r.method == "density" and r.density is not None:
            # Counted as the pipeline counts it: the map integrated over the ROI, whole people.
            frame_hw = r.density.letterbox.frame_hw
            if frame_hw not in integrators:
                integrators[frame_hw] = _roi_integrator(mask, frame_hw, r.frame_index)
            inside = int(np.rint(max(integrators[frame_hw].counts(r.density)[0], 0.0)))
        else:
            inside = int(in_mask(mask, head_points(r.detections.xyxy)).sum())
        counts[r.frame_index] = int(smoother.update(np.array([inside], np.int64),
                                                    r.timestamp)[0])
    frames = list(boxes)
    ranges = [(name, frames)]
    if split is not None:
        ranges += [(f"{name} <{split}", [f for f in frames if f < split]),
                   (f"{name} >={split}", [f for f in frames if f >= split])]
    rows = []
    for label, chosen in ranges:
        if not chosen:
            continue
        score = score_frames(boxes, truth, chosen, mask, counts)
        c = score.counts
        rows.append(PointsRow(label, c.frames, c.mae, c.rmse, c.bias, score.precision,
                              score.recall))
    return rows


def _roi_integrator(mask: npt.NDArray[np.bool_] | None, frame_hw: tuple[int, int],
                    frame_index: int) -> ZoneIntegrator:
    """Density counts inside the ROI (the whole frame without one)."""
    import shapely

    from crowdwatch.density.zones import ZoneIntegrator
    from crowdwatch.tools.points import roi_ignore

    h, w = frame_hw
    if mask is not None and mask.shape != (h, w):
        raise CrowdwatchError(roi_size_error(mask, frame_index, w, h))
    ignore = [] if mask is None else roi_ignore(mask)
    return ZoneIntegrator([shapely.box(0, 0, w, h)], ignore)


def roi_size_error(mask: npt.NDArray[np.bool_], frame_index: int, width: int, height: int
                   ) -> str:
    """The error of a frame whose size is not the ROI mask's (a folder of mixed sizes)."""
    return (f"--roi is {mask.shape[1]}x{mask.shape[0]} but frame {frame_index} is "
            f"{width}x{height}; score frames of one size with a region of interest, or leave "
            "--roi out")


def evaluate_points(config: AppConfig, points: Path, roi: str | None = None,
                    start_frame: int = 0, max_frames: int | None = None,
                    split: int | None = None, detect_factory: DetectFactory | None = None,
                    name: str = PRIMARY) -> PointsEvaluation:
    """Run the config over its clip and score it against head points (see score_points)."""
    from crowdwatch.analytics.smoothing import counting_smoother
    from crowdwatch.tools.points import load_points

    try:
        truth = load_points(points)
    except (OSError, ValueError) as error:
        raise CrowdwatchError(f"--gt {error}; points need a frame,x,y header") from None
    started = time.perf_counter()
    passes = run_settings([Setting(name, config)], start_frame, max_frames, detect_factory)
    done = passes[name]
    if not done.frames:
        raise CrowdwatchError(f"{config.cameras[0].source}: no frame was read")
    mask = None if roi is None else load_roi(roi, done.frames[0].width, done.frames[0].height)
    if mask is not None:
        other = next((f for f in done.frames if mask.shape != (f.height, f.width)), None)
        if other is not None:
            raise CrowdwatchError(roi_size_error(mask, other.index, other.width, other.height))
    rows = score_points(done.results, truth, mask, config.counting, done.sequence, split, name)
    return PointsEvaluation(rows, done.frames[0].index, done.frames[-1].index,
                            time.perf_counter() - started,
                            str(counting_smoother(config.counting, done.sequence)))


def format_points_table(rows: Sequence[PointsRow]) -> str:
    """The rows as a plain-text table."""
    lines = [f"{'setting':<22} {'frames':>6} {'MAE':>7} {'RMSE':>7} {'bias':>7} "
             f"{'precision':>9} {'recall':>7}"]
    lines += [f"{r.name:<22} {r.frames:>6} {r.mae:>7.3f} {r.rmse:>7.3f} {r.bias:>+7.3f} "
              f"{r.precision:>9.3f} {r.recall:>7.3f}" for r in rows]
    return "\n".join(lines)
