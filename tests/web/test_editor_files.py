"""Editor saves and the file system: a planted FILE.bak link, read-only and linked configs."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crowdwatch.web.editor import ConfigEditor, EditorError

CONFIG = """\
cameras:
  - id: gate
    source: clip.mp4
    zones:
      - name: door
        polygon: [[0, 0], [100, 0], [100, 100]]
"""
FRAME = np.zeros((200, 200, 3), np.uint8)


def _editor(path: Path) -> ConfigEditor:
    return ConfigEditor(path, lambda _camera: FRAME)


def _rename_zone(editor: ConfigEditor, name: str = "entrance") -> dict[str, Any]:
    view = editor.view()
    view["cameras"][0]["zones"][0]["name"] = name
    return editor.save({"version": view["version"], "cameras": view["cameras"]})


def test_a_planted_backup_link_is_replaced_not_followed(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(CONFIG)
    victim = tmp_path / "elsewhere" / "precious.txt"
    victim.parent.mkdir()
    victim.write_text("keep me\n")
    (tmp_path / "site.yaml.bak").symlink_to(victim)
    _rename_zone(_editor(path))
    assert victim.read_text() == "keep me\n"
    backup = tmp_path / "site.yaml.bak"
    assert not backup.is_symlink() and backup.read_text() == CONFIG
    assert "name: entrance" in path.read_text()


def test_a_read_only_config_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(CONFIG)
    path.chmod(0o444)
    with pytest.raises(EditorError) as error:
        _rename_zone(_editor(path))
    assert error.value.status == 409
    message = error.value.body["errors"][0]["message"]
    assert "read-only (mode 0444)" in message and "chmod u+w" in message
    assert path.read_text() == CONFIG and not (tmp_path / "site.yaml.bak").exists()


def test_an_unwritable_folder_is_a_clear_error(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(CONFIG)

    def read_only_fs(*args: Any, **kwargs: Any) -> Any:
        raise OSError(30, "Read-only file system", str(tmp_path))

    monkeypatch.setattr("tempfile.mkstemp", read_only_fs)
    with pytest.raises(EditorError) as error:
        _rename_zone(_editor(path))
    assert error.value.status == 409
    assert "Read-only file system" in error.value.body["errors"][0]["message"]
    assert path.read_text() == CONFIG


def test_a_linked_config_is_refused_and_its_target_kept(tmp_path: Path) -> None:
    target = tmp_path / "real.yaml"
    target.write_text(CONFIG)
    link = tmp_path / "site.yaml"
    link.symlink_to(target)
    with pytest.raises(EditorError) as error:
        _rename_zone(_editor(link))
    assert error.value.status == 409
    message = error.value.body["errors"][0]["message"]
    assert "symbolic link" in message and f"--config {os.path.realpath(target)}" in message
    assert target.read_text() == CONFIG and link.is_symlink()


def test_the_saved_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(CONFIG)
    path.chmod(0o640)
    _rename_zone(_editor(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "site.yaml.bak").stat().st_mode) == 0o640
