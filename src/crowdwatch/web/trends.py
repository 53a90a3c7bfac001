"""Bounded time series for the live console: a zone's recent people, a line's recent totals.

A `TrendRing` holds at most `capacity` points in two preallocated numpy arrays, so its memory
is fixed when it is built, whatever the frame rate or the run's length. It keeps one point per
`step_s` (a second) or per call, whichever is rarer: values arriving within one step fold into
its point (their maximum, so a one-second peak is not lost between points).
"""

from __future__ import annotations

import bisect
import threading

import numpy as np
import numpy.typing as npt

# Ten minutes at one point a second.
TREND_WINDOW_S = 600.0
TREND_STEP_S = 1.0


class TrendRing:
    """The newest `capacity` (time, value) points, one per step; thread-safe."""

    def __init__(self, capacity: int = int(TREND_WINDOW_S / TREND_STEP_S),
                 step_s: float = TREND_STEP_S) -> None:
        if capacity < 1 or step_s <= 0:
            raise ValueError("capacity must be >= 1 and step_s > 0")
        self.capacity = capacity
        self.step_s = step_s
        self._t = np.zeros(capacity, np.float64)
        self._v = np.zeros(capacity, np.float64)  # running totals pass 2**24
        self._next = 0   # where the next point goes
        self._size = 0
        self._step = -1  # the step number of the newest point
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        return int(self._t.nbytes + self._v.nbytes)

    def add(self, t: float, value: float, fold: str = "max") -> None:
        """A value at time t; within the newest point's step it folds into that point
        (`max`, or `last` for running totals)."""
        step = int(t // self.step_s)
        with self._lock:
            if self._size and step <= self._step:  # same step (or a clock stepping back)
                last = (self._next - 1) % self.capacity
                self._v[last] = max(self._v[last], value) if fold == "max" else value
                self._t[last] = max(self._t[last], t)
                return
            self._t[self._next] = t
            self._v[self._next] = value
            self._next = (self._next + 1) % self.capacity
            self._size = min(self._size + 1, self.capacity)
            self._step = step

    def points(self, since: float = -np.inf) -> tuple[npt.NDArray[np.float64],
                                                      npt.NDArray[np.float64]]:
        """(times, values) of the points after `since`, oldest first (copies of only those:
        a page that has the rest gets its few new points cheaply)."""
        with self._lock:
            # The usual ask (a page's next event): a few newest points, found from the end.
            newest = self._next - 1
            count = 0
            while count < min(self._size, 8) and self._t.item(newest - count) > since:
                count += 1
            if count < 8 or count == self._size:
                order = [(newest - k) % self.capacity for k in range(count - 1, -1, -1)]
                return self._t[order], self._v[order]
            start = (self._next - self._size) % self.capacity
            # The ring in time order is two sorted runs: [start:] (older) then [:next].
            runs = [(start, self.capacity), (0, self._next)] if start >= self._next and \
                self._size else [(start, start + self._size)]
            times, values = [], []
            for lo, hi in runs:
                first = lo + int(np.searchsorted(self._t[lo:hi], since, side="right"))
                times.append(self._t[first:hi].copy())
                values.append(self._v[first:hi].copy())
        if len(times) == 1:
            return times[0], values[0]
        return np.concatenate(times), np.concatenate(values)

    def last(self) -> tuple[float, float] | None:
        with self._lock:
            if not self._size:
                return None
            i = (self._next - 1) % self.capacity
            return float(self._t[i]), float(self._v[i])

    def rate(self, current: float, now: float, window_s: float,
             min_span_s: float = 1.0) -> float | None:
        """Increase per second of a running total from its point `window_s` before `now` (or
        its oldest, if younger) to `current` now; None without a point `min_span_s` old."""
        with self._lock:  # plain lists: these rings are short (a minute at most)
            start = (self._next - self._size) % self.capacity
            times = self._t.tolist()
            values = self._v.tolist()
            size = self._size
        if not size:
            return None
        i = bisect.bisect_right(times, now - window_s, start, start + size) if \
            start + size <= self.capacity else None
        if i is None:  # wrapped: put the ring in time order first
            times = times[start:] + times[:start]
            values = values[start:] + values[:start]
            start = 0
            i = bisect.bisect_right(times, now - window_s)
        i = max(start, i - 1)
        elapsed = now - times[i]
        if elapsed < min_span_s:
            return None
        return (current - values[i]) / elapsed
