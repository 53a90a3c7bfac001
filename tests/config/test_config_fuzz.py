"""Property-based config tests: random and adversarial configs either validate or raise one
ConfigError line that names the offending key path. Never another exception."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from crowdwatch.analytics.zones import build_zones
from crowdwatch.config import AppConfig, CameraConfig, ZoneConfig, parse_config
from crowdwatch.errors import ConfigError

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100]]
# Every key the config knows, so random mappings hit real keys as well as unknown ones.
KNOWN_KEYS = ["cameras", "id", "source", "zones", "name", "polygon", "normalized", "capacity",
              "area_m2", "anchor", "levels", "warning", "critical", "hysteresis",
              "clear_frames", "ground_plane", "image_points", "ground_points", "realtime",
              "loop", "read_timeout_s", "max_backoff_s", "detector", "model", "confidence",
              "iou", "imgsz", "max_det", "threads", "metrics", "host", "port", "enabled",
              "counting", "smoothing", "window", "window_s"]
NASTY_FLOATS = [math.nan, math.inf, -math.inf, 1e308, -1e308, 1e6 + 1, -0.0, 5e-324]


def base(cameras: int = 1, zones: int = 1) -> dict[str, Any]:
    return {"cameras": [{"id": f"cam{c}", "source": f"cam{c}.mp4",
                         "zones": [{"name": f"z{z}", "polygon": SQUARE} for z in range(zones)]}
                        for c in range(cameras)]}


def validate(data: object) -> AppConfig | ConfigError:
    """parse_config's result or its ConfigError; anything else fails the test."""
    try:
        return parse_config(data, "fuzz.yaml")
    except ConfigError as error:
        message = str(error)
        assert message.startswith("fuzz.yaml: ")
        assert "\n" not in message and "Traceback" not in message
        return error


def error_for(data: object) -> str:
    result = validate(data)
    assert isinstance(result, ConfigError), "an invalid config was accepted"
    return str(result)


scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(NASTY_FLOATS))
# YAML mappings may have numbers, booleans or null as keys, too.
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=8), st.integers(-3, 3),
                 st.none(), st.booleans())
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(keys, inner, max_size=6)),
    max_leaves=40)


@SETTINGS
@given(documents)
def test_any_document_validates_or_names_its_fault(data: object) -> None:
    validate(data)


@SETTINGS
@given(st.dictionaries(keys, documents, max_size=6))
def test_any_mapping_under_cameras_validates_or_names_its_fault(camera: dict[str, Any]) -> None:
    result = validate({"cameras": [camera]})
    if isinstance(result, ConfigError):
        assert re.search(r"fuzz\.yaml: cameras\[0\]", str(result)), str(result)


@SETTINGS
@given(st.text(max_size=200))
def test_any_yaml_text_validates_or_names_its_fault(text: str) -> None:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return  # load_config reports these as "YAML syntax error at line ..."
    validate(data)


# --- adversarial polygons ----------------------------------------------------------------

coordinate = st.floats(-1e4, 1e4, allow_nan=False)
point = st.tuples(coordinate, coordinate).map(list)
few_points = st.lists(point, max_size=2)
with_nonfinite = st.lists(point, min_size=3, max_size=8).flatmap(
    lambda pts: st.tuples(st.integers(0, len(pts) - 1), st.integers(0, 1),
                          st.sampled_from([math.nan, math.inf, -math.inf])).map(
        lambda spec: [p if i != spec[0] else [v if k != spec[1] else spec[2]
                                             for k, v in enumerate(p)]
                      for i, p in enumerate(pts)]))
huge = st.lists(point, min_size=3, max_size=8).flatmap(
    lambda pts: st.tuples(st.integers(0, len(pts) - 1),
                          st.floats(1e6, 1e300, exclude_min=True) | st.floats(-1e300, -1e6,
                                                                                exclude_max=True)
                          ).map(lambda spec: [p if i != spec[0] else [spec[1], p[1]]
                                              for i, p in enumerate(pts)]))
bowtie = st.tuples(st.floats(1, 1e4), st.floats(1, 1e4)).map(
    lambda wh: [[0, 0], [wh[0], wh[1]], [wh[0], 0], [0, wh[1]]])
