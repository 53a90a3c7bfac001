"""detector.tiling.skip_for_density: tiles run only while a camera uses boxes' counts, or
needs every box (tracking, blur) (build.build_chain)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from crowdwatch.build import build_chain, camera_scenes
from crowdwatch.config import parse_config
from crowdwatch.config.detector import TilingConfig
from crowdwatch.detect.base import Detector, Done
from crowdwatch.detect.densitymap import DensityMap
from crowdwatch.detect.tiling import TiledDetector
from crowdwatch.detect.yolo import Letterbox
from crowdwatch.types import Detections, Frame


class Recorder(Detector):
    """Finds nobody; records the size of each image it is given."""

    name = "recorder"

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def submit(self, image: np.ndarray) -> Done:
        self.shapes.append((image.shape[1], image.shape[0]))
        return Done(Detections.empty())

    def prepare(self, width: int, height: int) -> None:
        pass


def test_no_tiles_while_unwanted() -> None:
    inner = Recorder()
    tiler = TiledDetector(inner.submit, TilingConfig(mode="on"))
    image = np.zeros((480, 640, 3), np.uint8)
    tiler.submit(image).result()
    assert len(inner.shapes) == 7 and tiler.tiles_in_use(640, 480) == 6  # whole + 3 x 2
    tiler.tiles_wanted = lambda: False
    pending = tiler.submit(image)
    pending.result()
    assert len(inner.shapes) == 8 and TiledDetector.tiles_of(pending) == 0
    assert tiler.tiles_in_use(640, 480) == 0


def _chain(extra: dict[str, Any], skip: bool = True,
           blur: bool = False) -> tuple[Any, Recorder]:
    camera = {"id": "cam", "source": "clip.mp4", **extra}
    config = parse_config({"cameras": [camera], "counting": {"method": "density"},
                           "detector": {"tiling": {"mode": "on", "skip_for_density": skip}},
                           "recording": {"blur_people": blur}})
    inner = Recorder()
    source = SimpleNamespace(sequence=True, fps=10.0, live=False)
    chain = build_chain(config.cameras[0], config, source, inner,  # type: ignore[arg-type]
                        camera_scenes(config)["cam"])
    return chain, inner


@pytest.mark.parametrize(("extra", "skip", "blur", "tiles_after"), [
    ({}, True, False, 0),  # untracked: counted from density, tiles add nothing
    ({}, False, False, 6),  # not asked to (the default)
    ({}, True, True, 6),  # blurring people needs every box
    ({"lines": [{"name": "door", "points": [[0, 400], [640, 400]]}]}, True, False, 6),  # tracked
])
def test_a_camera_counting_from_density_drops_tiles_unless_it_needs_them(
        extra: dict[str, Any], skip: bool, blur: bool, tiles_after: int) -> None:
    chain, inner = _chain(extra, skip, blur)
    image = np.zeros((480, 640, 3), np.uint8)
    density = DensityMap(np.full((60, 80), 0.01, np.float32),
                         Letterbox.fit((480, 640), (480, 640)))
    pending = chain.detector.submit(image)
    assert len(inner.shapes) == 7  # boxes until the first frame is counted
    chain.analysis.analyse(Frame(image, 0, 0.0, 0.0), pending.result(), {}, density=density)
    inner.shapes.clear()
    chain.detector.submit(image).result()
    assert len(inner.shapes) == 1 + tiles_after
