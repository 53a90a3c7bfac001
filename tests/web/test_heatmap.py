"""/cameras/{id}/heatmap.png and ?overlay=heatmap over WSGI: access, 404s, the PNG."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

import cv2
import numpy as np
import pytest

from crowdwatch.analytics.heatmap import Heatmaps
from crowdwatch.config import HeatmapConfig
from crowdwatch.outputs.heatmap import LEGEND_HEIGHT, HeatmapRenderer
from crowdwatch.types import Detections, FrameResult
from crowdwatch.web.preview import PreviewHub
from crowdwatch.web.ui import AccessGuard, WebUI

TOKEN = "heat-token-123"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


def _call(app: Callable[..., Iterable[bytes]], url: str,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    path, _, query = url.partition("?")
    environ = {"PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": "GET",
               "REMOTE_ADDR": "127.0.0.1", "wsgi.input": io.BytesIO(b""),
               **(headers or {})}
    answer: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
        answer["status"] = int(status.split()[0])
        answer["headers"] = dict(response_headers)

    chunks = app(environ, start_response)
    body = next(iter(chunks), b"")  # one part of a stream is enough
    if hasattr(chunks, "close"):
        chunks.close()
    return answer["status"], answer["headers"], body


def _feed(hub: PreviewHub, heatmaps: Heatmaps) -> None:
    """Two frames 1 s apart, one person with feet at (410, 405) of a 640x480 frame."""
    frame = np.full((480, 640, 3), 80, np.uint8)
    person = Detections(np.array([[400, 300, 420, 405]], np.float32), np.ones(1, np.float32))
    for at in (0.0, 1.0):
        result = FrameResult("cam0", 0, at, 0.0, 1, 1, detections=person, image=frame)
        heatmaps.write(result)
        hub.write(result)


@pytest.fixture
def parts() -> tuple[PreviewHub, Heatmaps, WebUI]:
    config = HeatmapConfig(cells=64, width=320)
    heatmaps = Heatmaps(config)
    renderer = HeatmapRenderer(heatmaps, config)
    hub = PreviewHub(["cam0"], overlays={"heatmap": renderer.overlay})
    return hub, heatmaps, WebUI(AccessGuard(TOKEN), hub, heatmap=renderer.png)


def test_heatmap_png_needs_the_token_and_a_known_camera(parts: Any) -> None:
    hub, heatmaps, ui = parts
    assert _call(ui, "/cameras/cam0/heatmap.png")[0] == 401
    status, headers, _ = _call(ui, "/cameras/cam0/heatmap.png", AUTH)
    assert status == 503 and headers["Retry-After"] == "1"  # no frame yet
    assert _call(ui, "/cameras/nope/heatmap.png", AUTH)[0] == 404
    _feed(hub, heatmaps)
    status, headers, body = _call(ui, "/cameras/cam0/heatmap.png?frame=0", AUTH)
    assert status == 200 and headers["Content-Type"] == "image/png"
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (240 + LEGEND_HEIGHT, 320, 3)
    # The hot cell (row 40, column 41 of 48 x 64; 5 px cells at 320 px) has the top colour.
    hottest = cv2.applyColorMap(np.array([[255]], np.uint8), cv2.COLORMAP_TURBO)[0, 0]
    assert np.abs(image[202, 207].astype(int) - hottest).max() <= 6
    assert image[20, 20].tolist() != image[202, 207].tolist()
    # The legend: its bar from the coldest to the hottest colour.
    assert np.abs(image[240 + 8, 313].astype(int) - hottest).max() <= 6


def test_heatmap_off_says_so() -> None:
    ui = WebUI(AccessGuard(TOKEN), PreviewHub(["cam0"]))
    status, _, body = _call(ui, "/cameras/cam0/heatmap.png", AUTH)
    assert status == 404 and b"heatmap.enabled" in body
    assert _call(ui, "/cameras/cam0/snapshot.jpg?overlay=heatmap", AUTH)[0] == 400


def test_previews_draw_the_heatmap_when_asked(parts: Any) -> None:
    hub, heatmaps, ui = parts
    _feed(hub, heatmaps)
    status, _, plain = _call(ui, "/cameras/cam0/snapshot.jpg", AUTH)
    status2, _, heated = _call(ui, "/cameras/cam0/snapshot.jpg?overlay=heatmap", AUTH)
    assert status == status2 == 200 and plain != heated
    decoded = cv2.imdecode(np.frombuffer(heated, np.uint8), cv2.IMREAD_COLOR)
    plain_image = cv2.imdecode(np.frombuffer(plain, np.uint8), cv2.IMREAD_COLOR)
    assert np.abs(decoded[405, 415].astype(int) - plain_image[405, 415]).max() > 25
    assert _call(ui, "/cameras/cam0/snapshot.jpg?overlay=nope", AUTH)[0] == 400
    status, _, part = _call(ui, "/cameras/cam0/preview.mjpg?overlay=heatmap", AUTH)
    assert status == 200 and b"image/jpeg" in part


def test_without_previews_the_heatmap_shows_no_frame(parts: Any) -> None:
    hub, heatmaps, _ = parts
    renderer = HeatmapRenderer(heatmaps, HeatmapConfig(cells=64, width=320))
    ui = WebUI(AccessGuard(TOKEN), hub, preview=False, heatmap=renderer.png)
    _feed(hub, heatmaps)  # frames of grey 80: none of it may show
    status, _, body = _call(ui, "/cameras/cam0/heatmap.png", AUTH)
    assert status == 200
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    coldest = cv2.applyColorMap(np.array([[0]], np.uint8), cv2.COLORMAP_TURBO)[0, 0]
    assert np.abs(image[20, 20].astype(int) - coldest).max() <= 2
    assert _call(ui, "/cameras/cam0/snapshot.jpg", AUTH)[0] == 404  # previews stay off
