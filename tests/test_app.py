"""build_app: the preview hub and the recorder as sinks, the page on the one server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crowdwatch.app import RunOptions, build_app
from crowdwatch.config import parse_config
from crowdwatch.detect.base import Done
from crowdwatch.errors import CrowdwatchError
from crowdwatch.types import Detections

CLIP = Path(__file__).resolve().parents[1] / "samples" / "vtest_h264.mp4"


class ThreePeople:
    """A synchronous detector: two people in the left half of a 768x576 frame, one in
    the right half."""

    name = "fake"

    def submit(self, image: np.ndarray) -> Done:
        xyxy = np.array([[10, 10, 60, 200], [100, 10, 150, 200], [500, 300, 560, 500]],
                        np.float32)
        return Done(Detections(xyxy, np.full(3, 0.9, np.float32)))

    def prepare(self, width: int, height: int) -> None:
        pass


def _config(tmp_path: Path, **extra: Any) -> Any:
    zone = {"name": "left", "polygon": [[0, 0], [384, 0], [384, 576], [0, 576]],
            "capacity": 4}
    return parse_config({"cameras": [{"id": "cam0", "source": str(CLIP), "zones": [zone]}],
                         "metrics": {"host": "127.0.0.1", "port": 0}, **extra})


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_page_recording_and_metrics_share_one_server(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWDWATCH_TOKEN", "tok")
    config = _config(tmp_path, web={"enabled": True, "preview": {"enabled": True}},
                     recording={"enabled": True, "directory": str(tmp_path / "rec")},
                     heatmap={"overlay_recording": True, "overlay_preview": True})
    app = build_app(config, RunOptions(max_frames=6), detector=ThreePeople())
    try:
        assert app.web_url is not None and app.url is not None
        assert type(app.sinks[0]).__name__ == "Heatmaps"  # before the sinks that draw it
        app.pipeline.run()
        assert _get(app.web_url + "api/status")[0] == 401
        status, body = _get(app.web_url + "api/status", "tok")
        assert status == 200
        camera = json.loads(body)["cameras"][0]
        assert camera["id"] == "cam0" and camera["people"] == 3
        assert camera["zones"] == [{"name": "left", "people": 2, "occupancy": 0.5,
                                    "level": "ok"}]
        assert str(CLIP) not in body.decode()
        # The console (web/console.py) is attached as a sink: the same frames, the config's
        # capacity, and the file's end.
        assert _get(app.web_url + "api/console")[0] == 401
        status, body = _get(app.web_url + "api/console", "tok")
        camera = json.loads(body)["cameras"][0]
        assert (camera["people"], camera["state"]) == (3, "ended")
        assert (camera["zones"][0]["people"], camera["zones"][0]["capacity"]) == (2, 4)
        assert len(camera["zones"][0]["trend"]) >= 1
        status, jpeg = _get(app.web_url + "cameras/cam0/snapshot.jpg", "tok")
        assert status == 200 and jpeg[:2] == b"\xff\xd8"
        assert _get(app.web_url + "cameras/cam0/heatmap.png")[0] == 401
        status, png = _get(app.web_url + "cameras/cam0/heatmap.png", "tok")
        assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
        # Drawn on every preview (overlay_preview): asking for it changes nothing.
        assert _get(app.web_url + "cameras/cam0/snapshot.jpg?overlay=heatmap", "tok") == \
            _get(app.web_url + "cameras/cam0/snapshot.jpg", "tok")
        app.finish_recordings()  # sources ended: the file is complete while serving goes on
        recordings = list((tmp_path / "rec").glob("cam0-*.mp4"))
        assert len(recordings) == 1 and recordings[0].stat().st_size > 0
        status, metrics = _get(app.url)  # /metrics needs no token
        assert status == 200
        assert b'crowdwatch_recording_frames_written_total{camera="cam0"} 6.0' in metrics
        assert b'crowdwatch_recording_frames_skipped_total{camera="cam0"}' in metrics
    finally:
        app.close()


def test_nothing_visual_is_built_by_default(tmp_path: Path) -> None:
    app = build_app(_config(tmp_path), RunOptions(max_frames=1), detector=ThreePeople())
    try:
        assert app.web_url is None
        assert [type(s).__name__ for s in app.sinks] == ["MetricsSink"]
        assert _get(app.url.replace("/metrics", "/"))[0] == 200  # metrics app, no page
    finally:
        app.close()


def test_page_without_metrics_listens_on_this_machine_only(tmp_path: Path) -> None:
    config = _config(tmp_path, web={"enabled": True})
    config = config.model_copy(update={"metrics": config.metrics.model_copy(
        update={"enabled": False, "host": "0.0.0.0"})})
    app = build_app(config, RunOptions(max_frames=1), detector=ThreePeople())
    try:
        assert app.url is None and app.web_url is not None
        assert app._server._http.host == "127.0.0.1"  # type: ignore[union-attr]
    finally:
        app.close()


def test_remote_page_without_a_token_is_refused(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROWDWATCH_TOKEN", raising=False)
    config = _config(tmp_path, web={"enabled": True, "allow_remote": True})
    with pytest.raises(CrowdwatchError, match="allow_remote needs an access token"):
        build_app(config, RunOptions(max_frames=1), detector=ThreePeople())
