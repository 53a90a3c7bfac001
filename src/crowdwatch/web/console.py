"""The live console's state: what an operator sees at a glance, served as JSON and as
server-sent events (/api/console, /api/events; routes in web/ui.py).

`ConsoleState` is a sink: on each analysed frame (a camera thread) it keeps the camera's
newest counts, folds each zone's people into a 10-minute `TrendRing` (web/trends.py, one point
a second), samples line totals and frame counters once a second, and notes zones entering
or leaving warning / critical. It does no encoding and takes no lock on that path beyond the
rings' own; `snapshot()` builds the JSON on the HTTP thread that asks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crowdwatch.health import HealthState
from crowdwatch.types import FrameResult, Level
from crowdwatch.web.liveness import camera_states
from crowdwatch.web.trends import TREND_STEP_S, TREND_WINDOW_S, TrendRing

if TYPE_CHECKING:
    from crowdwatch.config import AppConfig

# Line rates and frame rates are judged over these windows.
LINE_RATE_WINDOW_S = 60.0
FRAME_RATE_WINDOW_S = 10.0
# Trend points resent before `since`: a point's second may still have been folding.
OVERLAP_S = 2.0


@dataclass(frozen=True, slots=True)
class ZoneInfo:
    """What the config says of a zone: its capacity and ground area, when given."""

    capacity: int | None = None
    area_m2: float | None = None


@dataclass(frozen=True, slots=True)
class CameraInfo:
    """A camera's zones and lines as configured, and when it counts as falling behind."""

    zones: dict[str, ZoneInfo] = field(default_factory=dict)
    lines: tuple[str, ...] = ()
    min_analysis_fps: float | None = None
    min_received_ratio: float = 0.0


@dataclass(frozen=True, slots=True)
class _Latest:
    at: float
    result: FrameResult


class _Camera:
    """One camera's rings, counters and alerts (written by its own thread only)."""

    def __init__(self, info: CameraInfo) -> None:
        self.info = info
        self.latest: _Latest | None = None
        self.zones: dict[str, TrendRing] = {name: TrendRing() for name in info.zones}
        rate_points = int(LINE_RATE_WINDOW_S / TREND_STEP_S) + 4
        self.lines: dict[str, tuple[TrendRing, TrendRing]] = {
            name: (TrendRing(rate_points), TrendRing(rate_points)) for name in info.lines}
        frame_points = int(FRAME_RATE_WINDOW_S / TREND_STEP_S) + 4
        self.analysed = 0
        self.analysed_ring = TrendRing(frame_points)
        self.received_ring = TrendRing(frame_points)
        self.sampled_step = -1
        self.levels: dict[str, Level] = {}

    @property
    def nbytes(self) -> int:
        rings = [*self.zones.values(), *(r for pair in self.lines.values() for r in pair),
                 self.analysed_ring, self.received_ring]
        return sum(ring.nbytes for ring in rings)


