"""Level edges, worked out by hand on integer counts over a capacity of 10.

Thresholds warning 0.8, critical 1.0, hysteresis 0.1: warning is entered at 8 people and held
down to 7 (0.8 - 0.1, which is 0.7000000000000001 in binary), critical is entered at 10 and
held down to 9. Every row sits on an edge, so `>=` turned into `>` anywhere fails a row.
"""

from __future__ import annotations

import numpy as np
import pytest

from crowdwatch.analytics.levels import LevelTracker
from crowdwatch.config import LevelThresholds

OK, WARNING, CRITICAL = 0, 1, 2


def levels_for(counts: list[int], capacity: int = 10, **thresholds: float) -> list[int]:
    settings = {"warning": 0.8, "critical": 1.0, "hysteresis": 0.1, "clear_frames": 1}
    tracker = LevelTracker([LevelThresholds(**(settings | thresholds))])
    return [int(tracker.update(np.array([c / capacity]))[0]) for c in counts]


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        # Entering: exactly on the threshold enters, one below does not.
        ([7], [OK]),
        ([8], [WARNING]),
        ([9], [WARNING]),
        ([10], [CRITICAL]),
        ([11], [CRITICAL]),
        # Holding: exactly on the leave edge (0.7, 0.9) holds; one below leaves.
        ([8, 7], [WARNING, WARNING]),
        ([8, 6], [WARNING, OK]),
        ([10, 9], [CRITICAL, CRITICAL]),
        ([10, 8], [CRITICAL, WARNING]),
        ([10, 7], [CRITICAL, WARNING]),
        ([10, 6], [CRITICAL, OK]),
        # Coming back from the band never re-enters from below: 7 after ok is ok.
        ([8, 6, 7], [WARNING, OK, OK]),
        ([0, 10, 9, 9, 8, 7, 6, 8], [OK, CRITICAL, CRITICAL, CRITICAL, WARNING, WARNING, OK,
                                     WARNING]),
    ],
)
def test_level_edges(counts: list[int], expected: list[int]) -> None:
    assert levels_for(counts) == expected


@pytest.mark.parametrize(
    ("capacity", "warning", "hysteresis", "counts", "expected"),
    [
        # 0.7 - 0.2 = 0.49999999999999994: 5 of 10 must hold.
        (10, 0.7, 0.2, [7, 5, 4], [WARNING, WARNING, OK]),
        # 0.3 - 0.1 = 0.19999999999999998: 2 of 10 must hold.
        (10, 0.3, 0.1, [3, 2, 1], [WARNING, WARNING, OK]),
        # 0.6 of 5 = 3 people: 3 / 5 is 0.6 exactly, 2 / 5 = 0.4 = 0.6 - 0.2 holds.
        (5, 0.6, 0.2, [3, 2, 1], [WARNING, WARNING, OK]),
        # 0.35 * 20 = 7 people; 0.35 - 0.1 = 0.24999999999999997, 5 of 20 holds.
        (20, 0.35, 0.1, [7, 5, 4], [WARNING, WARNING, OK]),
    ],
)
def test_decimal_edges_are_exact(capacity: int, warning: float, hysteresis: float,
                                 counts: list[int], expected: list[int]) -> None:
    assert levels_for(counts, capacity, warning=warning, critical=1.0,
                      hysteresis=hysteresis) == expected


@pytest.mark.parametrize(
    ("clear_frames", "counts", "expected"),
    [
        # Below the band for clear_frames frames in a row, then the lower level.
        (1, [10, 8], [CRITICAL, WARNING]),
        (2, [10, 8, 8], [CRITICAL, CRITICAL, WARNING]),
        (3, [10, 8, 8, 8], [CRITICAL, CRITICAL, CRITICAL, WARNING]),
        # A frame back inside the band restarts the count.
        (2, [10, 8, 9, 8, 8], [CRITICAL, CRITICAL, CRITICAL, CRITICAL, WARNING]),
        # Falling goes to the highest level still held: from critical straight to ok.
        (2, [10, 0, 0], [CRITICAL, CRITICAL, OK]),
        # ... or to warning when the count is in warning's band but below its entry.
        (2, [10, 7, 7], [CRITICAL, CRITICAL, WARNING]),
        # Rising again resets the count: the next fall waits the full clear_frames.
        (2, [10, 8, 10, 8, 8], [CRITICAL, CRITICAL, CRITICAL, CRITICAL, WARNING]),
        # Frames on the leave edge are inside the band: they do not count towards a fall.
        (2, [10, 9, 8, 8], [CRITICAL, CRITICAL, CRITICAL, WARNING]),
        # After a fall the count starts again: the next level waits clear_frames too.
        (2, [10, 8, 8, 6, 6], [CRITICAL, CRITICAL, WARNING, WARNING, OK]),
    ],
)
def test_clear_frames(clear_frames: int, counts: list[int], expected: list[int]) -> None:
    assert levels_for(counts, clear_frames=clear_frames) == expected


def test_no_zones() -> None:
    assert LevelTracker([]).update(np.zeros(0)).tolist() == []


def test_zones_are_independent_and_nan_reads_ok() -> None:
    tracker = LevelTracker([LevelThresholds(warning=0.8, critical=1.0, hysteresis=0.1,
                                            clear_frames=1)] * 3)
    assert tracker.update(np.array([0.8, 1.0, np.nan])).tolist() == [WARNING, CRITICAL, OK]
    assert tracker.update(np.array([0.7, 0.6, np.nan])).tolist() == [WARNING, OK, OK]
