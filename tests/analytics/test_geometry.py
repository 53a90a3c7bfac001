from __future__ import annotations

import numpy as np
import pytest

from crowdwatch.analytics.geometry import fit_homography, ground_area, to_ground
from crowdwatch.errors import ConfigError

SQUARE_PX = [(0, 0), (100, 0), (100, 100), (0, 100)]


@pytest.mark.parametrize(
    ("ground", "polygon", "area"),
    [
        ([(0, 0), (10, 0), (10, 10), (0, 10)], [(0, 0), (50, 0), (50, 50), (0, 50)], 25.0),
        ([(0, 0), (2, 0), (2, 1), (0, 1)], SQUARE_PX, 2.0),
        # A trapezoid on the ground seen as a square: area of the trapezoid (h*(a+b)/2).
        ([(0, 0), (4, 0), (3, 2), (1, 2)], SQUARE_PX, 2 * (4 + 2) / 2),
    ],
)
def test_ground_area_of_projected_polygon(ground: list, polygon: list, area: float) -> None:
    h = fit_homography(SQUARE_PX, ground)
    assert ground_area(polygon, h) == pytest.approx(area, rel=1e-6)


def test_homography_maps_the_given_points() -> None:
    ground = [(1, 1), (5, 1), (4, 3), (2, 3)]
    h = fit_homography(SQUARE_PX, ground)
    np.testing.assert_allclose(to_ground(SQUARE_PX, h), ground, atol=1e-6)


def test_collinear_points_give_no_homography() -> None:
    line = [(0, 0), (1, 1), (2, 2), (3, 3)]
    with pytest.raises(ConfigError, match="do not define a homography"):
        fit_homography(line, line)
