"""Tile layout, seam filtering and merging of tiled detections, on synthetic boxes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pydantic import ValidationError

from crowdwatch.config.detector import TilingConfig
from crowdwatch.detect.base import Detector, Done, detect
from crowdwatch.detect.tiling import (
    TiledDetector,
    axis_spans,
    choose_tiles,
    merge_tiles,
    nms,
    seam_mask,
    tile_grid,
)
from crowdwatch.types import Detections

# (length, tile, overlap, expected spans)
AXIS_CASES = [
    (640, 640, 0, [(0, 640)]),
    (500, 640, 64, [(0, 500)]),  # tile larger than the frame: one span, not padded
    (640, 320, 0, [(0, 320), (320, 640)]),
    (640, 320, 64, [(0, 256), (192, 448), (384, 640)]),  # stretched: no sliver at the end
    (480, 320, 64, [(0, 272), (208, 480)]),
    (1000, 400, 100, [(0, 400), (300, 700), (600, 1000)]),
    (1000, 300, 100, [(0, 280), (180, 460), (360, 640), (540, 820), (720, 1000)]),
]


@pytest.mark.parametrize(("length", "tile", "overlap", "expected"), AXIS_CASES)
def test_axis_spans(length: int, tile: int, overlap: int, expected: list[tuple[int, int]]) -> None:
    spans = axis_spans(length, tile, overlap)
    assert spans == expected
    sizes = {end - start for start, end in spans}
    assert len(sizes) == 1
    assert sizes.pop() <= tile or len(spans) == 1
    assert spans[0][0] == 0 and spans[-1][1] == length
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end - start >= overlap


def test_axis_spans_rejects_overlap_as_large_as_tile() -> None:
    with pytest.raises(ValueError, match="overlap"):
        axis_spans(1000, 100, 100)


# (width, height, config, number of tiles)
CHOICE_CASES = [
    (640, 480, {}, 6),                       # auto (once a crowd is seen), zoom 2: 3 x 2 tiles
    (640, 480, {"mode": "off"}, 0),
    (640, 480, {"zoom": 1.0}, 0),            # one tile = the whole frame: not tiled
    (640, 480, {"mode": "on", "tile_size": 640}, 0),
    (1920, 1080, {"mode": "on", "tile_size": 640, "overlap": 0.0}, 6),
    (1920, 1080, {"zoom": 3.0}, 0),          # auto: 4 x 2 tiles > max_tiles 6 -> not tiled
    (1920, 1080, {"mode": "on", "zoom": 3.0}, 8),
]


@pytest.mark.parametrize(("width", "height", "settings", "count"), CHOICE_CASES)
def test_choose_tiles(width: int, height: int, settings: dict[str, object], count: int) -> None:
    tiles = choose_tiles(width, height, TilingConfig(**settings))
    assert len(tiles) == count
    if count:
        assert tiles[:, [0, 1]].min() == 0
        assert tiles[:, 2].max() == width and tiles[:, 3].max() == height
        sizes = {(int(t[2] - t[0]), int(t[3] - t[1])) for t in tiles}
        assert len(sizes) == 1


def test_tile_grid_covers_the_frame_row_by_row() -> None:
    tiles = tile_grid(640, 480, 320, 0.2)
    assert tiles.tolist() == [[0, 0, 256, 272], [192, 0, 448, 272], [384, 0, 640, 272],
                              [0, 208, 256, 480], [192, 208, 448, 480], [384, 208, 640, 480]]


@pytest.mark.parametrize("bad", [{"mode": "sometimes"}, {"zoom": 0.5}, {"overlap": 0.6},
                                 {"tile_size": 10}, {"max_tiles": 0}, {"unknown": 1}])
def test_config_bounds(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TilingConfig(**bad)


@pytest.mark.parametrize(("text", "mode"), [("mode: off", "off"), ("mode: on", "on"),
                                            ("mode: auto", "auto"), ("mode: 'off'", "off")])
def test_yaml_on_and_off_are_modes_not_booleans(text: str, mode: str) -> None:
    # YAML 1.1 reads a bare off / on as false / true; a user writing `mode: off` means off.
    import yaml

    assert TilingConfig(**yaml.safe_load(text)).mode == mode


# Tile (100, 0, 300, 200) of a 400 x 300 frame: seams at x=100, x=300 and y=200.
SEAM_CASES = [
    ([150, 50, 200, 150], True),    # inside
    ([100, 50, 150, 150], False),   # on the left seam
    ([101, 50, 150, 150], False),   # within edge_px of it
    ([105, 50, 150, 150], True),
    ([250, 50, 300, 150], False),   # right seam
    ([150, 0, 200, 100], True),     # top edge is the frame border: not a seam
    ([150, 100, 200, 200], False),  # bottom seam
]


@pytest.mark.parametrize(("box", "kept"), SEAM_CASES)
def test_seam_mask(box: list[float], kept: bool) -> None:
    tile = np.array([100, 0, 300, 200])
    mask = seam_mask(np.array([box], np.float32), tile, 400, 300, edge_px=2.0)
    assert bool(mask[0]) is kept


def test_nms_keeps_best_of_overlapping_and_separate_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 30, 10]], np.float32)
    keep = nms(boxes, np.array([0.5, 0.9, 0.4], np.float32), 0.5)
    assert keep.tolist() == [1, 2]


def _det(boxes: list[list[float]], scores: list[float]) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32))


TILES = np.array([[0, 0, 60, 100], [40, 0, 100, 100]])  # two tiles of a 100 x 100 frame


def test_person_in_the_overlap_counts_once() -> None:
    # Seen whole by both tiles (tile pixels) and by the whole frame.
    merged = merge_tiles(_det([[44, 10, 56, 40]], [0.6]),
                         [_det([[45, 10, 55, 40]], [0.8]), _det([[5, 10, 15, 40]], [0.7])],
                         TILES, 100, 100, 0.5, 2.0)
    assert len(merged) == 1
    assert merged.confidence[0] == pytest.approx(0.8)
    assert merged.xyxy[0].tolist() == [45, 10, 55, 40]


def test_cut_person_at_a_seam_is_dropped_not_doubled() -> None:
    # A person x 50-70: the first tile sees a sliver cut at its seam (x=60), the second
    # tile sees it whole; the sliver must not add a second person.
    merged = merge_tiles(Detections.empty(),
                         [_det([[50, 10, 60, 40]], [0.9]), _det([[10, 10, 30, 40]], [0.8])],
                         TILES, 100, 100, 0.5, 2.0)
    assert merged.xyxy.tolist() == [[50, 10, 70, 40]]


def test_person_wider_than_the_overlap_comes_from_the_whole_frame() -> None:
    big = [20, 0, 80, 100]
    merged = merge_tiles(_det([big], [0.7]),
                         [_det([[20, 0, 60, 100]], [0.9]), _det([[0, 0, 40, 100]], [0.9])],
                         TILES, 100, 100, 0.5, 2.0)
    assert merged.xyxy.tolist() == [big]


def test_boxes_at_the_frame_border_are_kept() -> None:
    merged = merge_tiles(Detections.empty(),
                         [_det([[0, 0, 10, 30]], [0.5]), _det([[50, 70, 60, 100]], [0.5])],
                         TILES, 100, 100, 0.5, 2.0)
    assert sorted(merged.xyxy.tolist()) == [[0, 0, 10, 30], [90, 70, 100, 100]]


def test_two_close_people_in_one_tile_stay_two() -> None:
    merged = merge_tiles(Detections.empty(),
                         [_det([[5, 10, 15, 40], [12, 10, 22, 40]], [0.9, 0.8]),
                          Detections.empty()], TILES, 100, 100, 0.5, 2.0)
    assert len(merged) == 2


# A 2 x 2 grid of a 100 x 100 frame: the lower tiles start at y = 40.
GRID = np.array([[0, 0, 60, 60], [40, 0, 100, 60], [0, 40, 60, 100], [40, 40, 100, 100]])


@pytest.mark.parametrize(("tile", "in_tile", "in_frame"), [
    (0, [5, 5, 15, 35], [5, 5, 15, 35]),
    (1, [10, 5, 20, 35], [50, 5, 60, 35]),
    (2, [5, 10, 15, 40], [5, 50, 15, 80]),       # y offset 40 added back
    (3, [10, 5, 20, 35], [50, 45, 60, 75]),      # x and y offsets 40 added back
])
def test_tile_boxes_are_moved_to_frame_pixels(tile: int, in_tile: list[float],
                                              in_frame: list[float]) -> None:
    parts = [Detections.empty()] * len(GRID)
    parts[tile] = _det([in_tile], [0.9])
    merged = merge_tiles(Detections.empty(), parts, GRID, 100, 100, 0.5, 2.0)
    assert merged.xyxy.tolist() == [in_frame]


def test_merge_of_nothing_is_empty() -> None:
    assert len(merge_tiles(Detections.empty(), [Detections.empty()] * 2, TILES, 100, 100,
                           0.5, 2.0)) == 0


class FakeDetector(Detector):
    """Finds one 'person' wherever the image holds a 255 pixel, and records each image."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def submit(self, image: np.ndarray) -> Done:
        self.shapes.append((image.shape[1], image.shape[0]))
        ys, xs = np.nonzero(image[..., 0] == 255)
        if not len(xs):
            return Done(Detections.empty(), {"inference": 0.01})
        box = [[xs.min() - 5, ys.min() - 5, xs.max() + 5, ys.max() + 5]]
        return Done(_det(box, [0.9]), {"inference": 0.01})


