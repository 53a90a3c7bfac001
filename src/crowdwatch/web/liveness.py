"""Is a camera's count on the page live? live / stale (with age) / down (with the reason) /
ended (a file that finished).

The page must never show an old number as if it were now: after a file ended, with a camera
down, or before any frame. The state comes from the camera loop's health (health.py)
and the age of the newest frame the page has (web/preview.py).
"""

from __future__ import annotations

import re
from typing import Any

from crowdwatch.health import HealthState

# A count older than this is stale even while the source says it is up (a stuck pipeline,
# a camera delivering nothing within its read timeout yet).
STALE_AFTER_S = 5.0
# The short word the page shows for a down camera, from the reason sources/diagnose.py gives.
_CAUSES = [("wrong credentials", re.compile(r"credentials|\b40[13]\b")),
           ("refused", re.compile(r"refused")),
           ("not found", re.compile(r"not found|\b404\b|unknown host|no such file")),
           ("timeout", re.compile(r"timeout|timed out|no answer"))]


def cause(reason: str) -> str:
    """refused, wrong credentials, not found, timeout, or "" when the reason says none."""
    text = reason.lower()
    return next((word for word, pattern in _CAUSES if pattern.search(text)), "")


def camera_states(status: dict[str, Any], health: HealthState | None,
                  stale_after_s: float = STALE_AFTER_S) -> dict[str, Any]:
    """`status` (PreviewHub.status()) with `state`, `reason` and `cause` (the reason in a
    word, for down cameras) added to each camera."""
    loops = health.cameras() if health is not None else {}
    sources = health.sources() if health is not None else {}
    cameras = []
    for camera in status["cameras"]:
        loop = loops.get(camera["id"], {}).get("state", "up")
        reason = getattr(sources.get(camera["id"]), "reason", "")
        age = camera.get("age_s")
        if loop == "stalled":
            state, why = "down", "the camera loop is stuck"
        elif loop == "down":
            state, why = "down", reason or "the source delivers no frames"
        elif loop == "finished":
            state, why = ("ended", "the source ended") if age is not None else (
                "down", "the source ended before its first frame")
        elif age is None:
            state, why = "waiting", "no frame yet"
        elif age > stale_after_s:
            state, why = "stale", f"no new frame for {age:.1f} s"
        else:
            state, why = "live", ""
        cameras.append({**camera, "state": state, "reason": why,
                        "cause": cause(why) if state == "down" else ""})
    return {**status, "cameras": cameras}
