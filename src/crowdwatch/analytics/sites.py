"""Sites across cameras: occupancy from the doors' line crossings, people from zones.

A site's occupancy is people in minus people out over its entrance lines (an `invert`ed line
counts its `out` as entering), never below 0: what had to be clamped away is kept as drift
(crossings missed at a door show up there). Its people are the sum of its zones' latest
counts, whichever camera sees them. With a capacity it gets an occupancy ratio and a level
with the same thresholds, hysteresis and clear delay as a zone (analytics/levels.py).

Every camera thread updates the sites it feeds: one lock, a few dict lookups per frame.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from crowdwatch.analytics.levels import LevelTracker
from crowdwatch.config.integrations import SiteConfig
from crowdwatch.config.zones import LevelThresholds
from crowdwatch.types import Level, LineTotals, SiteStats, ZoneStats


@dataclass(frozen=True, slots=True)
class SavedSite:
    """What the state file keeps of a site."""

    occupancy: int
    drift: int


@dataclass(slots=True)
class _Feed:
    """What one camera feeds into one site."""

    site: int
    # (line, +1 / -1): +1 counts the line's in as entering, -1 (invert) its out.
    entrances: list[tuple[str, int]]
    # (zone, index into the site's zone counts)
    zones: list[tuple[str, int]]


class _Site:
    def __init__(self, config: SiteConfig, levels: LevelThresholds) -> None:
        self.config = config
        self.zone_people = np.full(len(config.zones), -1, np.int64)  # -1: not seen yet
        self.occupancy = 0
        self.drift = 0
        self.levels = LevelTracker([config.levels or levels]) if config.capacity else None
        self.level: Level | None = Level.OK if config.capacity else None
        self.next_reset: float | None = None

    def stats(self) -> SiteStats:
        seen = self.zone_people >= 0
        people = int(self.zone_people[seen].sum()) if seen.any() else None
        occupancy = self.occupancy if self.config.entrances else None
        ratio = None
        if self.config.capacity:
            counted = occupancy if occupancy is not None else people
            ratio = None if counted is None else counted / self.config.capacity
        return SiteStats(people, occupancy, ratio, self.level, self.drift)

    def reset_if_due(self, now: float) -> None:
        if self.next_reset is not None and now >= self.next_reset:
            self.occupancy = 0
            self.next_reset = next_reset_after(now, self.config.reset_minutes or 0)
            self.update_level()

    def update_level(self) -> None:
        if self.levels is None:
            return
        ratio = self.stats().ratio
        value = np.array([math.nan if ratio is None else ratio], np.float64)
        self.level = Level(int(self.levels.update(value)[0]))


def next_reset_after(now: float, minutes: int) -> float:
    """Unix time of the next local HH:MM (given as minutes after midnight) after now."""
    local = dt.datetime.fromtimestamp(now).astimezone()
    at = local.replace(hour=minutes // 60, minute=minutes % 60, second=0, microsecond=0)
    if at <= local:
        at = (at + dt.timedelta(days=1)).replace(hour=minutes // 60, minute=minutes % 60)
    return at.timestamp()


class SiteTracker:
    """Occupancy, people and level of every site, fed by the camera threads."""

    def __init__(self, sites: list[SiteConfig], levels: LevelThresholds,
                 saved: Mapping[str, SavedSite] | None = None, saved_at: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sites = [_Site(config, levels) for config in sites]
        self.names = tuple(config.name for config in sites)
        self._feeds: dict[str, list[_Feed]] = {}
        for index, config in enumerate(sites):
            cameras = {e.camera for e in config.entrances} | {z.camera for z in config.zones}
            for camera in sorted(cameras):
                feed = _Feed(
                    index,
                    [(e.line, -1 if e.invert else 1) for e in config.entrances
                     if e.camera == camera],
                    [(z.zone, i) for i, z in enumerate(config.zones) if z.camera == camera])
                self._feeds.setdefault(camera, []).append(feed)
        now = clock()
        for site in self._sites:
            minutes = site.config.reset_minutes
            if minutes is not None:
                site.next_reset = next_reset_after(now, minutes)
            kept = (saved or {}).get(site.config.name)
            if kept is None:
                continue
            site.drift = kept.drift
            # A reset time that passed while crowdwatch was down still empties the site.
            missed = (minutes is not None and saved_at is not None
                      and next_reset_after(saved_at, minutes) <= now)
            site.occupancy = 0 if missed else max(kept.occupancy, 0)
            site.update_level()

    def cameras(self) -> frozenset[str]:
        """The cameras that feed some site."""
        return frozenset(self._feeds)

    def update(self, camera: str, zones: Mapping[str, ZoneStats],
               lines: Mapping[str, LineTotals]) -> dict[str, SiteStats]:
        """Take one analysed frame of a camera; the sites it feeds, as they are now."""
        feeds = self._feeds.get(camera)
        if not feeds:
            return {}
        out: dict[str, SiteStats] = {}
        with self._lock:
            now = self._clock()
            for feed in feeds:
                site = self._sites[feed.site]
                site.reset_if_due(now)
                delta = 0
                for line, sign in feed.entrances:
                    totals = lines.get(line)
                    if totals is not None:
                        delta += sign * (totals.new_in - totals.new_out)
                if delta:
                    site.occupancy += delta
                    if site.occupancy < 0:
                        site.drift -= site.occupancy
                        site.occupancy = 0
                for zone, slot in feed.zones:
                    stats = zones.get(zone)
                    if stats is not None:
                        site.zone_people[slot] = stats.people
                site.update_level()
                out[site.config.name] = site.stats()
        return out

    def snapshot(self) -> dict[str, SiteStats]:
        """Every site now (metrics read it at scrape time); a reset that fell due while
        no camera delivered a frame is applied here too."""
        with self._lock:
            now = self._clock()
            for site in self._sites:
                site.reset_if_due(now)
            return {site.config.name: site.stats() for site in self._sites}

    def saved(self) -> dict[str, SavedSite]:
        """What the state file keeps."""
        with self._lock:
            return {site.config.name: SavedSite(site.occupancy, site.drift)
                    for site in self._sites if site.config.entrances}

    def capacities(self) -> dict[str, int]:
        return {s.config.name: s.config.capacity for s in self._sites if s.config.capacity}
