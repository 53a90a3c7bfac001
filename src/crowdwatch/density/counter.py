"""A frame -> its density map (people per stride-8 cell of the model input) and its boxes.

One pass of the detector IR with the density head spliced on (neck.py): the detection output
decodes to the same Detections the openvino backend gives, the density map integrates over
zones (zones.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crowdwatch.density.model import load_head
from crowdwatch.density.neck import Image, NeckModel, NeckPass
from crowdwatch.density.tiles import DenseTiles, TiledDensity
from crowdwatch.detect.densitymap import Cells, DensityMap, cell_centres
from crowdwatch.detect.yolo import decode_people, input_shape_for
from crowdwatch.types import Detections

__all__ = ["Cells", "DensityCounter", "DensityMap", "DensityResult", "cell_centres"]


@dataclass(frozen=True, slots=True)
class DensityResult:
    """One frame's pass: people boxes (frame pixels) and the density map."""

    detections: Detections
    density: DensityMap


def pass_map(result: NeckPass) -> DensityMap:
    """A pass's density map, with the crowd head's where the model has one."""
    crowd = result.extra[1][0] if len(result.extra) > 1 else None
    return DensityMap(result.extra[0][0], result.letterbox, crowd)


class DensityCounter:
    """The detector and its density head in one compiled model per input size.

    Standalone (eval, tests, benchmarks) or under a detector backend, which can read the same
    outputs from its own infer requests. imgsz: the whole frame's input long side; tile_imgsz:
    the density tiles' (default imgsz), as the pipeline runs tiles at detector.imgsz and a
    camera counting from density at counting.density_imgsz.
    """

    def __init__(self, detector_xml: Path, head_xml: Path, *, imgsz: int = 640,
                 input_shape: str = "stream", confidence: float = 0.15, iou: float = 0.45,
                 max_det: int = 1000, threads: int = 0, tiles: DenseTiles | None = None,
                 tile_imgsz: int | None = None) -> None:
        import openvino as ov

        core = ov.Core()
        self._model = NeckModel(detector_xml, load_head(head_xml, core), imgsz=imgsz,
                                input_shape=input_shape, threads=threads, core=core)
        self._decode = (confidence, iou, max_det)
        self._tile_imgsz = tile_imgsz or imgsz
        # Very dense frames: their density counted again on tiles (density/tiles.py).
        self._tiles = None if tiles is None else TiledDensity(
            rule=tiles, maps_of=lambda crops: [self._density(crop) for crop in crops])

    def prepare(self, width: int, height: int) -> None:
        """Compile for frames of this size ahead of the first one."""
        self._model.run(np.zeros((height, width, 3), np.uint8))

    def run(self, image: Image) -> DensityResult:
        result = self._model.run(image)
        xyxy, scores = decode_people(result.detection, *self._decode)
        detections = Detections(result.letterbox.to_frame(xyxy), scores)
        density = pass_map(result)
        if self._tiles is not None:
            density = self._tiles(image, density)
        return DensityResult(detections, density)

    def _density(self, image: Image) -> DensityMap:
        """The map of one pass (a tile's: boxes stay the whole frame's)."""
        frame_hw = (int(image.shape[0]), int(image.shape[1]))
        input_hw = input_shape_for(frame_hw, self._tile_imgsz, self._model.input_shape)
        return pass_map(self._model.run(image, input_hw))

    def count(self, image: Image) -> float:
        """People in the whole frame, from density."""
        return self.run(image).density.total()
