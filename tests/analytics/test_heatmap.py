"""The heatmap's accumulation: grids, decay with the frames' own times, boxes and density."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crowdwatch.analytics.heatmap import (
    HeatGrid,
    Heatmaps,
    boxes_on_grid,
    density_on_grid,
    grid_shape,
)
from crowdwatch.config import HeatmapConfig
from crowdwatch.detect.densitymap import DensityMap
from crowdwatch.detect.yolo import Letterbox
from crowdwatch.types import Detections, FrameResult


def test_grid_shape_keeps_cells_square() -> None:
    assert grid_shape(640, 480, 64) == (48, 64)
    assert grid_shape(480, 640, 64) == (64, 48)
    assert grid_shape(1000, 1, 8) == (1, 8)


def test_boxes_count_at_their_feet() -> None:
    # 640x480 frame, 64x48 grid: cells of 10 px. Feet (bottom centre): (25, 99), (27, 95)
    # -> row 9, column 2 twice; (635, 479) -> the last cell; a foot below the frame clips in.
    xyxy = np.array([[20, 50, 30, 99], [24, 10, 30, 95], [630, 400, 640, 479],
                     [0, 0, 10, 900]], np.float32)
    grid = boxes_on_grid(xyxy, (480, 640), (48, 64))
    assert grid[9, 2] == 2 and grid[47, 63] == 1 and grid[47, 0] == 1
    assert grid.sum() == 4


def test_decay_and_steps_follow_the_frame_times() -> None:
    grid = HeatGrid(half_life_s=10, max_step_s=5, cells=4)
    one = np.zeros((3, 4))
    one[1, 2] = 1.0
    assert grid.add(0.0, one, (3, 4)).grid.sum() == 0  # the first frame stands for no time
    assert grid.add(2.0, one, (3, 4)).grid[1, 2] == pytest.approx(2.0)  # 1 person x 2 s
    # 10 s later: 2 x 0.5 (one half-life), plus 1 person x 5 s (the step is capped).
    assert grid.add(12.0, one, (3, 4)).grid[1, 2] == pytest.approx(6.0)
    # Back in time (a file starting over): nothing decays or adds, the clock restarts there.
    heat = grid.add(1.0, one * 7, (3, 4))
    assert heat.grid[1, 2] == pytest.approx(6.0) and heat.at == 1.0
    # 20 s of nobody: two half-lives.
    assert grid.add(21.0, np.zeros((3, 4)), (3, 4)).grid[1, 2] == pytest.approx(1.5)
    # Another aspect ratio starts a new map.
    assert grid.add(22.0, np.ones((4, 4)), (4, 4)).grid.sum() == 0


def test_density_lands_where_its_cells_are_and_keeps_its_sum() -> None:
    # A 640x480 frame fills a 480x640 input exactly: density cells of 8 px, 60x80.
    cells = np.zeros((60, 80), np.float32)
    cells[10, 20] = 3.0  # centre at frame pixel (164, 84): heat cell row 8, column 16
    density = DensityMap(cells, Letterbox.fit((480, 640), (480, 640)))
    grid = density_on_grid(density, (48, 64))
    assert grid.sum() == pytest.approx(3.0)
    assert np.unravel_index(np.argmax(grid), grid.shape) == (8, 16)
    assert grid[7:10, 15:18].sum() == pytest.approx(3.0)


def test_density_leaves_the_letterbox_border_out() -> None:
    # 640x320 into 640x640: 160 px of grey above and below; cells there are not the frame's.
    letterbox = Letterbox.fit((320, 640), (640, 640))
    cells = np.zeros((80, 80), np.float32)
    cells[0:20] = 5.0  # the top border only
    cells[40, 40] = 2.0
    grid = density_on_grid(DensityMap(cells, letterbox), grid_shape(640, 320, 64))
    assert grid.sum() == pytest.approx(2.0)


def _result(at: float, method: str, density: DensityMap | None,
            xyxy: list[list[float]]) -> FrameResult:
    boxes = np.array(xyxy, np.float32).reshape(-1, 4)
    return FrameResult("cam", 0, at, 0.0, len(boxes), len(boxes),
                       detections=Detections(boxes, np.ones(len(boxes), np.float32)),
                       method=method, density=density,
                       image=np.zeros((480, 640, 3), np.uint8))


def test_the_camera_method_picks_boxes_or_density() -> None:
    heatmaps = Heatmaps(HeatmapConfig(half_life_s=100, cells=64))
    cells = np.zeros((60, 80), np.float32)
    cells[10, 20] = 4.0
    density = DensityMap(cells, Letterbox.fit((480, 640), (480, 640)))
    box = [[400, 300, 420, 405]]  # foot (410, 405): row 40, column 41
    heatmaps.write(_result(0.0, "boxes", density, box))
    heatmaps.write(_result(1.0, "boxes", density, box))  # boxes: 1 person x 1 s at the foot
    heat = heatmaps.get("cam")
    assert heat is not None and heat.grid[40, 41] == pytest.approx(1.0)
    assert heat.grid.sum() == pytest.approx(1.0)
    heatmaps.write(_result(2.0, "density", density, box))  # density: 4 people x 1 s there
    heat = heatmaps.get("cam")
    assert heat is not None
    decay = 0.5 ** (1 / 100)
    assert heat.grid[40, 41] == pytest.approx(decay)
    assert heat.grid.sum() == pytest.approx(decay + 4.0)
    assert heatmaps.get("other") is None


def test_density_in_ignore_regions_is_left_out() -> None:
    from crowdwatch.analytics.scene import CameraScene
    from crowdwatch.config import parse_config

    config = parse_config({"cameras": [{"id": "cam", "source": "clip.mp4", "ignore": [
        {"polygon": [[0, 0], [320, 0], [320, 480], [0, 480]]}]}]})  # the left half
    heatmaps = Heatmaps(HeatmapConfig(cells=64), {"cam": CameraScene(config.cameras[0])})
    cells = np.full((60, 80), 0.5, np.float32)  # 2,400 people spread evenly
    density = DensityMap(cells, Letterbox.fit((480, 640), (480, 640)))
    heatmaps.write(_result(0.0, "density", density, []))
    heatmaps.write(_result(2.0, "density", density, []))
    heat = heatmaps.get("cam")
    assert heat is not None
    assert heat.grid[:, :32].sum() == 0  # the ignored half
    assert heat.grid[:, 32:].sum() == pytest.approx(2400 / 2 * 2.0)  # the right half, 2 s


@pytest.mark.parametrize(("width", "height", "shape"), [
    (1, 100, (64, 1)),    # a frame far taller than wide: one column, not two
    (100, 1, (1, 64)),
    (480, 480, (64, 64)),
])
def test_a_grid_keeps_at_least_one_cell_a_side(width: int, height: int,
                                               shape: tuple[int, int]) -> None:
    assert grid_shape(width, height, 64) == shape


def test_feet_on_the_frames_top_row_and_right_edge_stay_in_their_cells() -> None:
    # 640x480, cells of 10 px. A head-high box at the top (foot y 5: row 0, not row 1), and a
    # box squeezed onto the right edge by clipping (foot x 640: the last column).
    xyxy = np.array([[100, 0, 120, 5], [640, 200, 640, 255]], np.float32)
    grid = boxes_on_grid(xyxy, (480, 640), (48, 64))
    assert grid[0, 11] == 1 and grid[25, 63] == 1 and grid.sum() == 2


def test_one_hot_cell_keeps_its_people_when_the_grid_is_coarser() -> None:
    # 60x80 density cells onto a 3x4 grid (20 cells a side each): area resampling keeps the
    # 3 people in the heat cell holding the density cell, whatever sampling would miss.
    cells = np.zeros((60, 80), np.float32)
    cells[1, 1] = 3.0
    grid = density_on_grid(DensityMap(cells, Letterbox.fit((480, 640), (480, 640))), (3, 4))
    expected = np.zeros((3, 4))
    expected[0, 0] = 3.0
    np.testing.assert_allclose(grid, expected, atol=1e-9)


@pytest.mark.parametrize("people", [0.0, 0.5])
def test_few_or_no_people_keep_their_exact_sum(people: float) -> None:
    cells = np.zeros((60, 80), np.float32)
    cells[30:32, 40:44] = people / 8
    grid = density_on_grid(DensityMap(cells, Letterbox.fit((480, 640), (480, 640))), (48, 64))
    assert grid.sum() == pytest.approx(people)
    assert np.isfinite(grid).all()


def test_negative_cells_add_no_negative_heat() -> None:
    cells = np.zeros((60, 80), np.float32)
    cells[5, 5] = -2.0  # a model's rounding below zero
    cells[50, 70] = 1.0
    grid = density_on_grid(DensityMap(cells, Letterbox.fit((480, 640), (480, 640))), (48, 64))
    assert grid.min() >= 0 and grid.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(("frame_hw", "pad_xy", "border"), [
    ((480, 632), (4, 0), np.s_[:, 79]),  # the last column's centres at frame x 632: outside
    ((472, 640), (0, 4), np.s_[59, :]),  # the last row's at frame y 472
])
def test_the_border_cells_next_to_the_frame_stay_out(
        frame_hw: tuple[int, int], pad_xy: tuple[int, int], border: tuple[object, ...]) -> None:
    cells = np.zeros((60, 80), np.float32)
    cells[border] = 7.0
    cells[30, 40] = 1.0
    letterbox = Letterbox.fit(frame_hw, (480, 640))
    assert letterbox.pad_xy == pad_xy
    grid = density_on_grid(DensityMap(cells, letterbox),
                           grid_shape(frame_hw[1], frame_hw[0], 64))
    assert grid.sum() == pytest.approx(1.0)


def test_a_frame_too_thin_for_any_cell_adds_nothing() -> None:
    # 2000x1 into 640x640: the frame is a strip thinner than a pixel row, between cell centres.
    letterbox = Letterbox.fit((1, 2000), (640, 640))
    grid = density_on_grid(DensityMap(np.ones((80, 80), np.float32), letterbox), (1, 64))
    np.testing.assert_array_equal(grid, np.zeros((1, 64)))


def test_the_first_frame_records_its_size_and_half_life() -> None:
    heat = HeatGrid(half_life_s=30, max_step_s=5, cells=4).add(0.0, np.zeros((3, 4)), (30, 40))
    assert heat.frame_hw == (30, 40) and heat.half_life_s == 30 and heat.at == 0.0


def test_ignore_regions_follow_the_frames_height_and_each_camera() -> None:
    from crowdwatch.analytics.scene import CameraScene
    from crowdwatch.config import parse_config

    bottom_half = [{"polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]], "normalized": True}]
    config = parse_config({"cameras": [
        {"id": "cam", "source": "clip.mp4", "ignore": bottom_half},
        {"id": "open", "source": "clip.mp4"}]})
    heatmaps = Heatmaps(HeatmapConfig(cells=64), {c.id: CameraScene(c) for c in config.cameras})
    cells = np.full((60, 80), 0.5, np.float32)
    density = DensityMap(cells, Letterbox.fit((480, 640), (480, 640)))
    for camera in ("cam", "open"):
        for at in (0.0, 2.0):
            result = _result(at, "density", density, [])
            heatmaps.write(dataclasses.replace(result, camera=camera))
    ignored, open_ = heatmaps.get("cam"), heatmaps.get("open")
    assert ignored is not None and open_ is not None
    assert ignored.grid.shape == (48, 64)
    assert ignored.grid[24:].sum() == 0  # rows 24-47: the bottom half of a 480-high frame
    assert ignored.grid[:24].sum() == pytest.approx(2400 / 2 * 2.0)
    assert open_.grid.sum() == pytest.approx(2400 * 2.0)  # the other camera ignores nothing


def test_the_frame_size_comes_from_the_map_or_the_last_frame_without_an_image() -> None:
    heatmaps = Heatmaps(HeatmapConfig(half_life_s=100, cells=64))
    cells = np.zeros((60, 80), np.float32)
    cells[10, 20] = 4.0
    density = DensityMap(cells, Letterbox.fit((480, 640), (480, 640)))
    box = [[400, 300, 420, 405]]  # foot (410, 405): row 40, column 41 of a 640x480 frame
    no_image = dataclasses.replace(_result(0.0, "density", density, box), image=None)
    heatmaps.write(no_image)
    heat = heatmaps.get("cam")
    assert heat is not None and heat.frame_hw == (480, 640)
    # Neither image nor map: the last frame's size, and the boxes still count.
    heatmaps.write(dataclasses.replace(no_image, position_s=1.0, density=None, method="boxes"))
    heat = heatmaps.get("cam")
    assert heat is not None and heat.frame_hw == (480, 640)
    assert heat.grid[40, 41] == pytest.approx(1.0)
