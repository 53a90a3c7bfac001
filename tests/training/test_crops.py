"""Training crops: every feature level is cut from the same frame region as the target
(training/density.py random_crop), at its own stride; a cached folder a recipe names must
exist (load_folder)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from training.density import Item, load_folder, random_crop  # noqa: E402


def positions(stride: int, h: int, w: int) -> torch.Tensor:
    """(2, h, w): each cell's own top-left input pixel (y, x) at this stride."""
    ys, xs = np.mgrid[0:h, 0:w]
    return torch.from_numpy(np.stack([ys * stride, xs * stride]).astype(np.float16))


@pytest.mark.parametrize("seed", range(5))
def test_each_level_is_cut_from_the_targets_region(seed: int) -> None:
    h, w = 40, 56   # density cells (stride 8)
    item = Item("sha", {"p3": positions(8, h, w), "p4": positions(16, h // 2, w // 2),
                        "p2": positions(4, 2 * h, 2 * w)},
                positions(8, h, w)[0].float(), torch.ones(h, w), 0)
    features, target, weight = random_crop(item, 16, random.Random(seed))
    top, left = float(target[0, 0]), float(features["p3"][1, 0, 0])
    assert top % 16 == 0 and left % 16 == 0   # even cells: P4 stays aligned
    for name, stride, size in (("p3", 8, 16), ("p4", 16, 8), ("p2", 4, 32)):
        assert features[name].shape == (2, size, size)
        assert float(features[name][0, 0, 0]) == top
        assert float(features[name][1, 0, 0]) == left
        assert float(features[name][0, -1, 0]) == top + (size - 1) * stride
    assert weight.shape == (16, 16)


def test_a_frame_smaller_than_the_crop_is_zero_padded() -> None:
    item = Item("shb", {"p3": torch.ones(64, 6, 10), "p4": torch.ones(128, 3, 5),
                        "p2": torch.ones(64, 12, 20)}, torch.ones(6, 10), torch.ones(6, 10), 0)
    features, target, weight = random_crop(item, 8, random.Random(0))
    assert features["p2"].shape == (64, 16, 16) and features["p4"].shape == (128, 4, 4)
    assert float(target.sum()) == 6 * 8 and float(weight.sum()) == 6 * 8
    assert float(features["p2"].sum()) == 64 * 12 * 16


def test_a_cached_folder_that_is_missing_stops_training(tmp_path: Path) -> None:
    # Training on the rest would quietly change the recipe (a crowd head trained without its
    # 1920-pixel SHA features did not reproduce the shipped one).
    with pytest.raises(SystemExit, match="sha-train-1920-flip is not in the feature cache"):
        load_folder(tmp_path / "sha-train-1920-flip", sigma=1.0)
