"""Per-camera frame rates: the analysis_fps gate and the warning when a camera falls behind."""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("crowdwatch.rates")

# Rates are judged over windows this long: a few slow seconds (a reconnect, a burst of
# work on the machine) are no episode.
RATE_WINDOW_S = 30.0
# Hysteresis: an episode ends only once the rate is this much above its threshold.
RECOVER_MARGIN = 1.2


class RateGate:
    """Lets at most `fps` frames a second through, by the frames' own times.

    A frame passes when its time reaches the next slot (a tenth of a period early still
    counts: a stream's timing jitters); slots advance by one period, so a 10 frames/s stream
    gated at 5 passes every other frame, and after a gap the next frame passes at once.
    """

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        self.period = 1.0 / fps
        self._due: float | None = None

    def admit(self, t: float) -> bool:
        if self._due is not None and t < self._due - 0.1 * self.period:
            return False
        if self._due is None or t - self._due >= self.period:
            self._due = t + self.period  # first frame, or after a gap: no burst to catch up
        else:
            self._due += self.period
        return True


@dataclass(frozen=True, slots=True)
class RateSample:
    """A camera's running totals at one time."""

    at: float
    received: int
    analysed: int


class RateMonitor:
    """Warns (one log line per episode, hysteresis) while a camera is analysed below its
    minimum or receives well below its stream's nominal rate, judged every window_s."""

    def __init__(self, camera: str, min_analysis_fps: float | None, min_received_ratio: float,
                 window_s: float = RATE_WINDOW_S) -> None:
        self.camera = camera
        self.min_analysis_fps = min_analysis_fps
        self.min_received_ratio = min_received_ratio
        self.window_s = window_s
        self._start: RateSample | None = None
        self.analysed_low = False
        self.received_low = False
        # The rates of the last complete window (None before the first).
        self.analysed_fps: float | None = None
        self.received_fps: float | None = None

    def reset(self) -> None:
        """The source went down: the next window starts when frames flow again."""
        self._start = None

    def observe(self, now: float, received: int, analysed: int,
                stream_fps: float | None) -> None:
        if self._start is None:
            self._start = RateSample(now, received, analysed)
            return
        elapsed = now - self._start.at
        if elapsed < self.window_s:
            return
        self.analysed_fps = (analysed - self._start.analysed) / elapsed
        self.received_fps = (received - self._start.received) / elapsed
        self._start = RateSample(now, received, analysed)
        self._judge_analysed(self.analysed_fps)
        if stream_fps and self.min_received_ratio > 0:
            self._judge_received(self.received_fps, stream_fps)

    def _judge_analysed(self, fps: float) -> None:
        minimum = self.min_analysis_fps
        if minimum is None:
            return
        if not self.analysed_low and fps < minimum:
            self.analysed_low = True
            log.warning("camera %s: analysed %.2f frames/s over the last %.0f s, below its "
                        "min_analysis_fps %g (too many cameras for this CPU? see "
                        "docs/PERFORMANCE.md: analysis_fps)", self.camera, fps, self.window_s,
                        minimum)
        elif self.analysed_low and fps >= minimum * RECOVER_MARGIN:
            self.analysed_low = False
            log.info("camera %s: analysed %.2f frames/s again", self.camera, fps)

    def _judge_received(self, fps: float, stream_fps: float) -> None:
        ratio = fps / stream_fps
        if not self.received_low and ratio < self.min_received_ratio:
            self.received_low = True
            log.warning("camera %s: received %.2f frames/s over the last %.0f s, %.0f%% of its "
                        "stream's %g (decoding or network falling behind)", self.camera, fps,
                        self.window_s, 100 * ratio, stream_fps)
        elif self.received_low and ratio >= min(self.min_received_ratio * RECOVER_MARGIN,
                                                (1 + self.min_received_ratio) / 2):
            self.received_low = False
            log.info("camera %s: received %.2f frames/s again", self.camera, fps)
