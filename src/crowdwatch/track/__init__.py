"""Multi-object tracking of people: a small Tracker protocol and a registry of adapters.

Importing this package is cheap; the tracking library loads when a tracker is built.
"""

from __future__ import annotations

from typing import Protocol

from crowdwatch.config.flow import TrackerConfig
from crowdwatch.registry import Registry
from crowdwatch.track.bytetrack import ByteTrack, OCSort, Sort
from crowdwatch.types import Detections


class Tracker(Protocol):
    """Gives each detection a persistent id across frames."""

    def update(self, detections: Detections, timestamp: float) -> Detections:
        """The same boxes, in the same order, with tracker_id (-1: not a confirmed track).

        timestamp is the capture time in seconds; it must not go backwards.
        """
        ...

    def predict(self, timestamp: float) -> Detections:
        """Boxes of the live confirmed tracks moved to their predicted place at timestamp,
        for frames the detector skips; the tracker's state is not changed."""
        ...

    def reset(self) -> None:
        """Forget every track (a new video or a camera reconnect)."""
        ...


TRACKERS: Registry[type[ByteTrack]] = Registry("tracker")
TRACKERS.register("bytetrack")(ByteTrack)
TRACKERS.register("sort")(Sort)
TRACKERS.register("ocsort")(OCSort)


def build_tracker(config: TrackerConfig, fps: float | None = None) -> Tracker:
    """The tracker a config names; fps is the source's nominal frame rate (None: unknown).
    An unknown name is a ConfigError listing the valid ones."""
    return TRACKERS.get(config.name)(config, fps)


__all__ = ["TRACKERS", "ByteTrack", "OCSort", "Sort", "Tracker", "build_tracker"]
