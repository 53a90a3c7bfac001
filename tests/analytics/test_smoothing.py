from __future__ import annotations

import numpy as np
import pytest

from crowdwatch.analytics.smoothing import (
    FrameRate,
    TimedSmoother,
    counting_smoother,
    make_smoother,
    window_frames,
)
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


# --- the window as a time ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window_s", "fps", "frames"),
    [
        (0.2, 10.0, 3),  # PETS: 1 + 2, the window tuned there
        (0.2, 2.0, 1),  # Mall (< 2 frames/s): 1 + round(0.4), no filtering
        (0.2, 25.0, 6),  # 1 + 5
        (0.2, 30.0, 7),  # 1 + 6
        (0.2, 9.999999, 3),  # a measured 10 frames/s lands where 10 does
        (0.25, 10.0, 4),  # 1 + 2.5 rounded half up
        (0.05, 10.0, 2),  # 1 + 0.5 rounded half up
        (0.0, 30.0, 1),  # no window: the raw counts
        (1.0, 0.5, 2),  # a frame every 2 s: 1 + round(0.5)
        (60.0, 16.65, 1000),  # 1 + 999
        (60.0, 30.0, 1000),  # 1 + 1800, capped at counting.window's bound
        (0.2, 1e6, 1000),  # frames with nearly equal times
    ],
)
def test_window_frames_from_time_and_rate(window_s: float, fps: float, frames: int) -> None:
    assert window_frames(window_s, fps) == frames


@pytest.mark.parametrize(
    ("times", "fps"),
    [
        ([], None),
        ([5.0], None),  # one frame: no interval yet
        ([5.0, 5.0], None),  # a repeated time is no interval
        ([0.0, 0.5], 2.0),
        # A live camera's jitter: intervals .09 .12 .09 .11, median 0.10.
        ([0.0, 0.09, 0.21, 0.30, 0.41], 10.0),
        # One late frame (a 2 s gap) does not move the median interval (0.1).
        ([0.0, 0.1, 0.2, 2.2, 2.3, 2.4], 10.0),
        # A file that loops starts over: the step back is no interval.
        ([0.0, 0.04, 0.0], 25.0),
    ],
)
def test_frame_rate_is_the_median_interval(times: list[float], fps: float | None) -> None:
    rate = FrameRate()
    for t in times:
        rate.observe(t)
    assert rate.fps == (None if fps is None else pytest.approx(fps))


def at(fps: float, n: int) -> list[float]:
    """n frame times of a camera at fps, as a file source gives them (index / fps)."""
    return [i / fps for i in range(n)]


@pytest.mark.parametrize(
    ("name", "fps", "stream", "expected"),
    [
        # At 10 frames/s (3 frames) a one-frame dip is held back, as before...
        ("persistence", 10.0, [3, 3, 2, 3, 3], [3, 3, 3, 3, 3]),
        # ... at 2 frames/s (1 frame) the same dip passes straight through.
        ("persistence", 2.0, [3, 3, 2, 3, 3], [3, 3, 2, 3, 3]),
        ("median", 2.0, [3, 3, 2, 3, 3], [3, 3, 2, 3, 3]),
        ("median", 10.0, [3, 3, 2, 3, 3], [3, 3, 3, 3, 3]),
        # At 25 frames/s (6 frames) a dip of 5 frames (0.2 s) is held back...
        ("persistence", 25.0, [3, 3, 2, 2, 2, 2, 2, 3], [3] * 8),
        # ... one of 6 frames comes through on its 6th frame.
        ("persistence", 25.0, [3, 2, 2, 2, 2, 2, 2, 3], [3, 3, 3, 3, 3, 3, 2, 2]),
        # The first frame passes as it is; the window is sized from the second frame on, so
        # a 10 frames/s stream gives what a fixed window of 3 gave (test_smoothers above).
        ("persistence", 10.0, [2, 2, 5, 5, 5, 5], [2, 2, 2, 2, 5, 5]),
        ("persistence", 10.0, [5, 1, 1, 1], [5, 5, 5, 1]),
        ("persistence", 2.0, [5, 1, 1, 1], [5, 1, 1, 1]),
    ],
)
def test_timed_window_follows_the_frame_rate(name: str, fps: float, stream: list[int],
                                             expected: list[int]) -> None:
    smoother = TimedSmoother(name, 0.2)
    out = [int(smoother.update(np.array([c]), t)[0]) for c, t in zip(stream, at(fps, len(stream)), strict=True)]
    assert out == expected


