"""Scores of density counts against head points: MAE, RMSE and GAME(L).

GAME(L) (Guerrero-Gómez-Olmedo et al., 2015) splits the frame into 4^L equal regions and
adds up each region's count error, so a count that is right for the wrong reasons (people
in one corner, density in another) is penalised; GAME(0) is the absolute count error.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely

from crowdwatch.density.counter import DensityMap
from crowdwatch.density.zones import zone_weights


def region_boxes(frame_hw: tuple[int, int], level: int) -> list[shapely.Polygon]:
    """The 4^level regions of GAME(level), row by row."""
    n = 2 ** level
    h, w = frame_hw
    return [shapely.box(w * c / n, h * r / n, w * (c + 1) / n, h * (r + 1) / n)
            for r in range(n) for c in range(n)]


def region_counts(points: npt.NDArray[np.floating], frame_hw: tuple[int, int],
                  level: int) -> npt.NDArray[np.float64]:
    """Head points per GAME region (row by row); points outside the frame are not counted."""
    n = 2 ** level
    h, w = frame_hw
    counts, _, _ = np.histogram2d(points[:, 1], points[:, 0], bins=n, range=[[0, h], [0, w]])
    return counts.ravel()


def game(density: DensityMap, points: npt.NDArray[np.floating], level: int,
         ignore: Sequence[shapely.Geometry] = ()) -> float:
    """GAME(level) of one frame: the sum over regions of |density count - true count|."""
    frame_hw = density.letterbox.frame_hw
    weights = zone_weights(density.letterbox, (density.cells.shape[0], density.cells.shape[1]),
                           region_boxes(frame_hw, level), ignore)
    predicted = weights.reshape(len(weights), -1).astype(np.float64) @ density.cells.ravel()
    return float(np.abs(predicted - region_counts(points, frame_hw, level)).sum())


def count_errors(predicted: Sequence[float], truth: Sequence[float]) -> dict[str, float]:
    """MAE, RMSE and mean signed error (bias) of per-frame counts."""
    errors = np.asarray(predicted, np.float64) - np.asarray(truth, np.float64)
    if not len(errors):
        raise ValueError("no frames to score")
    return {"mae": float(np.abs(errors).mean()), "rmse": float(np.sqrt((errors ** 2).mean())),
            "bias": float(errors.mean())}
