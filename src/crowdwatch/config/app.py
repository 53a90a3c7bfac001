"""The whole configuration file and its remaining domains (counting, metrics)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from crowdwatch.config.base import Strict, check_name, require_unique
from crowdwatch.config.camera import CameraConfig
from crowdwatch.config.detector import DetectorConfig
from crowdwatch.config.flow import DwellConfig, TrackerConfig
from crowdwatch.config.integrations import (
    MqttConfig,
    SiteConfig,
    StateConfig,
    WebhookConfig,
    check_sites,
)
from crowdwatch.config.web import HeatmapConfig, RecordingConfig, WebConfig
from crowdwatch.config.zones import LevelThresholds

# The strategies analytics/smoothing.py registers in SMOOTHERS (a test keeps the two the same).
Smoothing = Literal["none", "median", "persistence"]
# What a camera's counts come from (analytics/counting.py; density: crowdwatch/density/).
CountingMethod = Literal["auto", "boxes", "density"]


class DensityTilesConfig(Strict):
    """``counting.density_tiles``: frames whose density map shows a crowd too dense for one
    pass (heads of a few input pixels) count from the crowd head, their dense cells again on
    zoomed tiles, the maps stitched (crowdwatch/density/tiles.py; measured in
    docs/ACCURACY.md). Only those frames cost more."""

    mode: Literal["auto", "off"] = Field("auto", description="auto: a frame whose whole-frame "
                                         "density map reaches peak_people and min_people is "
                                         "counted by the crowd head, its dense cells on tiles; "
                                         "off: never (the main head's whole-frame map)")
    peak_people: float = Field(0.5, ge=0.0, le=100.0, description="people per density cell "
                               "(8x8 model-input pixels) in the densest 4x4 block of cells "
                               "(0-100) from which a frame is too dense for one pass; 0.5: "
                               "heads closer than about 11 input pixels")
    min_people: float = Field(100.0, ge=0.0, le=1_000_000.0, description="and at least this "
                              "many people in the whole frame (0-1000000), so a small dense "
                              "group never costs tiles")
    zoom: float = Field(2.0, ge=1.0, le=8.0, description="tile side = the frame's long side / "
                        "zoom (1-8); each tile fills the model input, so heads look zoom times "
                        "larger")
    overlap: float = Field(0.2, ge=0.0, le=0.5, description="least overlap of neighbouring "
                           "tiles, as a share of the tile side (0-0.5); each tile counts only "
                           "its core, the overlaps split at their middles")


class CountingConfig(Strict):
    """Where counts come from, and how per-frame counts are stabilised over time (raw counts
    are exported too)."""

    method: CountingMethod = Field("auto", description="what zone and frame counts come from: "
                                   "boxes (one per detected person), density (the density map "
                                   "integrated over each zone, rounded to whole people; needs "
                                   "the openvino backend and the shipped detector) or auto "
                                   "(chosen per camera from what its frames show, with "
                                   "hysteresis; boxes where density is unavailable). Lines and "
                                   "dwell always use boxes")

    density_imgsz: int | None = Field(
        None, ge=32, le=4096, multiple_of=32, description="model input size (32-4096, a "
        "multiple of 32; long side for detector.input_shape stream) of a camera's whole-frame "
        "passes while it counts from density; null (the default): detector.imgsz always. "
        "768 counts crowds of tens to hundreds better (Mall 2.1 against 2.6, streets 9.3 "
        "against 11.9) but the densest photos worse (ShanghaiTech A 156 against 139), and a "
        "pass costs about 1.5x (docs/ACCURACY.md). Boxes, lines and dwell come from the same "
        "pass; tiles and cameras counting from boxes keep detector.imgsz")
    density_tiles: DensityTilesConfig = Field(default_factory=DensityTilesConfig,
                                              description="very dense frames counted on tiles")
    smoothing: Smoothing = Field("persistence", description="temporal filter: none, median (of the "
                           "last window frames) or persistence (a change must last window frames)")
    window_s: float = Field(0.2, ge=0, le=60, description="seconds the filter looks back over "
                            "(0-60): 1 + window_s x frame rate frames (at most 1000), the rate "
                            "measured from the camera's analysed frames (0.2 s: 3 frames at "
                            "10 fps, 1 at 2 fps, 6 at 25 fps); a real change shows about "
                            "window_s (persistence) or window_s / 2 (median) late. Image "
                            "folders have no frame times: window 1 unless counting.window is set")
    window: int | None = Field(None, ge=1, le=1000, description="a fixed number of frames "
                               "(1-1000) instead of window_s, whatever the frame rate; unset by "
                               "default")

    @field_validator("smoothing", mode="before")
    @classmethod
    def _known(cls, name: object) -> object:
        return check_name("smoothing", Smoothing, name)

    @field_validator("method", mode="before")
    @classmethod
    def _known_method(cls, name: object) -> object:
        return check_name("method", CountingMethod, name)

    @model_validator(mode="after")
    def _one_window(self) -> CountingConfig:
        if self.window is not None and "window_s" in self.model_fields_set:
            raise ValueError("window (frames) and window_s (seconds) are both set; keep one "
                             "(window_s follows the camera's frame rate)")
        return self


class MetricsConfig(Strict):
    """The Prometheus endpoint."""

    host: str = Field("0.0.0.0", description="address to bind; 127.0.0.1 for local only")
    port: int = Field(9108, ge=0, le=65535, description="TCP port; 0 picks a free one")
    enabled: bool = Field(True, description="serve /metrics")


class AppConfig(Strict):
    """The whole configuration file."""

    cameras: Annotated[list[CameraConfig], Field(min_length=1, max_length=64)]
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    counting: CountingConfig = Field(default_factory=CountingConfig)
    levels: LevelThresholds = Field(default_factory=LevelThresholds,
                                    description="default level thresholds for every zone")
    web: WebConfig = Field(default_factory=WebConfig,
                           description="the live page, previews and zone editor (off by default)")
    recording: RecordingConfig = Field(default_factory=RecordingConfig,
                                       description="an H.264 MP4 per camera (off by default)")
    heatmap: HeatmapConfig = Field(default_factory=HeatmapConfig,
                                   description="where people have been, per camera")
    tracker: TrackerConfig = Field(default_factory=TrackerConfig,
                                   description="the tracker behind lines and dwell")
    dwell: DwellConfig = Field(default_factory=DwellConfig,
                               description="how visits to zones with dwell: true are delimited")
    mqtt: MqttConfig | None = Field(None, description="publish to an MQTT broker (off unless set)")
    webhooks: list[WebhookConfig] = Field(default_factory=list, max_length=32,
                                          description="signed POSTs on level changes")
    sites: list[SiteConfig] = Field(default_factory=list, max_length=256,
                                    description="occupancy and people across cameras")
    state: StateConfig = Field(default_factory=StateConfig,
                               description="line totals and site occupancy across restarts")

    @field_validator("cameras")
    @classmethod
    def _unique_cameras(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        require_unique("camera ids", [c.id for c in cameras])
        return cameras

    @field_validator("sites")
    @classmethod
    def _sites_exist(cls, sites: list[SiteConfig], info: ValidationInfo) -> list[SiteConfig]:
        if "cameras" in info.data:  # else the cameras' own error is reported
            check_sites(sites, info.data["cameras"])
        return sites

    @model_validator(mode="after")
    def _tracking_possible(self) -> AppConfig:
        if self.tracker.enabled is False:
            for i, camera in enumerate(self.cameras):
                if camera.wants_tracking:
                    what = "lines" if camera.lines else "a zone with dwell: true"
                    raise ValueError(f"cameras[{i}] has {what}, which need tracking; set "
                                     "tracker.enabled to auto or true")
        return self

    def tracks(self, camera: CameraConfig) -> bool:
        """Whether the camera's frames go through the tracker."""
        enabled = self.tracker.enabled
        return enabled is True or (enabled == "auto" and camera.wants_tracking)
