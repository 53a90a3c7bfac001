"""PeopleFlow helpers: predicted boxes on skipped frames, lines against the frame."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from crowdwatch.analytics.flow import move_to_predicted
from crowdwatch.analytics.lines import Line
from crowdwatch.analytics.scene import check_lines_in_frame
from crowdwatch.errors import ConfigError
from crowdwatch.types import Detections


def dets(boxes: list[list[float]], ids: list[int] | None) -> Detections:
    xyxy = np.array(boxes, np.float32).reshape(-1, 4)
    tracker_id = None if ids is None else np.array(ids, np.int64)
    return Detections(xyxy, np.full(len(xyxy), 0.5, np.float32), tracker_id)


A, B, C = [0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]
A2, C2 = [1, 1, 11, 11], [45, 5, 55, 15]

# last (boxes, ids), predicted (boxes, ids), expected boxes
PREDICT_CASES = [
    ("tracked boxes move, unconfirmed stays", (A, B, C), [5, -1, 7], (C2, A2), [7, 5], [A2, B, C2]),
    ("no prediction keeps the last boxes", (A, B), [5, 6], (), [], [A, B]),
    ("a predicted id not in the last frame is ignored", (A,), [5], (C2,), [9], [A]),
    ("untracked detections are returned as they are", (A, B), None, (A2,), [1], [A, B]),
]


@pytest.mark.parametrize(("name", "last", "last_ids", "predicted", "predicted_ids", "expected"),
                         PREDICT_CASES, ids=[c[0] for c in PREDICT_CASES])
def test_move_to_predicted(name: str, last, last_ids, predicted, predicted_ids,
                           expected) -> None:
    before = dets(list(last), last_ids)
    moved = move_to_predicted(before, dets(list(predicted), predicted_ids))
    np.testing.assert_array_equal(moved.xyxy, np.array(expected, np.float32))
    np.testing.assert_array_equal(moved.confidence, before.confidence)
    assert (moved.tracker_id is None) == (last_ids is None)


def test_a_line_missing_the_frame_is_an_error_and_one_reaching_past_it_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    inside = Line("in", (10, 10), (90, 10))
    past = Line("past", (-50, 50), (150, 50))
    with caplog.at_level(logging.WARNING, "crowdwatch.scene"):
        check_lines_in_frame([inside, past], "cameras[2]", 100, 80)
    assert [r.getMessage() for r in caplog.records] == [
        "cameras[2].lines[1] (past): end point (-50, 50) lies outside the 100x80 frame"]
    with pytest.raises(ConfigError, match=r"^cameras\[2\]\.lines\[1\] \(away\): the line lies "
                       r"outside the 100x80 frame"):
        check_lines_in_frame([inside, Line("away", (120, 0), (200, 90))], "cameras[2]", 100, 80)
