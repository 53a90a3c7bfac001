"""Image-to-ground homography and zone areas on the ground plane."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import shapely

from crowdwatch.errors import ConfigError

Homography = npt.NDArray[np.float64]


def fit_homography(image_points: npt.ArrayLike, ground_points: npt.ArrayLike) -> Homography:
    """The 3x3 matrix mapping image pixels to ground metres (least squares over all pairs)."""
    src = np.asarray(image_points, np.float64).reshape(-1, 2)
    dst = np.asarray(ground_points, np.float64).reshape(-1, 2)
    matrix, _ = cv2.findHomography(src, dst, 0)
    if matrix is None or not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-12:
        raise ConfigError(
            "ground_plane: the point pairs do not define a homography; "
            "use at least 4 pairs with no 3 image points on one line"
        )
    return matrix


def to_ground(points: npt.ArrayLike, homography: Homography) -> npt.NDArray[np.float64]:
    """Project (N, 2) pixel points onto the ground; raises if any lies beyond the horizon."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    homogeneous = np.hstack([pts, np.ones((len(pts), 1))]) @ homography.T
    w = homogeneous[:, 2]
    # H and -H map alike, so only points on both sides of the horizon (mixed signs) are wrong.
    if (np.any(w < 0) and np.any(w > 0)) or np.any(np.abs(w) < 1e-12):
        raise ConfigError(
            "a zone reaches above the horizon of the ground_plane homography; "
            "draw zones on the ground only"
        )
    return homogeneous[:, :2] / w[:, None]


def ground_area(polygon_px: npt.ArrayLike, homography: Homography) -> float:
    """Area in square metres of a pixel polygon projected onto the ground plane.

    Straight edges stay straight under a homography, so projecting the vertices is exact.
    """
    projected = shapely.Polygon(to_ground(polygon_px, homography))
    if not projected.is_valid:
        raise ConfigError("a zone's projection onto the ground is not a simple polygon")
    return float(projected.area)
