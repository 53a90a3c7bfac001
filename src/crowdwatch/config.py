"""The YAML configuration, validated by per-domain pydantic models (unknown keys are errors)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Literal

import shapely
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from crowdwatch.errors import ConfigError
from crowdwatch.smoothing import SmootherRegistry

Anchor = Literal["bottom_center", "center"]
Point = tuple[float, float]

# Keys printed bare in an error's key path; any other key is printed quoted.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")

WHOLE_FRAME = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_points(points: list[Point], minimum: int) -> list[Point]:
    if len(points) < minimum:
        raise ValueError(f"needs at least {minimum} points, got {len(points)}")
    for x, y in points:
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"point ({x}, {y}) is not a finite number")
        if abs(x) > 1e6 or abs(y) > 1e6:
            raise ValueError(f"point ({x}, {y}) is out of range (|coordinate| <= 1e6)")
    return points


def _require_unique(what: str, names: list[str]) -> None:
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{what} must be unique, repeated: {', '.join(repeated)}")


class LevelThresholds(_Strict):
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


class ZoneConfig(_Strict):
    """A named polygon in one camera's image."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
                      description="label value in metrics; letters, digits, _ . : -")
    polygon: list[Point] = Field(description="vertices in pixels, or 0-1 when normalized")
    normalized: bool = Field(False, description="polygon coordinates are fractions of width/height")
    capacity: int | None = Field(None, ge=1, le=1_000_000,
                                 description="people the zone holds; enables occupancy and levels")
    area_m2: float | None = Field(None, gt=0, le=1e8,
                                  description="ground area in m^2; enables density")
    anchor: Anchor | None = Field(None, description="point of a person's box tested against the "
                                  "zone; defaults to the camera's anchor")
    levels: LevelThresholds | None = Field(None, description="overrides the global levels")

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(cls, points: list[Point]) -> list[Point]:
        _check_points(points, 3)
        polygon = shapely.Polygon(points)
        if not polygon.is_valid:
            reason = shapely.is_valid_reason(polygon)
            raise ValueError(f"is not a simple polygon ({reason}); "
                             "list the vertices in order around the zone without crossing edges")
        if polygon.area <= 0:
            raise ValueError("has zero area; its points must not all lie on one line")
        return points

    @model_validator(mode="after")
    def _normalized_range(self) -> ZoneConfig:
        if self.normalized and any(not (0 <= v <= 1) for p in self.polygon for v in p):
            raise ValueError("polygon: normalized coordinates must lie between 0 and 1")
        return self


class GroundPlane(_Strict):
    """Image-point to ground-point (metres) pairs that define a homography for zone areas."""

    image_points: list[Point] = Field(description="pixel coordinates in the camera image")
    ground_points: list[Point] = Field(description="the same points on the ground, in metres")

    @field_validator("image_points", "ground_points")
    @classmethod
    def _enough(cls, points: list[Point]) -> list[Point]:
        return _check_points(points, 4)

    @model_validator(mode="after")
    def _paired(self) -> GroundPlane:
        if len(self.image_points) != len(self.ground_points):
            raise ValueError(
                f"image_points has {len(self.image_points)} points but ground_points has "
                f"{len(self.ground_points)}; give one ground point per image point"
            )
        return self


