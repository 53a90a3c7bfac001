"""Zone, line and ignore-region editor backend: shapes in pixels to and from the YAML config.

The file is edited with ruamel.yaml's round-trip mode, so the user's comments, key order
and other keys survive. Zones and ignore regions are validated by the same pydantic
ZoneConfig and IgnoreRegion, and the whole file by parse_config (what `crowdwatch check`
runs); errors are reported per shape. A save writes a temporary file beside the config and
renames it over (atomic), after writing the previous content to FILE.bak the same way (a link
at FILE.bak is replaced, not followed). A config that is a symbolic link or read-only is not
written (409 with the fix).
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from crowdwatch.config import ZoneConfig, format_validation_error, parse_config
from crowdwatch.config.base import MAX_COORDINATE, MAX_POINTS
from crowdwatch.config.camera import IgnoreRegion
from crowdwatch.errors import ConfigError
from crowdwatch.types import Image
from crowdwatch.web.configfile import (
    ConfigFileError,
    delete_keeping_next_comment,
    write_with_backup,
)

FrameFor = Callable[[str], Image | None]
_NAME_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-")
# Editable zone keys; any other key of a zone (anchor, levels, ...) is kept as it is.
_ZONE_KEYS = ("name", "capacity", "area_m2")
# A point moved by less than this many pixels is unchanged: keeps normalised values exact.
_SAME_PX = 0.01
# Each list of shapes in a camera (the same key in the file and the request), and the
# kind its errors carry.
_KINDS = {"zones": "zone", "lines": "line", "ignore": "ignore"}
# Lists removed from the file when they become empty (zones stay as `zones: []`).
_DROP_WHEN_EMPTY = ("lines", "ignore")


class EditorError(Exception):
    """A request the editor cannot apply; status is the HTTP status to answer."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 120
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _flow(points: list[list[float | int]]) -> CommentedSeq:
    outer = CommentedSeq()
    for x, y in points:
        pair = CommentedSeq([x, y])
        pair.fa.set_flow_style()
        outer.append(pair)
    outer.fa.set_flow_style()
    return outer


def _to_pixels(points: Any, normalized: bool, size: tuple[int, int] | None) -> list[list[float]]:
    out = [[float(x), float(y)] for x, y in points]
    if normalized:
        if size is None:
            raise ValueError("normalized coordinates need the camera's frame size")
        out = [[x * size[0], y * size[1]] for x, y in out]
    return out


def _pixels_of(entry: Any, key: str, size: tuple[int, int] | None) -> list[list[float]] | None:
    """The points under `key` of a shape of the file in pixels; None when unreadable."""
    try:
        return _to_pixels(entry.get(key) or [], bool(entry.get("normalized")), size)
    except (TypeError, ValueError, AttributeError):
        return None


def _check_line(line: dict[str, Any], size: tuple[int, int] | None) -> list[list[float]]:
    """A line's points in pixels, or ValueError naming the field; unlike the config, the editor
    also knows the frame, so the points must lie inside it."""
    name = line.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or not set(name) <= _NAME_CHARS:
        raise ValueError("name: 1-64 letters, digits, _ . : -")
    points = line.get("points")
    if not isinstance(points, list) or len(points) != 2:
        raise ValueError("points: a line needs exactly 2 points")
    pts = []
    for point in points:
        if (not isinstance(point, list | tuple) or len(point) != 2
                or not all(map(_coordinate, point))):
            raise ValueError("points: each point is [x, y] with finite numbers")
        pts.append([float(point[0]), float(point[1])])
    if pts[0] == pts[1]:
        raise ValueError("points: the two points must differ")
    if size is not None and any(not (0 <= x <= size[0] and 0 <= y <= size[1]) for x, y in pts):
        raise ValueError(f"points: must lie inside the {size[0]}x{size[1]} frame")
    return pts