class ConsoleState:
    """Per camera: newest counts, zone trends, line rates, frame rates; alerts; a Sink."""

    def __init__(self, cameras: dict[str, CameraInfo], sites: dict[str, int | None] | None = None,
                 health: HealthState | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.health = health
        self.sites_capacity = dict(sites or {})
        self._clock = clock
        self._cameras = {camera: _Camera(info) for camera, info in cameras.items()}
        self._sites: dict[str, Any] = {}
        # (camera, zone) -> {"level", "since"}: zones at warning or critical now.
        self._alerts: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()  # new cameras, zones, lines; alerts
        self._closed = threading.Event()
        self.version = 0  # bumped per frame: a hint for the event streams, not a count

    @classmethod
    def from_config(cls, config: AppConfig, health: HealthState | None = None,
                    clock: Callable[[], float] = time.time) -> ConsoleState:
        cameras = {c.id: CameraInfo({z.name: ZoneInfo(z.capacity, z.area_m2) for z in c.zones},
                                    tuple(line.name for line in c.lines), c.min_analysis_fps,
                                    c.min_received_ratio) for c in config.cameras}
        return cls(cameras, {s.name: s.capacity for s in config.sites}, health, clock)

    @property
    def nbytes(self) -> int:
        """Bytes held by the rings (their arrays; fixed once every zone has been seen)."""
        return sum(camera.nbytes for camera in list(self._cameras.values()))

    def _camera(self, camera: str) -> _Camera:
        state = self._cameras.get(camera)
        if state is None:
            with self._lock:
                state = self._cameras.setdefault(camera, _Camera(CameraInfo()))
        return state

    def write(self, result: FrameResult) -> None:
        """Sink: one analysed frame of one camera (its own thread)."""
        now = self._clock()
        camera = self._camera(result.camera)
        camera.latest = _Latest(now, result)
        camera.analysed += 1
        for name, stats in result.zones.items():
            ring = camera.zones.get(name)
            if ring is None:
                with self._lock:
                    ring = camera.zones.setdefault(name, TrendRing())
            ring.add(now, stats.people)
            level = stats.level if stats.level is not None else Level.OK
            if camera.levels.get(name, Level.OK) != level:
                self._level_changed(result.camera, name, level, now)
                camera.levels[name] = level
        step = int(now // TREND_STEP_S)
        if step != camera.sampled_step:  # once a second: totals for the rates
            camera.sampled_step = step
            self._sample(result, camera, now)
        if result.sites:
            self._sites.update(result.sites)
        self.version += 1

    def _sample(self, result: FrameResult, camera: _Camera, now: float) -> None:
        camera.analysed_ring.add(now, camera.analysed, fold="last")
        if self.health is not None:
            status = self.health.sources().get(result.camera)
            if status is not None:
                camera.received_ring.add(now, status.frames_received, fold="last")
        for name, totals in (result.flow.lines.items() if result.flow is not None else ()):
            pair = camera.lines.get(name)
            if pair is None:
                with self._lock:
                    pair = camera.lines.setdefault(name, (TrendRing(64), TrendRing(64)))
            pair[0].add(now, totals.people_in, fold="last")
            pair[1].add(now, totals.people_out, fold="last")

    def _level_changed(self, camera: str, zone: str, level: Level, now: float) -> None:
        with self._lock:
            if level >= Level.WARNING:
                self._alerts[(camera, zone)] = {"camera": camera, "zone": zone,
                                                "level": level.label, "since": now}
            else:
                self._alerts.pop((camera, zone), None)

    def close(self) -> None:
        """End every event stream (on shutdown)."""
        self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def wait_closed(self, seconds: float) -> bool:
        return self._closed.wait(seconds)

    def snapshot(self, since: float | None = None) -> dict[str, Any]:
        """The console's JSON: cameras (state, rates, zones with trend points after `since`
        as [seconds before now, people], lines), sites and alerts; `now` is the `since` of
        the next call."""
        now = self._clock()
        since = now - TREND_WINDOW_S if since is None else max(since - OVERLAP_S,
                                                               now - TREND_WINDOW_S)
        cameras = list(self._cameras.items())
        status = {"cameras": [self._status(cid, camera, now) for cid, camera in cameras]}
        states = camera_states(status, self.health)["cameras"]
        sources = self.health.sources() if self.health is not None else {}
        out = []
        for (cid, camera), state in zip(cameras, states, strict=True):
            latest = camera.latest
            zones = latest.result.zones if latest is not None else {}
            out.append({**state,
                        "method": None if latest is None else latest.result.method,
                        "zones": [self._zone(camera, name, zones.get(name), since, now)
                                  for name in list(camera.zones)],
                        "lines": [self._line(name, pair, _totals(latest, name), now)
                                  for name, pair in list(camera.lines.items())],
                        "rates": self._rates(camera, sources.get(cid), state["state"], now)})
        with self._lock:
            alerts = sorted(self._alerts.values(), key=lambda a: (-_rank(a["level"]), a["since"]))
        return {"now": now, "window_s": TREND_WINDOW_S, "step_s": TREND_STEP_S, "cameras": out,
                "sites": [self._site(name) for name in
                          sorted({*self.sites_capacity, *self._sites})],
                "alerts": alerts}

    @staticmethod
    def _status(cid: str, camera: _Camera, now: float) -> dict[str, Any]:
        latest = camera.latest
        if latest is None:
            return {"id": cid, "people": None, "age_s": None}
        return {"id": cid, "people": latest.result.people,
                "age_s": round(max(0.0, now - latest.at), 3)}

    @staticmethod
    def _zone(camera: _Camera, name: str, stats: Any, since: float,
              now: float) -> dict[str, Any]:
        info = camera.info.zones.get(name, ZoneInfo())
        times, values = camera.zones[name].points(since)
        return {"name": name, "capacity": info.capacity, "area_m2": info.area_m2,
                "people": None if stats is None else stats.people,
                "occupancy": None if stats is None else stats.occupancy,
                "density": None if stats is None else stats.density,
                "level": None if stats is None or stats.level is None else stats.level.label,
                # Seconds before `now` (short JSON: a page connecting gets 10 minutes).
                "trend": [[round(t, 2), int(v) if v.is_integer() else v]
                          for t, v in zip((times - now).tolist(), values.tolist(),
                                          strict=True)]}

    @staticmethod
    def _line(name: str, pair: tuple[TrendRing, TrendRing], totals: tuple[int, int] | None,
              now: float) -> dict[str, Any]:
        """Totals as of the newest frame; rates from the once-a-second samples."""
        out: dict[str, Any] = {"name": name}
        for key, ring, total in zip(("in", "out"), pair, totals or (None, None), strict=True):
            out[key] = total
            rate = None if total is None else ring.rate(total, now, LINE_RATE_WINDOW_S, 5.0)
            out[f"{key}_per_min"] = None if rate is None else round(60 * rate, 2)
        return out

    @staticmethod
    def _rates(camera: _Camera, status: Any, state: str, now: float) -> dict[str, Any]:
        stream = None if status is None else status.stream_fps
        # Judged once half a window is seen: no flag for a camera's first seconds.
        span = FRAME_RATE_WINDOW_S / 2
        analysed = _round(camera.analysed_ring.rate(camera.analysed, now, FRAME_RATE_WINDOW_S,
                                                    span))
        received = None if status is None else _round(camera.received_ring.rate(
            status.frames_received, now, FRAME_RATE_WINDOW_S, span))
        info, why = camera.info, []
        if state == "live":  # a file that ended or a camera down says so in its state
            if (info.min_analysis_fps is not None and analysed is not None
                    and analysed < info.min_analysis_fps):
                why.append(f"analysed {analysed:.1f}/s, below {info.min_analysis_fps:g}/s")
            if (stream and info.min_received_ratio > 0 and received is not None
                    and received < info.min_received_ratio * stream):
                why.append(f"receives {received:.1f} of its stream's {stream:g} frames/s")
        return {"stream_fps": stream, "received_fps": received, "analysed_fps": analysed,
                "behind": bool(why), "why": "; ".join(why)}

    def _site(self, name: str) -> dict[str, Any]:
        stats = self._sites.get(name)
        return {"name": name, "capacity": self.sites_capacity.get(name),
                "people": None if stats is None else stats.people,
                "occupancy": None if stats is None else stats.occupancy,
                "ratio": None if stats is None else stats.ratio,
                "level": None if stats is None or stats.level is None else stats.level.label}


def _rank(level: str) -> int:
    return 2 if level == "critical" else 1


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _totals(latest: _Latest | None, line: str) -> tuple[int, int] | None:
    flow = None if latest is None else latest.result.flow
    totals = None if flow is None else flow.lines.get(line)
    return None if totals is None else (totals.people_in, totals.people_out)
