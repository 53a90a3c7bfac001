"""The HTTP endpoint: /metrics for Prometheus, /healthz and /readyz for orchestrators.

Alone it serves numbers and states only, never images. When the config turns the web page
on, the routes of web/ui.py (live page, previews, editor, behind the access token) answer
every other path; /metrics, /healthz and /readyz stay open.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry

from crowdwatch.health import HealthState
from crowdwatch.web.exposition import CachedExposition
from crowdwatch.web.http import HttpServer


def make_app(health: HealthState,
             registry: CollectorRegistry | None = None) -> Callable[..., Iterable[bytes]]:
    """A WSGI app: /healthz, /readyz, and Prometheus' exposition (if given a registry) on
    every other path, rendered once per scrape burst (web/exposition.py)."""
    metrics_app = CachedExposition(registry) if registry is not None else None

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in ("/healthz", "/readyz"):
            ok = health.alive() if path == "/healthz" else health.ready()
            body = json.dumps({"ok": ok, "cameras": health.cameras()}).encode()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json"),
                                    ("Content-Length", str(len(body)))])
            return [body]
        if metrics_app is not None:
            return metrics_app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return app


class Server:
    """The endpoint on a background thread (web/http.py: one listener with limits);
    `web` (web.ui.WebUI) adds the web page on the same listener."""

    def __init__(self, health: HealthState, host: str, port: int,
                 registry: CollectorRegistry | None = None,
                 web: Callable[..., Iterable[bytes]] | None = None) -> None:
        app = make_app(health, registry)
        if web is not None:
            from crowdwatch.web.ui import make_web_app

            app = make_web_app(app, web)
        self._http = HttpServer(app, host, port)
        self.port = self._http.port

    def close(self) -> None:
        self._http.close()
