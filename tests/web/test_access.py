"""Who may use the page and the API, over WSGI: Host names (DNS rebinding), Origin, token
rules, exact token comparison, throttled guesses, expiring cookies and logout, and requests
built to crash the editor (4xx, never 500)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crowdwatch.config.web import WebConfig
from crowdwatch.errors import CrowdwatchError
from crowdwatch.types import FrameResult
from crowdwatch.web.access import Sessions, Throttle
from crowdwatch.web.editor import ConfigEditor
from crowdwatch.web.preview import PreviewHub
from crowdwatch.web.ui import COOKIE, AccessGuard, WebUI, make_web_app, web_ui_from_config

TOKEN = "s3cret-token-of-some-length"
CONFIG = """\
cameras:
  - id: cam0
    source: clip.mp4
    zones:
      # the door
      - name: door
        polygon: [[0, 0], [100, 0], [100, 100]]
      # the hall: keep this comment
      - name: hall
        polygon: [[0, 100], [100, 100], [100, 190]]
      # the stairs
      - name: stairs
        polygon: [[100, 0], [190, 0], [190, 100]]
"""


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _base(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"base"]


def _call(app: Callable[..., Iterable[bytes]], path: str, method: str = "GET",
          headers: dict[str, str] | None = None,
          body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    environ: dict[str, Any] = {
        "PATH_INFO": path, "REQUEST_METHOD": method, "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
        "wsgi.url_scheme": "http", "HTTP_HOST": "127.0.0.1:9108"}
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else "HTTP_" + key] = value
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"] = int(status.split()[0])
        answer["headers"] = dict(headers)

    data = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], data


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(CONFIG)
    return path


def _app(config_file: Path, guard: AccessGuard) -> Callable[..., Iterable[bytes]]:
    hub = PreviewHub(["cam0"])
    frame = np.zeros((200, 200, 3), np.uint8)
    hub.offer("cam0", frame, FrameResult("cam0", 0, 0.0, 0.0, 1, 1))
    editor = ConfigEditor(config_file, lambda _camera: frame)
    return make_web_app(_base, WebUI(guard, hub, editor))


def _save(app: Callable[..., Iterable[bytes]], change: Callable[[dict[str, Any]], None],
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, _, body = _call(app, "/api/config", headers=auth)
    assert status == 200
    view = json.loads(body)
    change(view)
    status, _, body = _call(app, "/api/config", "POST", {
        **auth, "Content-Type": "application/json", **(headers or {})},
        json.dumps(view).encode())
    return status, json.loads(body) if body.startswith(b"{") else {"text": body.decode()}


# --- DNS rebinding and cross-site requests ----------------------------------------------

@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1:9108", True), ("localhost:9108", True), ("LOCALHOST", True),
    ("[::1]:9108", True), ("127.0.0.2", True), ("cams.example.org:9108", True),
    ("attacker.example:9108", False), ("127.0.0.1.nip.io", False), ("192.0.2.7:9108", False),
    ("", False),
])
def test_pages_and_api_answer_only_known_host_names(config_file: Path, host: str,
                                                    allowed: bool) -> None:
    app = _app(config_file, AccessGuard(None, hosts=["cams.example.org"]))
    for path in ("/", "/api/config", "/api/status"):
        status = _call(app, path, headers={"Host": host})[0]
        assert (status == 200) == allowed, (path, status)
    assert _call(app, "/metrics", headers={"Host": host})[0] == 200  # public, for Prometheus


def test_a_rebound_name_cannot_save_a_zone(config_file: Path) -> None:
    app = _app(config_file, AccessGuard(None))
    before = config_file.read_text()
    body = json.dumps({"version": "x", "cameras": []}).encode()
    status = _call(app, "/api/config", "POST", {"Host": "attacker.example:9108",
                                                "Origin": "http://attacker.example:9108",
                                                "Content-Type": "application/json"}, body)[0]
    assert status == 421 and config_file.read_text() == before


def test_ip_addresses_are_allowed_once_remote_clients_are() -> None:
    assert AccessGuard(TOKEN, allow_remote=True).hosts.host_allowed("192.0.2.7:9108")
    assert not AccessGuard(TOKEN, allow_remote=True).hosts.host_allowed("attacker.example")


@pytest.mark.parametrize(("headers", "status"), [
    ({"Origin": "http://127.0.0.1:9108"}, 200),
    ({}, 200),  # not a browser
    ({"Origin": "http://attacker.example"}, 403),
    ({"Origin": "http://localhost:9108"}, 403),  # another origin than the page's own
    ({"Origin": "null"}, 403),
    ({"Sec-Fetch-Site": "cross-site"}, 403),
    ({"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:9108"}, 403),
])
def test_state_changing_requests_must_come_from_the_page_itself(
        config_file: Path, headers: dict[str, str], status: int) -> None:
    app = _app(config_file, AccessGuard(TOKEN))
    got, _ = _save(app, lambda view: None, headers)
    assert got == status


def test_a_page_without_token_warns_at_start(caplog: pytest.LogCaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROWDWATCH_TOKEN", raising=False)
    with caplog.at_level(logging.WARNING, logger="crowdwatch.web"):
        web_ui_from_config(WebConfig(enabled=True, editor=True), PreviewHub(["cam0"]), None)
    assert any("without an access token" in r.getMessage() for r in caplog.records)


# --- the token ---------------------------------------------------------------------------

def test_an_editor_save_without_the_token_is_refused(config_file: Path) -> None:
    app = _app(config_file, AccessGuard(TOKEN))
    before = config_file.read_text()
    assert _call(app, "/api/config")[0] == 401
    payload = json.dumps({"version": None, "cameras": [{"id": "cam0", "zones": []}]}).encode()
    status = _call(app, "/api/config", "POST", {"Content-Type": "application/json"}, payload)[0]
    assert status == 401 and config_file.read_text() == before


@pytest.mark.parametrize("sent", [TOKEN + "x", TOKEN[:-1], TOKEN.upper(), " ", "",
                                  TOKEN + " extra"])
def test_the_token_must_match_exactly(config_file: Path, sent: str) -> None:
    app = _app(config_file, AccessGuard(TOKEN))
    assert _call(app, "/api/status", headers={"Authorization": f"Bearer {sent}"})[0] == 401
    status = _call(app, "/login", "POST", {"Content-Type": "application/x-www-form-urlencoded"},
                   f"token={sent}".encode())[0]
    assert status == 401


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_bearer_scheme_is_case_insensitive(config_file: Path, scheme: str) -> None:
    app = _app(config_file, AccessGuard(TOKEN))
    assert _call(app, "/api/status", headers={"Authorization": f"{scheme} {TOKEN}"})[0] == 200


@pytest.mark.parametrize(("token", "remote", "message"), [
    ("   ", False, "is set but blank"),
    ("", False, "is set but blank"),
    ("short-token", True, "needs at least 16"),
])
def test_weak_tokens_are_refused_at_start(monkeypatch: pytest.MonkeyPatch, token: str,
                                          remote: bool, message: str) -> None:
    monkeypatch.setenv("CROWDWATCH_TOKEN", token)
    with pytest.raises(CrowdwatchError, match=message):
        AccessGuard.from_env("CROWDWATCH_TOKEN", remote)


def test_a_short_token_is_fine_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWDWATCH_TOKEN", "k")
    assert AccessGuard.from_env("CROWDWATCH_TOKEN", False).token == "k"


def test_wrong_guesses_are_throttled(config_file: Path) -> None:
    clock = Clock()
    app = _app(config_file, AccessGuard(TOKEN, throttle=Throttle(burst=5, per_s=1.0,
                                                                 clock=clock)))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    statuses = [_call(app, "/login", "POST", form, f"token=guess{i}".encode())[0]
                for i in range(8)]
    assert statuses == [401] * 5 + [429] * 3
    status, headers, _ = _call(app, "/login", "POST", form, f"token={TOKEN}".encode())
    assert status == 429 and int(headers["Retry-After"]) >= 1  # no guessing while blocked
    assert _call(app, "/api/status", headers={"Authorization": "Bearer guess"})[0] == 429
    clock.now += 1.0
    assert _call(app, "/login", "POST", form, f"token={TOKEN}".encode())[0] == 303


def _cookie(headers: dict[str, str]) -> str:
    return headers["Set-Cookie"].split(";")[0]


def test_the_session_cookie_expires(config_file: Path) -> None:
    clock = Clock()
    guard = AccessGuard(TOKEN, sessions=Sessions(TOKEN, lifetime_s=3600, clock=clock))
    app = _app(config_file, guard)
    status, headers, _ = _call(app, "/login", "POST",
                               {"Content-Type": "application/x-www-form-urlencoded"},
                               f"token={TOKEN}".encode())
    assert status == 303 and "Max-Age=3600" in headers["Set-Cookie"]
    assert TOKEN not in headers["Set-Cookie"]
    cookie = {"Cookie": _cookie(headers)}
    assert _call(app, "/api/status", headers=cookie)[0] == 200
    clock.now += 3601
    assert _call(app, "/api/status", headers=cookie)[0] == 401


def test_logout_ends_the_session(config_file: Path) -> None:
    app = _app(config_file, AccessGuard(TOKEN))
    _, headers, _ = _call(app, "/login", "POST",
                          {"Content-Type": "application/x-www-form-urlencoded"},
                          f"token={TOKEN}".encode())
    cookie = {"Cookie": _cookie(headers)}
    status, headers, _ = _call(app, "/logout", "POST", cookie)
    assert status == 303 and f"{COOKIE}=;" in headers["Set-Cookie"]
    assert "Max-Age=0" in headers["Set-Cookie"]
    assert _call(app, "/api/status", headers=cookie)[0] == 401
    # A forged cookie of the old form (a bare digest) does not work either.
    assert _call(app, "/api/status", headers={"Cookie": f"{COOKIE}=abc"})[0] == 401


# --- requests built to crash the editor ------------------------------------------------

def test_deeply_nested_json_is_a_400(config_file: Path) -> None:
    app = _app(config_file, AccessGuard(None))
    status = _call(app, "/api/config", "POST", {"Content-Type": "application/json"},
                   b"[" * 100_000 + b"]" * 100_000)[0]
    assert status == 400


def test_a_400_digit_coordinate_is_a_422(config_file: Path) -> None:
    app = _app(config_file, AccessGuard(TOKEN))

    def huge(view: dict[str, Any]) -> None:
        view["cameras"][0]["zones"][0]["points"][0] = [int("9" * 400), 0]

    status, body = _save(app, huge)
    assert status == 422 and "finite numbers" in json.dumps(body)


def test_a_polygon_past_the_point_cap_is_refused(config_file: Path) -> None:
    app = _app(config_file, AccessGuard(TOKEN))
    # 50k points fit in the 2 MB body limit; they held the editor's lock for seconds.
    circle = [[round(100 + 50 * np.cos(t), 2), round(100 + 50 * np.sin(t), 2)]
              for t in np.linspace(0, 2 * np.pi, 50_000, endpoint=False)]

    def many(view: dict[str, Any]) -> None:
        view["cameras"][0]["zones"][0]["points"] = circle

    status, body = _save(app, many)
    assert status == 422 and "at most 1000 per shape" in json.dumps(body)


@pytest.mark.parametrize("version", [None, "", "0" * 64])
def test_a_save_without_the_current_version_is_a_conflict(config_file: Path,
                                                          version: str | None) -> None:
    app = _app(config_file, AccessGuard(TOKEN))

    def stale(view: dict[str, Any]) -> None:
        view["version"] = version
        view["cameras"][0]["zones"][0]["name"] = "front"

    status, _ = _save(app, stale)
    assert status == 409 and "name: front" not in config_file.read_text()


def test_deleting_a_zone_keeps_the_comment_of_the_next(config_file: Path) -> None:
    app = _app(config_file, AccessGuard(TOKEN))

    def drop_hall(view: dict[str, Any]) -> None:
        del view["cameras"][0]["zones"][1]

    status, _ = _save(app, drop_hall)
    assert status == 200
    text = config_file.read_text()
    assert "name: hall" not in text
    assert "      # the stairs\n      - name: stairs" in text
    assert "      # the door\n      - name: door" in text
