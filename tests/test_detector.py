from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdwatch.detector import resolve_model
from crowdwatch.errors import ModelError


@pytest.fixture
def model_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    env_dir, cwd = tmp_path / "env", tmp_path / "cwd"
    (cwd / "models").mkdir(parents=True)
    env_dir.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CROWDWATCH_MODEL", raising=False)
    monkeypatch.setenv("CROWDWATCH_MODEL_DIR", str(env_dir))
    return env_dir, cwd / "models"


def openvino_folder(parent: Path, name: str = "m_openvino_model") -> Path:
    folder = parent / name
    folder.mkdir(parents=True)
    (folder / "m.xml").write_text("<net/>")
    return folder


def test_name_is_found_in_the_env_dir_before_models(model_dirs: tuple[Path, Path]) -> None:
    env_dir, models = model_dirs
    in_models = openvino_folder(models)
    assert resolve_model("m_openvino_model") == in_models
    in_env = openvino_folder(env_dir)
    assert resolve_model("m_openvino_model") == in_env


def test_user_cache_is_searched_last(model_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    cached = openvino_folder(tmp_path / "home" / ".cache" / "crowdwatch" / "models")
    assert resolve_model("m_openvino_model") == cached


def test_crowdwatch_model_overrides_the_config(model_dirs: tuple[Path, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "w.onnx"
    weights.write_bytes(b"onnx")
    monkeypatch.setenv("CROWDWATCH_MODEL", str(weights))
    assert resolve_model("anything_else") == weights


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("yolo11n.pt", "'yolo11n.pt' not found in"),
        ("some/dir/yolo11n.pt", "check the path"),
    ],
)
def test_missing_model_error_says_where_to_get_it(model_dirs: tuple[Path, Path], name: str,
                                                  message: str) -> None:
    with pytest.raises(ModelError) as error:
        resolve_model(name)
    assert message in str(error.value)
    assert "models/README.md" in str(error.value)


def test_folder_without_openvino_xml_is_rejected(model_dirs: tuple[Path, Path]) -> None:
    (model_dirs[1] / "empty_openvino_model").mkdir()
    with pytest.raises(ModelError, match=r"holds no OpenVINO \.xml"):
        resolve_model("empty_openvino_model")


def test_real_model_finds_the_people_in_bus_jpg(model_path: Path) -> None:
    import cv2
    from ultralytics.utils import ASSETS

    from crowdwatch.config import DetectorConfig
    from crowdwatch.detector import PersonDetector

    detector = PersonDetector(DetectorConfig(model=str(model_path)))
    detections = detector.detect(cv2.imread(str(ASSETS / "bus.jpg")))
    # bus.jpg shows four people (and a bus, which must not be counted).
    assert len(detections) == 4
    assert detections.xyxy.dtype == np.float32
    assert np.all(detections.confidence >= 0.3)
