"""Tiled detection: see small people by running the detector on overlapping zoomed tiles.

``TiledDetector`` wraps any detector's ``submit(image) -> Pending``. For each frame it submits
the whole frame and every tile of a grid at once (so the backend runs them in parallel, e.g.
on OpenVINO's asynchronous requests), and returns one Pending whose ``result()`` merges them:

1. Tile boxes go back to frame pixels (tile offset added).
2. A tile box touching a tile edge that lies inside the frame (a seam) is dropped: it is a
   cut person (a leg, a head), the known "sliver" failure of SAHI and supervision's
   InferenceSlicer. The neighbouring tile, which overlaps this one, or the whole-frame pass
   (for people taller than the overlap) holds that person whole.
3. Boxes of all passes go through one class-agnostic NMS (IoU ``merge_iou``), so a person seen
   by two overlapping tiles and by the whole frame is counted once.

Tiles all have the same size and cover the frame exactly: no tile sticks out of the frame and
there is no thin last tile (the other known failure); the overlap is spread evenly, so it is
at least the configured overlap. Tiles are taken from the frame at full resolution; the inner
detector scales each to its own input (``detector.imgsz``), which is what zooms in.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from crowdwatch.boxes import box_iou
from crowdwatch.config.detector import TilingConfig
from crowdwatch.detect.base import Detector, Pending, submit_at
from crowdwatch.types import Detections, Image

if TYPE_CHECKING:
    from crowdwatch.detect.densitymap import DensityMap

# A detector's submit (Detector.submit: the image, then an optional input_size keyword).
Submit = Callable[..., Pending]
Boxes = npt.NDArray[np.float32]


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------


def axis_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Start/end of equal tiles covering [0, length) with at least `overlap` shared pixels.

    The fewest tiles of at most `tile` pixels are used, each stretched to the same size so
    the last ends exactly at `length` (no sliver, nothing outside the frame).
    """
    if tile >= length:
        return [(0, length)]
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must lie in [0, tile {tile})")
    count = math.ceil((length - overlap) / (tile - overlap))
    size = min(length, math.ceil((length + (count - 1) * overlap) / count))
    starts = np.round(np.linspace(0, length - size, count)).astype(int)
    return [(int(s), int(s) + size) for s in starts]


def tile_grid(width: int, height: int, tile: int, overlap: float) -> npt.NDArray[np.int64]:
    """Tiles (K, 4) xyxy in frame pixels, row by row; overlap is a share of the tile side."""
    gap = round(tile * overlap)
    xs = axis_spans(width, tile, gap)
    ys = axis_spans(height, tile, gap)
    return np.array([(x0, y0, x1, y1) for y0, y1 in ys for x0, x1 in xs], np.int64)


def choose_tiles(width: int, height: int, config: TilingConfig) -> npt.NDArray[np.int64]:
    """The tiles a frame of this size gets (K, 4); none (0, 4) when it is not tiled.

    on: the grid of tile_size (default long side / zoom). auto: the same grid, unless it needs
    more than max_tiles tiles (a large frame: its people are already large enough in pixels
    and the cost would grow with its area). off: none.
    """
    none = np.zeros((0, 4), np.int64)
    if config.mode == "off":
        return none
    tile = config.tile_size or math.ceil(max(width, height) / config.zoom)
    tiles = tile_grid(width, height, tile, config.overlap)
    if len(tiles) <= 1:
        return none  # one tile is the whole frame
    if config.mode == "auto" and len(tiles) > config.max_tiles:
        return none
    return tiles


# ---------------------------------------------------------------------------------------------
# Merging
# ---------------------------------------------------------------------------------------------


