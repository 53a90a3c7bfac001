"""The whole configuration file and its remaining domains (counting, metrics)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from crowdwatch.analytics.smoothing import SMOOTHERS
from crowdwatch.config.base import Strict, require_unique
from crowdwatch.config.camera import CameraConfig
from crowdwatch.config.detector import DetectorConfig
from crowdwatch.config.web import RecordingConfig, WebConfig
from crowdwatch.config.zones import LevelThresholds


class CountingConfig(Strict):
    """How per-frame counts are stabilised over time (raw counts are exported too)."""

    smoothing: str = Field("persistence", description="temporal filter: none, median (of the "
                           "last window frames) or persistence (a change must last window frames)")
    window: int = Field(3, ge=1, le=1000, description="frames the filter looks back over; a "
                        "real change shows window - 1 (persistence) or window / 2 (median) late")

    @field_validator("smoothing")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in SMOOTHERS:
            raise ValueError(SMOOTHERS.unknown(name))
        return name


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

    @field_validator("cameras")
    @classmethod
    def _unique_cameras(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        require_unique("camera ids", [c.id for c in cameras])
        return cameras


