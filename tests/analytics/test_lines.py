"""LineCounter on synthetic tracks; every expected count is worked out by hand in the table.

Unless a case says otherwise the line runs (0, 100) -> (200, 100). side(p) = 200 * (py - 100),
so the positive side is below the line (image y points down) and walking down is `in`.
Foot points are given directly as (id, x, y).
"""

from __future__ import annotations

import numpy as np
import pytest

from crowdwatch.analytics.lines import Line, LineCounter, build_lines, foot_points
from crowdwatch.config.flow import LineConfig, RelinkConfig

H = Line("h", (0, 100), (200, 100), band_px=5, segment_tolerance=0.0, min_track_age_s=0.0)
# side = 0 * (py - 0) - 200 * (px - 100): positive left of x = 100, so walking left is `in`.
V = Line("v", (100, 0), (100, 200), band_px=5, segment_tolerance=0.0, min_track_age_s=0.0)


def walk(*points: tuple[int, float, float], t0: float = 0.0, dt: float = 0.1):
    """One person per frame: frames of [(id, x, y)] at t0, t0 + dt, ..."""
    return [(t0 + i * dt, [p]) for i, p in enumerate(points)]


def run(counter: LineCounter, frames):
    result = None
    for t, people in frames:
        ids = np.array([p[0] for p in people], np.int64)
        foot = np.array([p[1:] for p in people], np.float64).reshape(-1, 2)
        result = counter.update(ids, foot, t)
    assert result is not None
    return result


CASES = [
    # name, line, frames, relink, expected (in, out)
    ("walk down through the middle", H, walk((1, 100, 80), (1, 100, 90), (1, 100, 110), (1, 100, 120)), None, (1, 0)),
    ("walk up", H, walk((1, 100, 120), (1, 100, 110), (1, 100, 90), (1, 100, 80)), None, (0, 1)),
    ("jump over the band in one step", H, walk((1, 50, 80), (1, 50, 120)), None, (1, 0)),
    ("in then out is one of each", H, walk((1, 100, 80), (1, 100, 120), (1, 100, 80)), None, (1, 1)),
    ("in, out, in", H, walk((1, 100, 80), (1, 100, 120), (1, 100, 80), (1, 100, 120)), None, (2, 1)),
    # |d| <= 3 < band 5: the side never flips.
    ("jitter on the line", H, walk((1, 100, 98), (1, 100, 102), (1, 100, 97), (1, 100, 103), (1, 100, 99), (1, 100, 101)), None, (0, 0)),
    # Starts on - (98), lingers, then walks to 110 > band: one in.
    ("linger then cross", H, walk((1, 100, 98), (1, 100, 102), (1, 100, 98), (1, 100, 102), (1, 100, 110)), None, (1, 0)),
    # Born exactly on the line: side unknown until seen off it, so nothing is counted.
    ("born on the line", H, walk((1, 100, 100), (1, 100, 120)), None, (0, 0)),
    # x = 300: crossing point projects to t = 1.5, off the segment.
    ("passes beside the segment", H, walk((1, 300, 80), (1, 300, 120)), None, (0, 0)),
    # Crossing at x = 205 projects to t = 1.025: outside [0, 1] ...
    ("just past the end, no tolerance", H, walk((1, 205, 80), (1, 205, 120)), None, (0, 0)),
    # ... but inside [-0.05, 1.05].
    ("just past the end, 5 % tolerance", Line("h", (0, 100), (200, 100), 5, 0.05, 0.0), walk((1, 205, 80), (1, 205, 120)), None, (1, 0)),
    # Diagonal path (80, 80) -> (120, 120) meets y = 100 at x = 100, t = 0.5.
    ("diagonal path", H, walk((1, 80, 80), (1, 120, 120)), None, (1, 0)),
    # Path (190, 80) -> (230, 120) meets y = 100 at x = 210: t = 1.05, off the segment.
    ("diagonal path meeting the line past its end", H, walk((1, 190, 80), (1, 230, 120)), None, (0, 0)),
    # Crossing judged from the last point on the old side: (100, 90) -> (100, 110) through the band.
    ("slow walk through the band", H, walk(*[(1, 100, y) for y in (90, 96, 99, 101, 104, 106, 110)]), None, (1, 0)),
    ("track too young", Line("h", (0, 100), (200, 100), 5, 0.0, 1.0), walk((1, 100, 80), (1, 100, 90), (1, 100, 120)), None, (0, 0)),
    # Age 0.2 s at the crossing frame = min age 0.2 s.
    ("track just old enough", Line("h", (0, 100), (200, 100), 5, 0.0, 0.2), walk((1, 100, 80), (1, 100, 90), (1, 100, 120)), None, (1, 0)),
    ("unconfirmed track never counts", H, walk((-1, 100, 80), (-1, 100, 120), (-1, 100, 80)), None, (0, 0)),
    # Id 1 lost at (100, 95) at t = 0.1; id 2 born at (100, 112) at t = 0.4: 17 px, 0.3 s away.
    ("broken track resumes on the other side", H, [*walk((1, 100, 80), (1, 100, 95)), (0.4, [(2, 100, 112)]), (0.5, [(2, 100, 120)])], None, (1, 0)),
    ("same, relinking off", H, [*walk((1, 100, 80), (1, 100, 95)), (0.4, [(2, 100, 112)]), (0.5, [(2, 100, 120)])], RelinkConfig(within_s=0), (0, 0)),
    # 17 px > within_px 10: not the same person.
    ("same, new id too far away", H, [*walk((1, 100, 80), (1, 100, 95)), (0.4, [(2, 100, 112)])], RelinkConfig(within_px=10), (0, 0)),
    # Lost for 2.4 s > within_s 2 s.
    ("same, new id too late", H, [*walk((1, 100, 80), (1, 100, 95)), (2.5, [(2, 100, 112)])], None, (0, 0)),
    # The old id is still visible, so the new one is somebody else.
    ("new id beside a live track", H, [(0.0, [(1, 100, 95)]), (0.1, [(1, 100, 95), (2, 100, 112)]), (0.2, [(1, 100, 95), (2, 100, 120)])], None, (0, 0)),
    ("two people cross opposite ways in one frame", H, [(0.0, [(1, 50, 80), (2, 150, 120)]), (0.1, [(1, 50, 120), (2, 150, 80)])], None, (1, 1)),
    ("a crowd of five walks down", H, [(0.0, [(i, 20 + 30 * i, 80) for i in range(5)]), (0.1, [(i, 20 + 30 * i, 120) for i in range(5)])], None, (5, 0)),
    ("vertical line: walk left is in", V, walk((1, 120, 100), (1, 80, 100)), None, (1, 0)),
    ("vertical line: walk right is out", V, walk((1, 80, 100), (1, 120, 100)), None, (0, 1)),
    # Uneven gaps and a missed frame (t = 0.2 absent) change nothing.
    ("uneven timestamps", H, [(0.0, [(1, 100, 80)]), (0.05, [(1, 100, 90)]), (0.9, [(1, 100, 110)]), (0.93, [(1, 100, 130)])], None, (1, 0)),
]


