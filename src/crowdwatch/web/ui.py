"""Web routes: the live page, MJPEG previews, snapshots and the zone editor, behind a token.

make_web_app() wraps the existing server app (server.make_app): /metrics, /healthz and
/readyz go to it unprotected; every other path needs the access token when one is set
(Authorization: Bearer, or the cookie the /login form sets) and, unless allow_remote,
a client on this machine. serve_editor() runs only the editor, for `crowdwatch zones`.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import cv2
from ruamel.yaml import YAML

from crowdwatch.config.web import WebConfig
from crowdwatch.errors import SourceError
from crowdwatch.health import HealthState
from crowdwatch.web.access import HostPolicy, Sessions, Throttle, check_token
from crowdwatch.web.console import CameraInfo, ConsoleState
from crowdwatch.web.editor import ConfigEditor, EditorError
from crowdwatch.web.events import console_route
from crowdwatch.web.heatmap import HeatmapPng, heatmap_answer, overlay_error
from crowdwatch.web.http import HttpServer, StreamSlots
from crowdwatch.web.liveness import camera_states
from crowdwatch.web.preview import BOUNDARY, PreviewHub

log = logging.getLogger("crowdwatch.web")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
PUBLIC_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
COOKIE = "crowdwatch_session"
MAX_BODY = 2 * 1024 * 1024
_CAMERA_ROUTE = re.compile(r"^/cameras/([A-Za-z0-9_.:-]{1,64})/(preview\.mjpg|snapshot\.jpg|"
                           r"frame\.jpg|heatmap\.png)$")
_STATIC = {"/": "live.html", "/editor": "editor.html", "/static/editor.js": "editor.js",
           "/static/live.js": "live.js", "/static/style.css": "style.css"}
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8"}
# same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on the page's
# own form posts, and the Origin check could not tell them from a sandboxed attacker's.
_HEADERS = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "same-origin"), ("X-Frame-Options", "DENY")]


class AccessGuard:
    """Checks the access token; no token configured means open (to allowed clients).

    Host names and origins are checked by `hosts` (web/access.py), failed guesses slowed by
    `throttle`, and login cookies expire (`sessions`)."""

    def __init__(self, token: str | None, allow_remote: bool = False,
                 hosts: Iterable[str] = (), throttle: Throttle | None = None,
                 sessions: Sessions | None = None) -> None:
        self.token = token or None
        self.allow_remote = allow_remote
        self.hosts = HostPolicy(hosts, allow_remote)
        self.throttle = throttle or Throttle()
        # The cookie holds an expiry signed with a digest of the token, not the token: a
        # leaked cookie jar or log line does not give away what to put in a header.
        self.sessions = sessions or (Sessions(self.token) if self.token else None)

    @classmethod
    def from_env(cls, variable: str | None = "CROWDWATCH_TOKEN",
                 allow_remote: bool = False, hosts: Iterable[str] = ()) -> AccessGuard:
        """Token from the named environment variable (never from the config file);
        CrowdwatchError for a blank one, or a short one with allow_remote."""
        token = os.environ.get(variable) if variable else None
        check_token(token, allow_remote, variable or "CROWDWATCH_TOKEN")
        return cls(token, allow_remote, hosts)

    def client_allowed(self, environ: dict[str, Any]) -> bool:
        if self.allow_remote:
            return True
        try:
            return ipaddress.ip_address(environ.get("REMOTE_ADDR", "")).is_loopback
        except ValueError:
            return False

    def token_ok(self, token: str) -> bool:
        """Constant time; a failed guess counts against the throttle."""
        ok = self.token is not None and hmac.compare_digest(token.encode(),
                                                            self.token.encode())
        if not ok:
            self.throttle.failed()
        return ok

    def authorized(self, environ: dict[str, Any]) -> bool:
        if self.token is None:
            return True
        scheme, _, credentials = environ.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
        if scheme.lower() == "bearer" and self.token_ok(credentials.strip()):
            return True
        assert self.sessions is not None
        for part in environ.get("HTTP_COOKIE", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and self.sessions.valid(value):
                return True
        return False

    def session_cookie(self, secure: bool) -> str:
        assert self.sessions is not None
        flags = "; Secure" if secure else ""
        return (f"{COOKIE}={self.sessions.issue()}; Path=/; Max-Age="
                f"{int(self.sessions.lifetime_s)}; HttpOnly; SameSite=Strict{flags}")


def static_text(name: str) -> bytes:
    """A file of the web/static package data."""
    return resources.files("crowdwatch").joinpath("web", "static", name).read_bytes()


def _respond(start_response: Callable[..., Any], status: str, body: bytes, content_type: str,
             extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                            *_HEADERS, *(extra or [])])
    return [body]


def _json(start_response: Callable[..., Any], status: str, data: Any) -> list[bytes]:
    return _respond(start_response, status, json.dumps(data).encode(), "application/json")


def _login_page(message: str = "") -> bytes:
    note = f"<p class=error>{html.escape(message)}</p>" if message else ""
    return (f"<!doctype html><html><head><meta charset=utf-8><title>crowdwatch login</title>"
            f"<link rel=stylesheet href=/static/style.css></head><body><h1>crowdwatch</h1>"
            f"{note}<form method=post action=/login><label>Access token "
            f"<input type=password name=token autocomplete=current-password autofocus>"
            f"</label> <button>Log in</button></form></body></html>").encode()


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        raise EditorError(413, {"errors": [{"kind": "request", "message": "body too large"}]})
    return environ["wsgi.input"].read(length) if length > 0 else b""


class WebUI:
    """The web routes; `handle` answers a request or returns None for paths it does not own."""

    def __init__(self, guard: AccessGuard, hub: PreviewHub | None = None,
                 editor: ConfigEditor | None = None, preview: bool = True,
                 live_page: bool = True, health: HealthState | None = None,
                 heatmap: HeatmapPng | None = None,
                 console: ConsoleState | None = None) -> None:
        self.guard = guard
        self.heatmap = heatmap  # draws heatmap.png; None: the heatmap is off
        self.hub = hub
        self.health = health  # live / stale / down per camera on the page
        # The live console's data (web/console.py); fed as a sink by the app.
        self.console = console if console is not None or hub is None else ConsoleState(
            {camera: CameraInfo() for camera in hub.cameras}, health=health)
        self.editor = editor
        self.preview = preview and hub is not None
        self.live_page = live_page and hub is not None
        self.streams = StreamSlots()

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        answer = self.handle(environ, start_response)
        if answer is None:
            return _respond(start_response, "404 Not Found", b"not found\n", "text/plain")
        return answer

    def handle(self, environ: dict[str, Any],
               start_response: Callable[..., Any]) -> Iterable[bytes] | None:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        if not self.guard.client_allowed(environ):
            return _respond(start_response, "403 Forbidden",
                            b"only this machine may connect (web.allow_remote is false)\n",
                            "text/plain")
        host = environ.get("HTTP_HOST")
        if host is not None and not self.guard.hosts.host_allowed(host):
            # DNS rebinding: a foreign name that resolves to this machine.
            return _respond(start_response, "421 Misdirected Request",
                            b"unknown host name; add it to web.hosts in the config\n",
                            "text/plain")
        if not self.guard.hosts.origin_allowed(environ):
            return _respond(start_response, "403 Forbidden",
                            b"cross-origin request refused\n", "text/plain")
        guessing = (path == "/login" and method == "POST") or "HTTP_AUTHORIZATION" in environ
        if self.guard.token is not None and guessing:
            wait = self.guard.throttle.blocked()
            if wait > 0:
                return _respond(start_response, "429 Too Many Requests",
                                b"too many wrong tokens; wait and try again\n", "text/plain",
                                [("Retry-After", str(math.ceil(wait)))])
        if path == "/login" and self.guard.token is not None:
            return self._login(environ, start_response, method)
        if path == "/static/style.css":  # the login page needs it before login
            return self._static(start_response, path)
        if not self.guard.authorized(environ):
            wants_html = "text/html" in environ.get("HTTP_ACCEPT", "")
            body = _login_page() if wants_html else b"unauthorized: send the access token\n"
            return _respond(start_response, "401 Unauthorized", body,
                            "text/html; charset=utf-8" if wants_html else "text/plain",
                            [("WWW-Authenticate", 'Bearer realm="crowdwatch"')])
        if path == "/logout" and method == "POST":
            if self.guard.sessions is not None:
                self.guard.sessions.end_all()  # one token, one user: every login cookie ends
            start_response("303 See Other", [
                ("Location", "/login" if self.guard.token else "/"), ("Content-Length", "0"),
                ("Set-Cookie", f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"),
                *_HEADERS])
            return [b""]
        if path == "/" and not self.live_page and self.editor is not None:
            start_response("303 See Other", [("Location", "/editor"), ("Content-Length", "0")])
            return [b""]
        if path in ("/", "/static/live.js", "/api/status", "/api/console",
                    "/api/events") and not self.live_page:
            return None
        if path in ("/editor", "/static/editor.js", "/api/config") and self.editor is None:
            return None
        if path in _STATIC and method == "GET":
            return self._static(start_response, path)
        if path == "/api/status" and method == "GET":
            assert self.hub is not None
            status = {**camera_states(self.hub.status(), self.health),
                      "preview": self.preview, "editor": self.editor is not None}
            return _json(start_response, "200 OK", status)
        if path in ("/api/console", "/api/events") and method == "GET":
            assert self.console is not None
            page = {"preview": self.preview, "editor": self.editor is not None,
                    "heatmap": self.heatmap is not None}
            return console_route(self.console, self.streams, environ, start_response, page,
                                 _HEADERS)
        if path == "/api/config":
            return self._config(environ, start_response, method)
        match = _CAMERA_ROUTE.match(path)
        if match and method == "GET":
            return self._camera(start_response, match.group(1), match.group(2), environ)
        return None

    def _static(self, start_response: Callable[..., Any], path: str) -> list[bytes]:
        name = _STATIC[path]
        return _respond(start_response, "200 OK", static_text(name), _TYPES[Path(name).suffix])

    def _login(self, environ: dict[str, Any], start_response: Callable[..., Any],
               method: str) -> list[bytes]:
        if method != "POST":
            return _respond(start_response, "200 OK", _login_page(), "text/html; charset=utf-8")
        # The token travels in the POST body, never in a URL that proxies or logs keep.
        form = parse_qs(_read_body(environ).decode("utf-8", "replace"))
        if not self.guard.token_ok((form.get("token") or [""])[0]):
            return _respond(start_response, "401 Unauthorized", _login_page("wrong token"),
                            "text/html; charset=utf-8")
        secure = environ.get("wsgi.url_scheme") == "https"
        start_response("303 See Other", [("Location", "/"), ("Content-Length", "0"),
                                          ("Set-Cookie", self.guard.session_cookie(secure)),
                                          *_HEADERS])
        return [b""]

    def _camera(self, start_response: Callable[..., Any], camera: str, what: str,
                environ: dict[str, Any]) -> Iterable[bytes] | None:
        if what == "frame.jpg":
            if self.editor is None:
                return None
            image = self.editor.frame_for(camera)
            if image is None:
                return _respond(start_response, "404 Not Found", b"no frame yet\n",
                                "text/plain")
            _, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
            return _respond(start_response, "200 OK", data.tobytes(), "image/jpeg")
        if what == "heatmap.png" and self.live_page and self.hub is not None:
            return _respond(start_response, *heatmap_answer(self.heatmap, self.hub, self.preview,
                                                            camera, environ))
        if not self.preview or self.hub is None:
            return None
        if camera not in self.hub.cameras:
            return _respond(start_response, "404 Not Found", b"no such camera\n", "text/plain")
        overlay, refused = overlay_error(self.hub, environ)
        if refused is not None:
            return _respond(start_response, *refused)
        if what == "snapshot.jpg":
            encoded = self.hub.jpeg(camera, overlay)
            if encoded is None:
                return _respond(start_response, "503 Service Unavailable", b"no frame yet\n",
                                "text/plain", [("Retry-After", "1")])
            return _respond(start_response, "200 OK", encoded[1], "image/jpeg")
        stream = self.streams.take(self.hub.stream(camera, overlay))
        if stream is None:  # each stream holds a server worker: keep some for the rest
            return _respond(start_response, "503 Service Unavailable",
                            b"too many previews open; close one or use snapshot.jpg\n",
                            "text/plain", [("Retry-After", "5")])
        start_response("200 OK", [
            ("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}"), *_HEADERS])
        return stream

    def _config(self, environ: dict[str, Any], start_response: Callable[..., Any],
                method: str) -> list[bytes]:
        assert self.editor is not None
        try:
            if method == "GET":
                return _json(start_response, "200 OK", self.editor.view())
            if method != "POST":
                return _respond(start_response, "405 Method Not Allowed", b"", "text/plain",
                                [("Allow", "GET, POST")])
            # JSON only: a cross-site form cannot send it without a CORS preflight.
            if not environ.get("CONTENT_TYPE", "").startswith("application/json"):
                return _respond(start_response, "415 Unsupported Media Type",
                                b"send application/json\n", "text/plain")
            try:
                payload = json.loads(_read_body(environ) or b"null")
            except (ValueError, RecursionError):  # RecursionError: 100k nested brackets
                raise EditorError(400, {"errors": [{"kind": "request",
                                                    "message": "invalid JSON"}]}) from None
            saved = self.editor.save(payload)
            log.info("zone editor saved %s", saved["path"])
            return _json(start_response, "200 OK", saved)
        except EditorError as error:
            reasons = {400: "Bad Request", 409: "Conflict", 413: "Content Too Large",
                       422: "Unprocessable Content"}
            return _json(start_response, f"{error.status} {reasons.get(error.status, 'Error')}",
                         error.body)


def make_web_app(base: WSGIApp, web: WebUI) -> WSGIApp:
    """Dispatch: /metrics /healthz /readyz to the existing app, everything else to `web`."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") in PUBLIC_PATHS:
            return base(environ, start_response)
        return web(environ, start_response)

    return app


