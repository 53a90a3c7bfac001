"""The page says whether each camera's count is live, stale (with its age) or down (with the
reason): an old number is never shown as now."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest

from crowdwatch.health import HealthState, SourceStatus
from crowdwatch.types import FrameResult
from crowdwatch.web.liveness import STALE_AFTER_S, camera_states
from crowdwatch.web.preview import PreviewHub
from crowdwatch.web.ui import AccessGuard, WebUI

REFUSED = "cannot open: connection refused by 127.0.0.1:8554; check the port"


def _status(age: float | None) -> dict[str, Any]:
    return {"cameras": [{"id": "cam", "people": None if age is None else 7, "zones": [],
                         "age_s": age}]}


def _health(state: str, reason: str = "") -> HealthState:
    health = HealthState(["cam"])
    if state == "finished":
        health.report("cam", SourceStatus(False))
        health.finish("cam")
    elif state != "starting":
        health.report("cam", SourceStatus(state == "up", reason=reason))
    return health


@pytest.mark.parametrize(("loop", "age", "state", "reason"), [
    ("up", 0.2, "live", ""),
    ("up", STALE_AFTER_S + 12.8, "stale", "no new frame for 17.8 s"),
    ("finished", 17.8, "ended", "the source ended"),           # a file ended: not live
    ("down", 3.0, "down", REFUSED),                            # had frames, now down
    ("down", None, "down", REFUSED),                           # never connected
    ("finished", None, "down", "the source ended before its first frame"),
    ("starting", None, "waiting", "no frame yet"),
])
def test_each_camera_gets_its_state_and_reason(loop: str, age: float | None, state: str,
                                               reason: str) -> None:
    (camera,) = camera_states(_status(age), _health(loop, REFUSED))["cameras"]
    assert (camera["state"], camera["reason"]) == (state, reason)
    assert camera["age_s"] == age  # the page shows it with the state


def test_api_status_says_down_for_a_refused_camera_without_frames() -> None:
    hub = PreviewHub(["cam"])
    web = WebUI(AccessGuard(None), hub, health=_health("down", REFUSED))
    environ = {"PATH_INFO": "/api/status", "REQUEST_METHOD": "GET",
               "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1", "wsgi.input": io.BytesIO()}
    body = b"".join(web(environ, lambda status, headers: None))
    (camera,) = json.loads(body)["cameras"]
    assert camera["state"] == "down" and camera["reason"] == REFUSED
    hub.offer("cam", np.zeros((8, 8, 3), np.uint8), FrameResult("cam", 0, 0.0, 0.0, 7, 7))
    body = b"".join(web(environ, lambda status, headers: None))
    assert json.loads(body)["cameras"][0]["people"] == 7  # the last count, marked down
    assert json.loads(body)["cameras"][0]["state"] == "down"


@pytest.mark.parametrize(("reason", "word"), [
    ("cannot open: connection refused by 127.0.0.1:8554; check the port", "refused"),
    ("cannot open: wrong credentials (RTSP 401 Unauthorized); check the user", "wrong credentials"),
    ("cannot open: the camera needs credentials (RTSP 401 Unauthorized)", "wrong credentials"),
    ("cannot open: stream not found (RTSP 404 Not Found); check the path", "not found"),
    ("cannot open: timeout: no answer from 10.0.0.9:554 within 5s", "timeout"),
    ("the source delivers no frames", ""),
])
def test_a_down_camera_names_its_cause_in_a_word(reason: str, word: str) -> None:
    (camera,) = camera_states(_status(None), _health("down", reason))["cameras"]
    assert camera["state"] == "down" and camera["cause"] == word
