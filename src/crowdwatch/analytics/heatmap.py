"""Where people have been: per camera, people x seconds on a coarse grid over the frame,
fading exponentially (config `heatmap:`).

Each analysed frame adds its people per cell times the time it stands for (the gap since the
camera's previous frame, at most `max_step_s`), after the grid so far has decayed by
0.5 ** (gap / half_life_s). People per cell come from the frame's density map when the camera
counts from density (`FrameResult.method`), else from the feet of its boxes. Times are the
frames' own (file position, or capture time of a live frame), so a file analysed faster than
real time fills the map as its own clock says. Memory: one float64 grid per camera
(`cells` x at most `cells`, 512 KiB at the largest).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt
import shapely

from crowdwatch.boxes import foot_points
from crowdwatch.config.web import HeatmapConfig
from crowdwatch.detect.densitymap import DensityMap
from crowdwatch.types import FloatArray, FrameResult

if TYPE_CHECKING:
    from crowdwatch.analytics.scene import CameraScene

Grid = npt.NDArray[np.float64]


def grid_shape(width: int, height: int, cells: int) -> tuple[int, int]:
    """(rows, columns): `cells` along the longer side, square cells (at least 1 on each)."""
    if width >= height:
        return max(1, round(cells * height / width)), cells
    return cells, max(1, round(cells * width / height))


def boxes_on_grid(xyxy: FloatArray, frame_hw: tuple[int, int],
                  shape: tuple[int, int]) -> Grid:
    """People per cell: each box counts one in the cell of its foot point (bottom centre)."""
    rows, columns = shape
    grid = np.zeros(rows * columns, np.float64)
    if len(xyxy):
        feet = foot_points(xyxy)
        col = np.clip((feet[:, 0] * columns / frame_hw[1]).astype(np.int64), 0, columns - 1)
        row = np.clip((feet[:, 1] * rows / frame_hw[0]).astype(np.int64), 0, rows - 1)
        grid += np.bincount(row * columns + col, minlength=rows * columns)
    return grid.reshape(shape)


def density_on_grid(density: DensityMap, shape: tuple[int, int]) -> Grid:
    """People per cell: the density map's cells over the frame, area-resampled to `shape`
    with their sum kept (the letterbox's border left out)."""
    inside = density.frame_mask()
    rows, columns = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if not rows.size or not columns.size:
        return np.zeros(shape, np.float64)
    crop = np.clip(density.cells[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1], 0, None)
    crop = np.ascontiguousarray(crop, np.float32)
    grid = cv2.resize(crop, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    grid = grid.astype(np.float64)
    made, total = float(grid.sum()), float(crop.sum(dtype=np.float64))
    # Area resampling keeps the mean; scaling by the sums keeps the people exactly (upscaling
    # falls back to bilinear, which does not).
    return grid * (total / made) if made > 0 else grid


@dataclass(frozen=True, slots=True)
class Heat:
    """One camera's map now: person-seconds per cell, as of the frame time `at`."""

    grid: Grid
    at: float
    frame_hw: tuple[int, int]
    half_life_s: float


class HeatGrid:
    """One camera's decaying grid. `add` runs on the camera's thread; `heat` may be read from
    any thread (the whole state is one reference, swapped per frame)."""

    def __init__(self, half_life_s: float, max_step_s: float, cells: int) -> None:
        self.half_life_s = half_life_s
        self.max_step_s = max_step_s
        self.cells = cells
        self.heat: Heat | None = None

    def shape_for(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        return grid_shape(frame_hw[1], frame_hw[0], self.cells)

    def add(self, at: float, people: Grid, frame_hw: tuple[int, int]) -> Heat:
        """Decay to `at`, then add `people` (per cell) for the time this frame stands for.

        A frame earlier than the last (a file starting over) decays nothing and adds nothing,
        and the clock goes on from it; a new grid shape (another aspect ratio) starts a new map."""
        old = self.heat
        if old is None or old.grid.shape != people.shape:
            heat = Heat(np.zeros(people.shape, np.float64), at, frame_hw, self.half_life_s)
        else:
            gap = max(0.0, at - old.at)
            step = min(gap, self.max_step_s)
            grid = old.grid * 0.5 ** (gap / self.half_life_s) + people * step
            heat = Heat(grid, at, frame_hw, self.half_life_s)
        self.heat = heat
        return heat


class Heatmaps:
    """A Sink keeping a HeatGrid per camera from each FrameResult; `get(camera)` for the
    renderers (outputs/heatmap.py) and the web page. With the cameras' scenes, density in
    their ignore regions is left out, as counting leaves it out (boxes there are gone
    already)."""

    def __init__(self, config: HeatmapConfig,
                 scenes: Mapping[str, CameraScene] | None = None) -> None:
        self.config = config
        self.scenes = scenes or {}
        self._grids: dict[str, HeatGrid] = {}
        self._ignored: dict[tuple[str, tuple[int, int]], npt.NDArray[np.bool_] | None] = {}

    def _ignored_cells(self, camera: str, frame_hw: tuple[int, int],
                       shape: tuple[int, int]) -> npt.NDArray[np.bool_] | None:
        """Cells whose centre lies in an ignore region of the camera (None: none do)."""
        key = (camera, frame_hw)
        if key not in self._ignored:
            scene = self.scenes.get(camera)
            ignore = None if scene is None else scene.at(frame_hw[1], frame_hw[0]).ignore
            mask = None
            if ignore is not None:
                ys = (np.arange(shape[0]) + 0.5) * frame_hw[0] / shape[0]
                xs = (np.arange(shape[1]) + 0.5) * frame_hw[1] / shape[1]
                mask = shapely.contains_xy(ignore, *np.meshgrid(xs, ys))
            self._ignored[key] = mask if mask is not None and mask.any() else None
        return self._ignored[key]

    def write(self, result: FrameResult) -> None:
        grid = self._grids.get(result.camera)
        if grid is None:
            grid = self._grids[result.camera] = HeatGrid(
                self.config.half_life_s, self.config.max_step_s, self.config.cells)
        if result.image is not None:
            frame_hw: tuple[int, int] = (int(result.image.shape[0]), int(result.image.shape[1]))
        elif result.density is not None:
            frame_hw = result.density.letterbox.frame_hw
        elif grid.heat is not None:
            frame_hw = grid.heat.frame_hw
        else:
            return  # no frame size known yet
        shape = grid.shape_for(frame_hw)
        if result.method == "density" and result.density is not None:
            people = density_on_grid(result.density, shape)
            ignored = self._ignored_cells(result.camera, frame_hw, shape)
            if ignored is not None:
                people[ignored] = 0.0
        else:
            people = boxes_on_grid(result.detections.xyxy, frame_hw, shape)
        grid.add(result.timestamp, people, frame_hw)

    def get(self, camera: str) -> Heat | None:
        grid = self._grids.get(camera)
        return None if grid is None else grid.heat

    def close(self) -> None:
        pass
