"""Line crossings: counts people whose foot point passes a counting line, in and out.

side(p) = (x2 - x1)(py - y1) - (y2 - y1)(px - x1); `in` is a change from the negative to the
positive side, `out` the reverse. Robust to jitter and broken tracks:
  * hysteresis: a track's side flips only when its signed distance passes +band or -band, so a
    person standing on the line is never counted;
  * segment: the crossing point (where the path from the last point on the old side to the
    current point meets the line) must project onto the segment, within a tolerance;
  * age: a track seen for less than min_track_age_s changes side without counting;
  * relink: a new id born close to where an unseen id was lost inherits its side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from crowdwatch.analytics.tracks import IntArray, StateArray, TrackTable
from crowdwatch.boxes import foot_points
from crowdwatch.config.flow import LineConfig, RelinkConfig

TIME_EPS = 1e-6

__all__ = ["Crossing", "Line", "LineCounter", "LineCounts", "build_lines", "foot_points"]


@dataclass(frozen=True, slots=True)
class Line:
    """A counting line resolved to pixels."""

    name: str
    start: tuple[float, float]
    end: tuple[float, float]
    band_px: float = 6.0
    segment_tolerance: float = 0.05
    min_track_age_s: float = 0.2


def build_lines(configs: Sequence[LineConfig], width: int, height: int) -> list[Line]:
    """Lines in pixels for one frame size (normalized points are scaled)."""
    lines = []
    for c in configs:
        scale = (width, height) if c.normalized else (1.0, 1.0)
        (x1, y1), (x2, y2) = c.points
        lines.append(Line(c.name, (x1 * scale[0], y1 * scale[1]), (x2 * scale[0], y2 * scale[1]),
                          c.band_px, c.segment_tolerance, c.min_track_age_s))
    return lines


@dataclass(frozen=True, slots=True)
class Crossing:
    """One counted crossing, for events."""

    line: str
    tracker_id: int
    direction: Literal["in", "out"]
    timestamp: float
    point: tuple[float, float]


@dataclass(frozen=True, slots=True)
class LineCounts:
    """Cumulative and this-frame crossings per line, arrays in `names` order."""

    names: tuple[str, ...]
    total_in: IntArray
    total_out: IntArray
    new_in: IntArray
    new_out: IntArray
    crossings: tuple[Crossing, ...] = ()

    def totals(self) -> dict[str, tuple[int, int]]:
        """{line: (in, out)} since the counter started."""
        return {n: (int(i), int(o)) for n, i, o in zip(
            self.names, self.total_in, self.total_out, strict=True)}


class LineCounter:
    """Counts crossings of several lines by tracked foot points, one update per frame."""

    def __init__(self, lines: Sequence[Line], relink: RelinkConfig | None = None) -> None:
        if len({line.name for line in lines}) != len(lines):
            raise ValueError("line names must be unique")
        self.lines = list(lines)
        self.relink = relink or RelinkConfig()
        n = len(self.lines)
        self._a = np.array([line.start for line in lines], np.float64).reshape(n, 2)
        b = np.array([line.end for line in lines], np.float64).reshape(n, 2)
        self._ab = b - self._a
        length2 = (self._ab**2).sum(axis=1)
        if np.any(length2 == 0):
            raise ValueError("a line needs two different end points")
        self._length = np.sqrt(length2)
        self._length2 = length2
        self._band = np.array([line.band_px for line in lines], np.float64)
        self._tol = np.array([line.segment_tolerance for line in lines], np.float64)
        self._min_age = np.array([line.min_track_age_s for line in lines], np.float64)
        self._table = TrackTable({
            # side per line: -1 / +1, 0 until the track is seen off the line
            "side": ((n,), np.int8, 0),
            # last foot point that lay on the track's current side of each line
            "anchor": ((n, 2), np.float64, np.nan),
        })
        self.total_in = np.zeros(n, np.int64)
        self.total_out = np.zeros(n, np.int64)

    def signed_distance(self, points: StateArray) -> StateArray:
        """(lines, N) signed distance in pixels, side(p) / |line|, of points (N, 2) or of
        per-line points (lines, N, 2)."""
        rel = points - self._a[:, None, :]
        side = self._ab[:, None, 0] * rel[..., 1] - self._ab[:, None, 1] * rel[..., 0]
        return side / self._length[:, None]

    def update(
        self, tracker_id: IntArray, foot: StateArray, timestamp: float
    ) -> LineCounts:
        """Advance by one frame: tracker ids (N,) (-1 ignored) and foot points (N, 2)."""
        keep = np.asarray(tracker_id) >= 0
        ids = np.asarray(tracker_id, np.int64)[keep]
        foot = np.asarray(foot, np.float64).reshape(-1, 2)[keep]
        table = self._table
        rows, new = table.lookup(ids, foot, timestamp,
                                 self.relink.within_s, self.relink.within_px)
        d = self.signed_distance(foot)  # (L, N)
        sign = np.sign(d).astype(np.int8)
        side = table.columns["side"][rows].T  # (L, N)
        # A fresh track starts on the side it is seen on; it has crossed nothing yet.
        side = np.where(new[None, :], sign, side)
        beyond = np.where(d > self._band[:, None], 1, np.where(d < -self._band[:, None], -1, 0))
        flip = (side != 0) & (beyond != 0) & (beyond != side)

        # Where the path from the last point on the old side to this point meets the line.
        anchor = table.columns["anchor"][rows].transpose(1, 0, 2)  # (L, N, 2)
        anchor = np.where(np.isnan(anchor), foot[None], anchor)
        d0 = self.signed_distance(anchor)
        with np.errstate(invalid="ignore", divide="ignore"):
            u = np.where(flip, d0 / (d0 - d), 0.0)
        cross = anchor + u[..., None] * (foot[None] - anchor)
        t = ((cross - self._a[:, None]) * self._ab[:, None]).sum(axis=2) / self._length2[:, None]
        on_segment = (t >= -self._tol[:, None]) & (t <= 1 + self._tol[:, None])
        # TIME_EPS: 0.6 - 0.4 is 0.19999999999999996 in floating point, and frame times are
        # such sums; an age of exactly min_track_age_s must count.
        age = (timestamp - table.first_seen[rows])[None, :]
        old_enough = age >= self._min_age[:, None] - TIME_EPS
        counted = flip & on_segment & old_enough
        went_in = counted & (side < 0)
        went_out = counted & (side > 0)
        new_in = went_in.sum(axis=1).astype(np.int64)
        new_out = went_out.sum(axis=1).astype(np.int64)
        self.total_in += new_in
        self.total_out += new_out

        side = np.where(side == 0, sign, np.where(beyond != 0, beyond, side))
        on_side = (sign == side) & (sign != 0)
        anchor = np.where(on_side[..., None], foot[None], table.columns["anchor"][rows]
                          .transpose(1, 0, 2))
        table.columns["side"][rows] = side.T
        table.columns["anchor"][rows] = anchor.transpose(1, 0, 2)
        table.drop(table.stale(timestamp, self.relink.forget_s))

        crossings = tuple(
            Crossing(self.lines[li].name, int(ids[pi]), "in" if went_in[li, pi] else "out",
                     timestamp, (float(cross[li, pi, 0]), float(cross[li, pi, 1])))
            for li, pi in zip(*np.nonzero(counted), strict=True)
        )
        return LineCounts(tuple(line.name for line in self.lines), self.total_in.copy(),
                          self.total_out.copy(), new_in, new_out, crossings)

    def update_boxes(
        self, tracker_id: IntArray, xyxy: npt.NDArray[np.floating], timestamp: float
    ) -> LineCounts:
        """update() with foot points taken from xyxy boxes."""
        return self.update(tracker_id, foot_points(xyxy), timestamp)

    def resume(self, totals: Mapping[str, tuple[int, int]]) -> None:
        """Start the totals from saved (in, out) values (the state file); unknown names are
        ignored, lines not in `totals` keep theirs."""
        for i, line in enumerate(self.lines):
            if line.name in totals:
                self.total_in[i], self.total_out[i] = totals[line.name]

    def reset(self) -> None:
        """Zero the totals and forget every track."""
        self.__init__(self.lines, self.relink)  # type: ignore[misc]

    def forget_tracks(self) -> None:
        """Forget every track but keep the totals (a file source that loops)."""
        totals = self.total_in, self.total_out
        self.__init__(self.lines, self.relink)  # type: ignore[misc]
        self.total_in, self.total_out = totals
