"""Configuration of people flow: counting lines, the tracker and dwell times.

Lines are `cameras[].lines[]`; the tracker (with relinking) and dwell are the top-level
`tracker:` and `dwell:` sections; a zone asks for dwell times with `dwell: true`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from crowdwatch.config.base import (
    NAME_PATTERN,
    Point,
    Strict,
    check_name,
    check_points,
    require_unique,
)

# The trackers crowdwatch.track registers in TRACKERS (a test keeps the two the same).
TrackerName = Literal["bytetrack", "sort", "ocsort"]


class LineConfig(Strict):
    """A named counting line; `in` is a crossing from the negative to the positive side.

    side(p) = (x2 - x1)(py - y1) - (y2 - y1)(px - x1) in pixels; with image y pointing down, a
    line drawn left to right has its positive side below it, so `in` means walking downwards.
    """

    name: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN,
                      description="label value in metrics; letters, digits, _ . : -")
    points: list[Point] = Field(description="the two end points [[x1, y1], [x2, y2]], in "
                                "pixels, or 0-1 when normalized")
    normalized: bool = Field(False, description="points are fractions of width/height")
    band_px: float = Field(6.0, ge=0, le=1000, description="hysteresis half-width in pixels: a "
                           "track changes side only once its foot point is this far past the line")
    segment_tolerance: float = Field(0.05, ge=0, le=1, description="a crossing counts when it "
                                     "lies on the segment, extended by this fraction of its "
                                     "length at each end")
    min_track_age_s: float = Field(0.2, ge=0, le=3600, description="a track must have been seen "
                                   "this long (capture time) before its crossings count")

    @field_validator("points")
    @classmethod
    def _two_distinct(cls, points: list[Point]) -> list[Point]:
        check_points(points, 2)
        if len(points) != 2:
            raise ValueError(f"a line needs exactly 2 points, got {len(points)}")
        if tuple(points[0]) == tuple(points[1]):
            raise ValueError(f"the two points are equal ({points[0][0]}, {points[0][1]}); "
                             "a line needs two different end points")
        return points

    @model_validator(mode="after")
    def _normalized_range(self) -> LineConfig:
        if self.normalized and any(not (0 <= v <= 1) for p in self.points for v in p):
            raise ValueError("points: normalized coordinates must lie between 0 and 1")
        return self


def check_unique_line_names(lines: list[LineConfig]) -> list[LineConfig]:
    """Raise ValueError naming the repeated line names (use in a field_validator)."""
    require_unique("line names", [line.name for line in lines])
    return lines


class RelinkConfig(Strict):
    """Joins a broken track to its successor so a crossing is still counted once."""

    within_s: float = Field(2.0, ge=0, le=60, description="a new id born this soon after an old "
                            "id was lost inherits its state (0 disables relinking)")
    within_px: float = Field(60.0, ge=0, le=10_000, description="... and this close (pixels) to "
                             "where the old id's foot point was last seen")
    forget_s: float = Field(5.0, gt=0, le=3600, description="state of a track unseen this long "
                            "is dropped")

    @model_validator(mode="after")
    def _forget_after_relink(self) -> RelinkConfig:
        if self.forget_s < self.within_s:
            raise ValueError(f"forget_s ({self.forget_s}) must be >= within_s ({self.within_s})")
        return self


class TrackerConfig(Strict):
    """The multi-object tracker behind the line counts and dwell times."""

    enabled: Literal["auto"] | bool = Field("auto", description="auto: track the cameras that "
                                            "have lines or a zone with dwell: true; true: track "
                                            "every camera; false: never (lines and dwell are "
                                            "then errors)")
    name: TrackerName = Field("bytetrack", description="tracker: bytetrack, sort or ocsort")
    # Tuned for the detector's low 0.15 confidence: ByteTrack's second stage matches the weak
    # boxes to existing tracks, but only boxes above activation start a new track.
    high_confidence: float = Field(0.3, gt=0, lt=1, description="boxes at or above this take "
                                   "part in the first association stage (below: second stage)")
    activation_confidence: float = Field(0.35, gt=0, lt=1, description="lowest confidence of a "
                                         "box that may start a new track")
    min_iou: float = Field(0.1, gt=0, le=1, description="lowest IoU between a predicted track "
                           "box and a detection that may match them")
    confirm_frames: int = Field(3, ge=1, le=100, description="detections in a row before a track "
                                "is confirmed and gets an id (unconfirmed boxes have id -1)")
    lost_s: float = Field(1.5, gt=0, le=60, description="seconds a track without detections is "
                          "kept (and can resume its id)")
    # Measured on PETS2009 (7 fps): the library's 30 fps reference gave IDF1 0.50 and 62 id
    # switches, the stream's own 7 fps gave 0.82 and 23 (the Kalman noise is tuned per frame).
    frame_rate: float | None = Field(None, gt=0, le=1000, description="frame rate the Kalman "
                                     "filter's steps are tuned for; default: the source's own "
                                     "nominal rate (build_tracker's fps), else 10")
    relink: RelinkConfig = Field(default_factory=RelinkConfig, description="joining of broken "
                                 "tracks, for line crossings and dwell")

    @field_validator("name", mode="before")
    @classmethod
    def _known(cls, name: object) -> object:
        return check_name("tracker", TrackerName, name)

    @model_validator(mode="after")
    def _activation_above_high(self) -> TrackerConfig:
        if self.activation_confidence < self.high_confidence:
            raise ValueError(f"activation_confidence ({self.activation_confidence}) must be >= "
                             f"high_confidence ({self.high_confidence}): only first-stage boxes "
                             "can start tracks")
        return self


class DwellConfig(Strict):
    """How visits to a zone are delimited."""

    enter_s: float = Field(1.0, ge=0, le=3600, description="a track must be inside a zone this "
                           "long (capture time) before its visit starts; the visit is timed from "
                           "its first moment inside")
    leave_s: float = Field(1.0, ge=0, le=3600, description="a track must be outside this long "
                           "before its visit ends; the visit ends at its first moment outside")
    lost_s: float = Field(3.0, gt=0, le=3600, description="a track unseen this long ends its "
                          "visit at the last time it was seen inside")
