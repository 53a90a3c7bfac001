"""Weight averaging of the density head's training: the shipped weights are the mean of the
last epochs' EMA weights (training/density.py; needs the [train] extra)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from training.density import Settings, average_in, averaged_head  # noqa: E402
from training.head import DensityHead  # noqa: E402


def test_the_average_is_the_mean_of_each_epochs_weights() -> None:
    settings = Settings(width=8)
    heads = []
    average = None
    for seen in range(3):
        torch.manual_seed(seen)
        head = DensityHead(settings.design, settings.width, settings.scale, settings.norm)
        head.p3_in[1].num_batches_tracked.fill_(10 * (seen + 1))
        heads.append(head)
        average = average_in(average, head, seen)
    assert average is not None
    states = [{k: v.clone() for k, v in h.state_dict().items()} for h in heads]
    for key, value in average.items():
        if value.dtype.is_floating_point:
            expected = sum(s[key] for s in states) / 3
            torch.testing.assert_close(value, expected)
    # BatchNorm's batch counter is not averaged: the newest one.
    assert int(average["p3_in.1.num_batches_tracked"]) == 30
    # The snapshot is a copy: training the last head on does not move the average.
    with torch.no_grad():
        heads[-1].out.weight.add_(1.0)
    torch.testing.assert_close(averaged_head(settings, average).out.weight,
                               sum(s["out.weight"] for s in states) / 3)


def test_averaging_is_the_default() -> None:
    assert 0 < Settings().average_last < Settings().epochs


def test_the_mean_of_heads_exports_the_mean_of_their_maps(tmp_path: Path) -> None:
    ov = pytest.importorskip("openvino")
    from training.export import Trained, export
    from training.head import MeanOfHeads

    settings = Settings(width=8, members=3, scale=1.0)
    heads = []
    for seed in range(3):
        torch.manual_seed(seed)
        head = DensityHead(settings.design, settings.width, settings.scale, settings.norm)
        with torch.no_grad():  # the mean lies away from every head's map: biases 0, 0, 3
            head.out.bias.fill_(3.0 if seed == 2 else 0.0)
        heads.append(head.eval())
    generator = torch.Generator().manual_seed(7)
    p3, p4 = torch.rand(1, 64, 12, 16, generator=generator), torch.rand(1, 128, 6, 8,
                                                                       generator=generator)
    with torch.no_grad():
        maps = [h(p3, p4)[0, 0] / settings.scale for h in heads]
    export(Trained(MeanOfHeads(heads), settings, {"shb_val_mae": "1.0"}), tmp_path)
    compiled = ov.Core().compile_model(tmp_path / "density_head.xml", "CPU",
                                       {"INFERENCE_PRECISION_HINT": "f32"})
    out = compiled({"p3": p3.numpy(), "p4": p4.numpy()})[0][0, 0]
    expected = (maps[0] + maps[1] + maps[2]) / 3
    # fp16 weights in the IR: agreement to fp16's precision, and not any one head's map.
    assert out.shape == (12, 16)
    assert abs(float(out.sum()) - float(expected.sum())) < 1e-2 * float(expected.sum())
    for single in maps:
        assert abs(float(single.sum()) - float(expected.sum())) > 0.2 * float(expected.sum())
    metadata = (tmp_path / "metadata.yaml").read_text()
    assert "the mean of the maps of 3 heads (seeds 0 to 2)" in metadata


def test_mean_of_heads_refuses_heads_of_different_scales() -> None:
    from training.head import MeanOfHeads

    with pytest.raises(ValueError, match="same scale"):
        MeanOfHeads([DensityHead(width=8, scale=1.0), DensityHead(width=8, scale=100.0)])
