"""The openvino backend: an OpenVINO IR run directly, without ultralytics or torch.

Letterbox by cv2 into the infer request's own input buffer, BGR->RGB and scaling folded into
the graph, asynchronous requests shared by all cameras, NMS by cv2.dnn.NMSBoxes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from crowdwatch.config import DetectorConfig
from crowdwatch.detect.base import PERSON_CLASS, Detector, Image, Pending, available_cores
from crowdwatch.detect.yolo import (
    YOLO_STRIDES,
    Letterbox,
    decode_people,
    input_shape_for,
    yolo_anchors,
)
from crowdwatch.errors import ModelError
from crowdwatch.types import Detections

if TYPE_CHECKING:
    import openvino as ov


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
    old_anchors, old_strides = yolo_anchors(old_hw)
    new_anchors, new_strides = yolo_anchors(input_hw)
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


class OpenVINOBackend(Detector):
    """An OpenVINO IR run by OpenVINO's CPU plugin in throughput mode, without ultralytics.

    One compiled model per input size is shared by every caller; each submit takes an idle
    infer request, so any number of threads may submit at once and OpenVINO runs their
    requests on parallel streams (one per core), first come first served.
    """

    name = "openvino"

    def __init__(self, config: DetectorConfig, model_path: Path) -> None:
        import openvino as ov

        self.config = config
        self.model_path = model_path
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
                logging.getLogger("crowdwatch.detect").warning(
                    "%s: %s; using a square %d input instead", self._xml, error,
                    self.config.imgsz)
                self._reshape_failed = True
                square = (self.config.imgsz, self.config.imgsz)
                return self._compiled.get(square) or self._compile(square), square

    @property
    def parallel_streams(self) -> int:
        """Requests OpenVINO runs at once (its optimal number for the first compiled size)."""
        for entry in list(self._compiled.values()):
            try:
                return int(entry.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            except (RuntimeError, TypeError, ValueError):
                break
        return self._threads

    def prepare(self, width: int, height: int) -> None:
        """Compile the model for frames of this size ahead of the first one."""
        self._compiled_for((height, width))

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
