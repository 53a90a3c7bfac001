from __future__ import annotations

import numpy as np
import pytest

from crowdwatch.analytics.smoothing import make_smoother
from crowdwatch.config import parse_config
from crowdwatch.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "window", "stream", "expected"),
    [
        ("none", 5, [3, 0, 3], [3, 0, 3]),
        # A one-frame miss and a one-frame ghost both vanish with a window of 3.
        ("median", 3, [3, 3, 2, 3, 3, 4, 3], [3, 3, 3, 3, 3, 3, 3]),
        # A real change comes through after half the window.
        ("median", 3, [2, 2, 5, 5, 5], [2, 2, 2, 5, 5]),
        # Even windows round half up instead of reporting half people.
        ("median", 2, [2, 3], [2, 3]),
        # persistence (the default): a one-frame miss or ghost never moves the count.
        ("persistence", 3, [3, 3, 2, 3, 3, 4, 3], [3, 3, 3, 3, 3, 3, 3]),
        ("persistence", 2, [1, 2, 1, 2, 1], [1, 1, 1, 1, 1]),
        # A real change comes through once `window` frames in a row lie on one side (lag 2).
        ("persistence", 3, [2, 2, 5, 5, 5, 5], [2, 2, 2, 2, 5, 5]),
        # ... to the nearest of those frames' counts, up or down.
        ("persistence", 3, [2, 2, 4, 5, 6], [2, 2, 2, 2, 4]),
        ("persistence", 3, [5, 5, 1, 2, 1], [5, 5, 5, 5, 2]),
        # Window 1 follows the raw counts; the first frame is taken as it is.
        ("persistence", 1, [4, 0, 7], [4, 0, 7]),
        ("persistence", 5, [6], [6]),
        # Crossing the count within the window is no run on one side.
        ("persistence", 3, [3, 4, 2, 4, 4, 4], [3, 3, 3, 3, 3, 4]),
    ],
)
def test_smoothers(name: str, window: int, stream: list[int], expected: list[int]) -> None:
    smoother = make_smoother(name, window)
    out = [int(smoother.update(np.array([c]))[0]) for c in stream]
    assert out == expected


def test_smoother_works_per_element() -> None:
    smoother = make_smoother("median", 3)
    for counts in ([1, 5], [1, 5], [9, 0]):
        out = smoother.update(np.array(counts))
    assert out.tolist() == [1, 5]


@pytest.mark.parametrize(("stream", "expected"), [
    # Each zone moves to the nearest of its own recent counts, up or down, independently.
    ([[1, 1], [3, 6], [3, 6]], [3, 6]),
    ([[5, 9], [2, 4], [2, 4]], [2, 4]),
    ([[5, 1], [2, 4], [2, 4]], [2, 4]),
    ([[5, 1], [2, 1], [2, 1]], [2, 1]),
])
def test_persistence_moves_each_zone_on_its_own(stream: list[list[int]],
                                                expected: list[int]) -> None:
    smoother = make_smoother("persistence", 2)
    for counts in stream:
        out = smoother.update(np.array(counts))
    assert out.tolist() == expected


@pytest.mark.parametrize("name", ["none", "median", "persistence"])
def test_smoothed_counts_are_whole_people(name: str) -> None:
    smoother = make_smoother(name, 2)
    for counts in ([1, 2], [2, 3]):
        out = smoother.update(np.array(counts, np.int64))
    assert out.dtype == np.int64


def test_persistence_works_per_element_and_restarts_on_a_new_shape() -> None:
    smoother = make_smoother("persistence", 2)
    outs = [smoother.update(np.array(c)).tolist() for c in ([1, 5], [2, 5], [2, 5], [2, 0])]
    assert outs == [[1, 5], [1, 5], [2, 5], [2, 5]]
    # A zone added (another camera size): history restarts from the new counts.
    assert smoother.update(np.array([3, 3, 3])).tolist() == [3, 3, 3]
    # The returned array is a copy: changing it does not change the smoother's state.
    out = smoother.update(np.array([3, 3, 3]))
    out[:] = 9
    assert smoother.update(np.array([3, 3, 3])).tolist() == [3, 3, 3]


def test_unknown_strategy_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError, match="valid: median, none, persistence"):
        make_smoother("kalman", 3)
    with pytest.raises(ConfigError, match=r"counting.smoothing: unknown smoothing 'kalman'; valid: median, none"):
        parse_config({"cameras": [{"id": "c", "source": 0}], "counting": {"smoothing": "kalman"}})
