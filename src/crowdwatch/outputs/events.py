"""Events output: one JSON object per analysed frame (JSON Lines)."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric

from crowdwatch.errors import CrowdwatchError
from crowdwatch.types import FrameResult, SiteStats

log = logging.getLogger("crowdwatch.events")


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
        dwell = None if result.flow is None else result.flow.dwell.get(name)
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
        "method": result.method,
        "zones": zones,
    }
    if result.flow is not None and result.flow.lines:
        record["lines"] = {name: {"in": t.people_in, "out": t.people_out}
                           for name, t in result.flow.lines.items()}
    if result.sites:
        record["sites"] = {name: site_record(site) for name, site in result.sites.items()}
    if result.source_file is not None:
        record["source_file"] = result.source_file
    return record


def _ends_mid_line(path: str) -> bool:
    try:
        with open(path, "rb") as file:
            if file.seek(0, os.SEEK_END) == 0:
                return False
            file.seek(-1, os.SEEK_END)
            return file.read(1) != b"\n"
    except OSError:
        return False


def site_record(site: SiteStats) -> dict[str, Any]:
    """A site's values in an event: only those it has (README: Sites)."""
    record: dict[str, Any] = {}
    if site.people is not None:
        record["people"] = site.people
    if site.occupancy is not None:
        record["occupancy"] = site.occupancy
        record["drift"] = site.drift
    if site.ratio is not None:
        record["occupancy_ratio"] = round(site.ratio, 4)
    if site.level is not None:
        record["level"] = site.level.label
    return record


class EventWriter:
    """Appends events to a file, or writes them to stdout ('-'); safe to share between camera
    threads.

    Each line goes to the file in one write() call, so a process killed mid-run leaves whole
    lines only. A write that fails (disk full) is undone back to the last whole line, logged
    once, and counted in ``lines_lost``; counting and metrics go on, and writing resumes when
    the disk has room again.
    """

    def __init__(self, target: str | Path) -> None:
        self._target = str(target)
        self.target = self._target
        self._fd: int | None = None
        if self._target != "-":
            try:
                self._fd = os.open(self._target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as error:
                raise CrowdwatchError(
                    f"cannot write events to {target}: {error.strerror}; check the path"
                ) from None
        self._lock = threading.Lock()
        self._failing = False
        self._closed = False
        self.lines_lost = 0
        # A previous run killed mid-line left a partial line: start on a new one.
        self._newline_first = self._fd is not None and _ends_mid_line(self._target)

    def write(self, result: FrameResult) -> None:
        line = json.dumps(event_record(result), separators=(",", ":")) + "\n"
        with self._lock:
            if self._closed:
                return
            if self._fd is None:
                sys.stdout.write(line)
                sys.stdout.flush()
                return
            data = line.encode("utf-8")
            if self._newline_first:
                data = b"\n" + data
            if self._append(data):
                self._newline_first = False

    def _append(self, data: bytes) -> bool:
        assert self._fd is not None
        size = None
        try:
            size = os.lseek(self._fd, 0, os.SEEK_END)
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")
        except OSError as error:
            if size is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, size)  # drop the partial line, keep every whole one
            self.lines_lost += 1
            if not self._failing:
                self._failing = True
                log.error("cannot write events to %s (%s); counting and metrics go on, "
                          "events are lost until it can be written again", self._target,
                          error.strerror or error)
            return False
        if self._failing:
            self._failing = False
            log.warning("writing events to %s again; %d event(s) were lost", self._target,
                        self.lines_lost)
        return True

    def collect(self) -> Iterator[Metric]:
        """Prometheus collector: events that could not be written."""
        lost = CounterMetricFamily("crowdwatch_events_lost",
                                   "Event lines that could not be written (disk full, I/O error)")
        lost.add_metric([], self.lines_lost)
        yield lost

    def close(self) -> None:
        """Flush stdout or close the file; safe to call twice, later writes are dropped."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._fd is None:
                sys.stdout.flush()
            else:
                os.close(self._fd)