def test_wrapper_submits_whole_frame_and_tiles_and_merges() -> None:
    inner = FakeDetector()
    tiled = TiledDetector(inner.submit, TilingConfig(mode="on", tile_size=120, overlap=0.3))
    image = np.zeros((200, 200, 3), np.uint8)
    image[100, 100] = 255
    pending = tiled.submit(image)
    assert inner.shapes[0] == (200, 200)
    assert len(inner.shapes) == 1 + len(tiled.tiles_for(200, 200)) == 5
    assert pending.done()
    result = pending.result()
    assert result.xyxy.tolist() == [[95, 95, 105, 105]]
    assert pending.stage_seconds["inference"] == pytest.approx(0.05)


def test_wrapper_passes_untiled_frames_straight_through() -> None:
    inner = FakeDetector()
    tiled = TiledDetector(inner.submit, TilingConfig(mode="off"))
    assert len(detect(tiled, np.zeros((50, 50, 3), np.uint8))) == 0
    assert inner.shapes == [(50, 50)]


class CrowdDetector(Detector):
    """Finds, in the whole frame only, `people` people of a given height (frame pixels)."""

    def __init__(self, people: int, person_height: float) -> None:
        self.people = people
        self.person_height = person_height
        self.calls = 0

    def submit(self, image: np.ndarray) -> Done:
        self.calls += 1
        if image.shape[:2] != (480, 640):
            return Done(Detections.empty())
        boxes = [[10 + i, 10, 30 + i, 10 + self.person_height] for i in range(self.people)]
        return Done(_det(boxes, [0.9] * self.people))