class CameraConfig(_Strict):
    """One frame source and the zones drawn on it."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
                    description="label value in metrics; letters, digits, _ . : -")
    source: str | int = Field(description="video file, image folder, device index, "
                              "or rtsp:// http:// URL")
    zones: list[ZoneConfig] = Field(default_factory=list, max_length=256)
    anchor: Anchor = Field("bottom_center", description="default zone anchor for this camera")
    ground_plane: GroundPlane | None = Field(None, description="homography for zone areas")
    realtime: bool = Field(False, description="pace file sources at their own frame rate")
    loop: bool = Field(False, description="restart a file source at its end, like a camera")
    read_timeout_s: float = Field(5.0, gt=0, le=600,
                                  description="a live source with no frame this long is down")
    max_backoff_s: float = Field(30.0, ge=0.1, le=3600,
                                 description="longest wait between reconnect attempts")

    @field_validator("zones")
    @classmethod
    def _unique_zones(cls, zones: list[ZoneConfig]) -> list[ZoneConfig]:
        _require_unique("zone names", [z.name for z in zones])
        return zones

    @field_validator("source")
    @classmethod
    def _source(cls, source: str | int) -> str | int:
        if isinstance(source, int) and source < 0:
            raise ValueError(f"device index must be >= 0, got {source}")
        if isinstance(source, str) and not source.strip():
            raise ValueError("must not be empty")
        return source


class DetectorConfig(_Strict):
    """The person detector."""

    model: str = Field("yolo11n_int8_openvino_model",
                       description="a path (.pt, .onnx, OpenVINO folder) or a name in models/")
    # Defaults tuned on PETS2009 S2.L1 together with `counting` (docs/ACCURACY.md): a low
    # threshold finds partly hidden people, and the counting filter removes the ghosts it adds.
    confidence: float = Field(0.15, gt=0, lt=1, description="minimum detection confidence "
                              "(low on purpose: counting.smoothing removes short-lived ghosts)")
    iou: float = Field(0.45, gt=0, le=1, description="IoU above which NMS merges boxes")
    imgsz: int = Field(640, ge=32, le=4096, multiple_of=32,
                       description="model input size (long side for input_shape stream)")
    max_det: int = Field(1000, ge=1, le=100_000,
                         description="most people per frame (ultralytics' default 300 caps crowds)")
    threads: int | None = Field(None, ge=1, le=256,
                                description="CPU threads for inference; default all cores")
    backend: Literal["auto", "openvino", "ultralytics"] = Field(
        "auto", description="inference engine: openvino (OpenVINO folders only, fastest on CPU), "
        "ultralytics (any model ultralytics reads), auto (openvino for an OpenVINO folder)")
    input_shape: Literal["square", "stream"] = Field(
        "stream", description="model input: square (imgsz x imgsz letterbox) or stream "
        "(imgsz on the long side, the stream's aspect ratio: less padding, faster)")
    detect_every: int = Field(
        1, ge=1, le=100, description="run the detector on every k-th frame of a camera; the "
        "frames between reuse its people (faster, counts lag by up to k-1 frames)")


class CountingConfig(_Strict):
    """How per-frame counts are stabilised over time (raw counts are exported too)."""

    smoothing: str = Field("persistence", description="temporal filter: none, median (of the "
                           "last window frames) or persistence (a change must last window frames)")
    window: int = Field(3, ge=1, le=1000, description="frames the filter looks back over; a "
                        "real change shows window - 1 (persistence) or window / 2 (median) late")

    @field_validator("smoothing")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in SmootherRegistry.strategies:
            valid = ", ".join(sorted(SmootherRegistry.strategies))
            raise ValueError(f"unknown smoothing {name!r}; valid: {valid}")
        return name


class MetricsConfig(_Strict):
    """The Prometheus endpoint."""

    host: str = Field("0.0.0.0", description="address to bind; 127.0.0.1 for local only")
    port: int = Field(9108, ge=0, le=65535, description="TCP port; 0 picks a free one")
    enabled: bool = Field(True, description="serve /metrics")


class AppConfig(_Strict):
    """The whole configuration file."""

    cameras: Annotated[list[CameraConfig], Field(min_length=1, max_length=64)]
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    counting: CountingConfig = Field(default_factory=CountingConfig)
    levels: LevelThresholds = Field(default_factory=LevelThresholds,
                                    description="default level thresholds for every zone")

    @field_validator("cameras")
    @classmethod
    def _unique_cameras(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        _require_unique("camera ids", [c.id for c in cameras])
        return cameras


def format_validation_error(error: ValidationError, limit: int = 3) -> str:
    """One line naming the key path and the problem of each error (the first few)."""
    parts = []
    for item in error.errors()[:limit]:
        path = ""
        for key in item["loc"]:
            if isinstance(key, int):
                path += f"[{key}]"
            elif not _PLAIN_KEY.fullmatch(key):
                # Quoted: an odd key (a newline, a dot, nothing at all) stays on one line
                # and cannot be mistaken for a path.
                path += f"[{key!r}]"
            else:
                path += f".{key}" if path else key
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling)"
        elif item["type"] == "missing":
            message = "is required"
        parts.append(f"{path or '(top level)'}: {message}")
    more = len(error.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_config(data: object, origin: str = "config") -> AppConfig:
    """Validate already-parsed YAML data."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: must be a mapping with a 'cameras' list at the top level")
    try:
        return AppConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{origin}: {format_validation_error(error)}") from None


def load_config(path: str | Path) -> AppConfig:
    """Read and validate a YAML config file; every problem is a ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config file ({error})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    return parse_config(data, str(path))


def quick_config(source: str | int, model: str | None = None) -> AppConfig:
    """A config for one source with the whole frame as a single zone named 'all'."""
    detector = DetectorConfig(model=model) if model else DetectorConfig()
    zone = ZoneConfig(name="all", polygon=WHOLE_FRAME, normalized=True)
    return AppConfig(cameras=[CameraConfig(id="cam0", source=source, zones=[zone])],
                     detector=detector)
