"""Very dense views counted on tiles: the density map of overlapping zoomed tiles, stitched.

At the detector's 640-pixel input a dense crowd's heads are 2-3 pixels wide, below what the
stride-8 neck resolves (ShanghaiTech A: docs/ACCURACY.md). When the whole-frame map shows
such a crowd (DenseTiles.triggered), the frame counts from the crowd head's map (where the
density model has one), and its dense cells (DenseTiles.dense_cells) are counted again on
tiles: the frame's tiles go through the same detector + head, each zoomed to the model
input, and their maps are stitched into the whole frame's grid:

- each tile keeps only its **core**, the part of the frame nearer its own centre than any
  neighbour's (the overlaps split at their middles), so every frame pixel is counted by one
  tile exactly once, and the seams carry no double count;
- a tile cell's people go to the whole-frame cell that holds the tile cell's centre, so the
  stitched map keeps the whole frame's letterbox and grid (zones, ignore regions, GAME and
  heatmaps use it unchanged) and its sum is exactly the sum of the tiles' cores.

The cost rises only on frames that trigger: a sparse or ordinary crowd keeps its one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crowdwatch.config import CountingConfig
from crowdwatch.detect.base import Pending
from crowdwatch.detect.densitymap import DENSITY_STRIDE, DensityMap
from crowdwatch.detect.tiling import tile_grid
from crowdwatch.types import Image

Tiles = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class DenseTiles:
    """When and how a frame's density is counted again on tiles.

    triggered: the whole-frame map's densest window of window x window cells holds at least
    peak_people per cell on average (heads then lie under about 8 / sqrt(peak_people) input
    pixels apart) and the whole frame at least min_people. zoom: tiles of long side / zoom
    frame pixels (each fills the model input, so people look zoom times larger), overlapping
    by at least overlap of their side.
    """

    peak_people: float = 0.5
    min_people: float = 100.0
    window: int = 4
    zoom: float = 2.0
    overlap: float = 0.2

    def __post_init__(self) -> None:
        if self.peak_people < 0 or self.min_people < 0:
            raise ValueError("peak_people and min_people must be at least 0")
        if self.window < 1:
            raise ValueError("window must be at least 1 cell")
        if not 1.0 <= self.zoom <= 8.0:
            raise ValueError("zoom must lie in [1, 8]")
        if not 0.0 <= self.overlap <= 0.5:
            raise ValueError("overlap must lie in [0, 0.5]")

    def peak(self, density: DensityMap) -> float:
        """People per cell in the densest window x window block of cells."""
        cells = np.where(density.frame_mask(), density.cells, 0.0).astype(np.float64)
        k = min(self.window, *cells.shape)
        return float(window_sums(cells, k).max()) / (k * k)

    def triggered(self, density: DensityMap) -> bool:
        """Whether the whole-frame map shows a crowd too dense for one pass."""
        return (density.total() >= self.min_people
                and self.peak(density) >= self.peak_people)

    def dense_cells(self, density: DensityMap) -> npt.NDArray[np.bool_]:
        """Frame cells at the centre of a window x window block holding at least peak_people
        per cell on average (the trigger's measure, cell by cell; a block cut by the frame's
        edge averages over its cells in the frame): where one pass cannot resolve the heads."""
        inside = density.frame_mask()
        k = self.window
        centred = (k // 2, k - 1 - k // 2)
        people = window_sums(np.where(inside, density.cells, 0.0).astype(np.float64), k, centred)
        cells = window_sums(inside.astype(np.float64), k, centred)
        return inside & (people >= self.peak_people * np.maximum(cells, 1.0))

    def tiles(self, width: int, height: int) -> Tiles:
        """The tiles (K, 4) xyxy in frame pixels, row by row; none (0, 4) when one tile would
        be the whole frame."""
        # The box tiler's grid (overlap <= 0.5 keeps the gap under the tile side).
        grid = tile_grid(width, height, int(np.ceil(max(width, height) / self.zoom)),
                         self.overlap)
        return grid if len(grid) > 1 else np.zeros((0, 4), np.int64)


def window_sums(values: npt.NDArray[np.float64], k: int,
                pad: tuple[int, int] = (0, 0)) -> npt.NDArray[np.float64]:
    """The sum of every k x k window of values, zero-padded by pad (before, after) on both
    axes first (no pad: only the windows wholly inside)."""
    padded = values if pad == (0, 0) else np.pad(values, (pad, pad))
    summed = np.pad(padded, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return summed[k:, k:] - summed[:-k, k:] - summed[k:, :-k] + summed[:-k, :-k]


def core_bounds(starts: Sequence[int], ends: Sequence[int], length: int
                ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Each span's core along one axis: from the middle of its overlap with the previous span
    (0 for the first) to the middle of its overlap with the next (length for the last).
    Spans are sorted and cover [0, length); the cores partition it."""
    s = np.asarray(starts, np.float64)
    e = np.asarray(ends, np.float64)
    order = np.argsort(s, kind="stable")
    unique_s, first = np.unique(s[order], return_index=True)
    unique_e = e[order][first]
    cuts = (unique_s[1:] + unique_e[:-1]) / 2
    lo_u = np.concatenate([[0.0], cuts])
    hi_u = np.concatenate([cuts, [float(length)]])
    index = np.searchsorted(unique_s, s)
    return lo_u[index], hi_u[index]


