"""PeopleCounter: counts from boxes or from a density map, chosen by counting.method.

Expected values by hand: a 1024x768 frame at the 480x640 input the detector uses for 4:3 has
60x80 density cells of 12.8x12.8 frame pixels and no border.
"""

from __future__ import annotations

import numpy as np
import pytest

from crowdwatch.analytics.counting import PeopleCounter
from crowdwatch.analytics.scene import CameraScene
from crowdwatch.config import CameraConfig, CountingConfig, LevelThresholds
from crowdwatch.detect.densitymap import DensityMap
from crowdwatch.detect.yolo import Letterbox
from crowdwatch.types import Detections

LETTERBOX = Letterbox.fit((768, 1024), (480, 640))
CAMERA = CameraConfig.model_validate({
    "id": "cam0", "source": "frames/",
    # 10 x 5 cells (128 x 64 px); its left half (5 x 5 cells) is an ignore region.
    "zones": [{"name": "corner", "polygon": [[0, 0], [128, 0], [128, 64], [0, 64]],
               "area_m2": 10.0}],
    "ignore": [{"polygon": [[0, 0], [64, 0], [64, 64], [0, 64]]}],
})
# Three people standing in the zone's counted half (feet at y = 60), one far away.
BOXES = Detections(np.array([[70, 20, 80, 60], [90, 20, 100, 60], [110, 20, 120, 60],
                             [800, 600, 840, 700]], np.float32), np.full(4, 0.9, np.float32))


def density(per_cell: float) -> DensityMap:
    return DensityMap(np.full((60, 80), per_cell, np.float32), LETTERBOX)


def counter(method: str) -> PeopleCounter:
    counting = CountingConfig(method=method, smoothing="none")
    return PeopleCounter(CAMERA, counting, LevelThresholds(), timed=False)


def count(method: str, detections: Detections, density_map: DensityMap | None):
    geometry = CameraScene(CAMERA).at(1024, 768)
    return counter(method).count(detections, geometry, 0.0, density_map)


@pytest.mark.parametrize(("method", "per_cell", "frame", "zone", "used"), [
    # 0.04 people per cell: 4800 x 0.04 = 192 in the frame less 25 ignored cells (1) = 191;
    # the zone's 25 counted cells hold 1.
    ("density", 0.04, 191, 1, "density"),
    # Forced density even where the map sees few people: 0.002 x 4775 = 9.55 -> 10, the
    # zone's 0.05 -> 0.
    ("density", 0.002, 10, 0, "density"),
    ("boxes", 0.04, 4, 3, "boxes"),
    # auto: 191 people in the map against 4 boxes is a crowd the boxes miss.
    ("auto", 0.04, 191, 1, "density"),
    # auto: under 15 people in the map (9.6) is a sparse scene: boxes.
    ("auto", 0.002, 4, 3, "boxes"),
])
def test_counts_come_from_the_chosen_method(method: str, per_cell: float, frame: int,
                                            zone: int, used: str) -> None:
    counts = count(method, BOXES, density(per_cell))
    assert counts.method == used
    assert (counts.people, counts.people_raw) == (frame, frame)
    assert counts.zones["corner"].people == zone
    assert counts.zones["corner"].density == pytest.approx(zone / 10.0)
    # Boxes still say who stands where (dwell): three people in the zone.
    assert counts.membership.sum() == 3


@pytest.mark.parametrize("method", ["auto", "density"])
def test_without_a_density_map_every_method_counts_boxes(method: str) -> None:
    counts = count(method, BOXES, None)
    assert (counts.method, counts.people_raw, counts.zones["corner"].people) == ("boxes", 4, 3)


def test_auto_switches_to_density_only_after_a_run_of_votes() -> None:
    people = counter("auto")
    geometry = CameraScene(CAMERA).at(1024, 768)
    sparse, crowd = density(0.002), density(0.04)
    # The 10-frame probe sees a sparse scene: boxes.
    for _ in range(10):
        assert people.count(BOXES, geometry, 0.0, sparse).method == "boxes"
    # A crowd now: boxes for 9 more frames (hysteresis), density from the 10th.
    methods = [people.count(BOXES, geometry, 0.0, crowd).method for _ in range(10)]
    assert methods == ["boxes"] * 9 + ["density"]
