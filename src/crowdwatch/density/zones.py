"""Zone counts from a density map: the map integrated over each zone's polygon.

Per frame size (one letterbox), each zone gets a weight per cell: the share of the cell's
sample points (cell centres mapped back to frame pixels through the letterbox) that lie in
the zone and in no ignore region, found with shapely.contains_xy once. A frame's zone counts
are then one matrix product, (zones, cells) @ cells.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely

from crowdwatch.density.counter import Cells, DensityMap, cell_centres
from crowdwatch.detect.yolo import Letterbox


def zone_weights(letterbox: Letterbox, grid_hw: tuple[int, int],
                 zones: Sequence[shapely.Geometry], ignore: Sequence[shapely.Geometry] = (),
                 samples: int = 2) -> npt.NDArray[np.float32]:
    """(zones, h, w): each cell's share inside each zone, outside the ignore regions and the
    frame (samples x samples points per cell decide the share)."""
    xs, ys = cell_centres(letterbox, grid_hw, samples)
    grid_x, grid_y = np.meshgrid(xs, ys)
    frame_h, frame_w = letterbox.frame_hw
    counted = (grid_x >= 0) & (grid_x < frame_w) & (grid_y >= 0) & (grid_y < frame_h)
    for region in ignore:
        counted &= ~shapely.contains_xy(region, grid_x, grid_y)
    h, w = grid_hw
    weights = np.empty((len(zones), h, w), np.float32)
    for index, zone in enumerate(zones):
        inside = shapely.contains_xy(zone, grid_x, grid_y) & counted
        # Mean over each cell's samples x samples block of points.
        weights[index] = inside.reshape(h, samples, w, samples).mean(axis=(1, 3))
    return weights


class ZoneIntegrator:
    """Zone counts from density maps, the weights computed once per letterbox."""

    def __init__(self, zones: Sequence[shapely.Geometry],
                 ignore: Sequence[shapely.Geometry] = (), samples: int = 2) -> None:
        self.zones = list(zones)
        self.ignore = list(ignore)
        self.samples = samples
        self._weights: dict[tuple[Letterbox, tuple[int, int]], npt.NDArray[np.float32]] = {}

    def weights(self, letterbox: Letterbox, grid_hw: tuple[int, int]) -> npt.NDArray[np.float32]:
        key = (letterbox, grid_hw)
        if key not in self._weights:
            self._weights[key] = zone_weights(letterbox, grid_hw, self.zones, self.ignore,
                                              self.samples)
        return self._weights[key]

    def counts(self, density: DensityMap) -> npt.NDArray[np.float64]:
        """People per zone, in zone order."""
        cells: Cells = density.cells
        weights = self.weights(density.letterbox, (cells.shape[0], cells.shape[1]))
        return weights.reshape(len(self.zones), -1).astype(np.float64) @ cells.ravel()
