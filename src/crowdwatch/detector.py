"""Person detector stage: interchangeable inference backends behind one PersonDetector.

Backends (``detector.backend``):

- ``openvino`` drives an OpenVINO IR directly: letterbox by cv2 into the infer request's own
  input buffer, BGR->RGB / scaling folded into the graph, asynchronous requests shared by all
  cameras, NMS by ``cv2.dnn.NMSBoxes``. It imports neither torch nor ultralytics.
- ``ultralytics`` calls ``YOLO.predict``: any format ultralytics reads (.pt, .onnx, ...); the
  reference the openvino backend is tested against.
- ``auto`` picks openvino for an OpenVINO model folder and ultralytics otherwise.

Every backend returns Detections in original-frame pixels and offers ``submit``, which starts
the work on one image and returns a Pending whose ``result()`` waits for it, so a caller can
keep several frames in flight.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from crowdwatch.config import DetectorConfig
from crowdwatch.errors import ModelError
from crowdwatch.types import Detections

if TYPE_CHECKING:
    import openvino as ov

PERSON_CLASS = 0
MODELS_HELP = "see models/README.md for how to download or export it"
# ultralytics pads letterboxed images with this grey.
PAD_VALUE = 114
# Output strides of the three YOLO detection levels (P3-P5).
YOLO_STRIDES = (8, 16, 32)

Image = npt.NDArray[np.uint8]


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


def available_cores() -> int:
    """CPU cores this process may run on (a container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------------------------
# Pending results
# ---------------------------------------------------------------------------------------------


class Pending(Protocol):
    """Detection started on one image; result() waits for it (call it once)."""

    def result(self) -> Detections: ...

    def done(self) -> bool:
        """result() would return at once."""
        ...

    @property
    def stage_seconds(self) -> dict[str, float]:
        """Seconds per detector stage (preprocess, inference, postprocess), after result()."""
        ...


@dataclass
class Done:
    """A detection that finished when it was submitted (synchronous backends)."""

    detections: Detections
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def result(self) -> Detections:
        return self.detections

    def done(self) -> bool:
        return True


# ---------------------------------------------------------------------------------------------
# Letterbox geometry (shared by backends and tests)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Letterbox:
    """Where a frame lands inside the model input: scaled to `resized`, offset by `pad`.

    Rounds exactly as ultralytics' LetterBox and scale_boxes do, so both backends agree.
    """

    frame_hw: tuple[int, int]
    input_hw: tuple[int, int]
    resized_wh: tuple[int, int]
    pad_xy: tuple[int, int]

    @classmethod
    def fit(cls, frame_hw: tuple[int, int], input_hw: tuple[int, int]) -> Letterbox:
        h, w = frame_hw
        ratio = min(input_hw[0] / h, input_hw[1] / w)
        new_w, new_h = max(round(w * ratio), 1), max(round(h * ratio), 1)
        pad_x = round((input_hw[1] - new_w) / 2 - 0.1)
        pad_y = round((input_hw[0] - new_h) / 2 - 0.1)
        return cls(frame_hw, input_hw, (new_w, new_h), (pad_x, pad_y))

    def fill(self, image: Image, target: Image, padded: bool) -> None:
        """Draw image into target (input_hw x 3); padded=True if its border is grey already."""
        if not padded:
            target[...] = PAD_VALUE
        (new_w, new_h), (x, y) = self.resized_wh, self.pad_xy
        inner = target[y:y + new_h, x:x + new_w]
        if (new_w, new_h) == (image.shape[1], image.shape[0]):
            inner[...] = image
        else:
            # Writes straight into the input buffer: no intermediate image.
            cv2.resize(image, (new_w, new_h), dst=inner, interpolation=cv2.INTER_LINEAR)

    def to_frame(self, xyxy: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Boxes from model-input pixels to frame pixels, clipped to the frame."""
        (new_w, new_h), (x, y) = self.resized_wh, self.pad_xy
        h, w = self.frame_hw
        offset = np.array([x, y, x, y], np.float32)
        gain = np.array([new_w / w, new_h / h] * 2, np.float32)
        boxes = (xyxy - offset) / gain
        np.clip(boxes, 0, np.array([w, h, w, h], np.float32), out=boxes)
        return boxes


def input_shape_for(frame_hw: tuple[int, int], imgsz: int, mode: str,
                    stride: int = max(YOLO_STRIDES)) -> tuple[int, int]:
    """Model input (h, w): imgsz square, or imgsz on the long side and the stream's aspect."""
    if mode == "square":
        return imgsz, imgsz
    h, w = frame_hw
    ratio = imgsz / max(h, w)
    return (math.ceil(round(h * ratio) / stride) * stride,
            math.ceil(round(w * ratio) / stride) * stride)


def decode_people(output: npt.NDArray[np.float32], confidence: float, iou: float,
                  max_det: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """People boxes (xyxy, input pixels) and scores from a YOLO output (4 + classes, anchors).

    Same rules as ultralytics' non_max_suppression with classes=[0]: a box counts only if its
    best class is person and that score exceeds confidence; NMS then keeps at most max_det.
    """
    person = output[4 + PERSON_CLASS]
    candidates = np.flatnonzero(person > confidence)
    if candidates.size:
        candidates = candidates[output[4:, candidates].argmax(axis=0) == PERSON_CLASS]
    if not candidates.size:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    centre, size = output[0:2, candidates].T, output[2:4, candidates].T
    top_left = centre - size / 2
    scores = person[candidates]
    keep = cv2.dnn.NMSBoxes(np.hstack([top_left, size]), scores, confidence, iou)
    # NMSBoxes returns the kept boxes by descending score; top_k would cut before NMS.
    keep = np.asarray(keep, np.int64).reshape(-1)[:max_det]
    xyxy = np.hstack([top_left[keep], top_left[keep] + size[keep]])
    return xyxy.astype(np.float32, copy=False), scores[keep].astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------


class Backend(Protocol):
    """What PersonDetector delegates to."""

    name: ClassVar[str]

    def submit(self, image: Image) -> Pending: ...


BACKENDS: dict[str, Callable[[DetectorConfig, Path], Backend]] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator adding a backend to BACKENDS under name."""
    def add(cls: type) -> type:
        cls.name = name
        BACKENDS[name] = cls
        return cls
    return add


def choose_backend(config: DetectorConfig, model_path: Path) -> str:
    """The backend for a config: 'auto' means openvino for an OpenVINO folder."""
    if config.backend != "auto":
        return config.backend
    return "openvino" if model_path.is_dir() else "ultralytics"


@register("ultralytics")
class UltralyticsBackend:
    """YOLO.predict on each image; one call at a time (ultralytics is not thread-safe)."""

    name: ClassVar[str]

    def __init__(self, config: DetectorConfig, model_path: Path) -> None:
        self.config = config
        configure_ultralytics()
        import torch  # after configure_ultralytics, like ultralytics itself

        # ultralytics leaves torch at one thread on small machines; use the cores we were given.
        torch.set_num_threads(config.threads or available_cores())
        from ultralytics import YOLO

        try:
            self._model = YOLO(str(model_path), task="detect")
        except Exception as error:  # ultralytics raises many types for unreadable weights
            raise ModelError(f"cannot load model {model_path}: {error}") from None
        self._lock = threading.Lock()

    def predict(self, images: Sequence[Image]) -> list[Done]:
        with self._lock:
            results = self._model.predict(
                list(images),
                classes=[PERSON_CLASS],
                conf=self.config.confidence,
                iou=self.config.iou,
                imgsz=self.config.imgsz,
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

    def submit(self, image: Image) -> Pending:
        return self.predict([image])[0]


def _yolo_anchors(input_hw: tuple[int, int]) -> tuple[npt.NDArray[np.float32],
                                                      npt.NDArray[np.float32]]:
    """Anchor centres (1, 2, N) in grid cells and strides (1, 1, N), in ultralytics' order.

    The same tables as ultralytics.utils.tal.make_anchors, in numpy so that the openvino
    backend never loads torch; reshape_yolo_ir checks them against the model's own tables.
    """
    points, strides = [], []
    for stride in YOLO_STRIDES:
        h, w = input_hw[0] // stride, input_hw[1] // stride
        y, x = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
        points.append(np.stack([x.ravel(), y.ravel()]))
        strides.append(np.full(h * w, stride, np.float32))
    return np.concatenate(points, 1)[None], np.concatenate(strides)[None, None]


def reshape_yolo_ir(model: ov.Model, input_hw: tuple[int, int]) -> None:
    """Give a fixed-shape ultralytics YOLO IR a new input size, in place.

    Static exports bake the input size into constants: the anchor grid and stride table of
    the detection head, and the target shapes of the Reshapes in the head and in YOLO11's
    attention block. This swaps each of them for the new size's values. A constant that
    looks like an anchor table must equal the table recomputed for the exported size, so a
    model of another layout fails here (ModelError) instead of producing wrong boxes.
    """
    import openvino as ov
    import openvino.opset13 as ops

    parameter = model.get_parameters()[0]
    dims = parameter.get_partial_shape().to_shape()
    old_hw = (int(dims[2]), int(dims[3]))
    if old_hw[0] != old_hw[1]:
        raise ModelError("only square fixed-shape models can be reshaped")
    old_anchors, old_strides = _yolo_anchors(old_hw)
    new_anchors, new_strides = _yolo_anchors(input_hw)
    old_n, new_n = old_anchors.shape[-1], new_anchors.shape[-1]
    # Grid sizes and cell counts of each level: old value -> new value.
    sizes = {old_hw[0] // s: (input_hw[0] // s, input_hw[1] // s) for s in YOLO_STRIDES}
    cells = {old_n: new_n, **{(old_hw[0] // s) * (old_hw[1] // s):
                              (input_hw[0] // s) * (input_hw[1] // s) for s in YOLO_STRIDES}}
    tables = 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "Constant" and tuple(op.get_output_shape(0)) in ((1, 2, old_n), (1, 1, old_n)):
            value = op.get_data()
            old, new = (old_anchors, new_anchors) if value.shape[1] == 2 else (old_strides,
                                                                               new_strides)
            if not np.array_equal(value, old):
                raise ModelError("the model's anchor table is not the YOLO layout expected")
            replacement = ops.constant(new.astype(value.dtype)).output(0)
            for target in list(op.output(0).get_target_inputs()):
                target.replace_source_output(replacement)
            tables += 1
        elif kind == "Reshape" and op.input_value(1).get_node().get_type_name() == "Constant":
            shape_node = op.input_value(1).get_node()
            target = shape_node.get_data()
            new_target = target.copy()
            if len(target) >= 4 and target[-1] == target[-2] and int(target[-1]) in sizes:
                new_target[-2:] = sizes[int(target[-1])]  # (h, w) of a feature map
            else:
                new_target = np.array([cells.get(int(v), int(v)) for v in target], target.dtype)
            if not np.array_equal(new_target, target):
                op.input(1).replace_source_output(ops.constant(new_target).output(0))
    if tables == 0:
        raise ModelError("the model has no anchor table to adapt (not a YOLO detect export?)")
    parameter.set_partial_shape(ov.PartialShape([1, 3, *input_hw]))
    try:
        model.validate_nodes_and_infer_types()
    except RuntimeError as error:
        raise ModelError(f"cannot reshape the model to {input_hw}: {error}") from None


@dataclass
class _Slot:
    """An infer request with its input buffer and the letterbox its border was drawn for."""

    request: ov.InferRequest
    image: Image
    letterbox: Letterbox | None = None


class _Compiled:
    """One compiled input size and its pool of idle infer requests."""

    def __init__(self, compiled: ov.CompiledModel) -> None:
        self.compiled = compiled
        self._idle: queue.SimpleQueue[_Slot] = queue.SimpleQueue()

    def take(self) -> _Slot:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            # Grows to the number of frames in flight at once (cameras x pipeline depth).
            request = self.compiled.create_infer_request()
            return _Slot(request, request.get_input_tensor(0).data[0])

    def give(self, slot: _Slot) -> None:
        self._idle.put(slot)


class _OpenVINOPending:
    """A frame in an OpenVINO infer request; result() decodes it and frees the request."""

    def __init__(self, backend: OpenVINOBackend, compiled: _Compiled, slot: _Slot,
                 preprocess_s: float) -> None:
        self._backend = backend
        self._compiled = compiled
        self._slot = slot
        self._detections: Detections | None = None
        self.stage_seconds = {"preprocess": preprocess_s}

    def done(self) -> bool:
        return self._detections is not None or self._slot.request.wait_for(0)

    def result(self) -> Detections:
        if self._detections is not None:
            return self._detections
        slot = self._slot
        slot.request.wait()
        started = time.perf_counter()
        # OpenVINO's latency runs from start_async to completion, queueing included.
        self.stage_seconds["inference"] = slot.request.latency / 1000
        try:
            config = self._backend.config
            # A view of the request's output: decoded before the request is reused.
            output = slot.request.get_output_tensor(0).data[0]
            xyxy, scores = decode_people(output, config.confidence, config.iou, config.max_det)
            assert slot.letterbox is not None
            self._detections = Detections(slot.letterbox.to_frame(xyxy), scores)
        finally:
            self._compiled.give(slot)
        self.stage_seconds["postprocess"] = time.perf_counter() - started
        return self._detections


@register("openvino")
class OpenVINOBackend:
    """An OpenVINO IR run by OpenVINO's CPU plugin in throughput mode, without ultralytics.

    One compiled model per input size is shared by every caller; each submit takes an idle
    infer request, so any number of threads may submit at once and OpenVINO runs their
    requests on parallel streams (one per core), first come first served.
    """

    name: ClassVar[str]

    def __init__(self, config: DetectorConfig, model_path: Path) -> None:
        import openvino as ov

        self.config = config
        xml = model_path if model_path.suffix == ".xml" else next(model_path.glob("*.xml"))
        self._xml = xml
        self._core = ov.Core()
        self._threads = config.threads or available_cores()
        self._lock = threading.Lock()
        self._compiled: dict[tuple[int, int], _Compiled] = {}
        try:
            model = self._core.read_model(xml)
        except RuntimeError as error:
            raise ModelError(f"cannot load model {xml}: {error}") from None
        self._check_model(model, xml)
        shape = model.get_parameters()[0].get_partial_shape()
        self.native_hw = ((int(shape[2].get_length()), int(shape[3].get_length()))
                          if shape.is_static else None)
        self._reshape_failed = False
        if config.input_shape == "square":
            self._compile((config.imgsz, config.imgsz), model)

    @staticmethod
    def _check_model(model: ov.Model, xml: Path) -> None:
        outputs = model.outputs
        shape = outputs[0].get_partial_shape() if outputs else None
        if (len(outputs) != 1 or shape is None or shape.rank.get_length() != 3
                or not shape[1].is_static or shape[1].get_length() < 5):
            raise ModelError(f"{xml}: not a YOLO detection export with one (1, 4 + classes, "
                             "anchors) output; use detector.backend: ultralytics")
        metadata = xml.parent / "metadata.yaml"
        if metadata.exists():
            import yaml

            names = (yaml.safe_load(metadata.read_text(encoding="utf-8")) or {}).get("names")
            if isinstance(names, dict) and names.get(PERSON_CLASS) != "person":
                raise ModelError(f"{xml}: class {PERSON_CLASS} is {names.get(PERSON_CLASS)!r}, "
                                 "not 'person'; crowdwatch needs a COCO-trained model")

    def _compile(self, input_hw: tuple[int, int], model: ov.Model | None = None) -> _Compiled:
        import openvino as ov
        from openvino.preprocess import ColorFormat, PrePostProcessor

        model = model or self._core.read_model(self._xml)
        if self.native_hw is None:
            model.reshape([1, 3, *input_hw])
        elif input_hw != self.native_hw:
            reshape_yolo_ir(model, input_hw)
        # Frames go in as they come from OpenCV (uint8 BGR, height x width x 3); the graph
        # converts them, which is faster than numpy and needs no float copy.
        ppp = PrePostProcessor(model)
        ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(
            ov.Layout("NHWC")).set_color_format(ColorFormat.BGR)
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        ppp.input().preprocess().convert_element_type(ov.Type.f32).convert_color(
            ColorFormat.RGB).scale(255.0)
        model = ppp.build()
        compiled = self._core.compile_model(model, "CPU", {
            # Throughput mode runs one stream per core: several small requests in parallel
            # beat one request split over both cores.
            "PERFORMANCE_HINT": "THROUGHPUT",
            "INFERENCE_NUM_THREADS": self._threads,
        })
        entry = _Compiled(compiled)
        self._compiled[input_hw] = entry
        return entry

    def _compiled_for(self, frame_hw: tuple[int, int]) -> tuple[_Compiled, tuple[int, int]]:
        mode = "square" if self._reshape_failed else self.config.input_shape
        input_hw = input_shape_for(frame_hw, self.config.imgsz, mode)
        entry = self._compiled.get(input_hw)
        if entry is not None:
            return entry, input_hw
        with self._lock:
            if input_hw in self._compiled:  # another thread compiled it meanwhile
                return self._compiled[input_hw], input_hw
            try:
                return self._compile(input_hw), input_hw
            except ModelError as error:
                if mode != "stream":
                    raise
                logging.getLogger("crowdwatch.detector").warning(
                    "%s: %s; using a square %d input instead", self._xml, error,
                    self.config.imgsz)
                self._reshape_failed = True
                square = (self.config.imgsz, self.config.imgsz)
                return self._compiled.get(square) or self._compile(square), square

    def prepare(self, frame_hw: tuple[int, int]) -> None:
        """Compile the model for frames of this (height, width) ahead of the first one."""
        self._compiled_for(frame_hw)

    def submit(self, image: Image) -> Pending:
        started = time.perf_counter()
        frame_hw = (int(image.shape[0]), int(image.shape[1]))
        entry, input_hw = self._compiled_for(frame_hw)
        slot = entry.take()
        letterbox = Letterbox.fit(frame_hw, input_hw)
        letterbox.fill(image, slot.image, padded=slot.letterbox == letterbox)
        slot.letterbox = letterbox
        slot.request.start_async()
        return _OpenVINOPending(self, entry, slot, time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------
# The detector
# ---------------------------------------------------------------------------------------------


class PersonDetector:
    """Finds people in BGR images with the configured backend. Safe to share between threads."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.model_path = resolve_model(config.model)
        self.backend_name = choose_backend(config, self.model_path)
        if self.backend_name == "openvino" and not self.model_path.is_dir():
            raise ModelError(f"backend openvino needs an OpenVINO model folder, got "
                             f"{self.model_path}; use detector.backend: ultralytics")
        self.backend: Backend = BACKENDS[self.backend_name](config, self.model_path)

    def prepare(self, width: int, height: int) -> None:
        """Load everything frames of this size need now, so the first one is not slow."""
        prepare = getattr(self.backend, "prepare", None)
        if prepare is not None:
            prepare((height, width))

    def submit(self, image: Image) -> Pending:
        """Start detecting people in one image; the Pending's result() waits for them."""
        return self.backend.submit(image)

    def detect(self, image: Image) -> Detections:
        """People in one BGR image."""
        return self.submit(image).result()

    def detect_batch(self, images: Sequence[Image]) -> list[Detections]:
        """People in each of several BGR images (run in parallel where the backend can)."""
        if isinstance(self.backend, UltralyticsBackend):
            return [done.result() for done in self.backend.predict(images)] if images else []
        pending = [self.submit(image) for image in images]
        return [p.result() for p in pending]

