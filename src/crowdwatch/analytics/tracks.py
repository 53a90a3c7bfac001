"""Per-track state kept as rows of numpy arrays, looked up by tracker id.

The analytics keep one row per track id and update all rows of a frame with array operations;
this table maps ids to rows, adds rows for new ids (or hands a lost track's row to its
successor, see relink) and drops rows of tracks unseen for too long.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
# Per-track analytics state (times, foot points) in float64, unlike types.FloatArray.
StateArray = npt.NDArray[np.float64]


class TrackTable:
    """Rows of per-track state; `columns` maps a name to (per-row shape, dtype, fill value)."""

    def __init__(self, columns: dict[str, tuple[tuple[int, ...], type, Any]]) -> None:
        self._spec = columns
        self.ids: IntArray = np.zeros(0, np.int64)
        self.first_seen: StateArray = np.zeros(0)
        self.last_seen: StateArray = np.zeros(0)
        self.last_foot: StateArray = np.zeros((0, 2))
        self.columns: dict[str, npt.NDArray[Any]] = {
            name: np.full((0, *shape), fill, dtype)
            for name, (shape, dtype, fill) in columns.items()
        }

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(
        self,
        ids: IntArray,
        foot: StateArray,
        timestamp: float,
        relink_s: float = 0.0,
        relink_px: float = 0.0,
    ) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        """Rows of `ids` (unique) and a mask of the ids that got fresh rows.

        A new id born within relink_s seconds and relink_px pixels of where a track not seen
        this frame was last seen takes over that track's row (its state and first_seen): a
        tracker that loses a person for a moment and gives them a new id is then still one
        track to the analytics. Pairs are taken nearest first.
        """
        rows = self._find(ids)
        new = rows < 0
        if new.any() and relink_s > 0 and len(self.ids):
            self._relink(ids, foot, timestamp, rows, new, relink_s, relink_px)
            new = rows < 0
        if new.any():
            rows[new] = self._append(ids[new], timestamp, foot[new])
        self.last_seen[rows] = timestamp
        self.last_foot[rows] = foot
        return rows, new

    def _find(self, ids: IntArray) -> IntArray:
        if not len(self.ids):
            return np.full(len(ids), -1, np.int64)
        order = np.argsort(self.ids)
        pos = np.clip(np.searchsorted(self.ids, ids, sorter=order), 0, len(order) - 1)
        rows = order[pos]
        return np.where(self.ids[rows] == ids, rows, -1).astype(np.int64)

    def _relink(
        self, ids: IntArray, foot: StateArray, timestamp: float, rows: IntArray,
        new: npt.NDArray[np.bool_], within_s: float, within_px: float,
    ) -> None:
        seen_now = np.zeros(len(self.ids), bool)
        seen_now[rows[~new]] = True
        lost = (~seen_now) & (self.last_seen < timestamp) & (
            timestamp - self.last_seen <= within_s)
        if not lost.any():
            return
        new_idx = np.flatnonzero(new)
        lost_rows = np.flatnonzero(lost)
        dist = np.linalg.norm(foot[new_idx, None, :] - self.last_foot[None, lost_rows, :], axis=2)
        # Births are rare, so a greedy loop over the few close pairs is fine here.
        for flat in np.argsort(dist, axis=None):
            i, j = np.unravel_index(flat, dist.shape)
            if dist[i, j] > within_px:
                break
            if rows[new_idx[i]] >= 0 or not lost[lost_rows[j]]:
                continue
            row = lost_rows[j]
            rows[new_idx[i]] = row
            self.ids[row] = ids[new_idx[i]]
            lost[row] = False

    def _append(self, ids: IntArray, timestamp: float, foot: StateArray) -> IntArray:
        start = len(self.ids)
        n = len(ids)
        self.ids = np.concatenate([self.ids, ids.astype(np.int64)])
        self.first_seen = np.concatenate([self.first_seen, np.full(n, timestamp)])
        self.last_seen = np.concatenate([self.last_seen, np.full(n, timestamp)])
        self.last_foot = np.concatenate([self.last_foot, foot])
        for name, (shape, dtype, fill) in self._spec.items():
            self.columns[name] = np.concatenate(
                [self.columns[name], np.full((n, *shape), fill, dtype)])
        return np.arange(start, start + n, dtype=np.int64)

    def stale(self, timestamp: float, older_than_s: float) -> npt.NDArray[np.bool_]:
        """Mask of rows not seen for more than older_than_s seconds."""
        return timestamp - self.last_seen > older_than_s

    def drop(self, mask: npt.NDArray[np.bool_]) -> None:
        """Remove the masked rows."""
        if not mask.any():
            return
        keep = ~mask
        self.ids = self.ids[keep]
        self.first_seen = self.first_seen[keep]
        self.last_seen = self.last_seen[keep]
        self.last_foot = self.last_foot[keep]
        for name in self.columns:
            self.columns[name] = self.columns[name][keep]
