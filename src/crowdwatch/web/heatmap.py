"""The answers of /cameras/{id}/heatmap.png and of the previews' ?overlay= query (web/ui.py
dispatches, behind its access checks). The picture itself is drawn by the function the app
hands over (outputs/heatmap.py), so web/ imports nothing from outputs/."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from crowdwatch.types import Image
from crowdwatch.web.preview import PreviewHub

# (camera, frame to draw over or None) -> PNG bytes, or None before the camera's first frame.
HeatmapPng = Callable[[str, Image | None], bytes | None]
# (status, body, content type, extra headers)
Answer = tuple[str, bytes, str, list[tuple[str, str]]]


def query(environ: dict[str, Any], name: str) -> str | None:
    """The first value of a query parameter, None when absent."""
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    return values[0] if values else None


def heatmap_answer(png: HeatmapPng | None, hub: PreviewHub, over_frame: bool, camera: str,
                   environ: dict[str, Any]) -> Answer:
    """heatmap.png: 404 for an unknown camera or when the heatmap is off, 503 before the first
    frame. Drawn over the newest preview frame when previews are on, unless ?frame=0."""
    if camera not in hub.cameras:
        return "404 Not Found", b"no such camera\n", "text/plain", []
    if png is None:
        return ("404 Not Found", b"the heatmap is off; set heatmap.enabled: true in the "
                b"config\n", "text/plain", [])
    frame = hub.rendered(camera) if over_frame and query(environ, "frame") != "0" else None
    body = png(camera, frame)
    if body is None:
        return "503 Service Unavailable", b"no frame yet\n", "text/plain", [("Retry-After", "1")]
    return "200 OK", body, "image/png", []


def overlay_error(hub: PreviewHub, environ: dict[str, Any]) -> tuple[str | None, Answer | None]:
    """(the ?overlay= a preview asks for, or None; a 400 answer when the hub has no such
    overlay)."""
    overlay = query(environ, "overlay")
    if overlay is None or overlay in hub.overlays:
        return overlay, None
    known = ", ".join(sorted(hub.overlays)) or "none (turn on heatmap.enabled)"
    return overlay, ("400 Bad Request", f"unknown overlay; available: {known}\n".encode(),
                     "text/plain", [])