def web_ui_from_config(config: WebConfig, hub: PreviewHub | None,
                       editor: ConfigEditor | None,
                       health: HealthState | None = None,
                       heatmap: HeatmapPng | None = None,
                       console: ConsoleState | None = None) -> WebUI:
    """The WebUI the config asks for (token from the environment variable it names)."""
    guard = AccessGuard.from_env(config.token_env, config.allow_remote, config.hosts)
    if guard.token is None:
        log.warning("the web page runs without an access token: any program on this machine "
                    "can read it%s; set $%s", " and save zones" if config.editor else "",
                    config.token_env or "CROWDWATCH_TOKEN")
    return WebUI(guard, hub if config.enabled else None,
                 editor if config.enabled and config.editor else None,
                 preview=config.preview.enabled, health=health, heatmap=heatmap,
                 console=console)


class WebServer:
    """A WSGI app on a background thread (tests and `crowdwatch zones`)."""

    def __init__(self, app: WSGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self._http = HttpServer(app, host, port, name="web")
        self.host = host
        self.port = self._http.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        self._http.close()


def grab_frame(source: str | int, attempts: int = 50) -> Any:
    """One decoded frame of a video file, device or stream (OpenCV), or SourceError."""
    if isinstance(source, str) and source.isdigit():
        source = int(source)
    capture = cv2.VideoCapture(source)
    try:
        for _ in range(attempts):  # a live stream may need a few reads before a keyframe
            ok, image = capture.read()
            if ok and image is not None:
                return image
    finally:
        capture.release()
    # No URL in the message: it may hold a password.
    raise SourceError("cannot read a frame from --source; check the file path, device index "
                      "or stream URL")


def editor_for_source(source: str | int, config_path: str | Path,
                      camera: str | None = None) -> ConfigEditor:
    """An editor for the config file, showing one frame of `source` for its camera.

    The camera is `camera`, else the config's camera with this source, else the first one;
    a config file that does not exist yet starts with one camera "cam0" on the source.
    """
    image = grab_frame(source)
    path = Path(config_path)
    default = {"cameras": [{"id": camera or "cam0", "source": source, "zones": []}]}
    editor = ConfigEditor(path, lambda _camera: None, default=default)
    if camera is None:
        cameras = editor.view()["cameras"]
        doc_sources = {}
        if path.exists():
            doc = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
            doc_sources = {str(c.get("id")): c.get("source") for c in doc.get("cameras", [])}
        matching = [c["id"] for c in cameras if str(doc_sources.get(c["id"])) == str(source)]
        camera = matching[0] if matching else cameras[0]["id"]
    chosen = camera
    editor.frame_for = lambda cam: image if cam == chosen else None
    return editor


def serve_editor(source: str | int, config_path: str | Path, *, camera: str | None = None,
                 host: str = "127.0.0.1", port: int = 8090,
                 token_env: str | None = "CROWDWATCH_TOKEN") -> WebServer:
    """Serve only the zone editor (no pipeline) for `crowdwatch zones`; close() to stop."""
    editor = editor_for_source(source, config_path, camera)
    guard = AccessGuard.from_env(token_env, allow_remote=False)
    if guard.token is None:
        log.warning("the zone editor runs without an access token: any program on this "
                    "machine can save zones; set $%s", token_env or "CROWDWATCH_TOKEN")
    server = WebServer(WebUI(guard, editor=editor), host, port)
    log.info("zone editor on %s/editor", server.url)
    return server
