"""The openvino backend: an OpenVINO IR run directly, without ultralytics or torch.

Letterbox by cv2 into the infer request's own input buffer, BGR->RGB and scaling folded into
the graph, asynchronous requests shared by all cameras, NMS by cv2.dnn.NMSBoxes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from crowdwatch.config import DetectorConfig
from crowdwatch.detect.base import PERSON_CLASS, Detector, Image, Pending, available_cores
from crowdwatch.detect.densitymap import Cells, DensityMap
from crowdwatch.detect.irshape import reshape_yolo_ir, yolo_ir_for
from crowdwatch.detect.yolo import Letterbox, decode_people, input_shape_for
from crowdwatch.errors import ModelError
from crowdwatch.types import Detections

__all__ = ["OpenVINOBackend", "reshape_yolo_ir"]

if TYPE_CHECKING:
    import openvino as ov


@dataclass
class _Slot:
    """An infer request with its input buffer and the letterbox its border was drawn for."""

    request: ov.InferRequest
    image: Image
    letterbox: Letterbox | None = None


class _Compiled:
    """One compiled input size and its pool of idle infer requests; with a crowd head run
    apart, what compiles it at this size (on first use) and its idle requests."""

    def __init__(self, compiled: ov.CompiledModel,
                 compile_crowd: Callable[[], ov.CompiledModel] | None = None) -> None:
        self.compiled = compiled
        # Called on the first frame that reads the crowd map: a camera that never shows a
        # very dense crowd never holds the compiled crowd head (about 7 MB resident).
        self.compile_crowd = compile_crowd
        self._crowd_model: ov.CompiledModel | None = None
        self._crowd_lock = threading.Lock()
        self._idle: queue.SimpleQueue[_Slot] = queue.SimpleQueue()
        self._idle_crowd: queue.SimpleQueue[ov.InferRequest] = queue.SimpleQueue()

    def crowd_cells(self, features: list[object]) -> Cells:
        """The crowd head's map of a pass, from that pass's neck features (in the crowd
        model's input order); any thread may ask."""
        assert self.compile_crowd is not None
        try:
            request = self._idle_crowd.get_nowait()
        except queue.Empty:
            with self._crowd_lock:
                if self._crowd_model is None:
                    self._crowd_model = self.compile_crowd()
            request = self._crowd_model.create_infer_request()
        try:
            request.infer(features)
            return request.get_output_tensor(0).data[0][0].copy()
        finally:
            self._idle_crowd.put(request)

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
        # The frame's density map when the backend serves density (use_density_head), after
        # result(); None otherwise.
        self.density: DensityMap | None = None
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
            if self._backend.serves_density:
                # Copied (a few thousand floats): the request's buffers are reused.
                cells = slot.request.get_output_tensor(1).data[0][0].copy()
                crowd = None
                if self._compiled.compile_crowd is not None:
                    # The crowd head's inputs, kept for a frame that reads its map.
                    features = [slot.request.get_output_tensor(i).data.copy()
                                for i in range(2, len(slot.request.model_outputs))]
                    crowd = partial(self._compiled.crowd_cells, features)
                self.density = DensityMap(cells, slot.letterbox, crowd_source=crowd)
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
        self._head: Callable[[ov.Model], ov.Model] | None = None
        self._crowd: Callable[[tuple[int, int]], ov.Model] | None = None
        if config.input_shape == "square":
            self._compile((config.imgsz, config.imgsz), model)

    @property
    def serves_density(self) -> bool:
        """Each pass also gives the frame's density map (Pending.density)."""
        return self._head is not None

    def use_density_head(self, splice: Callable[[ov.Model], ov.Model],
                         crowd: Callable[[tuple[int, int]], ov.Model] | None = None) -> None:
        """Splice the density head onto the detector at every compiled size (splice: the
        reshaped detector -> the detector with the density map as its second output, from
        crowdwatch.density), so one pass gives boxes and the density map; sizes compiled
        before are compiled again.

        crowd: the crowd head run apart (input size -> its model, whose inputs are the
        spliced detector's outputs after the density map, in order); its map is computed
        only for the passes whose DensityMap.crowd_map() is asked for.
        """
        with self._lock:
            self._head = splice
            self._crowd = crowd
            sizes = list(self._compiled)
            self._compiled.clear()
            for input_hw in sizes:
                self._compile(input_hw)

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
        model = yolo_ir_for(model or self._core.read_model(self._xml), input_hw, self._head)
        compiled = self._core.compile_model(model, "CPU", {
            # Throughput mode runs one stream per core: several small requests in parallel
            # beat one request split over both cores.
            "PERFORMANCE_HINT": "THROUGHPUT",
            "INFERENCE_NUM_THREADS": self._threads,
        })
        entry = _Compiled(compiled, self._crowd_compiler(input_hw))
        self._compiled[input_hw] = entry
        return entry

    def _crowd_compiler(self, input_hw: tuple[int, int]
                        ) -> Callable[[], ov.CompiledModel] | None:
        """What sizes and compiles the crowd head run apart at this input size, when a frame
        first reads its map (None without one)."""
        sized = self._crowd
        if sized is None or self._head is None:
            return None

        def compile_crowd() -> ov.CompiledModel:
            # Run in the thread that asks, on frames the dense rule picks and their tiles: all
            # the cores for one small request (one thread each cost more on such a frame).
            return self._core.compile_model(sized(input_hw), "CPU", {
                "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": self._threads})
        return compile_crowd

    def _compiled_for(self, frame_hw: tuple[int, int], input_size: int | None = None
                      ) -> tuple[_Compiled, tuple[int, int]]:
        size = input_size or self.config.imgsz
        mode = "square" if self._reshape_failed else self.config.input_shape
        input_hw = input_shape_for(frame_hw, size, mode)
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
                    "%s: %s; using a square %d input instead", self._xml, error, size)
                self._reshape_failed = True
                square = (size, size)
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

    def submit(self, image: Image, input_size: int | None = None) -> Pending:
        started = time.perf_counter()
        frame_hw = (int(image.shape[0]), int(image.shape[1]))
        entry, input_hw = self._compiled_for(frame_hw, input_size)
        slot = entry.take()
        letterbox = Letterbox.fit(frame_hw, input_hw)
        letterbox.fill(image, slot.image, padded=slot.letterbox == letterbox)
        slot.letterbox = letterbox
        slot.request.start_async()
        return _OpenVINOPending(self, entry, slot, time.perf_counter() - started)
