"""DwellTracker on synthetic tracks; expected visits worked out by hand in each row.

Defaults: enter_s = 1, leave_s = 1, lost_s = 3. A visit runs from the first frame inside to
the first frame outside; it starts once inside for enter_s and ends once outside for leave_s.
"""

from __future__ import annotations

import numpy as np
import pytest

from crowdwatch.analytics.dwell import DwellTracker
from crowdwatch.config.flow import DwellConfig, RelinkConfig


def person(track: int, *states: tuple[float, bool]):
    """Frames (t, [(id, inside)]) of one person in one zone."""
    return [(t, [(track, inside)]) for t, inside in states]


def timeline(track: int, inside_until: float, end: float, step: float = 0.5):
    """Inside from t = 0 up to (excluding) inside_until, then outside until end."""
    times = np.arange(0, end + 1e-9, step)
    return person(track, *[(float(t), bool(t < inside_until)) for t in times])


def run(tracker: DwellTracker, frames):
    completed: list[float] = []
    stats = None
    for t, people in frames:
        ids = np.array([p[0] for p in people], np.int64)
        membership = np.array([[p[1] for p in people]], bool).reshape(1, -1)
        stats = tracker.update(ids, membership, t)
        completed += stats.completed[0]
    assert stats is not None
    return completed, stats


CASES = [
    # name, frames, expected completed visits, inside now, longest now
    # In 0 .. 5.5, out from 6: leaves at 7 (1 s out), visit 6 - 0 = 6 s.
    ("walk in, stay, walk out", timeline(1, 6, 8), [6.0], 0, 0.0),
    ("stand still inside", timeline(1, 99, 10), [], 1, 10.0),
    # Inside only at 0 and 0.5, out from 1.0: never inside for 1 s, so no visit.
    ("pass through quickly", timeline(1, 1.0, 4), [], 0, 0.0),
    # Out for 0.5 s at t = 3 (< leave_s): still one open visit, started at 0.
    ("step out briefly", person(1, *[(t / 2, t != 6) for t in range(0, 13)]), [], 1, 6.0),
    # Edge jitter every frame: inside/outside never lasts 1 s after entering at t = 1.
    ("jitter on the edge", person(1, (0, True), (0.5, True), (1.0, True), *[(1.5 + k / 2, k % 2 == 0) for k in range(10)]), [], 1, 6.0),
    # Uneven gaps: pending from 0, entered at 1.5; out from 1.6, left at 3.0: 1.6 - 0 = 1.6 s.
    ("uneven timestamps", person(1, (0, True), (0.2, True), (1.5, True), (1.6, False), (3.0, False)), [1.6], 0, 0.0),
    # Seen inside until 4, then gone; at 7.5 it is 3.5 s unseen > 3: visit 4 - 0 = 4 s.
    ("track lost inside", [*timeline(1, 99, 4), (5.0, []), (6.0, []), (7.5, [])], [4.0], 0, 0.0),
    ("unconfirmed track never dwells", timeline(-1, 6, 8), [], 0, 0.0),
    # Two visits: in 0-2.5, out 3-5.5 (left at 4: 3 - 0), in 6-8.5, out from 9 (left at 10: 9 - 6).
    ("two visits", person(1, *[(t / 2, (t // 6) % 2 == 0) for t in range(0, 21)]), [3.0, 3.0], 0, 0.0),
    # Two people: A leaves (visit 3 s), B still inside since 0 at t = 5.
    ("two people", [(t / 2, [(1, t < 6), (2, True)]) for t in range(0, 11)], [3.0], 1, 5.0),
]


@pytest.mark.parametrize(("frames", "visits", "inside_now", "longest"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_dwell(frames, visits: list[float], inside_now: int, longest: float) -> None:
    completed, stats = run(DwellTracker(["z"]), frames)
    assert completed == pytest.approx(visits)
    assert stats.inside_now.tolist() == [inside_now]
    assert stats.longest_s.tolist() == pytest.approx([longest])


@pytest.mark.parametrize(("enter_s", "leave_s", "visits"), [
    # Inside 0 .. 2.5, outside from 3 (timeline(1, 3, 6)).
    (0.0, 0.0, [3.0]),   # enters at 0, leaves at 3
    (3.0, 0.0, []),      # never inside for 3 s
    (2.5, 3.0, [3.0]),   # enters at 2.5, leaves at 6 (out 3 s): still timed 0 -> 3
    (1.0, 3.5, []),      # out only 3 s by t = 6: visit still open
])
def test_dwell_thresholds(enter_s: float, leave_s: float, visits: list[float]) -> None:
    tracker = DwellTracker(["z"], DwellConfig(enter_s=enter_s, leave_s=leave_s))
    completed, _ = run(tracker, timeline(1, 3, 6))
    assert completed == pytest.approx(visits)


def test_two_zones_and_people_matrix() -> None:
    tracker = DwellTracker(["a", "b"], DwellConfig(enter_s=0, leave_s=0))
    ids = np.array([1, 2, -1])
    # Person 1 in a and b (overlapping zones), person 2 in b, the unconfirmed box in a.
    membership = np.array([[True, False, True], [True, True, False]])
    stats = tracker.update(ids, membership, 10.0)
    assert stats.inside_now.tolist() == [1, 2]
    stats = tracker.update(ids, membership, 12.5)
    assert stats.longest_s.tolist() == [2.5, 2.5]
    stats = tracker.update(ids, np.array([[False, False, True], [True, True, False]]), 13.0)
    assert stats.completed_by_zone() == {"a": [3.0], "b": []}
    assert stats.inside_now.tolist() == [0, 2]


def test_broken_track_inside_is_one_visit_with_foot_points() -> None:
    tracker = DwellTracker(["z"], DwellConfig(enter_s=0, leave_s=0, lost_s=3), RelinkConfig())
    inside = np.array([[True]])
    tracker.update(np.array([1]), inside, 0.0, np.array([[50.0, 50.0]]))
    tracker.update(np.array([1]), inside, 1.0, np.array([[52.0, 50.0]]))
    # Id 1 is lost; id 2 appears 0.5 s later 6 px away: it continues the visit.
    stats = tracker.update(np.array([2]), inside, 1.5, np.array([[58.0, 50.0]]))
    assert stats.longest_s.tolist() == [1.5]
    stats = tracker.update(np.array([2]), np.array([[False]]), 2.0, np.array([[99.0, 50.0]]))
    assert stats.completed_by_zone() == {"z": [2.0]}
