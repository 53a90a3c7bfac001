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
from crowdwatch.density.neck import Image, NeckModel
from crowdwatch.density.tiles import DenseTiles, stitch
from crowdwatch.detect.densitymap import Cells, DensityMap, cell_centres
from crowdwatch.detect.yolo import decode_people
from crowdwatch.types import Detections

__all__ = ["Cells", "DensityCounter", "DensityMap", "DensityResult", "cell_centres"]


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
                 max_det: int = 1000, threads: int = 0, tiles: DenseTiles | None = None
                 ) -> None:
        import openvino as ov

        core = ov.Core()
        self._model = NeckModel(detector_xml, load_head(head_xml, core), imgsz=imgsz,
                                input_shape=input_shape, threads=threads, core=core)
        self._decode = (confidence, iou, max_det)
        # Very dense frames: their density counted again on tiles (density/tiles.py).
        self._tiles = tiles

    def prepare(self, width: int, height: int) -> None:
        """Compile for frames of this size ahead of the first one."""
        self._model.run(np.zeros((height, width, 3), np.uint8))

    def run(self, image: Image) -> DensityResult:
        result = self._model.run(image)
        xyxy, scores = decode_people(result.detection, *self._decode)
        detections = Detections(result.letterbox.to_frame(xyxy), scores)
        density = DensityMap(result.extra[0][0], result.letterbox)
        if self._tiles is not None and self._tiles.triggered(density):
            density = self._tiled(image, density)
        return DensityResult(detections, density)

    def _tiled(self, image: Image, whole: DensityMap) -> DensityMap:
        """The frame's map stitched from its tiles' (boxes stay the whole frame's)."""
        assert self._tiles is not None
        tiles = self._tiles.tiles(int(image.shape[1]), int(image.shape[0]))
        if not len(tiles):
            return whole
        maps = []
        for x0, y0, x1, y1 in tiles:
            part = self._model.run(image[y0:y1, x0:x1])
            maps.append(DensityMap(part.extra[0][0], part.letterbox))
        return stitch(whole, tiles, maps)

    def count(self, image: Image) -> float:
        """People in the whole frame, from density."""
        return self.run(image).density.total()