class ConfigEditor:
    """Serves the config's shapes in pixels and saves edited shapes back into the file."""

    def __init__(self, path: str | Path, frame_for: FrameFor,
                 default: dict[str, Any] | None = None) -> None:
        """`default` is the document used when the file does not exist yet."""
        self.path = Path(path)
        self.frame_for = frame_for
        self._default = default
        self._sizes: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    @property
    def backup_path(self) -> Path:
        return self.path.with_name(self.path.name + ".bak")

    def _read(self) -> tuple[CommentedMap, str]:
        if not self.path.exists() and self._default is not None:
            text = ""
            buffer = io.StringIO()
            _yaml().dump(self._default, buffer)
            doc = _yaml().load(buffer.getvalue())
        else:
            text = self.path.read_text(encoding="utf-8")
            doc = _yaml().load(text)
        if not isinstance(doc, CommentedMap) or not isinstance(doc.get("cameras"), list):
            raise EditorError(422, {"errors": [{"kind": "config", "message":
                                                "the config has no 'cameras' list"}]})
        return doc, hashlib.sha256(text.encode()).hexdigest()

    def size(self, camera: str) -> tuple[int, int] | None:
        """(width, height) of the camera's frames, from the latest frame seen."""
        image = self.frame_for(camera)
        if image is not None:
            self._sizes[camera] = (int(image.shape[1]), int(image.shape[0]))
        return self._sizes.get(camera)

    def view(self) -> dict[str, Any]:
        """GET /api/config: every camera's zones, lines and ignore regions in pixels (never
        its source); an unreadable shape has no points, and the user redraws it."""
        doc, version = self._read()
        cameras = []
        for cam in doc["cameras"]:
            camera_id = str(cam.get("id"))
            size = self.size(camera_id)
            zones = [{"key": key, "name": zone.get("name"),
                      "points": _pixels_of(zone, "polygon", size) or [],
                      "capacity": zone.get("capacity"), "area_m2": zone.get("area_m2")}
                     for key, zone in enumerate(cam.get("zones") or [])]
            lines = [{"key": key, "name": line.get("name"),
                      "points": _pixels_of(line, "points", size) or []}
                     for key, line in enumerate(cam.get("lines") or [])]
            ignore = [{"key": key, "points": _pixels_of(region, "polygon", size) or []}
                      for key, region in enumerate(cam.get("ignore") or [])]
            cameras.append({"id": camera_id, "width": size[0] if size else None,
                            "height": size[1] if size else None, "zones": zones,
                            "lines": lines, "ignore": ignore})
        return {"version": version, "cameras": cameras}

    def save(self, payload: Any) -> dict[str, Any]:
        """POST /api/config: validate the edited shapes and write them; EditorError if not."""
        if not isinstance(payload, dict) or not isinstance(payload.get("cameras"), list):
            raise EditorError(400, {"errors": [{"kind": "request",
                                                "message": "expected {cameras: [...]}"}]})
        with self._lock:
            doc, version = self._read()
            # The version is required: without it two editors overwrite each other silently.
            if payload.get("version") != version:
                raise EditorError(409, {"errors": [{"kind": "config", "message":
                                  "the file changed since it was loaded (or the request has "
                                  "no version); reload the page"}]})
            errors: list[dict[str, Any]] = []
            by_id = {str(c.get("id")): c for c in doc["cameras"]}
            for edited in payload["cameras"]:
                camera_id = str(edited.get("id")) if isinstance(edited, dict) else ""
                if camera_id not in by_id:
                    errors.append({"camera": camera_id, "kind": "config",
                                   "message": f"no camera {camera_id!r} in the config"})
                    continue
                self._apply(by_id[camera_id], edited, errors)
            if not errors:
                errors.extend(_check_whole(doc, str(self.path)))
            if errors:
                raise EditorError(422, {"errors": errors})
            try:
                write_with_backup(self.path, _dump(doc), self.backup_path)
            except ConfigFileError as error:
                raise EditorError(409, {"errors": [{"kind": "config",
                                                    "message": str(error)}]}) from None
            return {"ok": True, "path": str(self.path), "backup": str(self.backup_path)
                    if self.backup_path.exists() else None}

    def _apply(self, cam: CommentedMap, edited: dict[str, Any],
               errors: list[dict[str, Any]]) -> None:
        camera_id = str(cam.get("id"))
        size = self.size(camera_id)
        for kind, key_name in _KINDS.items():
            if kind not in edited:
                continue  # not sent: the file's shapes of this kind stay as they are
            items = edited[kind] or []
            if not isinstance(items, list):
                errors.append({"camera": camera_id, "kind": key_name, "index": None,
                               "message": f"{kind} must be a list"})
                continue
            existing = cam.get(kind)
            if not isinstance(existing, list):
                existing = CommentedSeq()
            names = [i.get("name") for i in items if isinstance(i, dict)]
            # New shapes follow the camera's existing ones; new ignore regions, if there are
            # none yet, its zones.
            like = existing or (cam.get("zones") or [] if kind == "ignore" else [])
            new_items: list[CommentedMap] = []
            for index, item in enumerate(items):
                old = None
                key = item.get("key") if isinstance(item, dict) else None
                if isinstance(key, int) and 0 <= key < len(existing):
                    old = existing[key]
                try:
                    if not isinstance(item, dict):
                        raise ValueError("must be an object")
                    if kind != "ignore" and names.count(item.get("name")) > 1:
                        raise ValueError(f"name: {item.get('name')!r} is used twice")
                    new_items.append(_BUILDERS[kind](item, old, size, like))
                except ValueError as error:
                    errors.append({"camera": camera_id, "kind": key_name, "index": index,
                                   "message": str(error)})
            if errors:
                continue
            _replace_items(cam, kind, existing, new_items)


