"""Every model with a known name or a SHA256SUMS file is checked, not only the shipped copy;
the model a run loaded is logged and exported with its checksum."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crowdwatch.detect.integrity import KNOWN_MODELS, MANIFEST_FILE, verify_model
from crowdwatch.detect.models import EMBEDDED_DIR, resolve_model
from crowdwatch.errors import ModelError

REPO = Path(__file__).resolve().parents[2]
DEFAULT = "yolo11n_int8_openvino_model"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("CROWDWATCH_MODEL", raising=False)
    monkeypatch.delenv("CROWDWATCH_MODEL_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _damaged_copy(folder: Path) -> Path:
    """The shipped model with 20 KB of its weights overwritten: loads, and finds nobody."""
    copy = folder / "models" / DEFAULT
    shutil.copytree(EMBEDDED_DIR / DEFAULT, copy)
    weights = copy / "yolo11n.bin"
    data = bytearray(weights.read_bytes())
    data[100_000:120_480] = bytes(20_480)
    weights.write_bytes(bytes(data))
    return copy


def test_a_damaged_copy_of_the_shipped_name_is_refused(workdir: Path) -> None:
    copy = _damaged_copy(workdir)
    with pytest.raises(ModelError) as error:
        resolve_model(DEFAULT)
    message = str(error.value)
    assert f"{copy / 'yolo11n.bin'} has another sha256" in message
    assert "damaged" in message and "\n" not in message


def test_check_fails_on_the_damaged_copy(workdir: Path) -> None:
    _damaged_copy(workdir)
    config = workdir / "site.yaml"
    config.write_text(f"cameras:\n  - id: cam\n    source: {REPO / 'samples' / 'vtest_h264.mp4'}\n")
    env = {k: v for k, v in os.environ.items() if k != "CROWDWATCH_MODEL"}
    env["PYTHONPATH"] = str(REPO / "src")
    result = subprocess.run([sys.executable, "-m", "crowdwatch", "check", str(config)],
                            cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("crowdwatch: error: model ") and "damaged" in result.stderr


def _own_model(folder: Path) -> Path:
    model = folder / "my_openvino_model"
    shutil.copytree(EMBEDDED_DIR / DEFAULT, model)
    return model


def test_a_folder_with_its_own_sums_is_checked(tmp_path: Path) -> None:
    model = _own_model(tmp_path)
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}"
             for p in sorted(model.iterdir())]
    (model / MANIFEST_FILE).write_text("\n".join(lines) + "\n")
    assert verify_model(model).checked == MANIFEST_FILE
    (model / "yolo11n.xml").write_text((model / "yolo11n.xml").read_text() + " ")
    with pytest.raises(ModelError, match=r"yolo11n.xml has another sha256"):
        verify_model(model)
    (model / "yolo11n.xml").unlink()
    with pytest.raises(ModelError, match=r"yolo11n.xml is missing"):
        verify_model(model)


def test_any_other_model_loads_unchecked_with_its_checksum(tmp_path: Path) -> None:
    model = _own_model(tmp_path)
    identity = verify_model(model)
    assert identity.checked == "unchecked" and identity.path == model.resolve()
    assert len(identity.sha256) == 64
    assert identity.sha256 == verify_model(EMBEDDED_DIR / DEFAULT).sha256  # same files


def test_the_known_sums_are_the_manifests() -> None:
    manifest = yaml.safe_load((REPO / "models" / "manifest.yaml").read_text())
    pinned = {m["name"]: m["files"] for m in manifest["models"]
              if all(v is not None for v in m["files"].values())}
    assert set(pinned) == set(KNOWN_MODELS)
    for name, files in pinned.items():
        want = {"" if path == name else path.split("/", 1)[1]: digest
                for path, digest in files.items()}
        assert want == KNOWN_MODELS[name]


def test_build_info_names_the_loaded_model_and_its_checksum(workdir: Path) -> None:
    from prometheus_client import generate_latest

    from crowdwatch.config import DetectorConfig, quick_config
    from crowdwatch.detect import create_detector
    from crowdwatch.health import HealthState
    from crowdwatch.outputs.metrics import MetricsSink

    create_detector(DetectorConfig())
    sink = MetricsSink(quick_config("clip.mp4"), HealthState(["cam0"]))
    text = generate_latest(sink.registry).decode()
    identity = verify_model(EMBEDDED_DIR / DEFAULT)
    assert f'model_path="{identity.path}"' in text
    assert f'model_sha256="{identity.sha256}"' in text
