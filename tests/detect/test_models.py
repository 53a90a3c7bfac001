"""The model shipped inside the package: found last, hash-checked, in step with models/manifest.yaml."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from crowdwatch.detect import models
from crowdwatch.detect.models import EMBEDDED_DIR, EMBEDDED_MODELS, resolve_model
from crowdwatch.errors import ModelError

REPO = Path(__file__).resolve().parents[2]
DEFAULT = "yolo11n_int8_openvino_model"


@pytest.fixture
def bare_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No CROWDWATCH_MODEL(_DIR), no ./models, an empty home: only the package's own model."""
    monkeypatch.delenv("CROWDWATCH_MODEL", raising=False)
    monkeypatch.delenv("CROWDWATCH_MODEL_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_default_model_is_found_inside_the_package(bare_machine: Path) -> None:
    found = resolve_model(DEFAULT)
    assert found == EMBEDDED_DIR / DEFAULT
    assert sorted(p.name for p in found.iterdir()) == ["metadata.yaml", "yolo11n.bin",
                                                       "yolo11n.xml"]


def test_a_users_copy_wins_over_the_embedded_one(bare_machine: Path) -> None:
    mine = bare_machine / "models" / DEFAULT
    shutil.copytree(EMBEDDED_DIR / DEFAULT, mine)  # a copy of the shipped name must be intact
    assert resolve_model(DEFAULT) == mine


@pytest.mark.parametrize(
    ("damage", "file_name"),
    [
        ("flip", "yolo11n.bin"),
        ("flip", "yolo11n.xml"),
        ("delete", "metadata.yaml"),
    ],
)
def test_a_damaged_embedded_model_fails_the_hash_check(bare_machine: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       damage: str, file_name: str) -> None:
    package = bare_machine / "package_models"
    shutil.copytree(EMBEDDED_DIR / DEFAULT, package / DEFAULT)
    target = package / DEFAULT / file_name
    if damage == "flip":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    else:
        target.unlink()
    monkeypatch.setattr(models, "EMBEDDED_DIR", package)
    with pytest.raises(ModelError) as error:
        resolve_model(DEFAULT)
    message = str(error.value)
    assert "\n" not in message
    assert file_name in message and "damaged" in message and "reinstall" in message


def test_an_intact_copy_in_the_package_folder_passes(bare_machine: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    package = bare_machine / "package_models"
    shutil.copytree(EMBEDDED_DIR / DEFAULT, package / DEFAULT)
    monkeypatch.setattr(models, "EMBEDDED_DIR", package)
    assert resolve_model(DEFAULT) == package / DEFAULT


def test_embedded_hashes_match_the_manifest_and_the_files() -> None:
    manifest = yaml.safe_load((REPO / "models" / "manifest.yaml").read_text())
    entry = next(m for m in manifest["models"] if m["name"] == DEFAULT)
    want = {Path(path).name: digest for path, digest in entry["files"].items()}
    assert want == EMBEDDED_MODELS[DEFAULT]
    for name, digest in want.items():
        assert hashlib.sha256((EMBEDDED_DIR / DEFAULT / name).read_bytes()).hexdigest() == digest
    size = sum(p.stat().st_size for p in (EMBEDDED_DIR / DEFAULT).iterdir())
    assert size == entry["size_bytes"]


def test_wheel_package_data_carries_the_model() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["crowdwatch"]
    package = REPO / "src" / "crowdwatch"
    shipped = {p for pattern in patterns for p in package.glob(pattern)}
    assert {EMBEDDED_DIR / DEFAULT / name for name in EMBEDDED_MODELS[DEFAULT]} <= shipped
