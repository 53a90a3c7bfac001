"""`crowdwatch eval --density` against head points: the density counter's counts (MAE, RMSE,
bias) and GAME(2) inside the region of interest, next to the boxes' rows."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crowdwatch.config import AppConfig
from crowdwatch.errors import CrowdwatchError
from crowdwatch.tools.points import roi_ignore

__all__ = ["DensityRow", "evaluate_density", "roi_ignore"]


@dataclass(frozen=True)
class DensityRow:
    """The density counter scored over a clip's frames that have ground truth."""

    frames: int
    mae: float
    rmse: float
    bias: float
    game2: float
    seconds: float

    def to_dict(self) -> dict[str, float | int | str]:
        return {"name": "density", "frames": self.frames, "mae": self.mae, "rmse": self.rmse,
                "bias": self.bias, "game2": self.game2}


def evaluate_density(config: AppConfig, points: Path, roi: str | None = None,
                     start_frame: int = 0, max_frames: int | None = None) -> DensityRow:
    """Run the detector with the density head over the config's first camera's source and
    score each frame's density count inside the ROI against its head points (no count
    filter: the density map's own count)."""
    from crowdwatch.density.counter import DensityCounter
    from crowdwatch.density.model import resolve_head
    from crowdwatch.density.scoring import count_errors, game
    from crowdwatch.density.tiles import dense_tiles_rule
    from crowdwatch.density.zones import ZoneIntegrator
    from crowdwatch.detect.models import resolve_model
    from crowdwatch.sources import open_source
    from crowdwatch.tools.headpoints import load_roi, roi_size_error
    from crowdwatch.tools.points import in_mask, load_points

    try:
        truth = load_points(points)
    except (OSError, ValueError) as error:
        raise CrowdwatchError(f"--gt {error}; points need a frame,x,y header") from None
    detector = config.detector
    model = resolve_model(detector.model)
    xml = model if model.suffix == ".xml" else next(model.glob("*.xml"), model)
    # As a camera counting from density runs it: whole frames at counting.density_imgsz,
    # density tiles at detector.imgsz.
    counter = DensityCounter(xml, resolve_head(),
                             imgsz=config.counting.density_imgsz or detector.imgsz,
                             input_shape=detector.input_shape, threads=detector.threads or 0,
                             tiles=dense_tiles_rule(config.counting), tile_imgsz=detector.imgsz)
    source = open_source(config.cameras[0])
    started = time.perf_counter()
    counts, expected, games = [], [], []
    # One per frame size: an image folder's frames (ShanghaiTech's) differ in size.
    integrators: dict[tuple[int, int], ZoneIntegrator] = {}
    ignore: list = []
    mask = None
    last = max(truth) if truth else -1
    try:
        while not source.finished:
            frame = source.read(timeout=5.0)
            if frame is None or frame.index < start_frame:
                continue
            if frame.index > last or (max_frames is not None and len(counts) >= max_frames):
                break
            if frame.index not in truth:
                continue
            h, w = frame.image.shape[:2]
            if (h, w) not in integrators:
                import shapely

                if roi is not None and mask is None:
                    mask = load_roi(roi, w, h)
                    ignore = roi_ignore(mask)
                elif mask is not None and mask.shape != (h, w):
                    raise CrowdwatchError(roi_size_error(mask, frame.index, w, h))
                integrators[h, w] = ZoneIntegrator([shapely.box(-1, -1, w + 1, h + 1)], ignore)
            density = counter.run(frame.image).density
            heads = truth[frame.index]
            inside = heads[in_mask(mask, heads)] if mask is not None else heads
            counts.append(float(integrators[h, w].counts(density)[0]))
            expected.append(len(inside))
            games.append(game(density, inside, 2, ignore))
    finally:
        source.close()
    if not counts:
        raise CrowdwatchError("no frame with ground truth was read; check --gt and --video")
    errors = count_errors(counts, expected)
    return DensityRow(len(counts), errors["mae"], errors["rmse"], errors["bias"],
                      float(np.mean(games)), time.perf_counter() - started)
