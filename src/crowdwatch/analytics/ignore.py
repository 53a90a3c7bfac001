"""Ignore regions: drop detections standing in areas where people are not counted.

A camera's ``ignore`` polygons cover things the detector takes for people (shop-window
mannequins, posters, reflections in glass) or places that must not count. A detection is
dropped when its anchor, the bottom centre of its box (where a person's feet touch the
ground, the zones' default anchor), lies inside or on the boundary of any ignore polygon.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely

from crowdwatch.boxes import foot_points
from crowdwatch.config.camera import CameraConfig
from crowdwatch.types import Detections

Polygon = Sequence[tuple[float, float]]


def ignore_geometry(polygons: Sequence[Polygon]) -> shapely.Geometry | None:
    """One prepared geometry of all ignore polygons (pixels); None when there are none."""
    if not polygons:
        return None
    geometry = shapely.union_all([shapely.Polygon(p) for p in polygons])
    shapely.prepare(geometry)
    return geometry


def ignored_mask(xyxy: npt.NDArray[np.float32],
                 geometry: shapely.Geometry | None) -> npt.NDArray[np.bool_]:
    """True for each box (N, 4 xyxy) whose bottom centre lies in the geometry (edge included)."""
    feet = foot_points(xyxy)
    if geometry is None or len(feet) == 0:
        return np.zeros(len(feet), bool)
    return np.asarray(shapely.intersects_xy(geometry, feet[:, 0], feet[:, 1]), bool)


def drop_ignored(detections: Detections, geometry: shapely.Geometry | None) -> Detections:
    """The detections whose anchor is outside every ignore polygon (vectorised, no loop)."""
    if geometry is None or len(detections) == 0:
        return detections
    keep = ~ignored_mask(detections.xyxy, geometry)
    if keep.all():
        return detections
    return detections[keep]


def camera_ignore(camera: CameraConfig, width: int, height: int) -> shapely.Geometry | None:
    """The camera's ignore regions in pixels of a frame of this size, as one geometry."""
    return ignore_geometry([region.pixels(width, height) for region in camera.ignore])
