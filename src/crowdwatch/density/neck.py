"""The detector's own neck features as extra outputs of its compiled OpenVINO model.

One backbone pass serves boxes and density: the YOLO11 detect IR gets its P3 (stride 8) and
P4 (stride 16) neck outputs (ultralytics' model.16 and model.19) added as outputs, and the
density head (see head.py) is spliced onto them, so one infer request returns the detection
output and the density map together. The frame goes in exactly as the openvino backend feeds
it: letterboxed by detect.yolo.Letterbox into the input size input_shape_for picks, uint8 BGR
converted inside the graph. The training code extracts its features through this same module,
so training sees what the runtime sees.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from crowdwatch.detect.densitymap import DENSITY_STRIDE
from crowdwatch.detect.yolo import Letterbox, input_shape_for
from crowdwatch.errors import ModelError

__all__ = ["DENSITY_STRIDE", "FEATURES", "NeckModel", "NeckPass", "head_inputs", "neck_outputs",
           "sized_for", "splice_head", "split_head"]

if TYPE_CHECKING:
    import openvino as ov

Image = npt.NDArray[np.uint8]

# The neck blocks whose outputs feed the YOLO11 detect head at strides 8 and 16, and the
# backbone's stride-4 block (model.2), which a head may read too (training's Settings.fine:
# a crowd's heads are 2-3 input pixels, finer than stride 8; the shipped heads do not).
NECK_BLOCKS = {"p3": "__module.model.16.cv2.conv/aten::_convolution/Add",
               "p4": "__module.model.19.cv2.conv/aten::_convolution/Add",
               "p2": "__module.model.2.cv2.conv/aten::_convolution/Add"}
NECK_STRIDES = {"p3": 8, "p4": 16, "p2": 4}
# What a head may read, and what a pass without a head returns (training's features).
FEATURES = ("p3", "p4", "p2")


def neck_outputs(model: ov.Model, keys: Sequence[str] = FEATURES) -> dict[str, ov.Output]:
    """The activated outputs of the feature blocks, as the next layers consume them.

    Each block ends in a convolution, a SiLU and, in an INT8 IR, a FakeQuantize: the
    FakeQuantize's output is what the next layers read (and what the CPU plugin keeps in
    INT8), so it is taken when present.
    """
    by_name = {op.get_friendly_name(): op for op in model.get_ordered_ops()}
    found = {}
    for key in keys:
        name = NECK_BLOCKS[key]
        op = by_name.get(name)
        if op is None:
            raise ModelError(f"the detector model has no {name} node: the density counter "
                             "needs the YOLO11n detector it was trained on")
        output = op.output(0)
        for kind in ("Swish", "FakeQuantize"):
            consumers = [t.get_node() for t in output.get_target_inputs()]
            step = [c for c in consumers if c.get_type_name() == kind]
            if not step:
                if kind == "Swish":
                    raise ModelError(f"the detector model's {name} is not followed by a SiLU")
                break
            output = step[0].output(0)
        found[key] = output
    return found


def head_inputs(head: ov.Model) -> list[str]:
    """The neck features a head reads (its parameters' names), in its parameters' order."""
    names = [parameter.get_friendly_name() for parameter in head.get_parameters()]
    unknown = [key for key in names if key not in NECK_BLOCKS]
    if unknown:
        raise ModelError(f"the density head has an input {unknown[0]!r}; expected "
                         f"{', '.join(FEATURES)}")
    return names


def splice_head(model: ov.Model, head: ov.Model | None, with_neck: bool = True,
                expose: Sequence[str] = ()) -> ov.Model:
    """The detector with either its neck outputs (head=None) or the head's density added.

    Outputs, in order: the detection output, then p3, p4 and p2 (no head) or the head's
    outputs (the density map, then the crowd head's where it has one; its parameters, named
    after FEATURES, are replaced by those outputs), then the neck features named in expose
    (what a head run apart reads: split_head). No head and with_neck=False: the detector
    alone (the baseline the cost of density is measured against).
    """
    import openvino as ov

    if head is None and not with_neck:
        return model
    if head is None:
        neck = neck_outputs(model)
        extra = [neck[key] for key in FEATURES]
    else:
        wanted = head_inputs(head)
        neck = neck_outputs(model, list(dict.fromkeys([*wanted, *expose])))
        for parameter in head.get_parameters():
            key = parameter.get_friendly_name()
            for target in list(parameter.output(0).get_target_inputs()):
                target.replace_source_output(neck[key])
        extra = [*head.outputs, *(neck[key] for key in expose)]
    spliced = ov.Model([model.output(0), *extra], model.get_parameters(), "yolo_density")
    if not expose:
        return spliced
    from openvino.preprocess import PrePostProcessor

    # The features go out in fp16: half the bytes to hand over and copy on every frame (in
    # fp32 that cost as much as the crowd head itself), and the crowd head's map does not
    # change (its inputs are quantized again; sized_for takes fp16).
    ppp = PrePostProcessor(spliced)
    for index in range(len(spliced.outputs) - len(expose), len(spliced.outputs)):
        ppp.output(index).tensor().set_element_type(ov.Type.f16)
    return ppp.build()


def split_head(head: ov.Model) -> tuple[ov.Model, ov.Model | None]:
    """The head's density output and its crowd output (None without one) as models of their
    own, each with only the inputs it reads: the crowd head's map is read only on frames the
    dense rule picks, so the runtime can run it apart, fed the pass's neck features
    (splice_head's expose), on those frames alone."""
    import openvino as ov

    def alone(index: int) -> ov.Model:
        model = head.clone()
        output = model.outputs[index]
        # Python wrappers of one node differ: nodes are told apart by their unique names.
        reached, stack = set(), [output.get_node()]
        while stack:
            node = stack.pop()
            if node.get_name() not in reached:
                reached.add(node.get_name())
                stack.extend(i.get_source_output().get_node() for i in node.inputs())
        parameters = [p for p in model.get_parameters() if p.get_name() in reached]
        return ov.Model([output], parameters, f"{head.get_friendly_name()}_{index}").clone()

    return alone(0), (alone(1) if len(head.outputs) > 1 else None)


def sized_for(head: ov.Model, input_hw: tuple[int, int]) -> ov.Model:
    """A copy of a head run apart, its inputs fixed to the neck's shapes at this input size
    and taken in fp16, as splice_head exposes them."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    model = head.clone()
    model.reshape({parameter.get_friendly_name(): [
        1, int(parameter.get_partial_shape()[1].get_length()),
        input_hw[0] // NECK_STRIDES[parameter.get_friendly_name()],
        input_hw[1] // NECK_STRIDES[parameter.get_friendly_name()]]
        for parameter in model.get_parameters()})
    ppp = PrePostProcessor(model)
    for index in range(len(model.inputs)):
        ppp.input(index).tensor().set_element_type(ov.Type.f16)
    return ppp.build()


@dataclass(frozen=True, slots=True)
class NeckPass:
    """One frame's pass: the detection output, the extra outputs and the letterbox used."""

    detection: npt.NDArray[np.float32]
    extra: tuple[npt.NDArray[np.float32], ...]
    letterbox: Letterbox


class NeckModel:
    """The detector IR compiled per input size with extra outputs (neck features or density).

    Synchronous and thread-safe (one infer request per compiled size, under a lock): for
    standalone use, evaluation and training-feature extraction.
    """

    def __init__(self, detector_xml: Path, head: ov.Model | None = None, *,
                 imgsz: int = 640, input_shape: str = "stream", threads: int = 0,
                 core: ov.Core | None = None, with_neck: bool = True) -> None:
        import openvino as ov

        self.detector_xml = detector_xml
        self.imgsz = imgsz
        self.input_shape = input_shape
        self._head = head
        self._with_neck = with_neck
        self._threads = threads
        self._core = core or ov.Core()
        self._lock = threading.Lock()
        self._compiled: dict[tuple[int, int], tuple[ov.InferRequest, Image]] = {}

    def input_hw(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """The model input size the openvino backend would use for this frame size."""
        return input_shape_for(frame_hw, self.imgsz, self.input_shape)

    def _compile(self, input_hw: tuple[int, int]) -> tuple[ov.InferRequest, Image]:
        from crowdwatch.detect.irshape import yolo_ir_for

        try:
            model = self._core.read_model(self.detector_xml)
        except RuntimeError as error:
            raise ModelError(f"cannot load model {self.detector_xml}: {error}") from None
        # A head is spliced into a copy: one head model may serve several input sizes.
        head = self._head.clone() if self._head is not None else None
        model = yolo_ir_for(model, input_hw,
                            lambda detector: splice_head(detector, head, self._with_neck))
        config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY"}
        if self._threads:
            config["INFERENCE_NUM_THREADS"] = self._threads
        try:
            compiled = self._core.compile_model(model, "CPU", config)
        except RuntimeError as error:
            raise ModelError(f"cannot compile the density model at {input_hw}: {error}") from None
        request = compiled.create_infer_request()
        return request, request.get_input_tensor(0).data[0]

    def run(self, image: Image, input_hw: tuple[int, int] | None = None) -> NeckPass:
        """Letterbox image into the input (the backend's size unless given) and infer."""
        frame_hw = (int(image.shape[0]), int(image.shape[1]))
        input_hw = input_hw or self.input_hw(frame_hw)
        with self._lock:
            if input_hw not in self._compiled:
                self._compiled[input_hw] = self._compile(input_hw)
            request, buffer = self._compiled[input_hw]
            letterbox = Letterbox.fit(frame_hw, input_hw)
            letterbox.fill(image, buffer, padded=False)
            request.infer()
            outputs = [request.get_output_tensor(i).data[0].copy()
                       for i in range(len(request.model_outputs))]
        return NeckPass(outputs[0], tuple(outputs[1:]), letterbox)
