"""A camera's geometry (zones, lines, ignore regions) resolved to pixels, once per frame size.

The camera's analytics and the sinks that draw (outputs/annotate.py) share one CameraScene,
so a zone is scaled and checked in one place; the first frame of a size resolves it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from crowdwatch.analytics.ignore import ignore_geometry
from crowdwatch.analytics.lines import Line, build_lines
from crowdwatch.analytics.zones import (
    Zone,
    build_zones,
    check_zones_in_frame,
    zone_frame_problems,
)
from crowdwatch.config import CameraConfig
from crowdwatch.errors import ConfigError

log = logging.getLogger("crowdwatch.scene")


@dataclass(frozen=True)
class SceneGeometry:
    """One camera's zones, lines and ignore regions in pixels of one frame size."""

    width: int
    height: int
    zones: list[Zone]
    lines: list[Line]
    # Each ignore region's polygon in pixels (drawn), and all of them as one prepared
    # geometry (tested against feet); None when the camera has none.
    ignore_regions: list[npt.NDArray[np.float64]]
    ignore: shapely.Geometry | None


def check_lines_in_frame(lines: list[Line], where: str, width: int, height: int) -> None:
    """ConfigError for a line that misses the frame entirely; a warning for an end point
    outside it (a line may reach past the edge to span a whole corridor)."""
    frame = shapely.box(0, 0, width, height)
    for i, line in enumerate(lines):
        segment = shapely.LineString([line.start, line.end])
        if not segment.intersects(frame):
            raise ConfigError(
                f"{where}.lines[{i}] ({line.name}): the line lies outside the {width}x{height} "
                "frame; give its points in pixels of this image, or 0-1 with normalized: true")
        outside = [p for p in (line.start, line.end) if not shapely.intersects_xy(frame, *p)]
        if outside:
            log.warning("%s.lines[%d] (%s): end point %s lies outside the %dx%d frame",
                        where, i, line.name, outside[0], width, height)


class CameraScene:
    """Resolves one camera's geometry for a frame size (cached; safe across threads).

    `where` is the camera's key path in the config file (cameras[N]), for errors found only
    when the frame size is known.
    """

    def __init__(self, camera: CameraConfig, where: str = "camera") -> None:
        self.camera = camera
        self.where = where
        self._lock = threading.Lock()
        self._resolved: dict[tuple[int, int], SceneGeometry] = {}

    def at(self, width: int, height: int) -> SceneGeometry:
        """The geometry for frames of this size; ConfigError naming the key for a zone or
        line that cannot work in it."""
        size = (width, height)
        geometry = self._resolved.get(size)
        if geometry is None:
            with self._lock:
                geometry = self._resolved.get(size)
                if geometry is None:
                    geometry = self._resolved[size] = self._resolve(width, height)
        return geometry

    def _resolve(self, width: int, height: int) -> SceneGeometry:
        camera = self.camera
        try:  # normalised zones meet the ground plane only now
            zones = build_zones(camera, width, height)
        except ConfigError as error:
            raise ConfigError(f"{self.where}.{error}") from None
        check_zones_in_frame(camera, self.where, width, height)  # fatal, like a line
        for problem in zone_frame_problems(camera, width, height):
            log.warning("%s", problem)
        lines = build_lines(camera.lines, width, height)
        check_lines_in_frame(lines, self.where, width, height)
        regions = [region.pixels(width, height) for region in camera.ignore]
        return SceneGeometry(width, height, zones, lines,
                             [np.asarray(r, np.float64) for r in regions],
                             ignore_geometry(regions))
