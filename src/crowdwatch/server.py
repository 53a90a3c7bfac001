"""The HTTP endpoint: /metrics for Prometheus, /healthz and /readyz for orchestrators.

It serves numbers and states only, never images.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

STALE_AFTER_S = 30.0


class HealthState:
    """Per-camera heartbeat and source state, fed by the camera loops."""

    def __init__(self, cameras: Iterable[str], stale_after_s: float = STALE_AFTER_S) -> None:
        self.stale_after_s = stale_after_s
        self._lock = threading.Lock()
        self._beats: dict[str, float | None] = dict.fromkeys(cameras)
        self._up: dict[str, bool] = dict.fromkeys(self._beats, False)
        self._finished: set[str] = set()

    def beat(self, camera: str, up: bool) -> None:
        """The camera's loop turned; `up` tells whether its source delivers frames."""
        with self._lock:
            self._beats[camera] = time.monotonic()
            self._up[camera] = up

    def finish(self, camera: str) -> None:
        """The camera's file source ended normally: no longer expected to beat."""
        with self._lock:
            self._finished.add(camera)

    def cameras(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            out = {}
            for camera, beat in self._beats.items():
                if camera in self._finished:
                    state = "finished"
                elif beat is None:
                    state = "starting"
                elif now - beat > self.stale_after_s:
                    state = "stalled"
                else:
                    state = "up" if self._up[camera] else "down"
                age = None if beat is None else round(now - beat, 3)
                out[camera] = {"state": state, "seconds_since_loop": age}
            return out

    def alive(self) -> bool:
        """No camera loop is stuck (a down source still turns its loop)."""
        return all(c["state"] != "stalled" for c in self.cameras().values())

    def ready(self) -> bool:
        """Every camera that is still running delivers frames."""
        return all(c["state"] in ("up", "finished") for c in self.cameras().values())


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def make_app(registry: CollectorRegistry, health: HealthState) -> Callable[..., Iterable[bytes]]:
    """A WSGI app: /healthz, /readyz, and Prometheus' exposition on every other path."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in ("/healthz", "/readyz"):
            ok = health.alive() if path == "/healthz" else health.ready()
            body = json.dumps({"ok": ok, "cameras": health.cameras()}).encode()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json"),
                                    ("Content-Length", str(len(body)))])
            return [body]
        return metrics_app(environ, start_response)

    return app


class Server:
    """The endpoint on a background thread."""

    def __init__(self, registry: CollectorRegistry, health: HealthState, host: str,
                 port: int) -> None:
        self._httpd = make_server(host, port, make_app(registry, health), _ThreadingServer,
                                  handler_class=_QuietHandler)
        self.port = int(self._httpd.server_port)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="http",
                                         daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
