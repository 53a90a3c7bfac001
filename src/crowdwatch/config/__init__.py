"""The YAML configuration, validated by per-domain pydantic models (unknown keys are errors)."""

from crowdwatch.config.app import AppConfig, CountingConfig, MetricsConfig
from crowdwatch.config.base import Anchor, Point
from crowdwatch.config.camera import CameraConfig
from crowdwatch.config.detector import DetectorConfig
from crowdwatch.config.loader import (
    format_validation_error,
    load_config,
    parse_config,
    quick_config,
)
from crowdwatch.config.web import HeatmapConfig, PreviewConfig, RecordingConfig, WebConfig
from crowdwatch.config.zones import WHOLE_FRAME, GroundPlane, LevelThresholds, ZoneConfig

__all__ = [
    "WHOLE_FRAME", "Anchor", "AppConfig", "CameraConfig", "CountingConfig", "DetectorConfig",
    "GroundPlane", "HeatmapConfig", "LevelThresholds", "MetricsConfig", "Point", "PreviewConfig",
    "RecordingConfig", "WebConfig", "ZoneConfig",
    "format_validation_error", "load_config", "parse_config", "quick_config",
]
