"""Zones drawn on a camera image, their occupancy levels and the ground plane."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from crowdwatch.config.base import (
    Anchor,
    Point,
    Strict,
    check_label,
    check_normalized,
    check_points,
    check_polygon,
)

WHOLE_FRAME = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]


class LevelThresholds(Strict):
    """Occupancy ratios at which a zone turns warning / critical, with hysteresis."""

    warning: float = Field(0.8, gt=0, le=10, description="occupancy ratio that enters warning")
    critical: float = Field(1.0, gt=0, le=10, description="occupancy ratio that enters critical")
    hysteresis: float = Field(
        0.1, ge=0, le=1, description="a level is left only below its threshold minus this ratio"
    )
    clear_frames: int = Field(
        5, ge=1, le=100_000, description="frames in a row below a level before it is left"
    )

    @model_validator(mode="after")
    def _ordered(self) -> LevelThresholds:
        if self.critical < self.warning:
            raise ValueError(
                f"critical ({self.critical}) must be >= warning ({self.warning})"
            )
        return self


class ZoneConfig(Strict):
    """A named polygon in one camera's image."""

    name: str = Field(min_length=1, max_length=64,
                      description="label value in metrics: any printable text (Unicode "
                      "allowed) without quotes, backslashes or control characters")
    polygon: list[Point] = Field(description="vertices in pixels, or 0-1 when normalized")
    normalized: bool = Field(False, description="polygon coordinates are fractions of width/height")
    capacity: int | None = Field(None, ge=1, le=1_000_000,
                                 description="people the zone holds; enables occupancy and levels")
    area_m2: float | None = Field(None, gt=0, le=1e8,
                                  description="ground area in m^2; enables density")
    anchor: Anchor | None = Field(None, description="point of a person's box tested against the "
                                  "zone; defaults to the camera's anchor")
    levels: LevelThresholds | None = Field(None, description="overrides the global levels")
    dwell: bool = Field(False, description="time each tracked person's visit (dwell: settings); "
                        "turns tracking on for the camera")

    @field_validator("name")
    @classmethod
    def _printable_name(cls, name: str) -> str:
        return check_label(name)

    @field_validator("capacity", "area_m2", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: object) -> object:
        # YAML reads yes/no/on/off as booleans, and a boolean is an int to pydantic: 1.
        if isinstance(value, bool):
            raise ValueError(f"must be a number, not {str(value).lower()} (yes/no/on/off "
                             "are booleans in YAML)")
        return value

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(cls, points: list[Point]) -> list[Point]:
        return check_polygon(points, "zone")

    @model_validator(mode="after")
    def _normalized_range(self) -> ZoneConfig:
        check_normalized(self.polygon, self.normalized)
        return self


class GroundPlane(Strict):
    """Image-point to ground-point (metres) pairs that define a homography for zone areas."""

    image_points: list[Point] = Field(description="pixel coordinates in the camera image")
    ground_points: list[Point] = Field(description="the same points on the ground, in metres")

    @field_validator("image_points", "ground_points")
    @classmethod
    def _enough(cls, points: list[Point]) -> list[Point]:
        return check_points(points, 4)

    @model_validator(mode="after")
    def _paired(self) -> GroundPlane:
        if len(self.image_points) != len(self.ground_points):
            raise ValueError(
                f"image_points has {len(self.image_points)} points but ground_points has "
                f"{len(self.ground_points)}; give one ground point per image point"
            )
        return self


