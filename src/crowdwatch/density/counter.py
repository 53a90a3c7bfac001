"""A frame -> its density map (people per stride-8 cell of the model input) and its boxes.

One pass of the detector IR with the density head spliced on (neck.py): the detection output
decodes to the same Detections the openvino backend gives, the density map integrates over
zones (zones.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from crowdwatch.density.model import load_head
from crowdwatch.density.neck import DENSITY_STRIDE, Image, NeckModel
from crowdwatch.detect.yolo import Letterbox, decode_people
from crowdwatch.types import Detections

Cells = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class DensityMap:
    """People per cell of the model input (stride DENSITY_STRIDE) and the frame's letterbox."""

    cells: Cells
    letterbox: Letterbox

    def cell_centres(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Frame-pixel x of each column and y of each row of cell centres."""
        return cell_centres(self.letterbox, self.cells.shape, 1)

    def frame_mask(self) -> npt.NDArray[np.bool_]:
        """Cells whose centre lies in the frame (not in the letterbox's grey border)."""
        xs, ys = self.cell_centres()
        h, w = self.letterbox.frame_hw
        return ((ys >= 0) & (ys < h))[:, None] & ((xs >= 0) & (xs < w))[None, :]

    def total(self) -> float:
        """People in the whole frame."""
        return float(self.cells[self.frame_mask()].sum())


def cell_centres(letterbox: Letterbox, grid_hw: tuple[int, ...], samples: int
                 ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Frame-pixel x of each sub-column and y of each sub-row: samples x samples points per
    cell, evenly inside it (samples=1: the cell centre), through the letterbox back to the
    frame."""
    (new_w, new_h), (pad_x, pad_y) = letterbox.resized_wh, letterbox.pad_xy
    frame_h, frame_w = letterbox.frame_hw
    offsets = (np.arange(samples) + 0.5) / samples
    columns = (np.arange(grid_hw[1])[:, None] + offsets[None, :]).ravel() * DENSITY_STRIDE
    rows = (np.arange(grid_hw[0])[:, None] + offsets[None, :]).ravel() * DENSITY_STRIDE
    return (columns - pad_x) * frame_w / new_w, (rows - pad_y) * frame_h / new_h


@dataclass(frozen=True, slots=True)
class DensityResult:
    """One frame's pass: people boxes (frame pixels) and the density map."""

    detections: Detections
    density: DensityMap


class DensityCounter:
    """The detector and its density head in one compiled model per input size.

    Standalone (eval, tests, benchmarks) or under a detector backend, which can read the same
    outputs from its own infer requests.
    """

    def __init__(self, detector_xml: Path, head_xml: Path, *, imgsz: int = 640,
                 input_shape: str = "stream", confidence: float = 0.15, iou: float = 0.45,
                 max_det: int = 1000, threads: int = 0) -> None:
        import openvino as ov

        core = ov.Core()
        self._model = NeckModel(detector_xml, load_head(head_xml, core), imgsz=imgsz,
                                input_shape=input_shape, threads=threads, core=core)
        self._decode = (confidence, iou, max_det)

    def prepare(self, width: int, height: int) -> None:
        """Compile for frames of this size ahead of the first one."""
        self._model.run(np.zeros((height, width, 3), np.uint8))

    def run(self, image: Image) -> DensityResult:
        result = self._model.run(image)
        xyxy, scores = decode_people(result.detection, *self._decode)
        detections = Detections(result.letterbox.to_frame(xyxy), scores)
        return DensityResult(detections, DensityMap(result.extra[0][0], result.letterbox))

    def count(self, image: Image) -> float:
        """People in the whole frame, from density."""
        return self.run(image).density.total()
