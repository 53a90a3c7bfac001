"""Events output: one JSON object per analysed frame (JSON Lines)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import IO, Any

from crowdwatch.errors import CrowdwatchError
from crowdwatch.types import FrameResult


def event_record(result: FrameResult) -> dict[str, Any]:
    """The JSON object written for one frame (schema in README.md)."""
    zones: dict[str, dict[str, Any]] = {}
    for name, stats in result.zones.items():
        zone: dict[str, Any] = {"people": stats.people, "people_raw": stats.people_raw}
        if stats.density is not None:
            zone["density"] = round(stats.density, 4)
        if stats.occupancy is not None:
            zone["occupancy"] = round(stats.occupancy, 4)
        if stats.level is not None:
            zone["level"] = stats.level.label
        dwell = result.dwell.get(name)
        if dwell is not None:
            zone["tracked_inside"] = dwell.inside
            zone["longest_stay_s"] = round(dwell.longest_s, 3)
            if dwell.completed_s:
                zone["visits_s"] = [round(v, 3) for v in dwell.completed_s]
        zones[name] = zone
    record: dict[str, Any] = {
        "camera": result.camera,
        "frame": result.frame_index,
        "timestamp": round(result.timestamp, 3),
        "people": result.people,
        "people_raw": result.people_raw,
        "zones": zones,
    }
    if result.lines:
        record["lines"] = {name: {"in": t.people_in, "out": t.people_out}
                           for name, t in result.lines.items()}
    return record


class EventWriter:
    """Writes events to a file or to stdout ('-'); safe to share between camera threads."""

    def __init__(self, target: str | Path) -> None:
        self._owned = str(target) != "-"
        if self._owned:
            try:
                self._stream: IO[str] = open(target, "w", encoding="utf-8", buffering=1)  # noqa: SIM115
            except OSError as error:
                raise CrowdwatchError(
                    f"cannot write events to {target}: {error.strerror}; check the path"
                ) from None
        else:
            self._stream = sys.stdout
        self._lock = threading.Lock()

    def write(self, result: FrameResult) -> None:
        line = json.dumps(event_record(result), separators=(",", ":"))
        with self._lock:
            self._stream.write(line + "\n")

    def close(self) -> None:
        with self._lock:
            self._stream.flush()
            if self._owned:
                self._stream.close()
