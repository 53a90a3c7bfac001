"""The ultralytics backend is an extra: without it (or onnxruntime), one line says what to install."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from crowdwatch.config import DetectorConfig
from crowdwatch.errors import ModelError


@pytest.mark.parametrize("missing", ["ultralytics", "torch"])
def test_missing_extra_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 missing: str) -> None:
    from crowdwatch.detect.ultralytics import UltralyticsBackend

    monkeypatch.setitem(sys.modules, missing, None)  # makes `import <missing>` raise ImportError
    weights = tmp_path / "yolo11n.pt"
    weights.write_bytes(b"not loaded")
    with pytest.raises(ModelError) as error:
        UltralyticsBackend(DetectorConfig(model=str(weights)), weights)
    message = str(error.value)
    assert 'pip install "crowdwatch[ultralytics]"' in message
    assert "\n" not in message


def test_onnx_without_onnxruntime_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crowdwatch.detect.ultralytics import UltralyticsBackend

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real_find_spec(name, *a))
    weights = tmp_path / "yolo11n.onnx"
    weights.write_bytes(b"not loaded")
    with pytest.raises(ModelError, match=r"needs onnxruntime: run pip install onnxruntime"):
        UltralyticsBackend(DetectorConfig(model=str(weights)), weights)