# (people per frame, height in frame pixels, tiled after the probe?) at 640 x 480, input 640,
# crowd_people 15, large_px 96
AUTO_CASES = [(20, 40.0, True), (20, 95.0, True), (20, 96.0, False), (14, 40.0, False),
              (0, 40.0, False)]


@pytest.mark.parametrize(("people", "person_height", "tiled"), AUTO_CASES)
def test_auto_tiles_only_crowds_of_small_people(people: int, person_height: float,
                                                tiled: bool) -> None:
    inner = CrowdDetector(people, person_height)
    detector = TiledDetector(inner.submit, TilingConfig(probe_frames=3), input_size=640)
    image = np.zeros((480, 640, 3), np.uint8)
    for _ in range(3):  # probing: whole frame only, boxes unchanged
        assert len(detect(detector, image)) == people
    assert inner.calls == 3
    assert detector.auto_decided(640, 480)
    detect(detector, image)
    assert inner.calls == 3 + (7 if tiled else 1)


class ChangingCrowd(CrowdDetector):
    """A CrowdDetector whose crowd changes: people per whole frame, in order, from a list."""

    def __init__(self, people: list[int], person_height: float = 40.0) -> None:
        super().__init__(people[0], person_height)
        self.schedule = list(people)

    def submit(self, image: np.ndarray) -> Done:
        if image.shape[:2] == (480, 640):
            self.people = self.schedule.pop(0)
        return super().submit(image)


