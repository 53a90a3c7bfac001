"""Dwell time: how long each tracked person stays in each zone, timed by capture timestamps.

A track's state per zone changes only after its raw membership has disagreed with the state
for enter_s (entering) or leave_s (leaving) seconds, so a person on a zone's edge does not
start and end visits. A visit runs from the first moment inside to the first moment outside;
a track unseen for lost_s ends its visits at the last time it was seen inside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crowdwatch.analytics.lines import TIME_EPS
from crowdwatch.analytics.tracks import IntArray, StateArray, TrackTable
from crowdwatch.config.flow import DwellConfig, RelinkConfig

__all__ = ["DwellStats", "DwellTracker"]


@dataclass(frozen=True, slots=True)
class DwellStats:
    """Per zone, in `names` order: visits that ended this update (seconds, for a histogram),
    confirmed tracks inside now (seen this frame) and the longest current stay (0 if empty)."""

    names: tuple[str, ...]
    completed: tuple[tuple[float, ...], ...]
    inside_now: IntArray
    longest_s: StateArray

    def completed_by_zone(self) -> dict[str, list[float]]:
        return {n: list(c) for n, c in zip(self.names, self.completed, strict=True)}


class DwellTracker:
    """Visits of tracks to zones from a (zones, people) membership matrix per frame."""

    def __init__(
        self,
        zone_names: Sequence[str],
        config: DwellConfig | None = None,
        relink: RelinkConfig | None = None,
    ) -> None:
        self.names = tuple(zone_names)
        self.config = config or DwellConfig()
        # Relinking joins a track broken inside a zone, so one stay is not split in two.
        self.relink = relink or RelinkConfig()
        z = len(self.names)
        self._table = TrackTable({
            "inside": ((z,), bool, False),
            # when raw membership started to disagree with `inside`; NaN while they agree
            "pending": ((z,), np.float64, np.nan),
            "visit_start": ((z,), np.float64, np.nan),
            "last_inside": ((z,), np.float64, np.nan),
        })

    def update(
        self,
        tracker_id: IntArray,
        membership: npt.NDArray[np.bool_],
        timestamp: float,
        foot: StateArray | None = None,
    ) -> DwellStats:
        """Advance by one frame. membership is (zones, N) for the N boxes of tracker_id (-1
        ignored); foot points (N, 2) enable relinking of broken tracks."""
        z = len(self.names)
        keep = np.asarray(tracker_id) >= 0
        ids = np.asarray(tracker_id, np.int64)[keep]
        raw = np.asarray(membership, bool).reshape(z, -1)[:, keep].T  # (N, Z)
        if foot is None:
            foot_kept = np.zeros((len(ids), 2))
            relink_s = 0.0
        else:
            foot_kept = np.asarray(foot, np.float64).reshape(-1, 2)[keep]
            relink_s = self.relink.within_s
        table = self._table
        completed: list[list[float]] = [[] for _ in range(z)]

        # Tracks unseen for lost_s end their visits where they were last seen inside.
        stale = table.stale(timestamp, self.config.lost_s)
        if stale.any():
            self._complete(completed, stale[:, None] & table.columns["inside"],
                           table.columns["last_inside"] - table.columns["visit_start"])
            table.drop(stale)

        rows, _ = table.lookup(ids, foot_kept, timestamp, relink_s, self.relink.within_px)
        cols = table.columns
        inside = cols["inside"][rows]
        pending = cols["pending"][rows]
        visit_start = cols["visit_start"][rows]
        last_inside = cols["last_inside"][rows]

        differs = raw != inside
        pending = np.where(differs, np.where(np.isnan(pending), timestamp, pending), np.nan)
        waited = timestamp - pending  # NaN where nothing pends
        # TIME_EPS: frame times are float sums; a wait of exactly enter_s must count.
        enter = ~inside & differs & (waited >= self.config.enter_s - TIME_EPS)
        leave = inside & differs & (waited >= self.config.leave_s - TIME_EPS)
        self._complete(completed, leave, pending - visit_start)
        visit_start = np.where(enter, pending, np.where(leave, np.nan, visit_start))
        inside = (inside | enter) & ~leave
        pending = np.where(enter | leave, np.nan, pending)
        last_inside = np.where(inside & raw, timestamp, last_inside)

        cols["inside"][rows] = inside
        cols["pending"][rows] = pending
        cols["visit_start"][rows] = visit_start
        cols["last_inside"][rows] = last_inside

        stay = np.where(inside, timestamp - visit_start, 0.0)
        longest = stay.max(axis=0) if len(rows) else np.zeros(z)
        return DwellStats(
            self.names,
            tuple(tuple(c) for c in completed),
            inside.sum(axis=0).astype(np.int64),
            longest.astype(np.float64),
        )

    @staticmethod
    def _complete(
        completed: list[list[float]], ended: npt.NDArray[np.bool_], duration: StateArray
    ) -> None:
        # Few visits end per frame; the loop runs over those only.
        for row, zone in zip(*np.nonzero(ended), strict=True):
            completed[zone].append(float(duration[row, zone]))

    def reset(self) -> None:
        """Forget every track (open visits are dropped, not reported)."""
        self.__init__(self.names, self.config, self.relink)  # type: ignore[misc]
