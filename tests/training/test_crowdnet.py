"""The crowd network that fine-tunes the detector's own layers (training/crowdnet.py; needs
torch and ultralytics): its weights come from the shipped IR, all of them train, and its
crops and targets put people where the photo has them."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

from crowdwatch.density.neck import NeckModel
from crowdwatch.detect.ultralytics import configure_ultralytics

configure_ultralytics()  # before ultralytics is first imported: offline, settings in /tmp
torch = pytest.importorskip("torch")
pytest.importorskip("ultralytics")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from training import crowdnet  # noqa: E402
from training.crowdnet import (  # noqa: E402
    CrowdNet,
    DetectorNeck,
    NetSettings,
    Photo,
    letterboxed,
    random_crop,
)
from training.features import DETECTOR  # noqa: E402
from training.head import DensityHead  # noqa: E402


@pytest.fixture(scope="module")
def neck() -> DetectorNeck:
    return DetectorNeck().eval()


def test_the_detectors_layers_in_torch_give_the_irs_neck_features(
        neck: DetectorNeck, pets_frame: np.ndarray) -> None:
    frame = pets_frame
    tensor, box = letterboxed(frame)
    with torch.no_grad():
        ours = [t[0].numpy() for t in neck(tensor[None])]
    theirs = NeckModel(DETECTOR, threads=1).run(frame).extra[:2]  # p3, p4 (the IR's INT8)
    for mine, ir in zip(ours, theirs, strict=True):
        assert mine.shape == ir.shape
        # Not equal: the IR rounds every activation to INT8; the weights are the IR's own.
        assert np.corrcoef(mine.ravel(), ir.ravel())[0, 1] > 0.99
        assert np.abs(mine - ir).mean() < 0.1 * np.abs(ir).mean()
    assert box.input_hw == (480, 640)


def test_every_layer_trains(neck: DetectorNeck) -> None:
    # ultralytics freezes the convolutions it folds BatchNorm into; the crowd net must not.
    net = CrowdNet(DensityHead("reduce", 8, 1.0))
    net.neck.load_state_dict(neck.state_dict())
    net.train()(torch.rand(2, 3, 64, 96)).sum().backward()
    first = net.neck.layers[0].conv
    assert first.weight.grad is not None and float(first.weight.grad.abs().sum()) > 0
    assert all(p.requires_grad for p in net.parameters())
    assert net(torch.rand(1, 3, 64, 96)).shape == (1, 1, 8, 12)


def _photo() -> Photo:
    """A 20 x 20 red photo with two people: scaled to 32 it fits one 64-pixel crop at (0, 0)."""
    image = np.zeros((20, 20, 3), np.uint8)
    image[..., 2] = 255  # red in BGR
    return Photo("sha", image, np.array([[5.0, 5.0], [15.0, 5.0]], np.float32))


@pytest.mark.parametrize("flip", [False, True])
def test_a_crop_holds_the_scaled_photo_and_its_people(flip: bool) -> None:
    image, target = random_crop(_photo(), 32, 64, flip, sigma=0.0, rng=random.Random(0))
    assert tuple(image.shape) == (3, 64, 64) and tuple(target.shape) == (8, 8)
    # The photo's last column blends with the grey beyond it (bilinear): left out.
    photo_cols = slice(33, 64) if flip else slice(0, 31)
    grey_cols = slice(0, 32) if flip else slice(32, 64)
    assert float(image[0, :31, photo_cols].min()) == 1.0   # RGB: red is channel 0
    assert float(image[2, :31, photo_cols].max()) == 0.0
    assert float(image[:, :, grey_cols].min()) == pytest.approx(114 / 255)
    # (5, 5) and (15, 5) x 1.6 = (8, 8) and (24, 8): cells (1, 1) and (1, 3) of 8 pixels;
    # flipped, x -> 64 - x: 56 and 40, cells 7 and 5.
    expected = np.zeros((8, 8), np.float32)
    for col in ((7, 5) if flip else (1, 3)):
        expected[1, col] = 1.0
    np.testing.assert_array_equal(target.numpy(), expected)


def test_people_outside_the_window_are_not_in_its_target() -> None:
    image = np.zeros((100, 400, 3), np.uint8)
    points = np.array([[10.0, 50.0], [390.0, 50.0]], np.float32)
    rng = random.Random(3)
    totals = {round(float(random_crop(Photo("shb", image, points), 400, 64, False, 1.0,
                                      rng)[1].sum()), 3) for _ in range(50)}
    # A 64-pixel window of a 400 x 100 photo never holds both; near an edge the blur's
    # tail past the window is cut: at most one person, never more.
    assert max(totals) <= 1.0 and 0.0 in totals


def test_the_shipped_crowd_head_in_torch_counts_as_its_ir(pets_frame: np.ndarray) -> None:
    import openvino as ov

    from crowdwatch.density.neck import split_head
    from training.crowdnet import SHIPPED_HEAD, shipped_crowd_head

    features = [f[None] for f in NeckModel(DETECTOR, threads=1).run(pets_frame).extra[:2]]
    _, crowd_ir = split_head(ov.Core().read_model(SHIPPED_HEAD / "density_head.xml"))
    assert crowd_ir is not None
    theirs = ov.Core().compile_model(crowd_ir, "CPU")(features)[0][0, 0]
    head = shipped_crowd_head(SHIPPED_HEAD, scale=100.0).eval()
    with torch.no_grad():
        ours = (head(*(torch.from_numpy(f) for f in features)) / 100.0)[0, 0].numpy()
    assert ours.shape == theirs.shape
    # The IR quantizes each activation to INT8; the torch head computes in float.
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.98
    assert float(ours.sum()) == pytest.approx(float(theirs.sum()), rel=0.1)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def synthetic(shared: Path, dataset: str, split: str, min_people: int = 0) -> list[Photo]:
        generator = np.random.default_rng(len(dataset) + len(split))
        return [Photo(dataset, generator.integers(0, 255, (48, 64, 3), dtype=np.uint8),
                      generator.uniform(0, 48, (5, 2)).astype(np.float32)) for _ in range(2)]

    monkeypatch.setattr(crowdnet, "load_photos", synthetic)
    settings = NetSettings(epochs=3, steps_per_epoch=2, batch=2, crop=32, average_last=2,
                           threads=1, scales={"sha": [64]}, validate=["sha"])
    whole = crowdnet.train(settings, tmp_path, tmp_path / "whole")
    cut = tmp_path / "cut"
    assert crowdnet.train(settings, tmp_path, cut, stop_after=1) is None
    assert torch.load(cut / "checkpoint.pt", weights_only=False)["epoch"] == 1
    resumed = crowdnet.train(settings, tmp_path, cut)
    assert whole is not None and resumed is not None
    torch.testing.assert_close(resumed.state_dict(), whole.state_dict())
    assert (cut / "curve.csv").read_text().count("\n") == 1 + 3
