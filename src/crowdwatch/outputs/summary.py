"""A short per-zone summary of a run, printed when a file run ends.

Per camera and zone: frames seen, mean and max people, and the time spent at warning and
critical. A frame's level is held until the camera's next frame, so the time at a level is the
sum of the gaps (seconds into the file, or Unix time for live sources) that start at a frame
with that level; the last frame adds nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from crowdwatch.types import FrameResult, Level

WHOLE_FRAME = "(whole frame)"


@dataclass
class _Tally:
    frames: int = 0
    people_sum: int = 0
    people_max: int = 0
    seconds_at: dict[Level, float] = field(default_factory=dict)
    level: Level | None = None
    # Zones without capacity have no level: "-", not "0.0 s" at warning.
    has_levels: bool = False

    def add(self, people: int, level: Level | None, gap: float | None) -> None:
        if gap is not None and self.level is not None and self.level is not Level.OK:
            self.seconds_at[self.level] = self.seconds_at.get(self.level, 0.0) + gap
        self.has_levels = self.has_levels or level is not None
        self.frames += 1
        self.people_sum += people
        self.people_max = max(self.people_max, people)
        self.level = level


@dataclass
class _Camera:
    last_timestamp: float | None = None
    zones: dict[str, _Tally] = field(default_factory=dict)


class SummarySink:
    """Tallies every analysed frame; ``lines()`` gives the summary table."""

    def __init__(self) -> None:
        self._cameras: dict[str, _Camera] = {}
        self._lock = threading.Lock()

    def write(self, result: FrameResult) -> None:
        with self._lock:
            camera = self._cameras.setdefault(result.camera, _Camera())
            gap = None
            if camera.last_timestamp is not None:
                gap = max(0.0, result.timestamp - camera.last_timestamp)
            camera.last_timestamp = result.timestamp
            camera.zones.setdefault(WHOLE_FRAME, _Tally()).add(result.people, None, gap)
            for name, stats in result.zones.items():
                camera.zones.setdefault(name, _Tally()).add(stats.people, stats.level, gap)

    def close(self) -> None:
        """Nothing to release; the tallies stay readable."""

    def lines(self) -> list[str]:
        """One header and one row per zone for every camera that saw a frame."""
        out = []
        with self._lock:
            for camera_id, camera in self._cameras.items():
                width = max(len(name) for name in camera.zones)
                out.append(f"camera {camera_id}:")
                out.append(f"  {'zone':<{width}}  frames  mean people  max  "
                           "at warning  at critical")
                for name, tally in camera.zones.items():
                    mean = tally.people_sum / tally.frames
                    no_levels = name == WHOLE_FRAME or not tally.has_levels
                    levels = "           -            -" if no_levels else (
                        f"  {tally.seconds_at.get(Level.WARNING, 0.0):>8.1f} s"
                        f"  {tally.seconds_at.get(Level.CRITICAL, 0.0):>9.1f} s")
                    out.append(f"  {name:<{width}}  {tally.frames:>6}  {mean:>11.2f}  "
                               f"{tally.people_max:>3}{levels}")
        return out