def test_timed_window_is_resized_when_the_rate_changes() -> None:
    # 10 frames/s, then a frame every 0.5 s (an overloaded camera): the median of the last 8
    # intervals moves to 0.3 s (4 of each: 3.3 frames/s, 1 + round(0.67) = 2 frames), then 0.5.
    times = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.3, 1.8, 2.3, 2.8, 3.3]
    smoother = TimedSmoother("persistence", 0.2)
    frames = []
    for t in times:
        smoother.update(np.array([1]), t)
        frames.append(smoother.frames)
    assert frames == [1] + [3] * 11 + [2, 1]


@pytest.mark.parametrize(
    ("name", "window", "before", "resized", "after", "expected"),
    [
        # The held count stays (a new strategy would take the next frame's 1 at once).
        ("persistence", 3, [4, 4, 4], 5, [1], [4]),
        # The low frame seen before the resize counts towards the run: 5 in a row at the 4th.
        ("persistence", 3, [4, 4, 1], 5, [1, 1, 1, 1], [4, 4, 4, 1]),
        ("persistence", 3, [4, 1, 1], 2, [1], [1]),
        # median of [1, 1, 5, 5] is 3 (a new strategy would say 5).
        ("median", 3, [1, 1, 5], 4, [5], [3]),
        ("median", 3, [1, 1, 5], 2, [5], [5]),
        ("none", 3, [1], 9, [2], [2]),
    ],
)
def test_resizing_keeps_the_recent_frames(name: str, window: int, before: list[int],
                                          resized: int, after: list[int],
                                          expected: list[int]) -> None:
    smoother = make_smoother(name, window)
    for c in before:
        smoother.update(np.array([c]))
    smoother.resize(resized)
    assert [int(smoother.update(np.array([c]))[0]) for c in after] == expected


@pytest.mark.parametrize(
    ("frames", "timed", "stream", "expected"),
    [
        # A fixed window ignores the times (2 frames/s here) ...
        (3, True, [3, 3, 2, 3, 3], [3, 3, 3, 3, 3]),
        # ... and frames without real times (timed False, an image folder's) get 1 frame.
        (None, False, [3, 3, 2, 3, 3], [3, 3, 2, 3, 3]),
        (3, False, [3, 3, 2, 3, 3], [3, 3, 3, 3, 3]),
    ],
)
def test_fixed_and_untimed_windows(frames: int | None, timed: bool, stream: list[int],
                                   expected: list[int]) -> None:
    smoother = TimedSmoother("persistence", 0.2, frames, timed)
    out = [int(smoother.update(np.array([c]), t)[0]) for c, t in zip(stream, at(2.0, len(stream)), strict=True)]
    assert out == expected
    assert smoother.frames == (frames or 1)


@pytest.mark.parametrize(
    ("counting", "timed", "described"),
    [
        ({}, True, "persistence 0.2 s"),
        ({"smoothing": "median", "window_s": 0.5}, True, "median 0.5 s"),
        ({"window": 5}, True, "persistence 5 frames"),
        ({"smoothing": "none"}, True, "none"),
        # An image folder: not filtered unless the smoothing is set, and then only a fixed
        # window gives it more than 1 frame (its frame times are made up).
        ({}, False, "none"),
        ({"window": 3}, False, "none"),
        ({"smoothing": "persistence"}, False,
         "persistence 1 frame (no frame times: set counting.window to filter)"),
        ({"smoothing": "persistence", "window": 3}, False, "persistence 3 frames"),
        # A window of 1 frame asked for is a choice, not a missing frame rate.
        ({"smoothing": "persistence", "window": 1}, False, "persistence 1 frame"),
    ],
)
def test_counting_smoother_is_what_the_config_and_source_give(counting: dict, timed: bool,
                                                              described: str) -> None:
    config = parse_config({"cameras": [{"id": "c", "source": 0}], "counting": counting})
    assert str(counting_smoother(config.counting, timed)) == described
