"""ConfigEditor: shapes in pixels, per-shape errors, comments kept, atomic save with backup."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from crowdwatch.config import parse_config
from crowdwatch.web.editor import ConfigEditor, EditorError

CONFIG = """\
# my site config: keep this comment
cameras:
  - id: entrance  # the front door
    source: rtsp://user:pw@192.0.2.1/stream
    zones:
      # the queue in front of the doors
      - name: doors
        polygon: [[0.25, 0.5], [0.75, 0.5], [0.75, 1.0], [0.25, 1.0]]
        normalized: true
        capacity: 20  # fire code
        anchor: center
      - name: hall
        polygon: [[10, 10], [100, 10], [100, 100]]
metrics:
  port: 9200  # not the default
"""
FRAME = np.zeros((400, 800, 3), np.uint8)


@pytest.fixture
def editor(tmp_path: Path) -> ConfigEditor:
    path = tmp_path / "site.yaml"
    path.write_text(CONFIG)
    return ConfigEditor(path, lambda camera: FRAME if camera == "entrance" else None)


def _payload(editor: ConfigEditor) -> dict[str, Any]:
    view = editor.view()
    return {"version": view["version"], "cameras": view["cameras"]}


def test_view_is_in_pixels_without_the_source(editor: ConfigEditor) -> None:
    view = editor.view()
    camera = view["cameras"][0]
    assert (camera["width"], camera["height"]) == (800, 400)
    assert camera["zones"][0]["points"] == [[200, 200], [600, 200], [600, 400], [200, 400]]
    assert camera["zones"][0]["capacity"] == 20
    assert "source" not in camera and "rtsp" not in str(view)


def test_unchanged_save_keeps_the_file_text(editor: ConfigEditor) -> None:
    editor.save(_payload(editor))
    assert editor.path.read_text() == CONFIG
    assert editor.backup_path.read_text() == CONFIG


def test_save_new_zone_and_line_keeps_comments_and_other_keys(editor: ConfigEditor) -> None:
    payload = _payload(editor)
    camera = payload["cameras"][0]
    camera["zones"][0]["points"][0] = [100, 200]  # move a vertex of the normalised zone
    camera["zones"][1]["capacity"] = 5
    camera["zones"].append({"key": None, "name": "bar", "points": [[300, 50], [400, 50],
                                                                      [400, 150]],
                            "capacity": 3, "area_m2": 12.5})
    camera["lines"] = [{"key": None, "name": "door_line", "points": [[10, 300], [700, 300]]}]
    result = editor.save(payload)
    assert result["ok"] and result["backup"] == str(editor.backup_path)
    text = editor.path.read_text()
    for comment in ("# my site config", "# the front door", "# the queue in front",
                    "# fire code", "# not the default"):
        assert comment in text
    data = yaml.safe_load(text)
    zones = data["cameras"][0]["zones"]
    assert zones[0]["polygon"][0] == [0.125, 0.5] and zones[0]["normalized"] is True
    assert zones[0]["anchor"] == "center"  # a key the editor does not show survives
    assert zones[1]["capacity"] == 5
    # New zones follow the camera's convention: not all existing zones are normalised.
    assert zones[2] == {"name": "bar", "polygon": [[300, 50], [400, 50], [400, 150]],
                        "capacity": 3, "area_m2": 12.5}
    assert data["cameras"][0]["lines"] == [{"name": "door_line",
                                            "points": [[10, 300], [700, 300]]}]
    assert data["metrics"]["port"] == 9200
    data["cameras"][0].pop("lines")  # until the lead adds LineConfig
    parse_config(data)
    assert editor.backup_path.read_text() == CONFIG


def test_delete_zone_keeps_the_rest(editor: ConfigEditor) -> None:
    payload = _payload(editor)
    del payload["cameras"][0]["zones"][0]
    editor.save(payload)
    data = yaml.safe_load(editor.path.read_text())
    assert [z["name"] for z in data["cameras"][0]["zones"]] == ["hall"]
    assert "# my site config" in editor.path.read_text()


IGNORE_CONFIG = """\
cameras:
  - id: shop
    source: shop.mp4
    zones:
      - name: floor
        polygon: [[0, 0], [800, 0], [800, 400], [0, 400]]
    ignore:
      # the mannequins in the window
      - polygon: [[10.0, 20], [110, 20], [110, 220.50]]  # keep my numbers
  - id: street
    source: street.mp4
    zones:
      - name: walk
        polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]
        normalized: true
