"""/metrics rendered once per scrape burst: single flight, and the bytes kept for MAX_AGE_S.

Rendering the exposition (prometheus_client) is Python work under the GIL: about 2 ms of CPU
for one camera, but while counting keeps both cores busy each render also waits for the
interpreter behind the camera threads. /metrics needs no login, so without a bound a flood of
scrapes would take that CPU from counting (every worker rendering at once). Here one request
renders while the others wait for it, and every request within MAX_AGE_S of a render is
answered with its bytes: values are never older than that (docs/RELIABILITY.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app

# Seconds a rendered exposition is served again. Prometheus scrapes every 15 s or so: one
# scraper always gets fresh values; two scrapers (an HA pair), a person's curl or a flood
# within half a second share one render.
MAX_AGE_S = 0.5
# Distinct requests kept (Accept, Accept-Encoding, query): a handful in practice; bounded
# because the headers come from clients.
MAX_VARIANTS = 8

_Response = tuple[float, str, list[tuple[str, str]], bytes]


class CachedExposition:
    """A WSGI app serving `registry` like prometheus_client's, rendering at most once per
    `max_age_s` for each kind of request (format, compression, name filter)."""

    def __init__(self, registry: CollectorRegistry, max_age_s: float = MAX_AGE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._render_app = make_wsgi_app(registry)
        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()  # one render at a time: the single flight
        self._responses: dict[tuple[str, ...], _Response] = {}
        self.renders = 0  # renders so far (tests, benchmarks)

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        key = tuple(str(environ.get(name, "")) for name in (
            "REQUEST_METHOD", "HTTP_ACCEPT", "HTTP_ACCEPT_ENCODING", "QUERY_STRING"))
        key += (str(environ.get("PATH_INFO") == "/favicon.ico"),)
        response = self._fresh(key)
        if response is None:
            with self._lock:
                # Whoever waited here while another request rendered takes its bytes.
                response = self._fresh(key) or self._render(key, environ)
        _at, status, headers, body = response
        start_response(status, headers)
        return [body]

    def _fresh(self, key: tuple[str, ...]) -> _Response | None:
        response = self._responses.get(key)
        if response is not None and self._clock() - response[0] < self._max_age_s:
            return response
        return None

    def _render(self, key: tuple[str, ...], environ: dict[str, Any]) -> _Response:
        started: list[Any] = []

        def keep(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
            started[:] = [status, headers]

        body = b"".join(self._render_app(environ, keep))
        self.renders += 1
        response: _Response = (self._clock(), started[0], list(started[1]), body)
        if key not in self._responses and len(self._responses) >= MAX_VARIANTS:
            self._responses.clear()  # odd clients' variants; the common ones come back
        self._responses[key] = response
        return response
