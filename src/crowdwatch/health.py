"""Per-camera health, reported by the pipeline and read by /healthz, /readyz and /metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# A camera loop that has not turned for this long is stuck (liveness fails).
STALE_AFTER_S = 30.0


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """A source's state and running totals, as its camera loop last saw them."""

    up: bool = False
    frames_dropped: int = 0
    frames_skipped: int = 0
    reconnects: int = 0
    # Why a source delivers no frames ("cannot open: connection refused ..."), for the page.
    reason: str = ""
    # Frames the source delivered (analysed, skipped by analysis_fps or replaced by newer).
    frames_received: int = 0
    # The stream's nominal frame rate as its decoder reports it; None when unknown.
    stream_fps: float | None = None


class HealthState:
    """Per-camera heartbeat and source state, fed by the camera loops."""

    def __init__(self, cameras: Iterable[str], stale_after_s: float = STALE_AFTER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._beats: dict[str, float | None] = dict.fromkeys(cameras)
        self._status: dict[str, SourceStatus] = {c: SourceStatus() for c in self._beats}
        self._finished: set[str] = set()

    def report(self, camera: str, status: SourceStatus) -> None:
        """The camera's loop turned; status tells whether its source delivers frames."""
        with self._lock:
            self._beats[camera] = self._clock()
            self._status[camera] = status

    def finish(self, camera: str) -> None:
        """The camera's file source ended normally: no longer expected to beat."""
        with self._lock:
            self._finished.add(camera)

    def sources(self) -> dict[str, SourceStatus]:
        """The last reported status of every camera's source."""
        with self._lock:
            return dict(self._status)

    def cameras(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        with self._lock:
            out = {}
            for camera, beat in self._beats.items():
                if camera in self._finished:
                    state = "finished"
                elif beat is None:
                    state = "starting"
                elif now - beat > self.stale_after_s:
                    state = "stalled"
                else:
                    state = "up" if self._status[camera].up else "down"
                age = None if beat is None else round(now - beat, 3)
                out[camera] = {"state": state, "seconds_since_loop": age}
            return out

    def alive(self) -> bool:
        """No camera loop is stuck (a down source still turns its loop)."""
        return all(c["state"] != "stalled" for c in self.cameras().values())

    def ready(self) -> bool:
        """Every camera that is still running delivers frames."""
        return all(c["state"] in ("up", "finished") for c in self.cameras().values())
