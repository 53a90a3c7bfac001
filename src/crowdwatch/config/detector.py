"""The person detector."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from crowdwatch.config.base import Strict
from crowdwatch.detect.backends import BACKENDS


class DetectorConfig(Strict):
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
    backend: str = Field(
        "auto", description="inference engine: openvino (OpenVINO folders only, fastest on CPU), "
        "ultralytics (any model ultralytics reads), auto (openvino for an OpenVINO folder)")
    input_shape: Literal["square", "stream"] = Field(
        "stream", description="model input: square (imgsz x imgsz letterbox) or stream "
        "(imgsz on the long side, the stream's aspect ratio: less padding, faster)")
    detect_every: int = Field(
        1, ge=1, le=100, description="run the detector on every k-th frame of a camera; the "
        "frames between reuse its people (faster, counts lag by up to k-1 frames)")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, name: str) -> str:
        if name != "auto" and name not in BACKENDS:
            raise ValueError(BACKENDS.unknown(name) + ", auto")
        return name