"""
MANNEQUINS = "      - polygon: [[10.0, 20], [110, 20], [110, 220.50]]  # keep my numbers\n"


def _set_ignore(camera: int, regions: list[dict[str, Any]]) -> Any:
    return lambda cameras: cameras[camera].__setitem__("ignore", regions)


def _move_mannequins(point: int, to: list[float]) -> Any:
    return lambda cameras: cameras[0]["ignore"][0]["points"].__setitem__(point, to)


@pytest.mark.parametrize(("change", "shop", "street", "kept"), [
    # A new region in pixels beside the untouched one, whose text stays as the user wrote it.
    (lambda cameras: cameras[0]["ignore"].append(
        {"key": None, "points": [[300, 50], [400, 50], [400, 150]]}),
     [{"polygon": [[10, 20], [110, 20], [110, 220.5]]},
      {"polygon": [[300, 50], [400, 50], [400, 150]]}], None, MANNEQUINS),
    # A camera whose zones are normalised gets a normalised region: 200/800, 100/400, ...
    (_set_ignore(1, [{"key": None, "points": [[200, 100], [400, 100], [400, 300]]}]),
     [{"polygon": [[10, 20], [110, 20], [110, 220.5]]}],
     [{"polygon": [[0.25, 0.25], [0.5, 0.25], [0.5, 0.75]], "normalized": True}], MANNEQUINS),
    # Moved by less than 0.01 px: unchanged, the whole file is the same text.
    (_move_mannequins(0, [10.004, 20]), [{"polygon": [[10, 20], [110, 20], [110, 220.5]]}],
     None, IGNORE_CONFIG),
    # A moved vertex rewrites the polygon in pixels; the comment above it stays.
    (_move_mannequins(2, [120, 230]), [{"polygon": [[10, 20], [110, 20], [120, 230]]}], None,
     "      # the mannequins in the window\n      - polygon: [[10, 20], [110, 20], [120, 230]]"),
    # Deleting the last region removes the key.
    (_set_ignore(0, []), None, None, "      - name: floor\n        polygon: [[0, 0], [800, 0], "
     "[800, 400], [0, 400]]\n  - id: street\n"),
    # A client that does not send `ignore` leaves the regions alone.
    (lambda cameras: cameras[0].pop("ignore"), [{"polygon": [[10, 20], [110, 20], [110, 220.5]]}],
     None, IGNORE_CONFIG),
])
def test_save_ignore_regions(tmp_path: Path, change: Any, shop: list[dict[str, Any]] | None,
                             street: list[dict[str, Any]] | None, kept: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(IGNORE_CONFIG)
    editor = ConfigEditor(path, lambda camera: FRAME)
    payload = _payload(editor)
    assert [c["ignore"] for c in payload["cameras"]] == [
        [{"key": 0, "points": [[10, 20], [110, 20], [110, 220.5]]}], []]
    change(payload["cameras"])
    editor.save(payload)
    text = path.read_text()
    assert kept in text
    cameras = yaml.safe_load(text)["cameras"]
    assert [cameras[0].get("ignore"), cameras[1].get("ignore")] == [shop, street]
    assert ("ignore" in cameras[0], "ignore" in cameras[1]) == (shop is not None,
                                                               street is not None)
    parse_config({"cameras": cameras})


def test_view_converts_normalized_ignore_regions_to_pixels(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(IGNORE_CONFIG.replace(MANNEQUINS, "      - polygon: [[0.5, 0.25], [1, 0.25], "
                                          "[1, 1]]\n        normalized: true\n"))
    camera = ConfigEditor(path, lambda camera: FRAME).view()["cameras"][0]
    assert camera["ignore"] == [{"key": 0, "points": [[400, 100], [800, 100], [800, 400]]}]


SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100]]


@pytest.mark.parametrize(("change", "kind", "indexes", "message"), [
    (lambda c: c["zones"][1].__setitem__("points", [[0, 0], [100, 100], [100, 0], [0, 100]]),
     "zone", (1,), "not a simple polygon"),
    (lambda c: c["zones"][1].__setitem__("name", "doors"), "zone", (0, 1), "used twice"),
    (lambda c: c["zones"][1].__setitem__("name", 'bad "name"'), "zone", (1,), "name"),
    (lambda c: c["zones"][1].__setitem__("capacity", 0), "zone", (1,), "capacity"),
    (lambda c: c.__setitem__("lines", [{"name": "l", "points": [[1, 1], [1, 1]]}]), "line", (0,),
     "must differ"),
    (lambda c: c.__setitem__("lines", [{"name": "l", "points": [[1, 1]]}]), "line", (0,),
     "exactly 2"),
    (lambda c: c.__setitem__("ignore", [{"points": SQUARE}, {"points": [[0, 0], [100, 100],
                                                                         [100, 0], [0, 100]]}]),
     "ignore", (1,), "not a simple polygon"),
    (lambda c: c.__setitem__("ignore", [{"points": [[0, 0], [100, 100]]}]), "ignore", (0,),
     "at least 3 points"),
])
def test_invalid_shapes_are_reported_per_shape_and_nothing_is_written(
        editor: ConfigEditor, change: Any, kind: str, indexes: tuple[int, ...],
        message: str) -> None:
    payload = _payload(editor)
    change(payload["cameras"][0])
    with pytest.raises(EditorError) as caught:
        editor.save(payload)
    assert caught.value.status == 422
    errors = caught.value.body["errors"]
    assert [(e["kind"], e["camera"], e["index"]) for e in errors] == [
        (kind, "entrance", i) for i in indexes], errors
    assert all(message in e["message"] for e in errors)
    assert editor.path.read_text() == CONFIG
    assert not editor.backup_path.exists()


def test_file_changed_since_loading_is_a_conflict(editor: ConfigEditor) -> None:
    payload = _payload(editor)
    editor.path.write_text(CONFIG + "# edited by hand\n")
    with pytest.raises(EditorError) as caught:
        editor.save(payload)
    assert caught.value.status == 409


def test_write_is_atomic(editor: ConfigEditor, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = _payload(editor)
    payload["cameras"][0]["zones"][1]["capacity"] = 7

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(EditorError) as error:  # a message in the editor, not a 500
        editor.save(payload)
    assert error.value.status == 409 and "disk full" in str(error.value.body)
    assert editor.path.read_text() == CONFIG
    assert [p.name for p in editor.path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_new_file_from_default(tmp_path: Path) -> None:
    path = tmp_path / "new.yaml"
    editor = ConfigEditor(path, lambda c: FRAME,
                          default={"cameras": [{"id": "cam0", "source": "x.mp4", "zones": []}]})
    payload = _payload(editor)
    payload["cameras"][0]["zones"] = [{"name": "a", "points": [[0, 0], [10, 0], [10, 10]]}]
    editor.save(payload)
    assert parse_config(yaml.safe_load(path.read_text())).cameras[0].zones[0].name == "a"
    assert not editor.backup_path.exists()


def test_editor_for_a_source_grabs_one_frame(tmp_path: Path) -> None:
    from crowdwatch.web.ui import editor_for_source

    clip = Path(__file__).resolve().parents[2] / "samples" / "vtest_h264.mp4"
    editor = editor_for_source(str(clip), tmp_path / "new.yaml")
    camera = editor.view()["cameras"][0]
    assert (camera["id"], camera["width"], camera["height"]) == ("cam0", 768, 576)
