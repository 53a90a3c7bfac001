"""The standalone light density network (training/standalone.py; needs the [train] extra):
its grid, its data at the runtime's size, its crops, and a resumed run."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from training import standalone  # noqa: E402
from training.standalone import (  # noqa: E402
    LightCounter,
    Picture,
    StandaloneSettings,
    picture,
    random_crop,
)


@pytest.mark.parametrize(("height", "width"), [(64, 64), (480, 640), (72, 136)])
def test_one_non_negative_value_per_8x8_pixel_cell(height: int, width: int) -> None:
    torch.manual_seed(0)
    out = LightCounter(width=4).eval()(torch.rand(2, 3, height, width) * 255)
    assert out.shape == (2, 1, height // 8, width // 8)
    assert bool((out >= 0).all())


@pytest.mark.parametrize(("frame_hw", "resized_hw"), [
    ((768, 1024), (480, 640)),   # ShanghaiTech B
    ((480, 640), (480, 640)),    # the Mall: unchanged
    ((1080, 1920), (360, 640)),
    ((500, 333), (640, 424)),    # portrait: 333 * 640 / 500 = 426.2 -> the nearest multiple of 8
])
def test_pictures_take_the_runtimes_long_side_in_whole_cells(
        frame_hw: tuple[int, int], resized_hw: tuple[int, int]) -> None:
    points = np.array([[10, 20], [frame_hw[1] - 1, frame_hw[0] - 1]], np.float32)
    made = picture("shb", np.zeros((*frame_hw, 3), np.uint8), points, None, sigma=1.0)
    assert tuple(made.image.shape) == (3, *resized_hw)
    assert tuple(made.target.shape) == (resized_hw[0] // 8, resized_hw[1] // 8)
    assert made.count == 2
    assert float(made.target.sum()) == pytest.approx(2.0, abs=1e-4)


def test_only_people_and_cells_inside_the_roi_count() -> None:
    roi = np.zeros((480, 640), bool)
    roi[:, :320] = True  # the left half
    points = np.array([[5, 5], [100, 300], [310, 200], [600, 400]], np.float32)
    made = picture("mall", np.zeros((480, 640, 3), np.uint8), points, roi, sigma=1.0)
    assert made.count == 3
    assert float(made.weight[:, :40].min()) == 1.0 and float(made.weight[:, 40:].max()) == 0.0
    assert float(made.target[:, 40:].sum()) == 0.0
    # The person at x=310 (cell 38) is two cells from the edge: the blur's tail beyond it
    # (about 6 % at sigma 1 cell) is cut off; the frame's own border keeps its people whole.
    assert 2.9 < float(made.target.sum()) < 2.99


def positions(height: int, width: int) -> Picture:
    """A picture whose image holds each pixel's own y (channel 0) and x (channel 1) and whose
    target holds each cell's top-left pixel x."""
    ys, xs = np.mgrid[0:height, 0:width]
    image = torch.from_numpy(np.stack([ys, xs, ys]).astype(np.int32))
    target = torch.from_numpy((xs[::8, ::8] + 0.0).astype(np.float32))
    return Picture("shb", image, target, torch.ones(height // 8, width // 8), 0)


@pytest.mark.parametrize("seed", range(6))
def test_a_crop_cuts_image_and_target_from_one_window_and_flips_both(seed: int) -> None:
    item = positions(96, 160)
    image, target, weight = random_crop(item, 32, random.Random(seed))
    assert image.shape == (3, 32, 32) and target.shape == weight.shape == (4, 4)
    flipped = bool(image[1, 0, 0] > image[1, 0, -1])
    left = float(image[1, 0, -1] if flipped else image[1, 0, 0])
    top = float(image[0, 0, 0])
    assert left % 8 == 0 and top % 8 == 0  # on cell boundaries
    cells = target.flip(-1) if flipped else target
    assert [float(v) for v in cells[0]] == [left + 8 * k for k in range(4)]


def test_a_picture_smaller_than_the_crop_is_zero_padded() -> None:
    item = positions(16, 24)
    image, _, weight = random_crop(item, 32, random.Random(1))
    assert image.shape == (3, 32, 32)
    assert float(weight.sum()) == 2 * 3


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def synthetic(shared: Path, dataset: str, split: str, sigma: float,
                  step: int = 1) -> list[Picture]:
        generator = np.random.default_rng(len(dataset) + len(split))
        return [picture(dataset, generator.integers(0, 255, (48, 64, 3), dtype=np.uint8),
                        generator.uniform(0, 48, (5, 2)).astype(np.float32), None, sigma)
                for _ in range(3)]

    monkeypatch.setattr(standalone, "load", synthetic)
    settings = StandaloneSettings(width=4, epochs=3, steps_per_epoch=2, batch=2, crop=32,
                                  average_last=2, threads=1)
    whole = standalone.train(settings, tmp_path, tmp_path / "whole")
    cut = tmp_path / "cut"
    assert standalone.train(settings, tmp_path, cut, stop_after=1) is None
    assert torch.load(cut / "checkpoint.pt", weights_only=False)["epoch"] == 1
    resumed = standalone.train(settings, tmp_path, cut)
    assert whole is not None and resumed is not None
    torch.testing.assert_close(resumed.state_dict(), whole.state_dict())
    assert (cut / "curve.csv").read_text().count("\n") == 1 + 3
