"""Head-point ground truth: reading, ROI, one-to-one matching and scores, hand-computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdwatch.tools.points import (
    head_points,
    in_mask,
    load_points,
    match_points,
    pair_costs,
    polygon_mask,
    roi_filter,
    score_frames,
)

BOX = [0.0, 0.0, 10.0, 100.0]  # w 10, h 100: head region x -1..11, y -10..40; head (5, 10)

# (point, cost or None when the pair is infeasible)
COST_CASES = [
    ((5, 10), 0.0),
    ((5, 40), 0.3),
    ((5, 41), None),      # below the upper 40 %
    ((11, 10), 0.06),     # 10 % of the width outside, still a head
    ((12, 10), None),
    ((5, -10), 0.2),      # 10 % of the height above the top
    ((5, -11), None),
]


@pytest.mark.parametrize(("point", "cost"), COST_CASES)
def test_pair_costs(point: tuple[float, float], cost: float | None) -> None:
    value = pair_costs(np.array([BOX], np.float32), np.array([point], np.float64))[0, 0]
    if cost is None:
        assert value == np.inf
    else:
        assert value == pytest.approx(cost)


def test_head_points() -> None:
    assert head_points(np.array([BOX, [10, 20, 30, 60]], np.float32)).tolist() == [
        [5, 10], [20, 24]]


A, B = [0, 0, 10, 100], [4, 0, 14, 100]  # two overlapping people
# (boxes, points, (tp, fp, fn))
MATCH_CASES = [
    ([], [], (0, 0, 0)),
    ([A], [], (0, 1, 0)),
    ([], [(5, 10)], (0, 0, 1)),
    ([A], [(5, 10)], (1, 0, 0)),
    ([A], [(5, 10), (6, 12)], (1, 0, 1)),               # one box takes one head only
    ([A, [50, 0, 60, 100]], [(5, 10)], (1, 1, 0)),
    ([A], [(5, 80)], (0, 1, 1)),                        # a point at the feet is no match
    # (6, 10) is nearest A, but only A can take (2, 10): the most pairs win, B takes (6, 10).
    ([A, B], [(6, 10), (2, 10)], (2, 0, 0)),
]


@pytest.mark.parametrize(("boxes", "points", "expected"), MATCH_CASES)
def test_match_points(boxes: list[list[float]], points: list[tuple[float, float]],
                      expected: tuple[int, int, int]) -> None:
    result = match_points(np.array(boxes, np.float32).reshape(-1, 4),
                          np.array(points, np.float64).reshape(-1, 2))
    assert result == expected


MASK = np.zeros((10, 10), bool)
MASK[:, :5] = True  # left half inside

# (point, inside?)
MASK_CASES = [((0, 0), True), ((4.99, 9.99), True), ((5, 3), False), ((-0.5, 3), False),
              ((3, 10), False), ((3, -1), False)]


@pytest.mark.parametrize(("point", "inside"), MASK_CASES)
def test_in_mask(point: tuple[float, float], inside: bool) -> None:
    assert in_mask(MASK, np.array([point], np.float64)).tolist() == [inside]


def test_no_mask_means_everything_inside() -> None:
    assert in_mask(None, np.array([[1e6, -5]], np.float64)).tolist() == [True]


def test_polygon_mask() -> None:
    mask = polygon_mask([(0, 0), (2, 0), (2, 2), (0, 2)], 4, 3)
    assert mask.tolist() == [[True, True, False, False], [True, True, False, False],
                             [False, False, False, False]]


def test_roi_filter_uses_the_head_point_of_boxes() -> None:
    # Head point (2, 1) inside; (7, 1) outside though the box's left part is inside.
    boxes = np.array([[1, 0, 3, 10], [4, 0, 10, 10]], np.float32)
    points = np.array([[1, 1], [8, 1]], np.float64)
    kept_boxes, kept_points = roi_filter(boxes, points, MASK)
    assert kept_boxes.tolist() == [[1, 0, 3, 10]]
    assert kept_points.tolist() == [[1, 1]]


def test_score_frames() -> None:
    boxes = {0: np.array([A, [50, 0, 60, 100]], np.float32),   # 1 right, 1 ghost
             1: np.array([A], np.float32)}                      # 1 right, 2 missed
    truth = {0: np.array([[5, 10]], np.float64),
             1: np.array([[5, 10], [55, 10], [80, 10]], np.float64)}
    score = score_frames(boxes, truth, [0, 1])
    assert score.predicted == [2, 1] and score.truth == [1, 3]
    assert (score.tp, score.fp, score.fn) == (2, 1, 2)
    summary = score.summary()
    assert summary["mae"] == pytest.approx(1.5)     # |2-1|, |1-3|
    assert summary["bias"] == pytest.approx(-0.5)
    assert summary["precision"] == pytest.approx(2 / 3)
    assert summary["recall"] == pytest.approx(0.5)
    # A filtered count replaces the box count; matching still uses the boxes.
    assert score_frames(boxes, truth, [0, 1], counts={0: 1, 1: 3}).summary()["mae"] == 0


def test_score_frames_frame_without_points_or_boxes() -> None:
    score = score_frames({}, {0: np.array([[5, 10]], np.float64)}, [0, 1])
    assert score.predicted == [0, 0] and score.truth == [1, 0]
    assert (score.tp, score.fp, score.fn) == (0, 0, 1)
    assert score.precision == 1.0 and score.recall == 0.0


def test_load_points(tmp_path: Path) -> None:
    path = tmp_path / "points.csv"
    path.write_text("frame,x,y\n0,1.5,2\n2,3,4\n0,5,6\n", encoding="utf-8")
    points = load_points(path)
    assert sorted(points) == [0, 2]
    assert points[0].tolist() == [[1.5, 2], [5, 6]]
    assert points[2].tolist() == [[3, 4]]


@pytest.mark.parametrize(("text", "message"), [("frame,x\n0,1\n", "missing column"),
                                               ("frame,x,y\n0,a,2\n", ":2: not frame"),
                                               ("frame,x,y\n-1,1,2\n", "bad frame")])
def test_load_points_rejects_bad_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "points.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_points(path)
