"""The console's trend buffers: bounded, one point per step (the step's maximum), in order."""

from __future__ import annotations

import numpy as np
import pytest

from crowdwatch.web.trends import TREND_STEP_S, TREND_WINDOW_S, TrendRing


def test_a_ring_keeps_only_its_newest_points_and_its_memory_is_fixed() -> None:
    ring = TrendRing(capacity=5)
    size = ring.nbytes
    for second in range(12):
        ring.add(100.0 + second, second)
    times, values = ring.points()
    assert times.tolist() == [107.0, 108.0, 109.0, 110.0, 111.0]
    assert values.tolist() == [7.0, 8.0, 9.0, 10.0, 11.0]
    assert len(ring) == 5 and ring.nbytes == size == 5 * (8 + 8)


def test_frames_faster_than_a_step_fold_into_one_point_at_their_maximum() -> None:
    ring = TrendRing(capacity=600)
    # 10 frames a second for 3 s, people 0..29: one point per second, its highest count.
    for i in range(30):
        ring.add(50.0 + i / 10, i % 10 if i < 20 else 29 - i)
    times, values = ring.points()
    assert len(times) == 3
    assert values.tolist() == [9.0, 9.0, 9.0]  # 0..9, 0..9, 9..0
    assert times.tolist() == pytest.approx([50.9, 51.9, 52.9])  # newest time of each step


def test_frames_rarer_than_a_step_keep_one_point_each() -> None:
    ring = TrendRing(capacity=600)
    for i in range(4):
        ring.add(10.0 + 5 * i, i)
    assert ring.points()[1].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert ring.points(since=15.0)[0].tolist() == [20.0, 25.0]


def test_running_totals_fold_to_their_last_value_and_give_a_rate() -> None:
    ring = TrendRing(capacity=64)
    for i in range(0, 1210):  # 10 frames a second, total = frame number, for 121 s
        ring.add(i / 10, i, fold="last")
    assert len(ring) == 64
    assert ring.last() == (120.9, 1209.0)
    # From the point 60 s before now (t=60.9: 609) to 1209 now: 600 in 60 s.
    assert ring.rate(1209.0, now=120.9, window_s=60.0) == pytest.approx(10.0)
    assert TrendRing().rate(5.0, now=1.0, window_s=60.0) is None  # no point yet


def test_a_clock_stepping_back_does_not_disorder_the_ring() -> None:
    ring = TrendRing(capacity=10)
    ring.add(100.0, 1)
    ring.add(99.0, 5)  # folds into the newest point
    ring.add(101.0, 2)
    times, values = ring.points()
    assert np.all(np.diff(times) > 0) and values.tolist() == [5.0, 2.0]


def test_sixteen_cameras_of_ten_zones_stay_far_below_twenty_megabytes() -> None:
    rings = [TrendRing() for _ in range(16 * 10)]
    for second in range(2 * int(TREND_WINDOW_S)):  # twice the window: full and wrapped
        for ring in rings[:1]:
            ring.add(second * TREND_STEP_S, second)
    assert len(rings[0]) == int(TREND_WINDOW_S / TREND_STEP_S)
    assert sum(r.nbytes for r in rings) == 160 * 600 * 16  # 1.5 MB of arrays, fixed


@pytest.mark.parametrize("count", [0, 1, 3, 7, 8, 9, 20])
def test_points_after_a_time_match_a_plain_list_at_every_fill(count: int) -> None:
    ring = TrendRing(capacity=8)
    kept: list[tuple[float, float]] = []
    for i in range(count):
        ring.add(10.0 + i, i)
        kept = [*kept, (10.0 + i, float(i))][-8:]
    for since in (-1.0, 9.5, 12.0, 14.5, 25.0, 40.0):
        times, values = ring.points(since)
        assert list(zip(times.tolist(), values.tolist(), strict=True)) == [
            p for p in kept if p[0] > since]
