"""Occupancy levels per zone: ok / warning / critical with hysteresis and a clear delay."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from crowdwatch.config import LevelThresholds

# Thresholds are decimals, and 0.8 - 0.1 is 0.7000000000000001 in binary: the band edges are
# rounded back to the decimal they stand for (to DECIMALS places), so 7 of 10 people (7 / 10
# is the same double as 0.7) holds a warning whose leave edge is 0.8 - 0.1.
DECIMALS = 9


class LevelTracker:
    """ok / warning / critical per zone from occupancy, with hysteresis and a clear delay."""

    def __init__(self, thresholds: list[LevelThresholds]) -> None:
        enter = np.array([[t.warning, t.critical] for t in thresholds], np.float64)
        self._enter = np.round(enter, DECIMALS)
        self._leave = np.round(enter - np.array([[t.hysteresis] * 2 for t in thresholds]),
                               DECIMALS)
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
