"""The exported density IR: a crowd head added beside a head already exported keeps that
head's map exactly (training/export.py; needs the [train] extra)."""

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


def small_head(seed: int, bias: float) -> DensityHead:
    torch.manual_seed(seed)
    head = DensityHead(width=8, scale=1.0)
    with torch.no_grad():
        head.out.bias.fill_(bias)
    return head.eval()


def run(xml: Path, p3: np.ndarray, p4: np.ndarray) -> list[np.ndarray]:
    compiled = ov.Core().compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled({"p3": p3, "p4": p4})
    return [result[output][0, 0] for output in compiled.outputs]


def test_a_crowd_head_beside_an_exported_head_keeps_its_map(tmp_path: Path) -> None:
    settings = Settings(width=8, scale=1.0)
    main, crowd = small_head(0, 0.0), small_head(1, 2.0)
    export(Trained(main, settings, {}), tmp_path / "main")
    export(tmp_path / "main", tmp_path / "both", Trained(crowd, crowd_settings(width=8), {}))
    rng = np.random.default_rng(5)
    p3 = rng.random((1, 64, 12, 16), np.float32)
    p4 = rng.random((1, 128, 6, 8), np.float32)
    (alone,) = run(tmp_path / "main" / "density_head.xml", p3, p4)
    density, crowd_map = run(tmp_path / "both" / "density_head.xml", p3, p4)
    np.testing.assert_array_equal(density, alone)
    with torch.no_grad():
        expected = crowd(torch.from_numpy(p3), torch.from_numpy(p4))[0, 0].numpy()
    np.testing.assert_allclose(crowd_map, expected, rtol=2e-3, atol=1e-3)
    assert abs(float(crowd_map.sum()) - float(density.sum())) > 0.1 * float(density.sum())
    metadata = (tmp_path / "both" / "metadata.yaml").read_text()
    assert "kept from main" in metadata and "--main-from" in metadata
    names = [sorted(o.get_names()) for o in ov.Core().read_model(
        tmp_path / "both" / "density_head.xml").outputs]
    assert names == [["density"], ["crowd"]]
