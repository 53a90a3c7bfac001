"""The detector backends by name; each loads its engine only when a config asks for it.

A new backend is a module with a class that implements detect.base.Detector, registered here
with a factory that imports it, so that listing the names (config validation, --help) loads
no inference engine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from crowdwatch.registry import Registry

if TYPE_CHECKING:
    from crowdwatch.config import DetectorConfig
    from crowdwatch.detect.base import Detector

BackendFactory = Callable[["DetectorConfig", Path], "Detector"]
BACKENDS: Registry[BackendFactory] = Registry("detector backend")


@BACKENDS.register("openvino")
def _openvino(config: DetectorConfig, model_path: Path) -> Detector:
    from crowdwatch.detect.openvino import OpenVINOBackend

    return OpenVINOBackend(config, model_path)


@BACKENDS.register("ultralytics")
def _ultralytics(config: DetectorConfig, model_path: Path) -> Detector:
    from crowdwatch.detect.ultralytics import UltralyticsBackend

    return UltralyticsBackend(config, model_path)


def choose_backend(config: DetectorConfig, model_path: Path) -> str:
    """The backend for a config: 'auto' means openvino for an OpenVINO folder."""
    if config.backend != "auto":
        return config.backend
    return "openvino" if model_path.is_dir() else "ultralytics"
