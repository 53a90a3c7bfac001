"""The exported density IR: a crowd head added beside a head already exported keeps that
head's map exactly, a crowd head that reads p2 gets its own input, and the INT8 export
quantizes the heads it is given and keeps an INT8 head as it is (training/export.py; needs
the [train] extra)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ov = pytest.importorskip("openvino")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from training.density import Settings, crowd_settings  # noqa: E402
from training.export import (  # noqa: E402
    CALIBRATION,
    Trained,
    calibration_files,
    export,
    is_int8,
)
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


def feature_cache(root: Path, per_folder: dict[str, int]) -> Path:
    """A feature cache of random p3/p4 samples (the shapes training/features.py writes)."""
    rng = np.random.default_rng(11)
    for folder, count in per_folder.items():
        (root / folder).mkdir(parents=True)
        for index in range(count):
            np.savez(root / folder / f"{index:06d}.npz",
                     p3=rng.random((64, 12, 16)).astype(np.float16),
                     p4=rng.random((128, 6, 8)).astype(np.float16))
    return root


def test_calibration_is_a_fixed_draw_of_each_training_folder(tmp_path: Path) -> None:
    cache = feature_cache(tmp_path, {folder: wanted + 7 for folder, wanted in
                                     CALIBRATION.items()})
    files = calibration_files(cache)
    assert files == calibration_files(cache)
    assert len(files) == len(set(files)) == sum(CALIBRATION.values())
    for folder, wanted in CALIBRATION.items():
        drawn = sorted(f.name for f in files if f.parent.name == folder)
        # A shuffled draw across the folder, not its first files.
        assert len(drawn) == wanted and drawn != [f"{i:06d}.npz" for i in range(wanted)]


def test_calibration_names_the_folder_that_lacks_samples(tmp_path: Path) -> None:
    short = next(iter(CALIBRATION))
    cache = feature_cache(tmp_path, {folder: 3 if folder == short else wanted
                                     for folder, wanted in CALIBRATION.items()})
    with pytest.raises(SystemExit, match=f"{short} holds 3 samples.*extract the features"):
        calibration_files(cache)


def test_the_int8_export_quantizes_and_counts_as_the_fp32_one(tmp_path: Path) -> None:
    pytest.importorskip("nncf")
    cache = feature_cache(tmp_path / "cache", CALIBRATION)
    main, crowd = small_head(0, 0.0), small_head(1, 2.0)
    settings = Settings(width=8, scale=1.0)
    export(Trained(main, settings, {}), tmp_path / "fp32",
           Trained(crowd, crowd_settings(width=8), {}))
    export(Trained(main, settings, {}), tmp_path / "int8",
           Trained(crowd, crowd_settings(width=8), {}), calibration_files(cache))
    core = ov.Core()
    assert not is_int8(core.read_model(tmp_path / "fp32" / "density_head.xml"))
    assert is_int8(core.read_model(tmp_path / "int8" / "density_head.xml"))
    rng = np.random.default_rng(3)
    for _ in range(3):
        inputs = {"p3": rng.random((1, 64, 12, 16), np.float32),
                  "p4": rng.random((1, 128, 6, 8), np.float32)}
        full = run(tmp_path / "fp32" / "density_head.xml", **inputs)
        quantized = run(tmp_path / "int8" / "density_head.xml", **inputs)
        for exact, rounded in zip(full, quantized, strict=True):
            assert not np.array_equal(exact, rounded)
            assert abs(float(rounded.sum()) - float(exact.sum())) < 0.03 * float(exact.sum())
    metadata = (tmp_path / "int8" / "metadata.yaml").read_text()
    assert metadata.count("post-training quantization") == 2


def test_an_int8_head_kept_beside_a_new_one_stays_as_it_is(tmp_path: Path) -> None:
    pytest.importorskip("nncf")
    cache = calibration_files(feature_cache(tmp_path / "cache", CALIBRATION))
    new_main = small_head(2, 1.0)
    export(Trained(small_head(0, 0.0), Settings(width=8, scale=1.0), {}), tmp_path / "old",
           Trained(small_head(1, 2.0), crowd_settings(width=8), {}), cache)
    export(Trained(new_main, Settings(width=8, scale=1.0), {}), tmp_path / "new",
           tmp_path / "old", cache)
    export(Trained(new_main, Settings(width=8, scale=1.0), {}), tmp_path / "new32")
    rng = np.random.default_rng(9)
    inputs = {"p3": rng.random((1, 64, 12, 16), np.float32),
              "p4": rng.random((1, 128, 6, 8), np.float32)}
    _, old_crowd = run(tmp_path / "old" / "density_head.xml", **inputs)
    density, new_crowd = run(tmp_path / "new" / "density_head.xml", **inputs)
    (exact,) = run(tmp_path / "new32" / "density_head.xml", **inputs)
    np.testing.assert_array_equal(new_crowd, old_crowd)
    # The new head is quantized on its own: close to its fp32 map, not equal to it.
    assert not np.array_equal(density, exact)
    assert abs(float(density.sum()) - float(exact.sum())) < 0.03 * float(exact.sum())
