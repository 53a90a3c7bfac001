"""Shared pieces of the per-domain config models: strict base, point and name checks."""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import shapely
from pydantic import BaseModel, ConfigDict

Anchor = Literal["bottom_center", "center"]
Point = tuple[float, float]
# Label values (camera ids, zone and line names) in metrics.
NAME_PATTERN = r"^[A-Za-z0-9_.:-]+$"
# '$', '{' and '}' in a name could spell ${VAR}: a name must never carry an environment value
# (a password) into metrics labels, events or the page. One message for check, run and editor.
PLACEHOLDER_CHARS = frozenset("${}")
PLACEHOLDER_MESSAGE = ("must not contain {char!r} ('$', '{{' and '}}' are not allowed in names: "
                       "${{VAR}} is expanded only in camera sources)")


def check_label(name: str) -> str:
    """A zone or line name: any printable text (Unicode too), metrics label values are UTF-8;
    no quotes, backslashes or control characters, which break queries and log lines."""
    if name != name.strip():
        raise ValueError("must not start or end with a space")
    placeholder = [ch for ch in name if ch in PLACEHOLDER_CHARS]
    if placeholder:
        raise ValueError(PLACEHOLDER_MESSAGE.format(char=placeholder[0]))
    bad = [ch for ch in name if not ch.isprintable() or ch in "\"'\\"]
    if bad:
        raise ValueError(f"must not contain {bad[0]!r} (quotes, backslashes and control "
                         "characters are not allowed)")
    return name


def literal_names(literal: Any) -> tuple[str, ...]:
    """The names a `Literal[...]` type allows (the stage's registry must hold the same)."""
    return tuple(get_args(literal))


def check_name(kind: str, literal: Any, value: object, *, last: tuple[str, ...] = ()) -> object:
    """A before-validator for a name a stage registers: an unknown one is a ValueError that
    lists the valid names the way Registry does (`last`: words listed after them, e.g. auto)."""
    names = [n for n in literal_names(literal) if n not in last]
    if isinstance(value, str) and value not in names and value not in last:
        raise ValueError(f"unknown {kind} {value!r}; valid: {', '.join([*sorted(names), *last])}")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Bounds of every shape: a polygon of 100k points made each save (and each frame) slow.
MAX_POINTS = 1000
MAX_COORDINATE = 1e6


def check_points(points: list[Point], minimum: int) -> list[Point]:
    if len(points) < minimum:
        raise ValueError(f"needs at least {minimum} points, got {len(points)}")
    if len(points) > MAX_POINTS:
        raise ValueError(f"has {len(points)} points; at most {MAX_POINTS}")
    for x, y in points:
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"point ({x}, {y}) is not a finite number")
        if abs(x) > MAX_COORDINATE or abs(y) > MAX_COORDINATE:
            raise ValueError(f"point ({x}, {y}) is out of range (|coordinate| <= 1e6)")
    return points


def require_unique(what: str, names: list[str]) -> None:
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{what} must be unique, repeated: {', '.join(repeated)}")


def check_polygon(points: list[Point], what: str) -> list[Point]:
    """A simple polygon of at least 3 finite points with an area (ValueError naming the fault)."""
    check_points(points, 3)
    polygon = shapely.Polygon(points)
    if not polygon.is_valid:
        reason = shapely.is_valid_reason(polygon)
        raise ValueError(f"is not a simple polygon ({reason}); list the vertices in order "
                         f"around the {what} without crossing edges")
    if polygon.area <= 0:
        raise ValueError("has zero area; its points must not all lie on one line")
    return points


def check_normalized(points: list[Point], normalized: bool) -> None:
    """Normalised coordinates lie in 0-1."""
    if normalized and any(not (0 <= v <= 1) for p in points for v in p):
        raise ValueError("polygon: normalized coordinates must lie between 0 and 1")
