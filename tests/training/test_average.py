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
    assert Settings().average_last == 10 < Settings().epochs
