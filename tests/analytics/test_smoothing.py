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


def test_unknown_strategy_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError, match="valid: median, none, persistence"):
        make_smoother("kalman", 3)
    with pytest.raises(ConfigError, match=r"counting.smoothing: unknown smoothing 'kalman'; valid: median, none"):
        parse_config({"cameras": [{"id": "c", "source": 0}], "counting": {"smoothing": "kalman"}})
