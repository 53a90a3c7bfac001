"""The heatmap's accumulation: grids, decay with the frames' own times, boxes and density."""

from __future__ import annotations

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