# Integers keep the points exactly on the line (float rounding would bend it).
collinear = st.tuples(st.integers(-1000, 1000), st.integers(-10, 10), st.lists(
    st.integers(-1000, 1000), min_size=3, max_size=6)).map(
    lambda spec: [[x, spec[0] + spec[1] * x] for x in spec[2]])
repeated = point.flatmap(lambda p: st.integers(3, 6).map(lambda n: [p] * n))
not_pairs = st.lists(st.lists(coordinate, min_size=3, max_size=4) | st.lists(
    coordinate, max_size=1) | st.text(max_size=4), min_size=3, max_size=5)

BAD_POLYGONS = {
    "fewer than 3 points": few_points,
    "NaN or infinite coordinate": with_nonfinite,
    "huge coordinate": huge,
    "self-intersecting": bowtie,
    "all points on one line": collinear,
    "one point repeated": repeated,
    "not x, y pairs": not_pairs,
}


@pytest.mark.parametrize("kind", BAD_POLYGONS)
@SETTINGS
@given(data=st.data())
def test_bad_polygon_is_rejected_naming_its_zone(kind: str, data: st.DataObject) -> None:
    polygon = data.draw(BAD_POLYGONS[kind])
    cameras, zones = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    c, z = data.draw(st.integers(0, cameras - 1)), data.draw(st.integers(0, zones - 1))
    config = base(cameras, zones)
    config["cameras"][c]["zones"][z]["polygon"] = polygon
    assert f"fuzz.yaml: cameras[{c}].zones[{z}].polygon" in error_for(config)


@SETTINGS
@given(st.lists(st.tuples(st.floats(-0.5, 1.5), st.floats(-0.5, 1.5)), min_size=3, max_size=8))
def test_normalized_polygon_outside_0_1_is_rejected(points: list[tuple[float, float]]) -> None:
    config = base()
    config["cameras"][0]["zones"][0].update(polygon=[list(p) for p in points], normalized=True)
    result = validate(config)
    outside = any(not 0 <= v <= 1 for p in points for v in p)
    if isinstance(result, AppConfig):
        assert not outside
        build_zones(result.cameras[0], 640, 480)
    else:
        assert "fuzz.yaml: cameras[0].zones[0]" in str(result)
        if outside and "polygon: normalized" in str(result):
            assert "between 0 and 1" in str(result)


@SETTINGS
@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=2, max_size=6))
def test_duplicate_names_are_rejected_naming_them(names: list[str]) -> None:
    assume(len(set(names)) < len(names))
    repeated = sorted({n for n in names if names.count(n) > 1})
    zones = base()
    zones["cameras"][0]["zones"] = [{"name": n, "polygon": SQUARE} for n in names]
    assert (f"cameras[0].zones: zone names must be unique, repeated: {', '.join(repeated)}"
            in error_for(zones))
    cameras = {"cameras": [{"id": n, "source": "x.mp4"} for n in names]}
    assert f"cameras: camera ids must be unique, repeated: {', '.join(repeated)}" in error_for(
        cameras)


# --- unknown keys and out-of-range values at every level --------------------------------

# (path to a mapping in base(), keys that mapping may hold)
# The keys each mapping knows, from the models themselves: Hypothesis also draws strings that
# appear in the code (such as "recording"), which a hand-kept list would call unknown.
MAPPINGS = [
    ((), set(AppConfig.model_fields)),
    (("cameras", 0), set(CameraConfig.model_fields)),
    (("cameras", 0, "zones", 0), set(ZoneConfig.model_fields)),
]


def dotted(path: tuple[str | int, ...]) -> str:
    """A key path as errors print it: cameras[0].zones, and odd keys quoted: cameras[0]['\n']."""
    out = ""
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
        elif not re.fullmatch(r"[A-Za-z0-9_-]+", key):
            out += f"[{key!r}]"
        else:
            out += f".{key}" if out else key
    return out


@pytest.mark.parametrize(("path", "known"), MAPPINGS, ids=lambda v: dotted(v) or "top"
                         if isinstance(v, tuple) else None)