def _axis_share(cells: int, pad: int, resized: int, length: int, offset: int, lo: float,
                hi: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Along one axis of a tile's map: each cell's share inside the tile's core (of its part
    inside the tile's image; 0 for a cell wholly in the letterbox border) and its centre, in
    frame pixels."""
    scale = length / resized
    edges = (np.arange(cells + 1) * DENSITY_STRIDE - pad) * scale
    start = np.clip(edges[:-1], 0, length) + offset
    end = np.clip(edges[1:], 0, length) + offset
    inside = end - start
    core = np.clip(np.minimum(end, hi) - np.maximum(start, lo), 0, None)
    share = np.divide(core, inside, out=np.zeros_like(core), where=inside > 0)
    return share, (start + end) / 2


def stitch(whole: DensityMap, tiles: Tiles, maps: Sequence[DensityMap]) -> DensityMap:
    """The whole frame's map rebuilt from each tile's map (tile-pixel letterboxes), each tile
    counting its core only, on the whole frame's grid and letterbox.

    A tile cell astride its core's edge counts the share of it (of its part in the image)
    that lies inside, so a density spread evenly over the frame is counted exactly once.
    """
    frame_h, frame_w = whole.letterbox.frame_hw
    x_lo, x_hi = core_bounds(tiles[:, 0], tiles[:, 2], frame_w)
    y_lo, y_hi = core_bounds(tiles[:, 1], tiles[:, 3], frame_h)
    (new_w, new_h), (pad_x, pad_y) = whole.letterbox.resized_wh, whole.letterbox.pad_xy
    grid_h, grid_w = whole.cells.shape
    # Only into cells the whole map counts as the frame's (centre inside it), so the total
    # (DensityMap.total) keeps every person a cell half in the letterbox border would drop.
    inside = whole.frame_mask()
    in_rows, in_cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    flat = np.zeros(grid_h * grid_w, np.float64)
    for i, part in enumerate(maps):
        (tile_w, tile_h), (tile_px, tile_py) = part.letterbox.resized_wh, part.letterbox.pad_xy
        tile_hh, tile_ww = part.letterbox.frame_hw
        rows_n, cols_n = part.cells.shape
        share_x, xs = _axis_share(cols_n, tile_px, tile_w, tile_ww, int(tiles[i, 0]),
                                  x_lo[i], x_hi[i])
        share_y, ys = _axis_share(rows_n, tile_py, tile_h, tile_hh, int(tiles[i, 1]),
                                  y_lo[i], y_hi[i])
        keep_x, keep_y = share_x > 0, share_y > 0
        cells = (part.cells[np.ix_(keep_y, keep_x)].astype(np.float64)
                 * share_y[keep_y, None] * share_x[None, keep_x])
        # Frame pixels -> the whole frame's input pixels -> its cells.
        cols = np.floor((xs[keep_x] * new_w / frame_w + pad_x) / DENSITY_STRIDE).astype(np.int64)
        rows = np.floor((ys[keep_y] * new_h / frame_h + pad_y) / DENSITY_STRIDE).astype(np.int64)
        cols = np.clip(cols, in_cols[0], in_cols[-1])
        rows = np.clip(rows, in_rows[0], in_rows[-1])
        index = (rows[:, None] * grid_w + cols[None, :]).ravel()
        flat += np.bincount(index, cells.ravel(), grid_h * grid_w)
    return DensityMap(flat.reshape(grid_h, grid_w).astype(np.float32), whole.letterbox)


# Tile crops -> their density maps, in order; None when the detector gives no map for them.
MapsOf = Callable[[list[Image]], "list[DensityMap] | None"]


def submitted_maps(submit: Callable[[Image], Pending]) -> MapsOf:
    """Maps of crops submitted all at once (they run in parallel on an async detector)."""
    def maps_of(crops: list[Image]) -> list[DensityMap] | None:
        passes = [submit(crop) for crop in crops]
        maps = []
        for pending in passes:
            pending.result()
            part = getattr(pending, "density", None)
            if part is None:  # a backend that gives no map for tiles
                return None
            maps.append(part)
        return maps
    return maps_of


class TiledDensity:
    """One camera's density on tiles: the whole-frame map as it came, or, on a frame that
    triggers the rule, the map stitched from its tiles run through the same detector (submit:
    the camera's detector below its box tiler, so the tiles are not tiled again)."""

    def __init__(self, submit: Callable[[Image], Pending] | None = None,
                 rule: DenseTiles | None = None, *, maps_of: MapsOf | None = None) -> None:
        # maps_of: a synchronous model's maps, one tile after another (density/counter.py).
        if submit is not None and maps_of is None:
            maps_of = submitted_maps(submit)
        elif (submit is None) == (maps_of is None):
            raise TypeError("TiledDensity needs submit or maps_of, not both")
        assert maps_of is not None
        self._maps_of = maps_of
        self.rule = rule or DenseTiles()
        # Frames counted on tiles so far (for tests and reports).
        self.tiled_frames = 0

    def __call__(self, image: Image, density: DensityMap) -> DensityMap:
        if not self.rule.triggered(density):
            return density
        # A very dense frame counts from the crowd head where the model has one: the main
        # head, trained on streets and a mall, over-counts such crowds (docs/ACCURACY.md).
        base = density.crowd_map() or density
        height, width = int(image.shape[0]), int(image.shape[1])
        tiles = self.rule.tiles(width, height)
        if not len(tiles):
            return base
        maps = self._maps_of([image[y0:y1, x0:x1] for x0, y0, x1, y1 in tiles])
        if maps is None:  # no map for tiles: the whole frame's
            return base
        self.tiled_frames += 1
        stitched = stitch(base, tiles, [part.crowd_map() or part for part in maps])
        # Only the dense cells come from the tiles: a zoomed tile, seeing less around it,
        # finds people in background texture that the whole frame's pass does not.
        return DensityMap(np.where(self.rule.dense_cells(base), stitched.cells, base.cells),
                          base.letterbox)


def dense_tiles_rule(counting: CountingConfig) -> DenseTiles | None:
    """The rule counting.density_tiles configures; None where density is never counted
    (method boxes) or tiles are off."""
    tiles = counting.density_tiles
    if counting.method == "boxes" or tiles.mode == "off":
        return None
    return DenseTiles(peak_people=tiles.peak_people, min_people=tiles.min_people,
                      zoom=tiles.zoom, overlap=tiles.overlap)


def density_tiles(counting: CountingConfig, submit: Callable[[Image], Pending]
                  ) -> TiledDensity | None:
    """A camera's TiledDensity as counting configures it (None: see dense_tiles_rule)."""
    rule = dense_tiles_rule(counting)
    return None if rule is None else TiledDensity(submit, rule)
