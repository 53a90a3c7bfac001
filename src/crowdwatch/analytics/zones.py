"""Zone stage: places each person at an anchor point and counts people per zone."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from crowdwatch.analytics.geometry import fit_homography, ground_area
from crowdwatch.analytics.levels import LevelTracker
from crowdwatch.config import AppConfig, CameraConfig, LevelThresholds
from crowdwatch.errors import ConfigError
from crowdwatch.types import Detections, Level, ZoneStats


def anchor_points(
    xyxy: npt.NDArray[np.float32], use_center: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Anchor x and y of every box for every zone, each shaped (zones, people).

    A zone with use_center False takes the bottom-centre (where the feet touch the ground).
    """
    boxes = xyxy.astype(np.float64, copy=False)
    x = (boxes[:, 0] + boxes[:, 2]) / 2
    center_y = (boxes[:, 1] + boxes[:, 3]) / 2
    y = np.where(use_center[:, None], center_y[None, :], boxes[None, :, 3])
    return np.broadcast_to(x, y.shape), y


@dataclass(frozen=True, slots=True)
class Zone:
    """A zone resolved to pixels for one frame size."""

    name: str
    polygon: shapely.Polygon
    use_center: bool
    capacity: int | None
    area_m2: float | None


def build_zones(camera: CameraConfig, width: int, height: int) -> list[Zone]:
    """Resolve normalised coordinates and ground areas of a camera's zones."""
    homography = None
    if camera.ground_plane is not None:
        homography = fit_homography(camera.ground_plane.image_points,
                                    camera.ground_plane.ground_points)
    zones = []
    for index, config in enumerate(camera.zones):
        points = np.asarray(config.polygon, np.float64)
        if config.normalized:
            points = points * (width, height)
        area = config.area_m2
        if area is None and homography is not None:
            try:
                area = ground_area(points, homography)
            except ConfigError as error:
                raise ConfigError(f"zones[{index}].polygon ({config.name}): {error}") from None
        anchor = config.anchor or camera.anchor
        zones.append(Zone(config.name, shapely.Polygon(points), anchor == "center",
                          config.capacity, area))
    return zones


def check_geometry(config: AppConfig) -> None:
    """ConfigError naming cameras[N] if a ground plane is degenerate or a pixel zone's ground
    area cannot be computed: what the first frame would otherwise find, found at start-up."""
    for index, camera in enumerate(config.cameras):
        try:
            if camera.ground_plane is not None:
                fit_homography(camera.ground_plane.image_points,
                               camera.ground_plane.ground_points)
            if not any(z.normalized for z in camera.zones):
                build_zones(camera, 1, 1)  # pixel zones do not depend on the frame size
        except ConfigError as error:
            raise ConfigError(f"cameras[{index}].{error}") from None


def zone_frame_problems(camera: CameraConfig, width: int, height: int) -> list[str]:
    """Zones that likely count nobody in a width x height frame, one sentence each: a pixel
    zone written in 0-1 coordinates without `normalized: true` (a speck in the top-left
    corner). A zone entirely outside the frame is an error: check_zones_in_frame.
    """
    problems = []
    for config, zone in zip(camera.zones, build_zones(camera, width, height), strict=True):
        x0, y0, x1, y1 = zone.polygon.bounds
        where = (f"camera {camera.id}, zone {zone.name}: polygon bounds x {x0:g}..{x1:g}, "
                 f"y {y0:g}..{y1:g} in the {width}x{height} frame")
        if (not config.normalized and min(x0, y0) >= 0 and max(x1, y1) <= 1
                and min(width, height) > 2):
            problems.append(f"{where} look like 0-1 fractions; add `normalized: true` to the "
                            "zone, or give its polygon in pixels")
    return problems


def check_zones_in_frame(camera: CameraConfig, where: str, width: int, height: int) -> None:
    """ConfigError for a zone entirely outside a width x height frame: it would export 0
    forever and look healthy (fatal, like a line outside the frame)."""
    frame = shapely.box(0, 0, width, height)
    for index, zone in enumerate(build_zones(camera, width, height)):
        if zone.polygon.intersection(frame).area <= 0:
            x0, y0, x1, y1 = zone.polygon.bounds
            raise ConfigError(
                f"{where}.zones[{index}] ({zone.name}): the zone lies outside the "
                f"{width}x{height} frame (x {x0:g}..{x1:g}, y {y0:g}..{y1:g}); give its polygon "
                "in pixels of this image, or 0-1 with normalized: true")


class ZoneMapper:
    """Counts people per zone; a person counts in every zone that contains its anchor."""

    def __init__(self, zones: list[Zone], thresholds: list[LevelThresholds]) -> None:
        self.zones = zones
        self._polygons = np.array([z.polygon for z in zones], dtype=object)
        shapely.prepare(self._polygons)
        self._use_center = np.array([z.use_center for z in zones], bool)
        self._capacity = np.array([z.capacity or np.nan for z in zones], np.float64)
        self._area = np.array([z.area_m2 or np.nan for z in zones], np.float64)
        self._levels = LevelTracker(thresholds)

    @classmethod
    def for_camera(
        cls, camera: CameraConfig, default_levels: LevelThresholds, width: int, height: int
    ) -> ZoneMapper:
        zones = build_zones(camera, width, height)
        thresholds = [z.levels or default_levels for z in camera.zones]
        return cls(zones, thresholds)

    def membership(self, detections: Detections) -> npt.NDArray[np.bool_]:
        """(zones, people) matrix: True where the person's anchor lies in the zone."""
        if not self.zones:
            return np.zeros((0, len(detections)), bool)
        x, y = anchor_points(detections.xyxy, self._use_center)
        # Boundary counts as inside: boxes are clipped to the image, so the feet of a person
        # at the bottom edge lie exactly on the edge of a whole-frame zone.
        return shapely.intersects_xy(self._polygons[:, None], x, y)

    def count(self, detections: Detections) -> npt.NDArray[np.int64]:
        """People per zone, without updating levels."""
        return self.membership(detections).sum(axis=1)

    def update(
        self, counts: npt.NDArray[np.int64], raw: npt.NDArray[np.int64] | None = None
    ) -> dict[str, ZoneStats]:
        """Stats per zone from this frame's (stabilised) counts; advances the level trackers."""
        raw = counts if raw is None else raw
        with np.errstate(invalid="ignore", divide="ignore"):
            density = counts / self._area
            occupancy = counts / self._capacity
        levels = self._levels.update(occupancy)
        return {
            zone.name: ZoneStats(
                people=int(counts[i]),
                people_raw=int(raw[i]),
                density=None if np.isnan(density[i]) else float(density[i]),
                occupancy=None if np.isnan(occupancy[i]) else float(occupancy[i]),
                level=Level(int(levels[i])) if zone.capacity else None,
            )
            for i, zone in enumerate(self.zones)
        }
