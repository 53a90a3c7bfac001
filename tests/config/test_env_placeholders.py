"""${VAR} reaches camera sources only; names with '$', '{' or '}' are refused everywhere with
one message (check, run, the editor), so no environment value can end up in a label."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crowdwatch.config import load_config
from crowdwatch.config.base import PLACEHOLDER_MESSAGE
from crowdwatch.errors import ConfigError
from crowdwatch.web.editor import ConfigEditor, EditorError

SECRET = "hunter2-from-the-environment"
CONFIG = """\
cameras:
  - id: gate
    source: {source}
    zones:
      - name: "{name}"
        polygon: [[0, 0], [100, 0], [100, 100]]
recording:
  directory: "{directory}"
"""


def _config(tmp_path: Path, name: str = "door", source: str = "clip.mp4",
            directory: str = "recordings") -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(CONFIG.format(name=name, source=source, directory=directory))
    return path


@pytest.mark.parametrize("name", ["${CW_SECRET}", "$CW_SECRET", "door {CW_SECRET}", "a}b"])
def test_a_name_that_could_spell_a_variable_is_refused(tmp_path: Path, name: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_SECRET", SECRET)
    with pytest.raises(ConfigError) as error:
        load_config(_config(tmp_path, name=name))
    message = str(error.value)
    assert "cameras[0].zones[0].name: must not contain" in message
    assert "expanded only in camera sources" in message
    assert SECRET not in message


def test_variables_expand_in_sources_and_nowhere_else(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_SECRET", SECRET)
    config = load_config(_config(tmp_path, source="rtsp://u:${CW_SECRET}@127.0.0.1/s",
                                 directory="rec-${CW_SECRET}"))
    assert config.cameras[0].source == f"rtsp://u:{SECRET}@127.0.0.1/s"
    assert config.recording.directory == "rec-${CW_SECRET}"  # literal: not an env value


def test_the_editor_refuses_the_name_with_the_same_message(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setenv("CW_SECRET", SECRET)
    path = _config(tmp_path)
    before = path.read_text()
    editor = ConfigEditor(path, lambda _camera: np.zeros((200, 200, 3), np.uint8))
    view = editor.view()
    view["cameras"][0]["zones"][0]["name"] = "${CW_SECRET}"
    with pytest.raises(EditorError) as error:
        editor.save({"version": view["version"], "cameras": view["cameras"]})
    assert error.value.status == 422
    assert PLACEHOLDER_MESSAGE.format(char="$") in str(error.value.body)
    assert path.read_text() == before


def test_check_and_run_print_the_same_one_line_error(tmp_path: Path) -> None:
    path = _config(tmp_path, name="${CW_SECRET}")
    env = {**os.environ, "CW_SECRET": SECRET}
    lines = []
    for command in (["check", str(path)], ["run", "-c", str(path), "--no-metrics"]):
        result = subprocess.run([sys.executable, "-m", "crowdwatch", *command], env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr and SECRET not in result.stderr
        lines.append(result.stderr.strip())
    assert lines[0] == lines[1]
    assert lines[0].startswith("crowdwatch: error: ")
    assert PLACEHOLDER_MESSAGE.format(char="$") in lines[0]
