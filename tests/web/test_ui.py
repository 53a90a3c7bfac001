"""Web routes over WSGI: token and client checks, public paths, snapshots, login cookie."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pytest

from crowdwatch.config.web import PreviewConfig, RecordingConfig, WebConfig
from crowdwatch.types import FrameResult
from crowdwatch.web.preview import PreviewHub
from crowdwatch.web.ui import COOKIE, AccessGuard, WebUI, make_web_app, web_ui_from_config

TOKEN = "s3cret-token"
PROTECTED = ["/", "/api/status", "/static/live.js", "/cameras/cam0/snapshot.jpg",
             "/cameras/cam0/preview.mjpg", "/cameras/cam0/frame.jpg", "/editor", "/api/config",
             "/api/console", "/api/events"]


def _base(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"base " + environ["PATH_INFO"].encode()]


def _call(app: Callable[..., Iterable[bytes]], path: str, method: str = "GET",
          headers: dict[str, str] | None = None, body: bytes = b"",
          remote: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    environ = {"PATH_INFO": path, "REQUEST_METHOD": method, "REMOTE_ADDR": remote,
               "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
               "wsgi.url_scheme": "http"}
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE",) else "HTTP_" + key] = value
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"] = int(status.split()[0])
        answer["headers"] = dict(headers)

    chunks = app(environ, start_response)
    data = b""
    for chunk in chunks:
        data += chunk
        if path.endswith(".mjpg"):
            break
    if hasattr(chunks, "close"):
        chunks.close()
    return answer["status"], answer["headers"], data


@pytest.fixture
def app() -> Callable[..., Iterable[bytes]]:
    hub = PreviewHub(["cam0"])
    hub.offer("cam0", np.zeros((48, 64, 3), np.uint8), FrameResult("cam0", 0, 0.0, 0.0, 1, 1))
    return make_web_app(_base, WebUI(AccessGuard(TOKEN), hub))


@pytest.mark.parametrize("path", PROTECTED)
def test_protected_paths_need_the_token(app: Any, path: str) -> None:
    status, headers, _ = _call(app, path)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert _call(app, path, headers={"Authorization": "Bearer wrong"})[0] == 401


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz"])
def test_public_paths_go_to_the_base_app(app: Any, path: str) -> None:
    status, _, body = _call(app, path, remote="203.0.113.9")
    assert status == 200 and body == b"base " + path.encode()


def test_bearer_token_opens_the_page_and_snapshot(app: Any) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert _call(app, "/", headers=auth)[0] == 200
    status, headers, body = _call(app, "/cameras/cam0/snapshot.jpg", headers=auth)
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    status, headers, body = _call(app, "/cameras/cam0/preview.mjpg", headers=auth)
    assert status == 200 and headers["Content-Type"].startswith("multipart/x-mixed-replace")
    assert _call(app, "/cameras/nope/snapshot.jpg", headers=auth)[0] == 404
    status, _, body = _call(app, "/api/status", headers=auth)
    assert json.loads(body)["cameras"][0]["id"] == "cam0"


def test_login_form_sets_a_cookie_that_is_not_the_token(app: Any) -> None:
    assert _call(app, "/login", "POST", {"Content-Type": "application/x-www-form-urlencoded"},
                 b"token=bad")[0] == 401
    status, headers, _ = _call(app, "/login", "POST",
                               {"Content-Type": "application/x-www-form-urlencoded"},
                               f"token={TOKEN}".encode())
    assert status == 303
    cookie = headers["Set-Cookie"]
    assert TOKEN not in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    value = cookie.split(";")[0]
    assert value.startswith(COOKIE + "=")
    assert _call(app, "/api/status", headers={"Cookie": value})[0] == 200
    assert _call(app, "/api/status", headers={"Cookie": f"{COOKIE}={TOKEN}"})[0] == 401


def test_remote_clients_refused_unless_allowed() -> None:
    hub = PreviewHub(["cam0"])
    local_only = make_web_app(_base, WebUI(AccessGuard(None), hub))
    assert _call(local_only, "/", remote="203.0.113.9")[0] == 403
    assert _call(local_only, "/", remote="::1")[0] == 200
    remote = make_web_app(_base, WebUI(AccessGuard(None, allow_remote=True), hub))
    assert _call(remote, "/", remote="203.0.113.9")[0] == 200


def test_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_TOKEN", "abc")
    assert AccessGuard.from_env("MY_TOKEN").token == "abc"
    monkeypatch.delenv("MY_TOKEN")
    assert AccessGuard.from_env("MY_TOKEN").token is None


def test_disabled_parts_are_not_served() -> None:
    hub = PreviewHub(["cam0"])
    hub.offer("cam0", np.zeros((48, 64, 3), np.uint8), FrameResult("cam0", 0, 0.0, 0.0, 1, 1))
    off = make_web_app(_base, web_ui_from_config(WebConfig(token_env=None), hub, None))
    for path in ["/", "/cameras/cam0/snapshot.jpg", "/editor"]:
        assert _call(off, path)[0] == 404
    page_only = make_web_app(_base, web_ui_from_config(WebConfig(enabled=True, token_env=None),
                                                       hub, None))
    assert _call(page_only, "/")[0] == 200
    assert _call(page_only, "/cameras/cam0/snapshot.jpg")[0] == 404


def test_config_models_are_strict() -> None:
    with pytest.raises(ValueError):
        WebConfig(token_env="my token value")
    with pytest.raises(ValueError):
        WebConfig.model_validate({"enabled": True, "token": "x"})
    with pytest.raises(ValueError):
        PreviewConfig(fps=0)
    with pytest.raises(ValueError):
        RecordingConfig(preset="placebo")
    assert not WebConfig().enabled and not RecordingConfig().enabled


def test_serve_editor_only(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.request

    from crowdwatch.web import ui as webui

    monkeypatch.setattr(webui, "grab_frame", lambda source: np.zeros((48, 64, 3), np.uint8))
    monkeypatch.delenv("CROWDWATCH_TOKEN", raising=False)
    server = webui.serve_editor("rtsp://u:p@192.0.2.1/s", tmp_path / "c.yaml", port=0)
    try:
        assert server.host == "127.0.0.1"
        with urllib.request.urlopen(server.url + "/", timeout=5) as response:
            assert response.url.endswith("/editor") and b"zone editor" in response.read()
        with urllib.request.urlopen(server.url + "/api/config", timeout=5) as response:
            body = response.read()
            assert b"192.0.2.1" not in body and json.loads(body)["cameras"][0]["width"] == 64
        with urllib.request.urlopen(server.url + "/cameras/cam0/frame.jpg", timeout=5) as r:
            assert r.headers["Content-Type"] == "image/jpeg"
    finally:
        server.close()
