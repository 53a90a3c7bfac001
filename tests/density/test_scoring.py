"""MAE/RMSE and GAME of density counts, against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from crowdwatch.density.counter import DensityMap
from crowdwatch.density.scoring import count_errors, game, region_counts
from crowdwatch.detect.yolo import Letterbox

# 640x480 at 480x640: one cell = 8x8 frame pixels, 60x80 cells; GAME(1) quadrants are
# 30x40 cells each, GAME(2) regions 15x20.
LETTERBOX = Letterbox.fit((480, 640), (480, 640))


def test_count_errors() -> None:
    scores = count_errors([10, 12, 7], [11, 10, 7])
    assert scores["mae"] == pytest.approx(1.0)
    assert scores["rmse"] == pytest.approx(np.sqrt(5 / 3))
    assert scores["bias"] == pytest.approx(1 / 3)


def test_points_fall_in_their_regions() -> None:
    points = np.array([[10, 10], [630, 10], [630, 470], [330, 250], [700, 10], [0.5, 0.2]],
                      np.float32)
    # Quadrants row by row: top-left, top-right, bottom-left, bottom-right; x=700 is outside,
    # a point in the first pixel (0.5, 0.2) is inside.
    np.testing.assert_array_equal(region_counts(points, (480, 640), 1), [2, 1, 0, 2])


def test_no_frames_cannot_be_scored() -> None:
    with pytest.raises(ValueError, match=r"^no frames to score$"):
        count_errors([], [])


def test_game_counts_each_region_error() -> None:
    cells = np.zeros((60, 80), np.float32)
    cells[0, 0] = 3.0            # top-left quadrant predicts 3
    cells[59, 79] = 1.0          # bottom-right predicts 1
    density = DensityMap(cells, LETTERBOX)
    # Truth: 2 in the top-left, 2 in the top-right, 1 in the bottom-right.
    points = np.array([[5, 5], [6, 6], [600, 5], [610, 5], [600, 470]], np.float32)
    assert game(density, points, 0) == pytest.approx(abs(4 - 5))
    # |3-2| + |0-2| + |0-0| + |1-1| = 3
    assert game(density, points, 1) == pytest.approx(3.0)
    # At level 2 the same cells and points land in the 4 corner regions: the same 3.
    assert game(density, points, 2) == pytest.approx(3.0)


def test_game_respects_ignore_regions() -> None:
    cells = np.zeros((60, 80), np.float32)
    cells[0, 0] = 3.0
    density = DensityMap(cells, LETTERBOX)
    points = np.zeros((0, 2), np.float32)
    assert game(density, points, 1) == pytest.approx(3.0)
    assert game(density, points, 1, ignore=[shapely.box(0, 0, 16, 16)]) == pytest.approx(0.0)
