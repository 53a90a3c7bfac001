"""Box arithmetic shared by the stages and the tools (numpy only)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def box_iou(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), xyxy.

    Returns (N, M); pairs whose union has no area (two degenerate boxes) get 0.
    """
    a64 = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b64 = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a64[:, None, :2], b64[None, :, :2])
    bottom_right = np.minimum(a64[:, None, 2:], b64[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area_a = np.clip(a64[:, 2:] - a64[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b64[:, 2:] - b64[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def foot_points(xyxy: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(N, 2) bottom centre of each xyxy box: where a person stands."""
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]], axis=1)
