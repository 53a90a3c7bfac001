"""Occupancy levels per zone: ok / warning / critical with hysteresis and a clear delay."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from crowdwatch.config import LevelThresholds

# Thresholds are decimals (0.8 - 0.1 is 0.7000000000000001 in binary), so an occupancy that
# sits on a threshold within this tolerance counts as reaching it: 7 of 10 people holds a
# warning whose leave edge is 0.8 - 0.1.
TOLERANCE = 1e-9


class LevelTracker:
    """ok / warning / critical per zone from occupancy, with hysteresis and a clear delay."""

    def __init__(self, thresholds: list[LevelThresholds]) -> None:
        enter = np.array([[t.warning, t.critical] for t in thresholds], np.float64)
        leave = enter - np.array([[t.hysteresis] * 2 for t in thresholds])
        self._enter = enter.reshape(-1, 2) - TOLERANCE
        self._leave = leave.reshape(-1, 2) - TOLERANCE
        self._clear_frames = np.array([t.clear_frames for t in thresholds], np.int64)
        self.levels = np.zeros(len(thresholds), np.int64)
        self._below = np.zeros(len(thresholds), np.int64)

    def update(self, occupancy: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """Next level per zone; NaN occupancy (no capacity) always reads ok."""
        occ = np.nan_to_num(occupancy, nan=-np.inf)[:, None]
        entered = (occ >= self._enter).sum(axis=1)
        held = (occ >= self._leave).sum(axis=1)
        rising = entered >= self.levels
        # A lower level is taken only after clear_frames frames in a row below the band.
        self._below = np.where(held < self.levels, self._below + 1, 0)
        falling = self._below >= self._clear_frames
        self.levels = np.where(
            rising, entered, np.where(falling, np.maximum(entered, held), self.levels)
        )
        self._below[rising | falling] = 0
        return self.levels
