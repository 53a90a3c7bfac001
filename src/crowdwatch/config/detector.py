"""The person detector."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from crowdwatch.config.base import Strict, check_name

# The detector backends detect/backends.py registers (a test keeps the two the same), and auto.
Backend = Literal["auto", "openvino", "ultralytics"]


class TilingConfig(Strict):
    """``detector.tiling``: overlapping tiles for cameras whose people are small in the image."""

    mode: Literal["auto", "off", "on"] = Field(
        "auto", description="off: whole frame only; on: whole frame plus tiles always; auto: "
        "tiles while the whole-frame pass sees a crowd (crowd_people) of small people "
        "(large_px), chosen again every probe_frames frames, never more than max_tiles (see "
        "docs/ACCURACY.md)")
    zoom: float = Field(
        2.0, ge=1.0, le=4.0, description="how much tiles magnify people compared with the "
        "whole-frame pass (1-4); sets the tile size: long side of the frame / zoom")
    tile_size: int | None = Field(
        None, ge=64, le=8192, description="tile side in frame pixels (64-8192), instead of "
        "the one zoom gives; tiles are stretched to fit the frame exactly")
    overlap: float = Field(
        0.2, ge=0.0, le=0.5, description="least overlap of neighbouring tiles, as a share of "
        "the tile side (0-0.5); people shorter than it are whole in some tile")
    max_tiles: int = Field(
        6, ge=1, le=64, description="auto: most tiles per frame (1-64); frames that need more "
        "at the chosen zoom are not tiled (their people are large enough; it bounds the cost)")
    crowd_people: float = Field(
        15.0, ge=0.0, le=100_000, description="auto: tile a camera while its whole-frame "
        "pass finds at least this many people per frame on average (0-100000); a tiled camera "
        "keeps its tiles down to half of it; on sparse scenes tiles add more ghosts than people "
        "(docs/ACCURACY.md)")
    large_px: int = Field(
        96, ge=16, le=4096, description="auto: do not tile a camera whose people (10th "
        "percentile of the heights the whole-frame pass finds, in model-input pixels) are at "
        "least this tall (16-4096); YOLO misses people below about half of it")
    probe_frames: int = Field(
        10, ge=1, le=100_000, description="auto: the choice is made every this many frames "
        "(1-100000) from the last this many whole-frame passes; the first ones are analysed "
        "whole")
    merge_iou: float = Field(
        0.5, gt=0.0, le=1.0, description="IoU above which boxes of different passes are one "
        "person (0-1]")
    edge_px: float = Field(
        2.0, ge=0.0, le=64.0, description="a tile box this close (frame pixels, 0-64) to a seam "
        "counts as cut and is dropped")
    skip_for_density: bool = Field(
        False, description="run no tiles on a camera's frames while it counts from its "
        "density map and nothing else needs the tiles' boxes (no lines, no dwell zone, no "
        "blur_people): 2-5x faster on crowd images; the boxes drawn and scored then come "
        "from the whole frame only, and under counting.method auto a camera that switched to "
        "density tends to stay there (docs/ACCURACY.md)")

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_on_off(cls, value: object) -> object:
        # YAML reads a bare on / off as true / false: take them as the words they were.
        if isinstance(value, bool):
            return "on" if value else "off"
        return value


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
    backend: Backend = Field(
        "auto", description="inference engine: openvino (OpenVINO folders only, fastest on CPU), "
        "ultralytics (any model ultralytics reads), auto (openvino for an OpenVINO folder)")
    input_shape: Literal["square", "stream"] = Field(
        "stream", description="model input: square (imgsz x imgsz letterbox) or stream "
        "(imgsz on the long side, the stream's aspect ratio: less padding, faster)")
    detect_every: int = Field(
        1, ge=1, le=100, description="run the detector on every k-th frame of a camera; the "
        "frames between reuse its people (faster, counts lag by up to k-1 frames)")
    fair_share: bool = Field(
        True, description="with several cameras, hand the detector to the cameras in turn "
        "(the one with the fewest frames in it first) so none falls behind the others; false: "
        "first come, first served (only to measure the difference)")

    tiling: TilingConfig = Field(
        default_factory=TilingConfig, description="overlapping zoomed tiles for crowds of "
        "people small in the image (decided per camera in auto mode)")

    @field_validator("backend", mode="before")
    @classmethod
    def _known_backend(cls, name: object) -> object:
        return check_name("detector backend", Backend, name, last=("auto",))
