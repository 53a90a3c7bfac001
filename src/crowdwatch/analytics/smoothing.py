"""Temporal stabilisation of per-frame counts: strategies as small classes in a registry."""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np
import numpy.typing as npt

from crowdwatch.registry import Registry

Counts = npt.NDArray[np.int64]
SMOOTHERS: Registry[type[Smoother]] = Registry("smoothing")


class Smoother(Protocol):
    """Turns a stream of raw count vectors into stabilised count vectors of the same shape."""

    def update(self, counts: Counts) -> Counts: ...


@SMOOTHERS.register("none")
class NoSmoothing:
    """Exports the raw per-frame counts."""

    def __init__(self, window: int) -> None:
        del window

    def update(self, counts: Counts) -> Counts:
        return counts


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


def make_smoother(name: str, window: int) -> Smoother:
    """The named strategy over `window` frames; an unknown name lists the valid ones."""
    return SMOOTHERS.get(name)(window)
