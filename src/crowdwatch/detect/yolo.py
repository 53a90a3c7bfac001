"""YOLO geometry and decoding in numpy: letterbox, input shapes, anchors, person boxes + NMS."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from crowdwatch.detect.base import PERSON_CLASS, Image

# ultralytics pads letterboxed images with this grey.
PAD_VALUE = 114
# Output strides of the three YOLO detection levels (P3-P5).
YOLO_STRIDES = (8, 16, 32)


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


def yolo_anchors(input_hw: tuple[int, int]) -> tuple[npt.NDArray[np.float32],
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
