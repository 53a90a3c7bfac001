"""eval says when the ground truth looks like another clip's (frame count, box extent)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from crowdwatch.tools.evaluate import truth_mismatch
from crowdwatch.tools.groundtruth import GroundTruth


def _clip(sample_clip: Path) -> tuple[int, int, int]:
    capture = cv2.VideoCapture(str(sample_clip))
    count = 0
    while capture.read()[0]:
        count += 1
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    capture.release()
    return count, width, height


def _truth(frames: int, box: list[float]) -> GroundTruth:
    return GroundTruth({0: np.array([box], np.float32)}, frames)


def test_matching_truth_is_quiet(sample_clip: Path) -> None:
    count, width, height = _clip(sample_clip)
    assert truth_mismatch(str(sample_clip), _truth(count, [10, 10, width, height])) == []


def test_another_frame_count_is_named(sample_clip: Path) -> None:
    count, _, _ = _clip(sample_clip)
    (warning,) = truth_mismatch(str(sample_clip), _truth(count + 400, [10, 10, 50, 50]))
    assert f"the clip has {count} frames and the ground truth {count + 400}" in warning


def test_boxes_beyond_the_frame_are_named(sample_clip: Path) -> None:
    count, width, height = _clip(sample_clip)
    (warning,) = truth_mismatch(str(sample_clip), _truth(count, [10, 10, 1800, 1000]))
    assert f"reach x 1800, y 1000 in a {width}x{height} clip" in warning