def _points_out(points_px: list[list[float]], old_points_px: list[list[float]] | None,
                old_value: Any, normalized: bool,
                size: tuple[int, int] | None) -> Any:
    if old_points_px is not None and len(old_points_px) == len(points_px) and all(
            abs(a - b) <= _SAME_PX for p, q in zip(points_px, old_points_px, strict=True)
            for a, b in zip(p, q, strict=True)):
        return old_value  # unchanged: keep the user's exact numbers and formatting
    if normalized:
        if size is None:
            raise ValueError("normalized shape edited without a frame size")
        values = [[round(min(max(x / size[0], 0.0), 1.0), 4),
                   round(min(max(y / size[1], 0.0), 1.0), 4)] for x, y in points_px]
    else:
        values = [[_number(round(x, 1)), _number(round(y, 1))] for x, y in points_px]
    return _flow(values)


def _points_in(item: dict[str, Any]) -> list[list[float]]:
    points = item.get("points")
    if not isinstance(points, list):
        raise ValueError("points: must be a list of [x, y]")
    if len(points) > MAX_POINTS:  # before any geometry: a huge polygon holds the lock
        raise ValueError(f"points: at most {MAX_POINTS} per shape, got {len(points)}")
    out = []
    for point in points:
        if not isinstance(point, list) or len(point) != 2 or not all(map(_coordinate, point)):
            raise ValueError(f"points: each point is [x, y] with finite numbers of at most "
                             f"{MAX_COORDINATE:g}")
        out.append([float(point[0]), float(point[1])])
    return out


def _coordinate(value: Any) -> bool:
    # abs() first: a 400-digit integer is a valid int that float() cannot hold.
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and abs(value) <= MAX_COORDINATE and math.isfinite(value))


def _default_normalized(existing: list[Any]) -> bool:
    # New shapes follow the camera's existing zones; pixels when there are none.
    return bool(existing) and all(bool(z.get("normalized")) for z in existing)


