"""The ultralytics backend: YOLO.predict on any model ultralytics reads (.pt, .onnx, ...).

The reference the openvino backend is tested against. It imports torch, so it loads only when
a config asks for it.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from crowdwatch.config import DetectorConfig
from crowdwatch.detect.base import PERSON_CLASS, Detector, Done, Image, Pending, available_cores
from crowdwatch.errors import ModelError
from crowdwatch.types import Detections


def configure_ultralytics() -> None:
    """Keep ultralytics offline, out of the user's home and away from pip.

    Must run before ultralytics is imported: it reads these variables at import time.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    # Its logger writes to stdout, which may carry our JSON Lines events.
    os.environ.setdefault("YOLO_VERBOSE", "0")
    os.environ.setdefault(
        "YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "crowdwatch-ultralytics")
    )


class UltralyticsBackend(Detector):
    """YOLO.predict on each image; one call at a time (ultralytics is not thread-safe)."""

    name = "ultralytics"

    def __init__(self, config: DetectorConfig, model_path: Path) -> None:
        self.config = config
        self.model_path = model_path
        configure_ultralytics()
        try:
            import torch  # after configure_ultralytics, like ultralytics itself
            from ultralytics import YOLO
        except ImportError:
            raise ModelError(
                f"model {model_path} needs the ultralytics backend, which is not installed: "
                f'run pip install "crowdwatch[ultralytics]", or use an OpenVINO model folder'
            ) from None
        if model_path.suffix == ".onnx" and importlib.util.find_spec("onnxruntime") is None:
            raise ModelError(f"ONNX model {model_path} needs onnxruntime: run pip install "
                             "onnxruntime, or use an OpenVINO model folder")

        # ultralytics leaves torch at one thread on small machines; use the cores we were given.
        torch.set_num_threads(config.threads or available_cores())

        try:
            self._model = YOLO(str(model_path), task="detect")
        except Exception as error:  # ultralytics raises many types for unreadable weights
            raise ModelError(f"cannot load model {model_path}: {error}") from None
        self._lock = threading.Lock()

    def predict(self, images: Sequence[Image], input_size: int | None = None) -> list[Done]:
        with self._lock:
            results = self._model.predict(
                list(images),
                classes=[PERSON_CLASS],
                conf=self.config.confidence,
                iou=self.config.iou,
                imgsz=input_size or self.config.imgsz,
                max_det=self.config.max_det,
                # A .pt model letterboxes to the stream's aspect; fixed-shape exports ignore it.
                rect=self.config.input_shape == "stream",
                verbose=False,
            )
        out = []
        for result in results:
            boxes = result.boxes
            detections = Detections(
                xyxy=boxes.xyxy.cpu().numpy().astype(np.float32, copy=False),
                confidence=boxes.conf.cpu().numpy().astype(np.float32, copy=False),
            )
            # ultralytics times each stage in milliseconds.
            seconds = {stage: ms / 1000 for stage, ms in result.speed.items() if ms is not None}
            out.append(Done(detections, seconds))
        return out

    def submit(self, image: Image, input_size: int | None = None) -> Pending:
        return self.predict([image], input_size)[0]

    def prepare(self, width: int, height: int) -> None:
        """Nothing to prepare: ultralytics sizes its input per call."""
        del width, height
