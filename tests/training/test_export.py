"""The exported density IR: a crowd head added beside a head already exported keeps that
head's map exactly, and a crowd head that reads p2 gets its own input (training/export.py;
needs the [train] extra)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ov = pytest.importorskip("openvino")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from training.density import Settings, crowd_settings  # noqa: E402
from training.export import Trained, export  # noqa: E402
from training.head import DensityHead  # noqa: E402


def small_head(seed: int, bias: float, fine: bool = False) -> DensityHead:
    torch.manual_seed(seed)
    head = DensityHead(width=8, scale=1.0, fine=fine)
    with torch.no_grad():
        head.out.bias.fill_(bias)
    return head.eval()


def run(xml: Path, **inputs: np.ndarray) -> list[np.ndarray]:
    compiled = ov.Core().compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled(inputs)
    return [result[output][0, 0] for output in compiled.outputs]


@pytest.mark.parametrize("fine", [False, True])
def test_a_crowd_head_beside_an_exported_head_keeps_its_map(tmp_path: Path, fine: bool) -> None:
    settings = Settings(width=8, scale=1.0)
    main, crowd = small_head(0, 0.0), small_head(1, 2.0, fine)
    export(Trained(main, settings, {}), tmp_path / "main")
    export(tmp_path / "main", tmp_path / "both",
           Trained(crowd, crowd_settings(width=8, fine=fine), {}))
    rng = np.random.default_rng(5)
    p3 = rng.random((1, 64, 12, 16), np.float32)
    p4 = rng.random((1, 128, 6, 8), np.float32)
    p2 = rng.random((1, 64, 24, 32), np.float32)
    fine_inputs = {"p2": p2} if fine else {}
    (alone,) = run(tmp_path / "main" / "density_head.xml", p3=p3, p4=p4)
    density, crowd_map = run(tmp_path / "both" / "density_head.xml", p3=p3, p4=p4,
                             **fine_inputs)
    np.testing.assert_array_equal(density, alone)
    with torch.no_grad():
        expected = crowd(torch.from_numpy(p3), torch.from_numpy(p4),
                         torch.from_numpy(p2) if fine else None)[0, 0].numpy()
    np.testing.assert_allclose(crowd_map, expected, rtol=2e-3, atol=1e-3)
    if fine:
        # The crowd map depends on p2: another p2 gives another map, the density map stays.
        density_again, crowd_again = run(tmp_path / "both" / "density_head.xml", p3=p3, p4=p4,
                                         p2=p2[..., ::-1].copy())
        np.testing.assert_array_equal(density_again, density)
        assert np.abs(crowd_again - crowd_map).max() > 1e-3
    assert abs(float(crowd_map.sum()) - float(density.sum())) > 0.1 * float(density.sum())
    metadata = (tmp_path / "both" / "metadata.yaml").read_text()
    assert "kept from main" in metadata and "--main-from" in metadata
    names = [sorted(o.get_names()) for o in ov.Core().read_model(
        tmp_path / "both" / "density_head.xml").outputs]
    assert names == [["density"], ["crowd"]]


def test_a_main_head_retrained_beside_an_exported_crowd_head_keeps_the_crowd_map(
        tmp_path: Path) -> None:
    main, crowd, new_main = small_head(0, 0.0), small_head(1, 2.0), small_head(2, 1.0, True)
    export(Trained(main, Settings(width=8, scale=1.0), {}), tmp_path / "old",
           Trained(crowd, crowd_settings(width=8), {}))
    export(Trained(new_main, Settings(width=8, scale=1.0, fine=True), {}), tmp_path / "new",
           tmp_path / "old")
    rng = np.random.default_rng(7)
    p3 = rng.random((1, 64, 12, 16), np.float32)
    p4 = rng.random((1, 128, 6, 8), np.float32)
    p2 = rng.random((1, 64, 24, 32), np.float32)
    _, old_crowd = run(tmp_path / "old" / "density_head.xml", p3=p3, p4=p4)
    density, new_crowd = run(tmp_path / "new" / "density_head.xml", p3=p3, p4=p4, p2=p2)
    np.testing.assert_array_equal(new_crowd, old_crowd)
    with torch.no_grad():
        expected = new_main(torch.from_numpy(p3), torch.from_numpy(p4),
                            torch.from_numpy(p2))[0, 0].numpy()
    np.testing.assert_allclose(density, expected, rtol=2e-3, atol=1e-3)
    metadata = (tmp_path / "new" / "metadata.yaml").read_text()
    assert "kept from old" in metadata and "--crowd-from" in metadata and "p2:" in metadata


def test_a_kept_head_brings_only_the_inputs_it_reads(tmp_path: Path) -> None:
    export(Trained(small_head(0, 0.0), Settings(width=8, scale=1.0), {}), tmp_path / "old",
           Trained(small_head(1, 2.0, True), crowd_settings(width=8, fine=True), {}))
    export(tmp_path / "old", tmp_path / "new",
           Trained(small_head(2, 1.0), crowd_settings(width=8), {}))
    names = {m: sorted(p.get_friendly_name() for p in ov.Core().read_model(
        tmp_path / m / "density_head.xml").get_parameters()) for m in ("old", "new")}
    assert names == {"old": ["p2", "p3", "p4"], "new": ["p3", "p4"]}