def _polygon_entry(item: dict[str, Any], old: CommentedMap | None,
                   size: tuple[int, int] | None, existing: list[Any],
                   model: type[ZoneConfig | IgnoreRegion],
                   fields: dict[str, Any]) -> CommentedMap:
    """A zone's or ignore region's map: its polygon and `fields` (None removes a key),
    checked by `model` together with the keys the editor does not show."""
    points_px = _points_in(item)
    entry = old if old is not None else CommentedMap()
    normalized = bool(entry.get("normalized")) if old is not None else _default_normalized(
        existing)
    old_px = _pixels_of(old, "polygon", size) if old is not None else None
    polygon = _points_out(points_px, old_px, old.get("polygon") if old else None, normalized,
                          size)
    # A new map's keys in the order people write them: name, polygon, normalized, the rest.
    values: dict[str, Any] = {k: v for k, v in fields.items() if k == "name"}
    values["polygon"] = polygon
    if normalized:
        values["normalized"] = True
    values |= fields
    candidate = {**{k: v for k, v in entry.items() if k not in values}, **values}
    candidate = {k: v for k, v in candidate.items() if v is not None}
    try:
        model.model_validate(_plain(candidate))
    except ValidationError as error:
        raise ValueError(format_validation_error(error)) from None
    # Edit the user's own map in place: its comments and other keys stay where they were.
    for key, value in values.items():
        if value is None:
            entry.pop(key, None)
        elif entry.get(key) != value or key not in entry:
            entry[key] = value
    return entry


def _zone_entry(item: dict[str, Any], old: CommentedMap | None, size: tuple[int, int] | None,
                existing: list[Any]) -> CommentedMap:
    fields = {"name": item.get("name")}
    for key in ("capacity", "area_m2"):
        value = item.get(key)
        fields[key] = None if value in (None, "") else value
    return _polygon_entry(item, old, size, existing, ZoneConfig, fields)


def _ignore_entry(item: dict[str, Any], old: CommentedMap | None,
                  size: tuple[int, int] | None, existing: list[Any]) -> CommentedMap:
    return _polygon_entry(item, old, size, existing, IgnoreRegion, {})


def _line_entry(item: dict[str, Any], old: CommentedMap | None, size: tuple[int, int] | None,
                existing: list[Any]) -> CommentedMap:
    points_px = _check_line({"name": item.get("name"), "points": _points_in(item)}, size)
    entry = old if old is not None else CommentedMap()
    normalized = bool(entry.get("normalized")) if old is not None else False
    old_px = _pixels_of(old, "points", size) if old is not None else None
    entry["name"] = item.get("name")
    entry["points"] = _points_out(points_px, old_px, old.get("points") if old else None,
                                  normalized, size)
    return entry


def _replace_items(cam: CommentedMap, kind: str, existing: Any,
                   new_items: list[CommentedMap]) -> None:
    if not new_items:
        if kind in _DROP_WHEN_EMPTY:
            cam.pop(kind, None)  # no key the config does not need
        else:
            cam[kind] = CommentedSeq()
        return
    if isinstance(existing, CommentedSeq) and cam.get(kind) is existing:
        kept = [i for i in new_items if any(i is e for e in existing)]
        in_order = [e for e in existing if any(e is i for i in kept)]
        if kept == in_order and new_items[:len(kept)] == kept:
            # Same order: delete and append in place so comments on kept items stay put.
            for index in reversed(range(len(existing))):
                if not any(existing[index] is i for i in kept):
                    delete_keeping_next_comment(existing, index)
            for item in new_items[len(kept):]:
                existing.append(item)
            return
    seq = CommentedSeq(new_items)
    cam[kind] = seq


_BUILDERS = {"zones": _zone_entry, "lines": _line_entry, "ignore": _ignore_entry}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _check_whole(doc: CommentedMap, origin: str) -> list[dict[str, Any]]:
    try:
        parse_config(_plain(doc), origin)
    except ConfigError as error:
        return [{"kind": "config", "message": str(error)}]
    return []


def _dump(doc: CommentedMap) -> str:
    buffer = io.StringIO()
    _yaml().dump(doc, buffer)
    return buffer.getvalue()