@SETTINGS
@given(key=st.text(min_size=1, max_size=12), value=documents)
def test_unknown_key_is_named(path: tuple[str | int, ...], known: set[str], key: str,
                              value: object) -> None:
    assume(key not in known and "Traceback" not in key)  # the message names the key
    config = base()
    target: Any = config
    for step in path:
        target = target[step]
    target[key] = value
    assert f"{dotted((*path, key))}: unknown key (check its spelling)" in error_for(config)


# (path of a number, the numbers it accepts), the bounds as config.py declares them.
NUMBERS: list[tuple[tuple[str | int, ...], Callable[[float], bool]]] = [
    (("cameras", 0, "zones", 0, "capacity"), lambda v: 1 <= v <= 1_000_000),
    (("cameras", 0, "zones", 0, "area_m2"), lambda v: 0 < v <= 1e8),
    (("cameras", 0, "read_timeout_s"), lambda v: 0 < v <= 600),
    (("cameras", 0, "max_backoff_s"), lambda v: 0.1 <= v <= 3600),
    (("detector", "confidence"), lambda v: 0 < v < 1),
    (("detector", "iou"), lambda v: 0 < v <= 1),
    (("metrics", "port"), lambda v: 0 <= v <= 65535),
    (("counting", "window"), lambda v: 1 <= v <= 1000),
    (("counting", "window_s"), lambda v: 0 <= v <= 60),
    (("levels", "warning"), lambda v: 0 < v <= 10),
    (("levels", "hysteresis"), lambda v: 0 <= v <= 1),
    (("levels", "clear_frames"), lambda v: 1 <= v <= 100_000),
]


@pytest.mark.parametrize(("path", "accepts"), NUMBERS, ids=lambda v: dotted(v)
                         if isinstance(v, tuple) else None)
@SETTINGS
@given(value=st.one_of(st.sampled_from(NASTY_FLOATS), st.floats(), st.integers(-2**64, 2**64),
                       st.text(max_size=6), st.none(), st.lists(st.integers(), max_size=2)))
def test_number_out_of_range_is_named(path: tuple[str | int, ...],
                                      accepts: Callable[[float], bool], value: object) -> None:
    config = base()
    target: Any = config
    for step in path[:-1]:
        target = target[step] if isinstance(step, int) else target.setdefault(step, {})
    target[path[-1]] = value
    result = validate(config)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not (
            math.isfinite(value) and accepts(value)):
        assert isinstance(result, ConfigError), f"{dotted(path)} = {value!r} was accepted"
    if isinstance(result, ConfigError):
        message = str(result)
        # Either the key itself, or its mapping's rule that names it ("levels: critical (1.0)
        # must be >= warning (2.0)").
        assert (f"fuzz.yaml: {dotted(path)}" in message
                or (f"fuzz.yaml: {dotted(path[:-1])}: " in message and str(path[-1]) in message)
                ), message


# --- ground planes: never a crash when zones are built ------------------------------------

ground_point = st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)).map(list)


@SETTINGS
@given(image=st.lists(ground_point, min_size=4, max_size=6),
       ground=st.lists(ground_point, min_size=4, max_size=6),
       polygon=st.lists(ground_point, min_size=3, max_size=6))
def test_ground_plane_builds_or_names_its_fault(image: list[list[float]],
                                                ground: list[list[float]],
                                                polygon: list[list[float]]) -> None:
    config = base()
    config["cameras"][0]["ground_plane"] = {"image_points": image, "ground_points": ground}
    config["cameras"][0]["zones"][0]["polygon"] = polygon
    result = validate(config)
    if isinstance(result, ConfigError):
        assert "fuzz.yaml: cameras[0]." in str(result)
        return
    try:
        zones = build_zones(result.cameras[0], 768, 576)
    except ConfigError as error:
        assert "ground_plane" in str(error) or "zone" in str(error)
        return
    assert len(zones) == 1
    assert zones[0].area_m2 is None or (math.isfinite(zones[0].area_m2)
                                        and zones[0].area_m2 >= 0)
