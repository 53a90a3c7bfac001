"""Ignore regions drop detections by their bottom-centre anchor."""

from __future__ import annotations

import numpy as np
import pytest

from crowdwatch.analytics.ignore import drop_ignored, ignore_geometry, ignored_mask
from crowdwatch.types import Detections

SQUARE = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)]
TRIANGLE = [(20.0, 0.0), (30.0, 0.0), (20.0, 10.0)]

# (box xyxy, ignored?) against SQUARE and TRIANGLE
CASES = [
    ([2, -20, 8, 5], True),      # anchor (5, 5) inside the square
    ([2, 0, 8, 10], True),       # anchor (5, 10) on its edge: boundary counts as inside
    ([2, 0, 8, 11], False),      # anchor (5, 11) below it
    ([8, 0, 16, 5], False),      # anchor (12, 5) between the polygons
    ([20, 0, 24, 2], True),      # anchor (22, 2) inside the triangle
    ([24, 0, 32, 8], False),     # anchor (28, 8) outside the triangle's slanted edge
]


@pytest.mark.parametrize(("box", "ignored"), CASES)
def test_ignored_mask(box: list[float], ignored: bool) -> None:
    geometry = ignore_geometry([SQUARE, TRIANGLE])
    assert ignored_mask(np.array([box], np.float32), geometry).tolist() == [ignored]


def test_drop_ignored_keeps_order_and_confidences() -> None:
    geometry = ignore_geometry([SQUARE, TRIANGLE])
    boxes = np.array([box for box, _ in CASES], np.float32)
    detections = Detections(boxes, np.arange(len(CASES), dtype=np.float32))
    kept = drop_ignored(detections, geometry)
    expected = [i for i, (_, ignored) in enumerate(CASES) if not ignored]
    assert kept.confidence.tolist() == expected
    assert kept.xyxy.tolist() == boxes[expected].tolist()


def test_no_polygons_or_no_detections_change_nothing() -> None:
    detections = Detections(np.array([[2, 0, 8, 5]], np.float32), np.ones(1, np.float32))
    assert drop_ignored(detections, ignore_geometry([])) is detections
    assert ignore_geometry([]) is None
    assert len(drop_ignored(Detections.empty(), ignore_geometry([SQUARE]))) == 0
    assert ignored_mask(np.zeros((0, 4), np.float32), ignore_geometry([SQUARE])).shape == (0,)
