"""The state file: line totals and site occupancy that survive a restart or a kill.

A small JSON file, replaced atomically (written beside it, fsynced, renamed over it) by a
thread at most every `state.interval_s` while something changed, and once more at close, so
a kill -9 loses at most one interval. At start it is read back: the line counters and the
Prometheus line counters resume from the saved totals (counters stay monotonic across a
restart), sites resume their occupancy and drift. With a state file the counters
(crowdwatch_line_crossings_total, crowdwatch_site_occupancy_drift_total) are exported as of
the last save: a counter that ran ahead of the file would go back after a kill, and
Prometheus would read that as a reset and count the whole total again. A damaged file is
reported, renamed aside (`<path>.damaged-<time>`) and counting starts from zero; it is never
a crash.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crowdwatch.analytics.sites import SavedSite
from crowdwatch.errors import CrowdwatchError
from crowdwatch.types import FrameResult, LineTotals

log = logging.getLogger("crowdwatch.state")

VERSION = 1
LineTotalsByCamera = dict[str, dict[str, tuple[int, int]]]


class _Totals(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    in_: int = Field(alias="in", ge=0)
    out: int = Field(ge=0)


class _Site(BaseModel):
    model_config = ConfigDict(extra="forbid")
    occupancy: int = Field(ge=0)
    drift: int = Field(ge=0)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int
    saved_at: float
    lines: dict[str, dict[str, _Totals]] = {}
    sites: dict[str, _Site] = {}


@dataclass(frozen=True, slots=True)
class SavedState:
    """What a state file held (empty when there was none)."""

    lines: LineTotalsByCamera = field(default_factory=dict)
    sites: dict[str, SavedSite] = field(default_factory=dict)
    saved_at: float | None = None


def load_state(path: str | Path, clock: Callable[[], float] = time.time) -> SavedState:
    """The saved state; empty when the file does not exist; a damaged file is logged and
    renamed aside, and the state is empty."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return SavedState()
    except OSError as error:
        log.error("cannot read the state file %s (%s); line totals and site occupancy start "
                  "from 0", path, error.strerror)
        return SavedState()
    try:
        data = _File.model_validate(json.loads(text))
        if data.version != VERSION:
            raise ValueError(f"version {data.version}, expected {VERSION}")
    except (ValueError, ValidationError, UnicodeDecodeError) as error:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(clock()))
        aside = path.with_name(f"{path.name}.damaged-{stamp}")
        moved = ""
        with contextlib.suppress(OSError):
            os.replace(path, aside)
            moved = f"; moved to {aside}"
        reason = str(error).splitlines()[0]
        log.error("the state file %s is damaged (%s)%s; line totals and site occupancy start "
                  "from 0", path, reason, moved)
        return SavedState()
    return SavedState(
        {camera: {name: (t.in_, t.out) for name, t in lines.items()}
         for camera, lines in data.lines.items()},
        {name: SavedSite(s.occupancy, s.drift) for name, s in data.sites.items()},
        data.saved_at)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace path by data: a reader (or a restart after a kill) sees the old file or the
    new one, never a part."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.",
                                     delete=False) as tmp:
        try:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        except BaseException:
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, path)
    with contextlib.suppress(OSError):  # the rename itself durable (not on every filesystem)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class StateStore:
    """A Sink that keeps the newest line totals per camera and saves them, with the sites'
    occupancy, on its own thread; write() is one dict assignment."""

    def __init__(self, path: str | Path, interval_s: float, saved: SavedState = SavedState(),
                 sites: Callable[[], Mapping[str, SavedSite]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CrowdwatchError(f"cannot create the folder of the state file {self.path} "
                                  f"({error.strerror}); pick another state.path") from None
        self._interval = interval_s
        self._sites = sites
        self._clock = clock
        # Saved cameras and lines this run does not count (yet) are kept, not dropped.
        self._kept: LineTotalsByCamera = {c: dict(lines) for c, lines in saved.lines.items()}
        self._newest: dict[str, Mapping[str, LineTotals]] = {}
        self._last: dict[str, Any] | None = None
        self._saved_sites = dict(saved.sites)
        # Called with each saved content (the exporters of counters that must never run
        # ahead of the file: see LineCountersFromState).
        self.on_saved: list[Callable[[dict[str, Any]], None]] = []
        self._failing = False
        self._lock = threading.Lock()  # one save at a time (the thread, close)
        self._stop = threading.Event()
        self.saves = 0
        self._thread = threading.Thread(target=self._run, name="state-store", daemon=True)
        self._thread.start()

    def write(self, result: FrameResult) -> None:
        if result.flow is not None and result.flow.lines:
            self._newest[result.camera] = result.flow.lines

    def _content(self) -> dict[str, Any]:
        lines = {c: {n: {"in": i, "out": o} for n, (i, o) in kept.items()}
                 for c, kept in self._kept.items()}
        for camera, totals in list(self._newest.items()):
            lines.setdefault(camera, {}).update(
                {n: {"in": t.people_in, "out": t.people_out} for n, t in totals.items()})
        sites = ({name: {"occupancy": s.occupancy, "drift": s.drift}
                  for name, s in self._sites().items()} if self._sites else {})
        return {"lines": lines, "sites": sites}

    def save(self) -> bool:
        """Write the file if anything changed since the last save; whether it wrote."""
        with self._lock:
            content = self._content()
            if content == self._last:
                return False
            data = {"version": VERSION, "saved_at": self._clock(), **content}
            try:
                write_atomically(self.path, json.dumps(data, indent=1).encode("utf-8"))
            except OSError as error:
                if not self._failing:
                    log.error("cannot write the state file %s (%s); counting goes on, a "
                              "restart now would lose what changed since", self.path,
                              error.strerror or error)
                self._failing = True
                return False
            if self._failing:
                log.warning("writing the state file %s again", self.path)
            self._failing = False
            self._last = content
            self._saved_sites = {n: SavedSite(v["occupancy"], v["drift"])
                                 for n, v in content["sites"].items()}
            self.saves += 1
            for callback in self.on_saved:
                callback(content)
            return True

    def saved_sites(self) -> dict[str, SavedSite]:
        """The sites as the file holds them now (the restored ones before the first save)."""
        return self._saved_sites

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.save()
            except Exception as error:  # never let the saver die silently
                log.error("saving the state file failed: %s", error)

    def close(self) -> None:
        """Stop the thread and save a last time; safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(5.0)
        self.save()
