"""Validation of the people-flow config models: clear errors for bad lines and knobs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from crowdwatch.config import parse_config
from crowdwatch.config.flow import (
    DwellConfig,
    LineConfig,
    RelinkConfig,
    TrackerConfig,
)
from crowdwatch.errors import ConfigError

GOOD = {"name": "door", "points": [[0, 100], [200, 100]]}

LINE_ERRORS = [
    # name, fields overriding GOOD, expected message part
    ("two equal points", {"points": [[5, 5], [5, 5]]}, "the two points are equal (5.0, 5.0)"),
    ("one point", {"points": [[5, 5]]}, "needs at least 2 points"),
    ("three points", {"points": [[0, 0], [1, 1], [2, 0]]}, "exactly 2 points, got 3"),
    ("not finite", {"points": [[0, 0], [float("nan"), 1]]}, "not a finite number"),
    ("normalized out of range", {"points": [[0, 0], [2, 1]], "normalized": True}, "normalized coordinates must lie between 0 and 1"),
    ("bad name", {"name": "front door"}, "String should match pattern"),
    ("empty name", {"name": ""}, "at least 1 character"),
    ("negative band", {"band_px": -1}, "greater than or equal to 0"),
    ("tolerance above 1", {"segment_tolerance": 2}, "less than or equal to 1"),
    ("unknown key", {"colour": "red"}, "Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("overrides", "message"), [c[1:] for c in LINE_ERRORS],
                         ids=[c[0] for c in LINE_ERRORS])
def test_bad_lines(overrides: dict, message: str) -> None:
    with pytest.raises(ValidationError) as error:
        LineConfig(**{**GOOD, **overrides})
    assert message in str(error.value)


def test_good_line_defaults() -> None:
    line = LineConfig(**GOOD)
    assert line.points == [(0.0, 100.0), (200.0, 100.0)]
    assert (line.normalized, line.band_px, line.segment_tolerance, line.min_track_age_s) == (
        False, 6.0, 0.05, 0.2)


def _app(lines: list[dict], **top: object) -> dict:
    return {"cameras": [{"id": "c", "source": "x.mp4", "lines": lines}], **top}


APP_ERRORS = [
    (_app([GOOD, {**GOOD, "points": [[0, 0], [1, 1]]}, {**GOOD, "name": "exit"}]),
     "cameras[0].lines: line names must be unique, repeated: door"),
    (_app([{**GOOD, "name": "exit"}, {**GOOD, "points": [[5, 5], [5, 5]]}]),
     "cameras[0].lines[1].points: the two points are equal (5.0, 5.0)"),
    (_app([{**GOOD, "normalized": True}]),
     "cameras[0].lines[0]: points: normalized coordinates must lie between 0 and 1"),
    (_app([GOOD], tracker={"enabled": False}),
     "(top level): cameras[0] has lines, which need tracking; set tracker.enabled to auto"),
    (_app([GOOD], tracker={"name": "deepsort"}),
     "tracker.name: unknown tracker 'deepsort'; valid: bytetrack, ocsort, sort"),
    (_app([GOOD], dwell={"leave_s": -1}),
     "dwell.leave_s: Input should be greater than or equal to 0"),
    (_app([{**GOOD, "colour": "red"}]), "cameras[0].lines[0].colour: unknown key"),
]


@pytest.mark.parametrize(("data", "message"), APP_ERRORS)
def test_config_errors_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


TRACKING = [
    ("auto", [], [], False),
    ("auto", [GOOD], [], True),
    ("auto", [], [{"name": "q", "polygon": [[0, 0], [9, 0], [9, 9]], "dwell": True}], True),
    ("auto", [], [{"name": "q", "polygon": [[0, 0], [9, 0], [9, 9]]}], False),
    (True, [], [], True),
    (False, [], [{"name": "q", "polygon": [[0, 0], [9, 0], [9, 9]]}], False),
]


@pytest.mark.parametrize(("enabled", "lines", "zones", "tracks"), TRACKING)
def test_when_a_camera_is_tracked(enabled: object, lines: list, zones: list,
                                  tracks: bool) -> None:
    config = parse_config({"cameras": [{"id": "c", "source": "x.mp4", "lines": lines,
                                        "zones": zones}], "tracker": {"enabled": enabled}})
    assert config.tracks(config.cameras[0]) is tracks


OTHER_ERRORS = [
    (TrackerConfig, {"name": "deepsort"}, "unknown tracker 'deepsort'; valid: bytetrack, ocsort, sort"),
    (TrackerConfig, {"high_confidence": 0.6, "activation_confidence": 0.5}, "activation_confidence (0.5) must be >= high_confidence (0.6)"),
    (TrackerConfig, {"confirm_frames": 0}, "greater than or equal to 1"),
    (TrackerConfig, {"lost_s": 0}, "greater than 0"),
    (DwellConfig, {"enter_s": -1}, "greater than or equal to 0"),
    (DwellConfig, {"lost_s": 0}, "greater than 0"),
    (RelinkConfig, {"within_s": 10, "forget_s": 5}, "forget_s (5.0) must be >= within_s (10.0)"),
    (TrackerConfig, {"trackr": {}}, "Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("model", "fields", "message"), OTHER_ERRORS,
                         ids=[f"{m.__name__}-{next(iter(f))}" for m, f, _ in OTHER_ERRORS])
def test_bad_knobs(model: type, fields: dict, message: str) -> None:
    with pytest.raises(ValidationError) as error:
        model(**fields)
    assert message in str(error.value)


def test_every_field_is_documented() -> None:
    for model in (LineConfig, TrackerConfig, DwellConfig, RelinkConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
