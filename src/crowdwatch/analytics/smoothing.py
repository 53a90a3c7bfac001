"""Temporal stabilisation of per-frame counts: strategies as small classes in a registry,
and `TimedSmoother`, which sizes a strategy's window from a time and the frames' own times."""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from crowdwatch.registry import Registry

if TYPE_CHECKING:
    from crowdwatch.config.app import CountingConfig

Counts = npt.NDArray[np.int64]
SMOOTHERS: Registry[type[Smoother]] = Registry("smoothing")


class Smoother(Protocol):
    """Turns a stream of raw count vectors into stabilised count vectors of the same shape."""

    def update(self, counts: Counts) -> Counts: ...

    def resize(self, window: int) -> None:
        """Look back over `window` frames from now on, keeping what the last frames showed."""


@SMOOTHERS.register("none")
class NoSmoothing:
    """Exports the raw per-frame counts."""

    def __init__(self, window: int) -> None:
        del window

    def update(self, counts: Counts) -> Counts:
        return counts

    def resize(self, window: int) -> None:
        del window


@SMOOTHERS.register("median")
class MedianSmoothing:
    """Median of the last `window` frames: removes one-frame misses and ghosts."""

    def __init__(self, window: int) -> None:
        self._history: deque[Counts] = deque(maxlen=window)

    def update(self, counts: Counts) -> Counts:
        if self._history and self._history[-1].shape != counts.shape:
            self._history.clear()
        self._history.append(counts)
        # Rounding half up keeps an even window from reporting half people.
        return np.floor(np.median(np.stack(self._history), axis=0) + 0.5).astype(np.int64)

    def resize(self, window: int) -> None:
        self._history = deque(self._history, maxlen=window)


@SMOOTHERS.register("persistence")
class PersistenceSmoothing:
    """Hysteresis: a count moves only after `window` frames in a row all lie on one side of it.

    It then moves to the nearest of those frames' counts, so a one-frame miss or ghost never
    changes it and a real change comes through after `window` frames (lag `window` - 1).
    """

    def __init__(self, window: int) -> None:
        self._history: deque[Counts] = deque(maxlen=window)
        self._current: Counts | None = None

    def update(self, counts: Counts) -> Counts:
        if self._current is None or self._current.shape != counts.shape:
            self._history.clear()
            self._current = counts.copy()
        self._history.append(counts)
        if len(self._history) == self._history.maxlen:
            recent = np.stack(self._history)
            above = (recent > self._current).all(axis=0)
            below = (recent < self._current).all(axis=0)
            self._current = np.where(above, recent.min(axis=0),
                                     np.where(below, recent.max(axis=0), self._current))
        return self._current.copy()

    def resize(self, window: int) -> None:
        # The count held stays; the newest frames of the history still count towards a run.
        self._history = deque(self._history, maxlen=window)


def make_smoother(name: str, window: int) -> Smoother:
    """The named strategy over `window` frames; an unknown name lists the valid ones."""
    return SMOOTHERS.get(name)(window)


# Frame intervals whose median is a camera's frame rate: a few late or dropped frames of a
# live camera, or a damaged frame skipped in a file, do not move it.
RATE_INTERVALS = 8
# The most frames a window in seconds spans (counting.window's bound): a burst of frames with
# nearly equal times cannot make the filter stack a huge history every frame.
MAX_WINDOW_FRAMES = 1000


def window_frames(window_s: float, fps: float) -> int:
    """Frames a filter over `window_s` seconds spans at `fps` analysed frames per second:
    1 + window_s * fps, rounded half up (0.2 s: 3 frames at 10 fps, 1 at 2 fps, 6 at 25 fps).

    The product is rounded to 6 decimals first, so a rate measured as 9.999999 frames/s
    lands on the same side of a half as 10. At most MAX_WINDOW_FRAMES.
    """
    return min(1 + math.floor(round(window_s * fps, 6) + 0.5), MAX_WINDOW_FRAMES)


class FrameRate:
    """Analysed frames per second of one camera: the median interval of its last frames."""

    def __init__(self) -> None:
        self._last: float | None = None
        self._intervals: deque[float] = deque(maxlen=RATE_INTERVALS)

    def observe(self, time_s: float) -> None:
        # A file that loops starts over (its times go back): that step is no interval.
        if self._last is not None and time_s > self._last:
            self._intervals.append(time_s - self._last)
        self._last = time_s

    @property
    def fps(self) -> float | None:
        """None until two frames with increasing times were seen."""
        return 1.0 / statistics.median(self._intervals) if self._intervals else None


class TimedSmoother:
    """A strategy whose window is a time: `window_s` seconds of the camera's analysed frames.

    The window spans window_frames(window_s, rate) frames, the rate measured from the frame
    times handed to update() (FrameRate), so one setting fits a 2, 10 or 30 frames/s camera.
    Until the rate is known (the first frame) the window is 1 frame: every strategy passes a
    first frame through as it is anyway. When the rate moves the window to another size, the
    strategy is resized, keeping its state. `frames` fixes the window instead; timed=False
    (frames whose times are made up, as an image folder's) leaves the window at 1 frame.
    """

    def __init__(self, name: str, window_s: float, frames: int | None = None,
                 timed: bool = True) -> None:
        self.name = name
        self._sized_by_time = frames is None and timed
        self._window_s = window_s
        self._fixed_frames = frames
        self._rate = FrameRate()
        self.frames = frames or 1
        self._inner = make_smoother(name, self.frames)

    def __str__(self) -> str:
        """What the filter does, for people: persistence 0.2 s, median 5 frames, none."""
        if self.name == "none":
            return "none"
        if self._sized_by_time:
            return f"{self.name} {self._window_s:g} s"
        if self.frames == 1 and self._fixed_frames is None:
            return f"{self.name} 1 frame (no frame times: set counting.window to filter)"
        return f"{self.name} {self.frames} frame{'' if self.frames == 1 else 's'}"

    def update(self, counts: Counts, time_s: float) -> Counts:
        """The filtered counts of a frame shown at time_s (seconds: FrameResult.timestamp)."""
        if self._sized_by_time:
            self._rate.observe(time_s)
            fps = self._rate.fps
            frames = 1 if fps is None else window_frames(self._window_s, fps)
            if frames != self.frames:
                self._inner.resize(frames)
                self.frames = frames
        return self._inner.update(counts)


def counting_smoother(counting: CountingConfig, timed: bool) -> TimedSmoother:
    """The filter of one camera's counts, the same in the pipeline and in `crowdwatch eval`.

    timed: the source's frames show one scene at real times (a video file or a live camera).
    An image folder may hold unrelated pictures and its frame times are made up: it is not
    filtered unless `counting.smoothing` is set, and then only a fixed `counting.window`
    gives it a window of more than 1 frame.
    """
    configured = "smoothing" in counting.model_fields_set
    name = counting.smoothing if timed or configured else "none"
    return TimedSmoother(name, counting.window_s, counting.window, timed)
