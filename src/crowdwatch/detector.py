"""Person detector stage: ultralytics YOLO restricted to COCO class 0, returning Detections."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from crowdwatch.config import DetectorConfig
from crowdwatch.errors import ModelError
from crowdwatch.types import Detections

PERSON_CLASS = 0
MODEL_SUFFIXES = (".pt", ".onnx", "_openvino_model")
MODELS_HELP = "see models/README.md for how to download or export it"


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


def model_search_dirs() -> list[Path]:
    """Folders searched, in order, for a model given by name."""
    dirs = []
    if env_dir := os.environ.get("CROWDWATCH_MODEL_DIR"):
        dirs.append(Path(env_dir))
    dirs.append(Path.cwd() / "models")
    dirs.append(Path.home() / ".cache" / "crowdwatch" / "models")
    return dirs


def resolve_model(name: str) -> Path:
    """Find a model file or OpenVINO folder; CROWDWATCH_MODEL overrides the configured name."""
    name = os.environ.get("CROWDWATCH_MODEL") or name
    given = Path(name).expanduser()
    if given.exists():
        candidates = [given]
    elif given.is_absolute() or len(given.parts) > 1:
        raise ModelError(f"model {name!r} not found; check the path, or {MODELS_HELP}")
    else:
        candidates = [d / name for d in model_search_dirs()]
    for path in candidates:
        if path.exists():
            if path.is_dir() and not any(path.glob("*.xml")):
                raise ModelError(f"model folder {path} holds no OpenVINO .xml file; {MODELS_HELP}")
            if not (path.is_dir() or path.suffix in (".pt", ".onnx")):
                raise ModelError(f"model {path} is not a .pt, .onnx or OpenVINO folder")
            return path
    searched = ", ".join(str(d) for d in model_search_dirs())
    raise ModelError(
        f"model {name!r} not found in {searched} (it is never downloaded at run time); "
        f"set CROWDWATCH_MODEL to its path, or {MODELS_HELP}"
    )


class PersonDetector:
    """Runs a YOLO model on frames and keeps only people. Safe to share between threads."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.model_path = resolve_model(config.model)
        configure_ultralytics()
        threads = config.threads or os.cpu_count() or 1
        import torch  # after configure_ultralytics, like ultralytics itself

        # ultralytics leaves torch at one thread on small machines; use the cores we were given.
        torch.set_num_threads(threads)
        from ultralytics import YOLO

        try:
            self._model = YOLO(str(self.model_path), task="detect")
        except Exception as error:  # ultralytics raises many types for unreadable weights
            raise ModelError(f"cannot load model {self.model_path}: {error}") from None
        self._lock = threading.Lock()

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        """People in one BGR image."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        """People in each of several BGR images."""
        if not images:
            return []
        with self._lock:
            results = self._model.predict(
                list(images),
                classes=[PERSON_CLASS],
                conf=self.config.confidence,
                iou=self.config.iou,
                imgsz=self.config.imgsz,
                max_det=self.config.max_det,
                verbose=False,
            )
        out = []
        for result in results:
            boxes = result.boxes
            out.append(
                Detections(
                    xyxy=boxes.xyxy.cpu().numpy().astype(np.float32, copy=False),
                    confidence=boxes.conf.cpu().numpy().astype(np.float32, copy=False),
                )
            )
        return out
