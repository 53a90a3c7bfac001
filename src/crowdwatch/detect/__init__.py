"""Person detector stage: interchangeable inference backends behind one Detector interface.

- ``openvino`` (detect/openvino.py) drives an OpenVINO IR directly; no torch, no ultralytics.
- ``ultralytics`` (detect/ultralytics.py) calls ``YOLO.predict`` on any model it reads.
- ``auto`` picks openvino for an OpenVINO model folder and ultralytics otherwise.

Every backend returns Detections in original-frame pixels from ``submit``, which starts the
work on one image and returns a Pending, so a caller can keep several frames in flight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crowdwatch.config import DetectorConfig
    from crowdwatch.detect.base import Detector


def create_detector(config: DetectorConfig) -> Detector:
    """The configured backend on the configured model; ModelError if it cannot load."""
    from crowdwatch.detect.backends import BACKENDS, choose_backend
    from crowdwatch.detect.models import resolve_model
    from crowdwatch.errors import ModelError

    model_path = resolve_model(config.model)
    name = choose_backend(config, model_path)
    if name == "openvino" and not model_path.is_dir():
        raise ModelError(f"backend openvino needs an OpenVINO model folder, got {model_path}; "
                         "use detector.backend: ultralytics")
    from crowdwatch.detect.integrity import record_loaded, verify_model

    detector = BACKENDS.get(name)(config, model_path)
    record_loaded(verify_model(model_path))
    return detector
