"""The live console over HTTP: /api/console (one JSON snapshot, the page's polling fallback)
and /api/events (server-sent events). Routed by web/ui.py behind its access checks.

An event stream holds one server worker while it lasts, so it takes a slot of the same
`StreamSlots` as the MJPEG previews (web/http.py): streams never starve /metrics or the
pages. Without a free slot the answer is 503 and the page polls instead. Streams end when
the console closes (shutdown); a heartbeat keeps an idle one visibly alive.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

from crowdwatch.web.console import ConsoleState
from crowdwatch.web.http import StreamSlots

# A changed state goes out within SEND_INTERVAL_S; an unchanged one is resent every
# HEARTBEAT_S (ages and live / stale move on); the page calls the connection lost after
# three missed heartbeats and reconnects.
SEND_INTERVAL_S = 0.5
HEARTBEAT_S = 2.0
RETRY_MS = 2000


def sse_stream(console: ConsoleState, page: dict[str, Any] | None = None,
               interval_s: float = SEND_INTERVAL_S,
               heartbeat_s: float = HEARTBEAT_S) -> Iterator[bytes]:
    """`state` events, each with the zones' trend points since the previous one; ends when
    the console closes (or when the client goes: the server closes the generator)."""
    yield f"retry: {RETRY_MS}\n\n".encode()  # EventSource reconnects after this long
    since: float | None = None
    sent_version, sent_at = -1, float("-inf")
    while not console.closed:
        started = time.monotonic()
        if console.version != sent_version or started - sent_at >= heartbeat_s:
            sent_version = console.version
            snapshot = {**console.snapshot(since), **(page or {})}
            since, sent_at = snapshot["now"], started
            yield b"event: state\ndata: " + json.dumps(snapshot).encode() + b"\n\n"
        console.wait_closed(max(0.0, interval_s - (time.monotonic() - started)))


def console_route(console: ConsoleState, streams: StreamSlots, environ: dict[str, Any],
                  start_response: Callable[..., Any], page: dict[str, Any],
                  headers: list[tuple[str, str]]) -> Iterable[bytes]:
    """Answer GET /api/console (?since=T: trend points after T only) or /api/events."""
    if environ.get("PATH_INFO") == "/api/console":
        since = (parse_qs(environ.get("QUERY_STRING", "")).get("since") or [""])[0]
        try:
            after: float | None = float(since) if since else None
        except ValueError:
            after = None
        if after is not None and not math.isfinite(after):
            after = None
        body = json.dumps({**console.snapshot(after), **page}).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body))), *headers])
        return [body]
    stream = streams.take(sse_stream(console, page))
    if stream is None:
        text = b"too many streams open; poll /api/console\n"
        start_response("503 Service Unavailable", [
            ("Content-Type", "text/plain"), ("Content-Length", str(len(text))),
            ("Retry-After", "5"), *headers])
        return [text]
    # no-transform, X-Accel-Buffering: proxies must pass each event on as it comes.
    start_response("200 OK", [("Content-Type", "text/event-stream"),
                              ("X-Accel-Buffering", "no"),
                              *[(k, "no-store, no-transform" if k == "Cache-Control" else v)
                                for k, v in headers]])
    return stream