@pytest.mark.parametrize(("line", "frames", "relink", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_crossings(line: Line, frames, relink: RelinkConfig | None, expected: tuple[int, int]) -> None:
    result = run(LineCounter([line], relink), frames)
    assert result.totals() == {line.name: expected}


def test_crossing_events_and_per_frame_counts() -> None:
    counter = LineCounter([H, Line("h2", (0, 200), (200, 200), 5, 0.0, 0.0)])
    counter.update(np.array([7]), np.array([[100.0, 80.0]]), 1.0)
    result = counter.update(np.array([7]), np.array([[100.0, 120.0]]), 1.5)
    assert result.names == ("h", "h2")
    assert result.new_in.tolist() == [1, 0]
    assert len(result.crossings) == 1
    crossing = result.crossings[0]
    assert (crossing.line, crossing.tracker_id, crossing.direction, crossing.timestamp) == ("h", 7, "in", 1.5)
    assert crossing.point == pytest.approx((100.0, 100.0))
    result = counter.update(np.array([7]), np.array([[100.0, 220.0]]), 2.0)
    assert result.new_in.tolist() == [0, 1]
    assert result.totals() == {"h": (1, 0), "h2": (1, 0)}


def test_empty_frames_and_forgetting() -> None:
    counter = LineCounter([H], RelinkConfig(within_s=0.5, forget_s=1.0))
    counter.update(np.array([1]), np.array([[100.0, 80.0]]), 0.0)
    empty = counter.update(np.zeros(0, np.int64), np.zeros((0, 2)), 0.5)
    assert empty.totals() == {"h": (0, 0)}
    counter.update(np.zeros(0, np.int64), np.zeros((0, 2)), 2.0)
    # State for id 1 was dropped after 1 s unseen: it comes back as a new track on the + side.
    result = counter.update(np.array([1]), np.array([[100.0, 120.0]]), 2.1)
    assert result.totals() == {"h": (0, 0)}


def test_build_lines_scales_normalized_points() -> None:
    lines = build_lines([LineConfig(name="a", points=[(0.0, 0.5), (1.0, 0.5)], normalized=True),
                         LineConfig(name="b", points=[(1, 2), (3, 4)])], 640, 480)
    assert (lines[0].start, lines[0].end) == ((0.0, 240.0), (640.0, 240.0))
    assert (lines[1].start, lines[1].end) == ((1, 2), (3, 4))


def test_foot_points_are_bottom_centres() -> None:
    assert foot_points(np.array([[10, 20, 30, 60]], np.float32)).tolist() == [[20.0, 60.0]]


def test_bad_lines_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        LineCounter([H, H])
    with pytest.raises(ValueError, match="different end points"):
        LineCounter([Line("z", (1, 1), (1, 1))])
