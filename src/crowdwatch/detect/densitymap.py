"""A frame's density map as a detector backend serving density gives it (people per cell of
the model input, stride DENSITY_STRIDE), with the letterbox that maps cells to frame pixels.

The density model itself lives in crowdwatch.density; this value type sits in detect/ so the
openvino backend can hand it on without importing the density package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from crowdwatch.detect.yolo import Letterbox

Cells = npt.NDArray[np.float32]
# The density map's cell size in model-input pixels (the neck's P3 stride).
DENSITY_STRIDE = 8


@dataclass(frozen=True, slots=True)
class DensityMap:
    """People per cell of the model input (stride DENSITY_STRIDE) and the frame's letterbox.

    crowd: the same pass's map from the crowd head, where the density model has one (a head
    trained on very dense crowds, counted from on frames the dense rule picks:
    crowdwatch.density.tiles); None otherwise. crowd_source: computes that map when asked
    instead (the openvino backend runs the crowd head only for the frames that read it).
    """

    cells: Cells
    letterbox: Letterbox
    crowd: Cells | None = None
    crowd_source: Callable[[], Cells] | None = field(default=None, compare=False, repr=False)

    def crowd_map(self) -> DensityMap | None:
        """The crowd head's map of this pass as a map of its own (None without one); from
        crowd_source, it runs the crowd head at each call."""
        if self.crowd is not None:
            return DensityMap(self.crowd, self.letterbox)
        if self.crowd_source is not None:
            return DensityMap(self.crowd_source(), self.letterbox)
        return None

    def without_crowd(self) -> DensityMap:
        """The map alone, as it is counted and handed on to the outputs: a frame keeps the
        crowd head's inputs (crowd_source, ~1 MB) only until the dense rule has looked."""
        if self.crowd is None and self.crowd_source is None:
            return self
        return DensityMap(self.cells, self.letterbox)

    def cell_centres(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Frame-pixel x of each column and y of each row of cell centres."""
        return cell_centres(self.letterbox, self.cells.shape, 1)

    def frame_mask(self) -> npt.NDArray[np.bool_]:
        """Cells whose centre lies in the frame (not in the letterbox's grey border)."""
        xs, ys = self.cell_centres()
        h, w = self.letterbox.frame_hw
        return ((ys >= 0) & (ys < h))[:, None] & ((xs >= 0) & (xs < w))[None, :]

    def total(self) -> float:
        """People in the whole frame."""
        return float(self.cells[self.frame_mask()].sum())


def cell_centres(letterbox: Letterbox, grid_hw: tuple[int, ...], samples: int
                 ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Frame-pixel x of each sub-column and y of each sub-row: samples x samples points per
    cell, evenly inside it (samples=1: the cell centre), through the letterbox back to the
    frame."""
    (new_w, new_h), (pad_x, pad_y) = letterbox.resized_wh, letterbox.pad_xy
    frame_h, frame_w = letterbox.frame_hw
    offsets = (np.arange(samples) + 0.5) / samples
    columns = (np.arange(grid_hw[1])[:, None] + offsets[None, :]).ravel() * DENSITY_STRIDE
    rows = (np.arange(grid_hw[0])[:, None] + offsets[None, :]).ravel() * DENSITY_STRIDE
    return (columns - pad_x) * frame_w / new_w, (rows - pad_y) * frame_h / new_h
