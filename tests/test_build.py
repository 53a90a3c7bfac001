"""build.density_input_size: while a camera counts from density, its whole-frame passes run at
counting.density_imgsz (where set); tiles, and cameras counting from boxes, keep detector.imgsz."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from crowdwatch.app import CallbackSink
from crowdwatch.build import build_pipeline, density_input_size
from crowdwatch.config import parse_config
from crowdwatch.detect.base import Detector, Done
from crowdwatch.detect.densitymap import DensityMap
from crowdwatch.detect.yolo import Letterbox
from crowdwatch.tools.replay import FrameInfo, ReplaySource
from crowdwatch.types import Detections, FrameResult, Image

FRAME_HW = (480, 640)


def _config(counting: dict[str, Any], detector: dict[str, Any] | None = None) -> Any:
    return parse_config({"cameras": [{"id": "cam", "source": "clip.mp4"}],
                         "counting": counting, "detector": detector or {}})


@pytest.mark.parametrize(("counting", "detector", "method", "expected"), [
    ({"method": "auto"}, {}, "density", None),  # the default: the detector's size always
    ({"method": "auto", "density_imgsz": 768}, {}, "boxes", None),  # on boxes
    ({"method": "auto", "density_imgsz": 768}, {}, "density", 768),
    ({"method": "density", "density_imgsz": 768}, {}, "density", 768),
    ({"method": "auto", "density_imgsz": 1024}, {"imgsz": 512}, "density", 1024),
    ({"method": "auto", "density_imgsz": None}, {}, "density", None),  # off
    ({"method": "auto", "density_imgsz": 640}, {}, "density", None),  # the same size
    ({"method": "boxes", "density_imgsz": 768}, {}, "density", None),  # never from density
])
def test_the_next_pass_runs_at_the_density_size_only_while_counting_from_density(
        counting: dict[str, Any], detector: dict[str, Any], method: str,
        expected: int | None) -> None:
    counter = SimpleNamespace(last_method=method)
    size_of = density_input_size(_config(counting, detector), counter)  # type: ignore[arg-type]
    assert size_of() == expected
    counter.last_method = "boxes"
    assert size_of() is None


@dataclass
class _Dense(Done):
    density: DensityMap | None = None


class SizeRecorder(Detector):
    """Every pass: nobody boxed, a map of `per_cell` people a cell; records each call's image
    width and input_size."""

    name = "sizes"

    def __init__(self, per_cell: float) -> None:
        self.per_cell = per_cell
        self.calls: list[tuple[int, int | None]] = []

    def submit(self, image: Image, input_size: int | None = None) -> _Dense:
        self.calls.append((int(image.shape[1]), input_size))
        cells = np.full((60, 80), self.per_cell, np.float32)
        return _Dense(Detections.empty(), density=DensityMap(
            cells, Letterbox.fit(FRAME_HW, FRAME_HW)))

    def prepare(self, width: int, height: int) -> None:
        pass


def _run(config: Any, detector: SizeRecorder, frames: int) -> list[FrameResult]:
    source = ReplaySource([FrameInfo(i, i / 10, FRAME_HW[1], FRAME_HW[0])
                           for i in range(frames)])
    results: list[FrameResult] = []
    build_pipeline(config, detector, [CallbackSink(results.append)],
                   source_opener=lambda _camera: source).run()
    return sorted(results, key=lambda r: r.frame_index)


def test_a_camera_counting_from_density_sends_its_later_frames_at_the_density_size() -> None:
    # 0.02 people a cell x 4,800 cells: a crowd of 96 that nobody boxed, density forced.
    detector = SizeRecorder(0.02)
    results = _run(_config({"method": "density", "density_imgsz": 768}), detector, 12)
    assert [r.method for r in results] == ["density"] * 12
    sizes = [size for _width, size in detector.calls]
    # Frames submitted before the first one was counted go at the detector's size; from the
    # first frame submitted after it, every one at 768, and never back.
    assert sizes[0] is None and sizes[-1] == 768
    first = sizes.index(768)
    assert set(sizes[first:]) == {768} and set(sizes[:first]) == {None}


def test_a_sparse_camera_under_auto_keeps_the_detectors_size() -> None:
    # 0.001 people a cell: a map of 4.8 people, which votes boxes on every frame.
    detector = SizeRecorder(0.001)
    results = _run(_config({"method": "auto", "density_imgsz": 768}), detector, 12)
    assert {r.method for r in results} == {"boxes"}
    assert {size for _width, size in detector.calls} == {None}


def test_tiles_keep_the_detectors_size_while_the_whole_frame_goes_larger() -> None:
    detector = SizeRecorder(0.02)
    _run(_config({"method": "density", "density_imgsz": 768},
                 {"tiling": {"mode": "on"}}), detector, 12)
    whole = [size for width, size in detector.calls if width == FRAME_HW[1]]
    tiles = [size for width, size in detector.calls if width < FRAME_HW[1]]
    assert tiles and set(tiles) == {None}
    assert whole[-1] == 768 and len(whole) == 12
