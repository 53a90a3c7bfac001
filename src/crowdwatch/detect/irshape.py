"""A YOLO IR made ready for an input size: a fixed-shape ultralytics IR given another input
size, and the preprocessing every compiled model of the project has (used by the openvino
backend and the density model, crowdwatch.density.neck)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from crowdwatch.detect.yolo import YOLO_STRIDES, yolo_anchors
from crowdwatch.errors import ModelError

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


def yolo_ir_for(model: ov.Model, input_hw: tuple[int, int],
                splice: Callable[[ov.Model], ov.Model] | None = None) -> ov.Model:
    """The detector IR ready to compile at `input_hw`, as the openvino backend and
    density/neck.py both feed it: reshaped (a dynamic IR) or adapted (a fixed one, above),
    extra outputs spliced on by `splice`, and frames taken as they come from OpenCV (uint8
    BGR, height x width x 3), converted inside the graph (faster than numpy, no float copy)."""
    import openvino as ov
    from openvino.preprocess import ColorFormat, PrePostProcessor

    shape = model.get_parameters()[0].get_partial_shape()
    if not shape.is_static:
        model.reshape([1, 3, *input_hw])
    elif (shape[2].get_length(), shape[3].get_length()) != input_hw:
        reshape_yolo_ir(model, input_hw)
    if splice is not None:
        model = splice(model)
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(
        ov.Layout("NHWC")).set_color_format(ColorFormat.BGR)
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).convert_color(
        ColorFormat.RGB).scale(255.0)
    return ppp.build()