def nms(xyxy: Boxes, scores: npt.NDArray[np.float32], iou: float) -> npt.NDArray[np.int64]:
    """Indices kept by greedy NMS, highest score first (ties keep input order)."""
    order = np.argsort(-scores, kind="stable")
    overlaps = box_iou(xyxy[order], xyxy[order])
    suppressed = np.zeros(len(order), bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(order[i])
        suppressed |= overlaps[i] > iou
    return np.array(keep, np.int64)


def seam_mask(xyxy: Boxes, tile: npt.NDArray[np.int64], width: int, height: int,
              edge_px: float) -> npt.NDArray[np.bool_]:
    """True for boxes (frame pixels) of one tile that do not touch a seam of that tile.

    A seam is a tile edge inside the frame; edges on the frame border are not seams.
    """
    x0, y0, x1, y1 = (float(v) for v in tile)
    cut = np.zeros(len(xyxy), bool)
    if x0 > 0:
        cut |= xyxy[:, 0] <= x0 + edge_px
    if y0 > 0:
        cut |= xyxy[:, 1] <= y0 + edge_px
    if x1 < width:
        cut |= xyxy[:, 2] >= x1 - edge_px
    if y1 < height:
        cut |= xyxy[:, 3] >= y1 - edge_px
    return ~cut


def merge_tiles(whole: Detections, parts: list[Detections], tiles: npt.NDArray[np.int64],
                width: int, height: int, merge_iou: float, edge_px: float) -> Detections:
    """One set of people from the whole-frame pass and each tile's (tile pixels) detections."""
    boxes = [whole.xyxy]
    scores = [whole.confidence]
    for part, tile in zip(parts, tiles, strict=True):
        shifted = part.xyxy + np.array([tile[0], tile[1], tile[0], tile[1]], np.float32)
        keep = seam_mask(shifted, tile, width, height, edge_px)
        boxes.append(shifted[keep])
        scores.append(part.confidence[keep])
    xyxy = np.concatenate(boxes).astype(np.float32, copy=False)
    confidence = np.concatenate(scores).astype(np.float32, copy=False)
    if len(xyxy) == 0:
        return Detections.empty()
    keep = nms(xyxy, confidence, merge_iou)
    return Detections(xyxy[keep], confidence[keep])


# ---------------------------------------------------------------------------------------------
# The wrapper
# ---------------------------------------------------------------------------------------------


@dataclass
class TiledPending:
    """The whole frame and its tiles in flight; result() waits for all and merges them."""

    whole: Pending
    parts: list[Pending]
    tiles: npt.NDArray[np.int64]
    width: int
    height: int
    config: TilingConfig
    on_whole: Callable[[Detections], None] | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    # auto: the frame, kept while its size is still probed, so the probe's choice can be
    # given to it later (TiledDetector.end_probe: a source that ends inside the probe).
    probe_image: Image | None = field(default=None, repr=False)
    _whole: Detections | None = None
    _detections: Detections | None = None

    def done(self) -> bool:
        return self._detections is not None or (
            (self._whole is not None or self.whole.done()) and all(p.done() for p in self.parts))

    @property
    def density(self) -> DensityMap | None:
        """The density map of the whole-frame pass (tiles give none), after result()."""
        return getattr(self.whole, "density", None)

    def add_tiles(self, tiles: npt.NDArray[np.int64], submit: Submit) -> None:
        """Run this probed frame's tiles too (the choice came after it was submitted)."""
        image, self.probe_image = self.probe_image, None
        if image is None or not len(tiles) or self._detections is not None:
            return
        self.tiles = tiles
        self.parts = [submit(image[y0:y1, x0:x1]) for x0, y0, x1, y1 in tiles]

    def whole_result(self) -> Detections:
        """The whole-frame pass alone (waits for it; on_whole sees it once)."""
        if self._whole is None:
            self._whole = self.whole.result()
            if self.on_whole is not None:
                self.on_whole(self._whole)
        return self._whole

    def result(self) -> Detections:
        if self._detections is not None:
            return self._detections
        whole = self.whole_result()
        if not self.parts:  # an untiled frame: the whole-frame boxes exactly as they came
            self.stage_seconds.update(self.whole.stage_seconds)
            self._detections = whole
            return whole
        parts = [p.result() for p in self.parts]
        started = time.perf_counter()
        merged = merge_tiles(whole, parts, self.tiles, self.width, self.height,
                             self.config.merge_iou, self.config.edge_px)
        # Stage times of all passes added up (CPU work); inference ran on parallel requests.
        for pending in (self.whole, *self.parts):
            for stage, seconds in pending.stage_seconds.items():
                self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds
        self.stage_seconds["postprocess"] = (self.stage_seconds.get("postprocess", 0.0)
                                             + time.perf_counter() - started)
        self._detections = merged
        return merged


# auto: a tiled camera goes back to whole frames only below this share of crowd_people: its
# people are small, so tiles still help while some are left; only an emptying scene (night)
# turns them off, and a crowd hovering near the threshold does not switch them every second.
RELEASE_SHARE = 0.5


@dataclass
class _AutoChoice:
    """auto mode, one frame size: people heights of the recent whole-frame passes."""

    heights: deque[npt.NDArray[np.float32]]
    since_choice: int = 0
    tiles: npt.NDArray[np.int64] | None = None  # None until the first choice
    submitted: int = 0
    # Frames of the current block submitted, in order (their whole passes decide next).
    block: list[TiledPending] = field(default_factory=list)


class TiledDetector(Detector):
    """Wraps a detector's submit(image) -> Pending with tiled detection (module docstring).

    input_size is the inner detector's input long side (detector.imgsz): it converts people
    heights to model-input pixels for the auto rule. In auto mode the whole-frame pass, which
    runs on every frame, keeps the choice up to date: the first probe_frames frames of a frame
    size are analysed whole, then every probe_frames frames the last probe_frames whole-frame
    passes decide. A frame size gets tiles when they found at least crowd_people people per
    frame on average and the 10th percentile of their heights is below large_px; a tiled one
    keeps them while the average stays at or above RELEASE_SHARE of crowd_people. So a camera
    that opens on an empty hall is tiled once the crowd arrives, and untiled when it leaves.
    The choice is the detector's, per frame size (in practice, per camera).
    """

    def __init__(self, submit: Submit, config: TilingConfig | None = None,
                 input_size: int = 640, inner: Detector | None = None) -> None:
        self._submit = submit
        self.config = config or TilingConfig()
        self.input_size = input_size
        self._inner = inner
        self.name = f"{inner.name}+tiles" if inner is not None else "tiles"
        self._grids: dict[tuple[int, int], npt.NDArray[np.int64]] = {}
        self._auto: dict[tuple[int, int], _AutoChoice] = {}
        self._lock = threading.Lock()
        # Whether the camera uses boxes' counts now: a camera that counts from its density
        # map and tracks nobody has no use for the tiles' extra boxes (build.build_chain).
        self.tiles_wanted: Callable[[], bool] = lambda: True

    def _crowded(self, heights: list[npt.NDArray[np.float32]], tiled_now: bool) -> bool:
        """Whether whole-frame passes show a crowd of small people (auto rule)."""
        people = np.concatenate(heights)
        least = self.config.crowd_people * (RELEASE_SHARE if tiled_now else 1.0)
        if not len(people) or len(people) / len(heights) < least:
            return False
        return float(np.quantile(people, 0.1)) < self.config.large_px

    def _observe(self, width: int, height: int, whole: Detections) -> None:
        """auto: note the people of a whole-frame pass; choose every probe_frames frames."""
        with self._lock:
            state = self._auto.get((width, height))
            if state is None:
                return
            scale = self.input_size / max(width, height)
            state.heights.append((whole.xyxy[:, 3] - whole.xyxy[:, 1]) * scale)
            state.since_choice += 1
            if state.since_choice < self.config.probe_frames:
                return
            state.since_choice = 0
            tiled_now = state.tiles is not None and len(state.tiles) > 0
            crowded = self._crowded(list(state.heights), tiled_now)
            state.tiles = (choose_tiles(width, height, self.config) if crowded
                           else np.zeros((0, 4), np.int64))

    def auto_decided(self, width: int, height: int) -> bool:
        """Whether the tiles of this frame size have been chosen (always, outside auto mode)."""
        if self.config.mode != "auto":
            return True
        state = self._auto.get((width, height))
        return state is not None and state.tiles is not None

    def tiles_in_use(self, width: int, height: int) -> int:
        """How many tiles frames of this size get now, besides the whole frame (0: none)."""
        if not self.tiles_wanted():
            return 0
        if self.config.mode == "auto":
            state = self._auto.get((width, height))
            return 0 if state is None or state.tiles is None else len(state.tiles)
        grid = self._grids.get((width, height))
        return 0 if grid is None else len(grid)

    def tiles_for(self, width: int, height: int) -> npt.NDArray[np.int64]:
        """The tiles of a frame size now (empty while auto probes, or when not tiled)."""
        key = (width, height)
        if self.config.mode == "auto":
            with self._lock:
                state = self._auto.setdefault(
                    key, _AutoChoice(deque(maxlen=self.config.probe_frames)))
                return state.tiles if state.tiles is not None else np.zeros((0, 4), np.int64)
        grid = self._grids.get(key)
        if grid is not None:
            return grid
        with self._lock:
            return self._grids.setdefault(key, choose_tiles(width, height, self.config))

    def _close_block(self, width: int, height: int) -> None:
        """auto: at a block's end, wait for its whole-frame passes so the choice is made now.

        The choice then applies from the next frame on, whatever the caller had in flight: the
        same frames get the same tiles on every run. Mostly the passes are done already; at
        worst the last frame's whole-frame pass is waited for once per probe_frames frames.
        """
        state = self._auto.get((width, height))
        if state is None or not state.submitted or state.submitted % self.config.probe_frames:
            return
        block, state.block = state.block, []
        for pending in block:
            pending.whole_result()

    def probing(self, pending: Pending | None) -> bool:
        """auto: whether this frame was submitted while its size's first probe block was still
        open (no choice yet), so a caller may hold it until the probe ends (end_probe)."""
        return (isinstance(pending, TiledPending) and pending.probe_image is not None
                and not self.auto_decided(pending.width, pending.height))

    @staticmethod
    def tiles_of(pending: Pending | None) -> int:
        """The tiles a frame submitted here ran on (0 for a frame not tiled)."""
        return len(pending.tiles) if isinstance(pending, TiledPending) else 0

    def end_probe(self, width: int, height: int) -> None:
        """auto: the source ended inside the first probe block of this frame size. Choose now
        from the whole-frame passes of its frames, by the rule a full block would have used,
        and give those frames (still held) the tiles chosen: a short source gets the choice a
        longer one would have got."""
        with self._lock:
            state = self._auto.get((width, height))
            if state is None or state.tiles is not None:
                return
            block, state.block = state.block, []
        for pending in block:
            pending.whole_result()  # observed: its people join state.heights
        with self._lock:
            crowded = bool(state.heights) and self._crowded(list(state.heights), False)
            state.tiles = (choose_tiles(width, height, self.config) if crowded
                           else np.zeros((0, 4), np.int64))
            state.since_choice = 0
            tiles = state.tiles
        if not self.tiles_wanted():
            return
        for pending in block:
            pending.add_tiles(tiles, self._submit)

    def submit(self, image: Image, input_size: int | None = None) -> Pending:
        """Start the whole frame and every tile; the Pending's result() merges them.

        input_size: the whole frame's input long side (Detector.submit); tiles keep the
        inner detector's own, which is what zooms them in.
        """
        height, width = int(image.shape[0]), int(image.shape[1])
        if self.config.mode == "auto":
            self._close_block(width, height)
        tiles = self.tiles_for(width, height)
        if not self.tiles_wanted():
            tiles = tiles[:0]
        whole = submit_at(self._submit, image, input_size)
        auto = self.config.mode == "auto"
        if not auto and not len(tiles):
            return whole
        parts = [self._submit(image[y0:y1, x0:x1]) for x0, y0, x1, y1 in tiles]
        pending = TiledPending(whole, parts, tiles, width, height, self.config,
                               partial(self._observe, width, height) if auto else None)
        if auto:
            state = self._auto[(width, height)]
            state.block.append(pending)
            state.submitted += 1
            if state.tiles is None:  # the first probe: the frame may get its choice later
                pending.probe_image = image
        return pending

    def prepare(self, width: int, height: int) -> None:
        """Prepare the inner detector for whole frames and for every tile size they may get."""
        if self._inner is None:
            return
        self._inner.prepare(width, height)
        for x0, y0, x1, y1 in choose_tiles(width, height, self.config):
            self._inner.prepare(int(x1 - x0), int(y1 - y0))
            break  # all tiles of a grid have one size


def tiled(detector: Detector, config: TilingConfig, input_size: int) -> TiledDetector:
    """A TiledDetector over a detector (one per camera: the auto choice is the camera's)."""
    return TiledDetector(detector.submit, config, input_size, inner=detector)
