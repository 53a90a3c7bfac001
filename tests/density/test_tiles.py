"""Very dense views on tiles: cores partition the frame, stitched sums are exact, the trigger."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pytest
from pydantic import ValidationError

from crowdwatch.app import CallbackSink
from crowdwatch.build import build_pipeline
from crowdwatch.config import CountingConfig, parse_config
from crowdwatch.config.app import DensityTilesConfig
from crowdwatch.density.tiles import (
    DenseTiles,
    TiledDensity,
    core_bounds,
    dense_tiles_rule,
    density_tiles,
    stitch,
)
from crowdwatch.detect.base import Detector, Done
from crowdwatch.detect.densitymap import DENSITY_STRIDE, DensityMap
from crowdwatch.detect.yolo import Letterbox, input_shape_for
from crowdwatch.sources import FrameSource
from crowdwatch.types import Detections, Frame, FrameResult, Image


def test_cores_split_each_overlap_at_its_middle() -> None:
    # Three spans of 400 over 1000 pixels: 0-400, 300-700, 600-1000; overlaps 300-400 and
    # 600-700, their middles 350 and 650.
    lo, hi = core_bounds([0, 300, 600], [400, 700, 1000], 1000)
    assert lo.tolist() == [0, 350, 650]
    assert hi.tolist() == [350, 650, 1000]


def test_cores_of_a_grid_take_each_column_once() -> None:
    # A 2x2 grid row by row: the x starts repeat per row, the cores follow the column.
    lo, hi = core_bounds([0, 500, 0, 500], [600, 1100, 600, 1100], 1100)
    assert lo.tolist() == [0, 550, 0, 550]
    assert hi.tolist() == [550, 1100, 550, 1100]


def tile_map(frame_hw: tuple[int, int], tile: np.ndarray, people_at: np.ndarray,
             imgsz: int = 640) -> DensityMap:
    """A tile's map as the detector would give it: one person per point (frame pixels) in the
    cell of the tile's input that holds it, the tile letterboxed into its input."""
    x0, y0, x1, y1 = (int(v) for v in tile)
    tile_hw = (y1 - y0, x1 - x0)
    box = Letterbox.fit(tile_hw, input_shape_for(tile_hw, imgsz, "stream"))
    cells = np.zeros((box.input_hw[0] // DENSITY_STRIDE, box.input_hw[1] // DENSITY_STRIDE),
                     np.float32)
    (new_w, new_h), (pad_x, pad_y) = box.resized_wh, box.pad_xy
    inside = ((people_at[:, 0] >= x0) & (people_at[:, 0] < x1) & (people_at[:, 1] >= y0)
              & (people_at[:, 1] < y1))
    for x, y in people_at[inside]:
        col = int(((x - x0) * new_w / tile_hw[1] + pad_x) // DENSITY_STRIDE)
        row = int(((y - y0) * new_h / tile_hw[0] + pad_y) // DENSITY_STRIDE)
        cells[row, col] += 1.0
    return DensityMap(cells, box)


def even_tile_map(tile: np.ndarray, per_pixel: float, imgsz: int = 640) -> DensityMap:
    """A tile's map of a density spread evenly over the frame: each cell holds per_pixel x
    the frame pixels of its footprint inside the image (cells in the border hold none)."""
    x0, y0, x1, y1 = (int(v) for v in tile)
    tile_hw = (y1 - y0, x1 - x0)
    box = Letterbox.fit(tile_hw, input_shape_for(tile_hw, imgsz, "stream"))
    (new_w, new_h), (pad_x, pad_y) = box.resized_wh, box.pad_xy

    def extent(cells: int, pad: int, resized: int, length: int) -> np.ndarray:
        edges = np.clip((np.arange(cells + 1) * DENSITY_STRIDE - pad) * length / resized,
                        0, length)
        return np.diff(edges)

    h = extent(box.input_hw[0] // DENSITY_STRIDE, pad_y, new_h, tile_hw[0])
    w = extent(box.input_hw[1] // DENSITY_STRIDE, pad_x, new_w, tile_hw[1])
    return DensityMap((per_pixel * h[:, None] * w[None, :]).astype(np.float32), box)


def empty_whole(frame_hw: tuple[int, int]) -> DensityMap:
    box = Letterbox.fit(frame_hw, input_shape_for(frame_hw, 640, "stream"))
    return DensityMap(np.zeros((box.input_hw[0] // 8, box.input_hw[1] // 8), np.float32), box)


@pytest.mark.parametrize("frame_hw", [(768, 1024), (480, 640), (1080, 1920), (300, 400),
                                      (1365, 1024)])
@pytest.mark.parametrize("zoom", [2.0, 3.0])
def test_stitched_sums_are_exact(frame_hw: tuple[int, int], zoom: float) -> None:
    h, w = frame_hw
    tiles = DenseTiles(zoom=zoom).tiles(w, h)
    assert len(tiles) > 1
    per_pixel = 0.001
    maps = [even_tile_map(t, per_pixel) for t in tiles]
    # The tiles overlap: together they hold more than the frame.
    assert sum(float(m.cells.sum()) for m in maps) > per_pixel * w * h * 1.1
    whole = empty_whole(frame_hw)
    stitched = stitch(whole, tiles, maps)
    # Every frame pixel once, seams and frame borders included.
    assert float(stitched.cells.sum()) == pytest.approx(per_pixel * w * h, rel=1e-5)
    assert stitched.total() == pytest.approx(per_pixel * w * h, rel=1e-5)
    assert stitched.letterbox == whole.letterbox and stitched.cells.shape == whole.cells.shape


def test_people_astride_seams_are_counted_about_once() -> None:
    rng = np.random.default_rng(1)
    frame_hw = (768, 1024)
    people = np.column_stack([rng.uniform(0, 1024, 3000), rng.uniform(0, 768, 3000)])
    tiles = DenseTiles(zoom=3.0).tiles(1024, 768)
    maps = [tile_map(frame_hw, t, people) for t in tiles]
    stitched = stitch(empty_whole(frame_hw), tiles, maps)
    # Up to four tiles see a person; a person in a cell astride a core's edge is shared
    # between the tiles by the cell's share, so only those few may be off by a fraction.
    assert sum(m.total() for m in maps) > 3300
    assert stitched.total() == pytest.approx(3000, abs=15)


def test_stitched_people_stay_where_they_are() -> None:
    # One person per quadrant of a 1024x768 frame: each lands in its own whole-frame cell.
    frame_hw = (768, 1024)
    people = np.array([[100.0, 100.0], [900.0, 120.0], [130.0, 700.0], [1000.0, 760.0]])
    tiles = DenseTiles(zoom=2.0).tiles(1024, 768)
    stitched = stitch(empty_whole(frame_hw), tiles, [tile_map(frame_hw, t, people) for t in tiles])
    # 1024 -> 640: 12.8 frame pixels a cell.
    expected = np.zeros((60, 80), np.float32)
    for x, y in people:
        expected[int(y // 12.8), int(x // 12.8)] += 1
    np.testing.assert_allclose(stitched.cells, expected, atol=1e-6)


@pytest.mark.parametrize("frame_hw", [(768, 1024), (1080, 1920), (1920, 1080)])
def test_stitched_people_land_in_the_whole_frames_cells(frame_hw: tuple[int, int]) -> None:
    # One person at the centre of each corner cell of the frame (letterbox borders included:
    # 1920x1080 has 12 grey input rows above and below, 1080x1920 12 columns each side) and
    # one inside: each must land in the cell the whole frame's own pass would put it in.
    h, w = frame_hw
    whole = empty_whole(frame_hw)
    (new_w, new_h), (pad_x, pad_y) = whole.letterbox.resized_wh, whole.letterbox.pad_xy
    inside = whole.frame_mask()
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    picks = [(rows[0], cols[0]), (rows[0], cols[-1]), (rows[-1], cols[0]),
             (rows[-1], cols[-1]), (rows[len(rows) // 2], cols[len(cols) // 3])]
    people = np.array([(((c + 0.5) * DENSITY_STRIDE - pad_x) * w / new_w,
                        ((r + 0.5) * DENSITY_STRIDE - pad_y) * h / new_h) for r, c in picks])
    expected = np.zeros_like(whole.cells)
    for r, c in picks:
        expected[r, c] += 1
    tiles = DenseTiles(zoom=2.0).tiles(w, h)
    stitched = stitch(whole, tiles, [tile_map(frame_hw, t, people) for t in tiles])
    np.testing.assert_allclose(stitched.cells, expected, atol=1e-6)


def uniform_map(people_per_cell: float, hw: tuple[int, int] = (60, 80)) -> DensityMap:
    box = Letterbox.fit((768, 1024), (hw[0] * 8, hw[1] * 8))
    return DensityMap(np.full(hw, people_per_cell, np.float32), box)


def test_the_trigger_needs_a_dense_peak_and_enough_people() -> None:
    rule = DenseTiles(peak_people=0.5, min_people=100, window=4)
    # 4,800 cells at 0.6 people: dense everywhere.
    assert rule.triggered(uniform_map(0.6))
    # 0.4 people a cell: 1,920 people, but no block reaches 0.5 a cell.
    assert not rule.triggered(uniform_map(0.4))
    # One dense 4x4 block (0.8 a cell, 12.8 people) in an empty frame: too few people.
    cells = np.zeros((60, 80), np.float32)
    cells[10:14, 20:24] = 0.8
    sparse = DensityMap(cells, uniform_map(0).letterbox)
    assert rule.peak(sparse) == pytest.approx(0.8)
    assert not rule.triggered(sparse)
    # The same block beside 100 people spread thin: dense somewhere, and a crowd.
    cells += 100 / cells.size
    assert rule.triggered(DensityMap(cells, sparse.letterbox))


def test_the_trigger_is_reached_at_its_thresholds() -> None:
    # 0.5 people in every one of 4,800 cells: 2,400 people, a peak of exactly 0.5.
    assert DenseTiles(peak_people=0.5, min_people=2400).triggered(uniform_map(0.5))
    assert not DenseTiles(peak_people=0.5, min_people=2401).triggered(uniform_map(0.5))
    assert not DenseTiles(peak_people=0.51, min_people=0).triggered(uniform_map(0.5))


def test_the_border_adds_no_people_to_dense_cells() -> None:
    # 3/8 people a cell (exact in binary) over a 4:3 frame in a square input: no window
    # reaches 0.5, not even those cut by the grey bands (they average over their frame cells
    # only); at a threshold of 3/8 every frame cell is dense, and no border cell.
    box = Letterbox.fit((480, 640), (640, 640))
    cells = np.where(DensityMap(np.zeros((80, 80), np.float32), box).frame_mask(), 0.375, 0.0)
    density = DensityMap(cells.astype(np.float32), box)
    assert not DenseTiles().dense_cells(density).any()
    assert DenseTiles(peak_people=0.375).dense_cells(density).sum() == 60 * 80


def test_the_letterbox_border_never_triggers() -> None:
    # A 4:3 frame in a square input: the grey bands above and below hold no people.
    box = Letterbox.fit((480, 640), (640, 640))
    cells = np.zeros((80, 80), np.float32)
    cells[:8] = 5.0  # the top band (pad 80 px = 10 cells)
    assert DenseTiles(min_people=0).peak(DensityMap(cells, box)) == 0.0


def test_a_small_frame_gets_no_single_tile() -> None:
    assert DenseTiles(zoom=1.0).tiles(640, 480).shape == (0, 4)


@pytest.mark.parametrize(("frame_wh", "zoom", "overlap", "columns", "rows"), [
    # 1024x768 at zoom 2: tiles of 512, overlapping by at least 102 (0.2 x 512): 3 x 2.
    ((1024, 768), 2.0, 0.2, 3, 2),
    # At zoom 3: tiles of 342, at least 68 shared: 4 x 3 (the docs' 12 tiles).
    ((1024, 768), 3.0, 0.2, 4, 3),
    # A wide, low frame: tiles of 667 over 1000 x 400: two side by side, one row.
    ((1000, 400), 1.5, 0.2, 2, 1),
])
def test_tiles_cover_the_frame_with_their_overlap(frame_wh: tuple[int, int], zoom: float,
                                                  overlap: float, columns: int,
                                                  rows: int) -> None:
    width, height = frame_wh
    tiles = DenseTiles(zoom=zoom, overlap=overlap).tiles(width, height)
    assert len(tiles) == columns * rows
    side = int(np.ceil(max(width, height) / zoom))
    xs = sorted({(int(x0), int(x1)) for x0, _, x1, _ in tiles})
    ys = sorted({(int(y0), int(y1)) for _, y0, _, y1 in tiles})
    assert (len(xs), len(ys)) == (columns, rows)
    for spans, length in ((xs, width), (ys, height)):
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(end - start <= side for start, end in spans)
        shared = [left[1] - right[0] for left, right in itertools.pairwise(spans)]
        assert all(gap >= round(overlap * side) for gap in shared)


@pytest.mark.parametrize(("field", "message"), [
    ({"zoom": 0.5}, r"^zoom must lie in \[1, 8\]$"),
    ({"zoom": 8.5}, r"^zoom must lie in \[1, 8\]$"),
    ({"overlap": 0.6}, r"^overlap must lie in \[0, 0.5\]$"),
    ({"overlap": -0.1}, r"^overlap must lie in \[0, 0.5\]$"),
    ({"window": 0}, r"^window must be at least 1 cell$"),
    ({"peak_people": -1}, r"^peak_people and min_people must be at least 0$"),
    ({"min_people": -1}, r"^peak_people and min_people must be at least 0$"),
])
def test_bad_rules_are_refused(field: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DenseTiles(**field)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", [{"zoom": 1.0}, {"zoom": 8.0}, {"overlap": 0.0},
                                   {"overlap": 0.5}, {"window": 1},
                                   {"peak_people": 0.0, "min_people": 0.0}])
def test_rules_at_their_bounds_are_accepted(field: dict[str, float]) -> None:
    rule = DenseTiles(**field)  # type: ignore[arg-type]
    assert all(getattr(rule, name) == value for name, value in field.items())


def test_the_config_sets_the_rule() -> None:
    tiles = DensityTilesConfig(peak_people=0.8, min_people=50, zoom=3.0, overlap=0.3)
    counting = CountingConfig(density_tiles=tiles)
    expected = DenseTiles(peak_people=0.8, min_people=50, zoom=3.0, overlap=0.3)
    assert dense_tiles_rule(counting) == expected
    refine = density_tiles(counting, lambda _tile: MapPending(None))
    assert refine is not None and refine.rule == expected


def test_tiled_density_takes_one_way_to_run_tiles() -> None:
    def submit(_tile: np.ndarray) -> MapPending:
        return MapPending(None)

    with pytest.raises(TypeError, match=r"^TiledDensity needs submit or maps_of, not both$"):
        TiledDensity(submit, maps_of=lambda crops: None)
    with pytest.raises(TypeError, match=r"^TiledDensity needs submit or maps_of, not both$"):
        TiledDensity()


def test_the_config_defaults_are_the_rules() -> None:
    config = CountingConfig()
    rule = dense_tiles_rule(config)
    assert rule == DenseTiles()
    assert dense_tiles_rule(CountingConfig(method="boxes")) is None
    off = CountingConfig(density_tiles=DensityTilesConfig(mode="off"))
    assert dense_tiles_rule(off) is None
    with pytest.raises(ValidationError):
        DensityTilesConfig(zoom=9)
    with pytest.raises(ValidationError):
        DensityTilesConfig(tiles=4)  # type: ignore[call-arg]


@dataclass
class MapPending:
    """A tile's pass as the openvino backend serving density returns it."""

    density: DensityMap | None
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def result(self) -> Detections:
        return Detections.empty()

    def done(self) -> bool:
        return True


def test_only_a_dense_frame_is_counted_again_on_tiles() -> None:
    frame_hw = (768, 1024)
    image = np.zeros((*frame_hw, 3), np.uint8)
    submitted: list[tuple[int, int]] = []
    per_pixel = 0.002  # 1,573 people over the frame

    def submit(tile: np.ndarray) -> MapPending:
        submitted.append(tile.shape[:2])
        return MapPending(None)

    refine = TiledDensity(submit)
    calm = uniform_map(0.2)  # 960 people, 0.2 a cell: one pass is enough
    assert refine(image, calm) is calm and not submitted
    # Dense: tiles run; a backend without maps for them leaves the whole frame's map.
    dense = uniform_map(0.6)
    assert refine(image, dense) is dense
    tiles = DenseTiles().tiles(1024, 768)
    assert submitted == [(int(y1 - y0), int(x1 - x0)) for x0, y0, x1, y1 in tiles]
    # With maps: the stitched one, exact for an even density.
    queue = [even_tile_map(t, per_pixel) for t in tiles]
    refine = TiledDensity(lambda _tile: MapPending(queue.pop(0)))
    stitched = refine(image, dense)
    assert stitched.total() == pytest.approx(per_pixel * 1024 * 768, rel=1e-5)
    assert refine.tiled_frames == 1
    queue.extend(even_tile_map(t, per_pixel) for t in tiles)
    refine(image, dense)
    assert refine.tiled_frames == 2


class DenseSource(FrameSource):
    """Three 1024x768 frames of a file (not live)."""

    name = "dense"
    fps = 10.0
    live = False
    sequence = True
    frames_dropped = frames_skipped = reconnects = 0

    def __init__(self) -> None:
        self._index = 0

    def read(self, timeout: float) -> Frame | None:
        if self._index >= 3:
            return None
        self._index += 1
        return Frame(np.zeros((768, 1024, 3), np.uint8), self._index - 1,
                     (self._index - 1) / self.fps, 0.0)

    @property
    def finished(self) -> bool:
        return self._index >= 3

    @property
    def up(self) -> bool:
        return not self.finished

    def close(self) -> None:
        pass


@dataclass
class DenseDone(Done):
    density: DensityMap | None = None


class DenseDetector(Detector):
    """Whole frames: 0.6 people a cell (2,880 people); tiles: an even 0.002 people a pixel."""

    name = "dense"

    def __init__(self) -> None:
        self.tile_passes = 0

    def submit(self, image: Image) -> DenseDone:
        if image.shape[:2] == (768, 1024):
            return DenseDone(Detections.empty(), density=uniform_map(0.6))
        self.tile_passes += 1
        tile = np.array([0, 0, image.shape[1], image.shape[0]])
        return DenseDone(Detections.empty(), density=even_tile_map(tile, 0.002))


@pytest.mark.parametrize(("mode", "people"), [("auto", round(0.002 * 1024 * 768)),
                                              ("off", 2880)])
def test_the_pipeline_counts_a_dense_frame_from_its_tiles(mode: str, people: int) -> None:
    config = parse_config({"cameras": [{"id": "c", "source": "c.mp4"}],
                           "counting": {"method": "density", "density_tiles": {"mode": mode}}})
    results: list[FrameResult] = []
    detector = DenseDetector()
    build_pipeline(config, detector, [CallbackSink(results.append)],
                   source_opener=lambda _camera: DenseSource()).run()
    assert [r.method for r in results] == ["density"] * 3
    assert [r.people_raw for r in results] == [people] * 3
    assert detector.tile_passes == (3 * len(DenseTiles().tiles(1024, 768)) if mode == "auto"
                                    else 0)


class SparseDetector(Detector):
    """Whole frames of 0.001 people a cell, each map able to compute a crowd map (counted)."""

    name = "sparse"

    def __init__(self) -> None:
        self.crowd_runs = 0

    def crowd(self) -> np.ndarray:
        self.crowd_runs += 1
        return np.zeros((60, 80), np.float32)

    def submit(self, image: Image) -> DenseDone:
        plain = uniform_map(0.001)
        return DenseDone(Detections.empty(), density=DensityMap(
            plain.cells, plain.letterbox, crowd_source=self.crowd))


def test_the_pipeline_hands_maps_on_without_the_crowd_heads_inputs() -> None:
    config = parse_config({"cameras": [{"id": "c", "source": "c.mp4"}],
                           "counting": {"method": "density"}})
    results: list[FrameResult] = []
    detector = SparseDetector()
    build_pipeline(config, detector, [CallbackSink(results.append)],
                   source_opener=lambda _camera: DenseSource()).run()
    assert len(results) == 3 and detector.crowd_runs == 0
    for result in results:
        assert result.density is not None and result.density.crowd_source is None
        assert result.density.total() == pytest.approx(0.001 * 60 * 80, rel=1e-4)


def brute_force_dense_cells(cells: np.ndarray, peak: float, k: int) -> np.ndarray:
    """Each cell's k x k window (rows i - k//2 .. i - k//2 + k - 1), one by one: the mean of
    its cells inside the grid against peak."""
    h, w = cells.shape
    dense = np.zeros((h, w), bool)
    for i in range(h):
        for j in range(w):
            total, inside = 0.0, 0
            for y in range(i - k // 2, i - k // 2 + k):
                for x in range(j - k // 2, j - k // 2 + k):
                    if 0 <= y < h and 0 <= x < w:
                        total += float(cells[y, x])
                        inside += 1
            dense[i, j] = total / inside >= peak
    return dense


def test_dense_cells_are_those_centred_in_a_dense_window() -> None:
    # One 4x4 block at 0.8 a cell: a window needs 10 of its cells (8 people / 16 cells), so
    # only windows shifted by at most one row or one column from it, not both.
    cells = np.zeros((60, 80), np.float32)
    cells[10:14, 20:24] = 0.8
    rule = DenseTiles(peak_people=0.5, window=4)
    dense = rule.dense_cells(DensityMap(cells, uniform_map(0).letterbox))
    assert sorted(zip(*np.nonzero(dense), strict=True)) == [(11, 22), (12, 21), (12, 22),
                                                           (12, 23), (13, 22)]
    # A frame dense all over is dense to its edges (a window cut by the edge averages what
    # it holds), and the letterbox's grey band never is.
    assert rule.dense_cells(uniform_map(0.6)).all()
    # Exactly the rule's 0.5 a cell is dense (the trigger's >=), just below it is not.
    assert rule.dense_cells(uniform_map(0.5)).all()
    assert not rule.dense_cells(uniform_map(0.49)).any()
    box = Letterbox.fit((480, 640), (640, 640))
    banded = rule.dense_cells(DensityMap(np.full((80, 80), 5.0, np.float32), box))
    assert not banded[:10].any() and not banded[70:].any() and banded[10:70].all()
    rng = np.random.default_rng(3)
    for window in (1, 3, 4):
        random = rng.gamma(0.3, 1.0, (12, 16)).astype(np.float32)
        square = Letterbox.fit((96, 128), (96, 128))
        got = DenseTiles(peak_people=0.5, window=window).dense_cells(DensityMap(random, square))
        np.testing.assert_array_equal(got, brute_force_dense_cells(random, 0.5, window))


def with_crowd(density: DensityMap, crowd: np.ndarray) -> DensityMap:
    return DensityMap(density.cells, density.letterbox, crowd.astype(np.float32))


def test_a_dense_frame_counts_from_the_crowd_head_and_its_tiles_only_where_dense() -> None:
    image = np.zeros((768, 1024, 3), np.uint8)
    tiles = DenseTiles().tiles(1024, 768)
    per_pixel = 0.002
    # The crowd head: 10 people a cell in the left half (columns 0-39), none on the right.
    crowd = np.zeros((60, 80))
    crowd[:, :40] = 10.0
    # Tiles: the main head's maps hold 5x what the crowd head's do.
    def tile_pass(tile: np.ndarray) -> MapPending:
        x0, y0, x1, y1 = tiles[len(seen)]
        seen.append(tile.shape)
        part = even_tile_map(np.array([x0, y0, x1, y1]), per_pixel)
        return MapPending(with_crowd(DensityMap(part.cells * 5, part.letterbox), part.cells))
    seen: list[tuple[int, ...]] = []
    refine = TiledDensity(tile_pass)
    # Calm by the main head's map: the crowd head's is not asked.
    calm = with_crowd(uniform_map(0.2), crowd)
    assert refine(image, calm) is calm and not seen
    counted = refine(image, with_crowd(uniform_map(0.6), crowd))
    assert len(seen) == len(tiles)
    # Dense: columns 0-41 (a window of columns j-2..j+1 reaching the left half holds >= 40
    # people, 2.5 a cell). Those take the crowd tiles' map (an even 0.002 people a frame
    # pixel, stitched), the rest keeps the crowd head's whole map (0 there).
    stitched = stitch(uniform_map(0), tiles,
                      [even_tile_map(t, per_pixel) for t in tiles]).cells
    np.testing.assert_allclose(counted.cells[:, :42], stitched[:, :42], rtol=1e-6)
    assert not counted.cells[:, 42:].any()
    assert counted.total() == pytest.approx(per_pixel * 1024 * 768 * 42 / 80, rel=0.02)
    # A frame too small for tiles (zoom 1: one tile would be the frame): the crowd head's map.
    untiled = TiledDensity(lambda _tile: MapPending(None), DenseTiles(zoom=1.0))
    assert untiled(image, with_crowd(uniform_map(0.6), crowd)).total() == pytest.approx(
        40 * 60 * 10.0)
    # No maps for the tiles: the crowd head's whole map.
    fallback = TiledDensity(lambda _tile: MapPending(None))(image,
                                                            with_crowd(uniform_map(0.6), crowd))
    assert fallback.total() == pytest.approx(40 * 60 * 10.0)
