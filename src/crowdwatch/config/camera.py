"""One camera: its frame source and what is drawn on it."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from crowdwatch.config.base import (
    NAME_PATTERN,
    Anchor,
    Point,
    Strict,
    check_normalized,
    check_polygon,
    require_unique,
)
from crowdwatch.config.flow import LineConfig, check_unique_line_names
from crowdwatch.config.zones import GroundPlane, ZoneConfig


class IgnoreRegion(Strict):
    """An area whose people are not counted (mannequins, posters, reflections, a kiosk)."""

    polygon: list[Point] = Field(description="vertices in pixels, or 0-1 when normalized")
    normalized: bool = Field(False, description="polygon coordinates are fractions of width/height")

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(cls, points: list[Point]) -> list[Point]:
        return check_polygon(points, "region")

    @model_validator(mode="after")
    def _normalized_range(self) -> IgnoreRegion:
        check_normalized(self.polygon, self.normalized)
        return self

    def pixels(self, width: int, height: int) -> list[Point]:
        """The polygon in pixels of a frame of this size."""
        if not self.normalized:
            return list(self.polygon)
        return [(x * width, y * height) for x, y in self.polygon]


class CameraConfig(Strict):
    """One frame source and the zones drawn on it."""

    id: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN,
                    description="label value in metrics; letters, digits, _ . : -")
    source: str | int = Field(description="video file, image folder, device index, "
                              "or rtsp:// http:// URL")
    zones: list[ZoneConfig] = Field(default_factory=list, max_length=256)
    lines: list[LineConfig] = Field(default_factory=list, max_length=256, description="counting "
                                    "lines (people in / out), names unique per camera; "
                                    "turn tracking on")
    ignore: list[IgnoreRegion] = Field(
        default_factory=list, max_length=256, description="areas whose people are dropped "
        "before counting: a person whose box's bottom centre lies inside is not counted")
    anchor: Anchor = Field("bottom_center", description="default zone anchor for this camera")
    ground_plane: GroundPlane | None = Field(None, description="homography for zone areas")
    realtime: bool = Field(False, description="pace file sources at their own frame rate")
    loop: bool = Field(False, description="restart a file source at its end, like a camera")
    read_timeout_s: float = Field(5.0, gt=0, le=600,
                                  description="a live source with no frame this long is down")
    max_backoff_s: float = Field(30.0, ge=0.1, le=3600,
                                 description="longest wait between reconnect attempts")
    analysis_fps: float | None = Field(
        None, gt=0, le=120, description="analyse at most this many frames per second of the "
        "camera; the others are still decoded (the newest frame stays fresh) but skipped "
        "before the detector. detector.detect_every then applies to the analysed frames: the "
        "detector runs analysis_fps / detect_every times a second. None: every frame it gets")
    min_analysis_fps: float | None = Field(
        1.0, gt=0, le=120, description="log a warning while this live camera is analysed fewer "
        "frames per second than this (over the last 30 s; once until it recovers); None: "
        "no warning")
    min_received_ratio: float = Field(
        0.8, ge=0, le=1, description="log a warning while a live camera receives less than "
        "this fraction of its stream's nominal frame rate; 0: no warning")

    @model_validator(mode="after")
    def _minimum_below_cap(self) -> CameraConfig:
        if (self.analysis_fps is not None and self.min_analysis_fps is not None
                and self.min_analysis_fps > self.analysis_fps):
            raise ValueError(f"min_analysis_fps ({self.min_analysis_fps:g}) is above "
                             f"analysis_fps ({self.analysis_fps:g}): lower it or leave it out")
        return self

    @field_validator("zones")
    @classmethod
    def _unique_zones(cls, zones: list[ZoneConfig]) -> list[ZoneConfig]:
        require_unique("zone names", [z.name for z in zones])
        return zones

    @field_validator("lines")
    @classmethod
    def _unique_lines(cls, lines: list[LineConfig]) -> list[LineConfig]:
        return check_unique_line_names(lines)

    @property
    def wants_tracking(self) -> bool:
        """Lines or dwell need tracked identities (tracker.enabled: auto)."""
        return bool(self.lines) or any(z.dwell for z in self.zones)

    @field_validator("source")
    @classmethod
    def _source(cls, source: str | int) -> str | int:
        if isinstance(source, int) and source < 0:
            raise ValueError(f"device index must be >= 0, got {source}")
        if isinstance(source, str) and not source.strip():
            raise ValueError("must not be empty")
        return source