# Blocks of probe_frames = 2 frames with people per frame, and the tiles each block leaves in
# use (crowd_people 15: tiles from 15 on; tiled cameras keep them down to 7.5 = half of 15).
REVISIT_CASES = [
    ([0, 20], [0, 6], "the crowd arrives: tiled at the next choice"),
    ([20, 12, 7], [6, 6, 0], "stays tiled at 12 (above 7.5), untiled at 7"),
    ([12, 20, 8, 12], [0, 6, 6, 6], "untiled at 12 (below 15), then held from 8 on"),
    ([20, 0, 20], [6, 0, 6], "off when the hall empties, on when it fills again"),
]


@pytest.mark.parametrize(("blocks", "tiles"), [c[:2] for c in REVISIT_CASES],
                         ids=[c[2] for c in REVISIT_CASES])
def test_auto_choice_follows_the_crowd_with_hysteresis(blocks: list[int],
                                                        tiles: list[int]) -> None:
    schedule = [people for people in blocks for _ in range(2)]
    inner = ChangingCrowd(schedule)
    detector = TiledDetector(inner.submit, TilingConfig(probe_frames=2), input_size=640)
    image = np.zeros((480, 640, 3), np.uint8)
    seen = []
    for frame in range(len(schedule)):
        calls, in_use = inner.calls, detector.tiles_in_use(640, 480)
        detect(detector, image)
        assert inner.calls - calls == 1 + in_use  # the whole frame and the tiles in use
        # The choice changes only where a block ends, never in the middle of one.
        assert in_use == (seen[-1] if seen else 0)
        if frame % 2:  # a block ends: the choice for the next frames is made
            seen.append(detector.tiles_in_use(640, 480))
    assert seen == tiles


def test_tiles_in_use_outside_auto() -> None:
    on = TiledDetector(FakeDetector().submit, TilingConfig(mode="on"))
    off = TiledDetector(FakeDetector().submit, TilingConfig(mode="off"))
    assert on.tiles_in_use(640, 480) == 0  # nothing submitted at that size yet
    detect(on, np.zeros((480, 640, 3), np.uint8))
    detect(off, np.zeros((480, 640, 3), np.uint8))
    assert (on.tiles_in_use(640, 480), off.tiles_in_use(640, 480)) == (6, 0)


@pytest.mark.parametrize("in_flight", [1, 3, 8])
def test_auto_choice_does_not_depend_on_frames_in_flight(in_flight: int) -> None:
    # The same frames get the same tiles whether the caller collects each result at once or
    # keeps many frames in flight: a block's whole-frame passes are awaited at its end.
    inner = ChangingCrowd([20] * 8 + [0] * 8)
    detector = TiledDetector(inner.submit, TilingConfig(probe_frames=4), input_size=640)
    image = np.zeros((480, 640, 3), np.uint8)
    passes, flight = [], []
    for _ in range(16):
        calls = inner.calls
        flight.append(detector.submit(image))
        passes.append(inner.calls - calls)
        if len(flight) >= in_flight:
            flight.pop(0).result()
    # Frames 0-3 probe whole; 4-11 are tiled (the crowd of frames 0-3, then 4-7); the empty
    # frames 8-11 untile frames 12-15.
    assert passes == [1] * 4 + [7] * 8 + [1] * 4
