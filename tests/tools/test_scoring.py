"""Evaluation metrics on hand-computed cases, and the report formatters."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from crowdwatch.tools.scoring import (
    CountErrors,
    DetectionTally,
    EvalResult,
    box_iou,
    count_errors,
    format_table,
    match_boxes,
    people_in_zone,
    report_dict,
)

# (predicted, truth, mae, rmse, bias, exact)
COUNT_CASES = [
    ([2, 3, 5, 5], [2, 4, 3, 5], 0.75, math.sqrt(5 / 4), 0.25, 0.5),
    ([0], [3], 3.0, 3.0, -3.0, 0.0),
    ([1, 1, 1], [1, 1, 1], 0.0, 0.0, 0.0, 1.0),
    ([4, 0], [2, 2], 2.0, 2.0, 0.0, 0.0),
]


@pytest.mark.parametrize(("pred", "truth", "mae", "rmse", "bias", "exact"), COUNT_CASES)
def test_count_errors(
    pred: list[int], truth: list[int], mae: float, rmse: float, bias: float, exact: float
) -> None:
    errors = count_errors(np.array(pred), np.array(truth))
    assert errors == CountErrors(
        mae=pytest.approx(mae), rmse=pytest.approx(rmse), bias=pytest.approx(bias),
        exact=pytest.approx(exact), frames=len(pred),
    )


@pytest.mark.parametrize(("pred", "truth"), [([1, 2], [1]), ([], [])])
def test_count_errors_rejects_mismatched_or_empty(pred: list[int], truth: list[int]) -> None:
    with pytest.raises(ValueError):
        count_errors(np.array(pred), np.array(truth))


# (case, a, b, IoU)
IOU_CASES = [
    ("identical", [0, 0, 2, 2], [0, 0, 2, 2], 1.0),
    ("disjoint", [0, 0, 1, 1], [5, 5, 6, 6], 0.0),
    ("touching edges", [0, 0, 1, 1], [1, 0, 2, 1], 0.0),
    ("b is half of a", [0, 0, 2, 2], [0, 0, 2, 1], 0.5),
    ("shifted by half", [0, 0, 2, 2], [1, 0, 3, 2], 1 / 3),
    ("contained quarter", [0, 0, 4, 4], [1, 1, 3, 3], 0.25),
    ("two degenerate boxes", [1, 1, 1, 1], [1, 1, 1, 1], 0.0),
]


@pytest.mark.parametrize(
    ("a", "b", "iou"), [c[1:] for c in IOU_CASES], ids=[c[0] for c in IOU_CASES]
)
def test_box_iou_known_values(a: list[float], b: list[float], iou: float) -> None:
    assert box_iou(np.array([a], np.float32), np.array([b], np.float32))[0, 0] == pytest.approx(iou)
    assert box_iou(np.array([b]), np.array([a]))[0, 0] == pytest.approx(iou)


def test_box_iou_shapes() -> None:
    a = np.array([[0, 0, 2, 2], [0, 0, 2, 1], [5, 5, 6, 6]], np.float32)
    b = np.array([[0, 0, 2, 2], [1, 0, 3, 2]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[1, 1 / 3], [0.5, 0.2], [0, 0]])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 2)
    assert box_iou(a, np.zeros((0, 4))).shape == (3, 0)


def _strip(x0: float, x1: float) -> list[float]:
    """A box spanning x0..x1 and y 0..10, so IoU between strips is overlap / union of x ranges."""
    return [x0, 0, x1, 10]


T1, T2 = _strip(0, 10), _strip(2, 12)
# A: IoU 0.667 with T1, 0.43 with T2.  B: IoU 0.905 with T1, 0.708 with T2.
A, B = _strip(-2, 8), _strip(0.5, 10.5)

# (case, predictions, confidences, truths, threshold, (tp, fp, fn))
MATCH_CASES = [
    ("one prediction over two truths", [[0, 0, 2, 2]], [0.9], [[0, 0, 2, 2], [1, 0, 3, 2]], 0.5,
     (1, 0, 1)),
    ("two predictions on one truth", [[0, 0, 2, 2], [0, 0, 2, 1.9]], [0.6, 0.9], [[0, 0, 2, 2]],
     0.5, (1, 1, 0)),
    ("IoU exactly at threshold matches", [[0, 0, 2, 1]], [0.5], [[0, 0, 2, 2]], 0.5, (1, 0, 0)),
    ("IoU just below threshold misses", [[0, 0, 2, 1]], [0.5], [[0, 0, 2, 2]], 0.51, (0, 1, 1)),
    ("confident B takes T1, A is left with T2 below threshold", [A, B], [0.8, 0.9], [T1, T2], 0.5,
     (1, 1, 1)),
    ("confident A takes T1, B falls back to T2", [A, B], [0.9, 0.8], [T1, T2], 0.5, (2, 0, 0)),
    ("no predictions", np.zeros((0, 4)), [], [T1, T2], 0.5, (0, 0, 2)),
    ("no truth", [A, B], [0.9, 0.8], np.zeros((0, 4)), 0.5, (0, 2, 0)),
]


@pytest.mark.parametrize(
    ("pred", "conf", "truth", "threshold", "expected"),
    [c[1:] for c in MATCH_CASES],
    ids=[c[0] for c in MATCH_CASES],
)
def test_match_boxes(
    pred: list[list[float]], conf: list[float], truth: list[list[float]], threshold: float,
    expected: tuple[int, int, int],
) -> None:
    got = match_boxes(np.array(pred, np.float32), np.array(conf, np.float32),
                      np.array(truth, np.float32), iou_threshold=threshold)
    assert got == expected


def test_match_boxes_rejects_confidence_mismatch() -> None:
    with pytest.raises(ValueError, match="confidences"):
        match_boxes(np.zeros((2, 4)), np.zeros(1), np.zeros((1, 4)))


boxes_strategy = hnp.arrays(
    np.float64, st.tuples(st.integers(0, 6), st.just(4)),
    elements=st.floats(0, 100, allow_nan=False),
).map(lambda a: np.hstack([np.minimum(a[:, :2], a[:, 2:]), np.maximum(a[:, :2], a[:, 2:])]))


@settings(max_examples=60, deadline=None)
@given(pred=boxes_strategy, truth=boxes_strategy, threshold=st.floats(0.05, 1.0))
def test_match_boxes_accounts_for_every_box(
    pred: np.ndarray, truth: np.ndarray, threshold: float
) -> None:
    tp, fp, fn = match_boxes(pred, np.linspace(1, 0, len(pred)), truth, threshold)
    assert min(tp, fp, fn) >= 0
    assert tp + fp == len(pred)
    assert tp + fn == len(truth)
    iou = box_iou(pred, truth)
    assert ((iou >= 0) & (iou <= 1 + 1e-12)).all()


# (case, tp, fp, fn, precision, recall, f1)
TALLY_CASES = [
    ("typical", 8, 2, 4, 0.8, 8 / 12, 16 / 22),
    ("nothing at all", 0, 0, 0, 0.0, 0.0, 0.0),
    ("only false positives", 0, 3, 0, 0.0, 0.0, 0.0),
    ("perfect", 5, 0, 0, 1.0, 1.0, 1.0),
]


@pytest.mark.parametrize(
    ("tp", "fp", "fn", "precision", "recall", "f1"),
    [c[1:] for c in TALLY_CASES],
    ids=[c[0] for c in TALLY_CASES],
)
def test_detection_tally(
    tp: int, fp: int, fn: int, precision: float, recall: float, f1: float
) -> None:
    tally = DetectionTally()
    tally.add(tp, fp, fn)
    assert (tally.precision, tally.recall, tally.f1) == (
        pytest.approx(precision), pytest.approx(recall), pytest.approx(f1))


def test_detection_tally_sums_frames() -> None:
    tally = DetectionTally(iou_threshold=0.5)
    tally.add_frame(np.array([A, B]), np.array([0.8, 0.9]), np.array([T1, T2]))  # 1, 1, 1
    tally.add_frame(np.array([A, B]), np.array([0.9, 0.8]), np.array([T1, T2]))  # 2, 0, 0
    assert (tally.tp, tally.fp, tally.fn) == (3, 1, 1)
    assert tally.precision == pytest.approx(0.75)
    assert tally.recall == pytest.approx(0.75)


SQUARE = shapely.Polygon([(0, 0), (10, 0), (10, 10), (0, 10)])
# (case, boxes, anchor, people)
ZONE_CASES = [
    ("straddles bottom edge: centre in", [[2, 4, 4, 14]], "center", 1),
    ("straddles bottom edge: feet out", [[2, 4, 4, 14]], "bottom_center", 0),
    ("straddles top edge: centre out", [[2, -8, 4, 6]], "center", 0),
    ("straddles top edge: feet in", [[2, -8, 4, 6]], "bottom_center", 1),
    ("feet exactly on the edge count", [[2, 0, 4, 10]], "bottom_center", 1),
    ("several boxes", [[1, 1, 3, 3], [20, 1, 22, 3], [4, 2, 6, 9]], "bottom_center", 2),
    ("no boxes", np.zeros((0, 4)), "center", 0),
]


@pytest.mark.parametrize("as_array", [False, True], ids=["polygon", "vertices"])
@pytest.mark.parametrize(
    ("boxes", "anchor", "people"), [c[1:] for c in ZONE_CASES], ids=[c[0] for c in ZONE_CASES]
)
def test_people_in_zone(as_array: bool, boxes: list[list[float]], anchor: str, people: int) -> None:
    zone = np.array(SQUARE.exterior.coords[:-1]) if as_array else SQUARE
    assert people_in_zone(np.array(boxes, np.float32), zone, anchor) == people  # type: ignore[arg-type]


def test_people_in_zone_rejects_unknown_anchor() -> None:
    with pytest.raises(ValueError, match="anchor"):
        people_in_zone(np.zeros((1, 4)), SQUARE, "top_left")  # type: ignore[arg-type]


def _results() -> list[EvalResult]:
    tally = DetectionTally()
    tally.add(9, 1, 3)
    return [
        EvalResult("yolo11n conf=0.25", count_errors([2, 3, 5, 5], [2, 4, 3, 5]), tally,
                   {"door": count_errors([1, 0], [1, 1])}),
        EvalResult("yolov8n", count_errors([0], [3])),
    ]


def test_format_table_rows_and_alignment() -> None:
    lines = format_table(_results()).splitlines()
    assert lines[0].split() == ["setting", "frames", "MAE", "RMSE", "bias", "exact%",
                                "precision", "recall"]
    assert lines[1].split() == ["yolo11n", "conf=0.25", "4", "0.750", "1.118", "+0.250", "50.0",
                                "0.900", "0.750"]
    assert lines[2].split() == ["zone", "door", "2", "0.500", "0.707", "-0.500", "50.0", "-", "-"]
    assert lines[2].startswith("  zone door")
    assert lines[3].split() == ["yolov8n", "1", "3.000", "3.000", "-3.000", "0.0", "-", "-"]
    # Right-aligned numbers: every row ends at the same column and each header ends where its
    # values end.
    assert len({len(line) for line in lines}) == 1
    mae_end = lines[0].index("MAE") + len("MAE")
    assert all(line[:mae_end].endswith(("MAE", "0.750", "0.500", "3.000")) for line in lines)


def test_report_dict_is_json() -> None:
    report = json.loads(json.dumps(report_dict(_results())))
    first, second = report["results"]
    assert first["name"] == "yolo11n conf=0.25"
    assert first["counts"] == pytest.approx(
        {"mae": 0.75, "rmse": math.sqrt(1.25), "bias": 0.25, "exact": 0.5, "frames": 4})
    assert first["detection"]["precision"] == pytest.approx(0.9)
    assert first["detection"]["recall"] == pytest.approx(0.75)
    assert first["zones"]["door"]["mae"] == pytest.approx(0.5)
    assert second["detection"] is None
    assert second["zones"] == {}
