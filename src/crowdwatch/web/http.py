"""The one HTTP listener: a WSGI app served by waitress with bounded resources.

waitress parses HTTP, buffers request bodies, and enforces the limits below; crowdwatch only
chooses them. Every response may stream (waitress flushes each chunk as it comes): MJPEG
previews do, and server-sent events can. A streaming response holds one worker thread while
it lasts, so StreamSlots caps them below the thread count: /metrics, pages and the API
always keep workers of their own.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

log = logging.getLogger("crowdwatch.web")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one client, or many, may cost the process."""

    threads: int = 12          # workers answering requests
    streams: int = 8           # of them, at most this many held by streaming responses
    connections: int = 512     # open sockets; beyond it new ones wait in the backlog
    backlog: int = 1024        # listen queue (the kernel may cap it at somaxconn)
    header_bytes: int = 64 * 1024      # request line plus all headers, together
    body_bytes: int = 2 * 1024 * 1024  # request body (413 beyond)
    idle_s: int = 20           # a socket without a request this long is closed
    outbuf_bytes: int = 2 * 1024 * 1024  # unsent response bytes before a writer waits


class HttpServer:
    """`app` on host:port, served by waitress on a background thread; close() to stop."""

    def __init__(self, app: WSGIApp, host: str, port: int,
                 limits: HttpLimits = HttpLimits(), name: str = "http") -> None:
        self._map: dict[int, Any] = {}
        self._stop = threading.Event()
        self._server = create_server(
            app, map=self._map, host=host, port=port, threads=limits.threads,
            connection_limit=limits.connections, backlog=limits.backlog,
            max_request_header_size=limits.header_bytes,
            max_request_body_size=limits.body_bytes, channel_timeout=limits.idle_s,
            cleanup_interval=max(1, limits.idle_s // 4),
            outbuf_high_watermark=limits.outbuf_bytes,
            expose_tracebacks=False, ident="crowdwatch", clear_untrusted_proxy_headers=True,
            asyncore_use_poll=True)
        self.host = host
        self.port = int(self._server.effective_port)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            wasyncore.loop(timeout=0.5, map=self._map, use_poll=True, count=1)
        # The listening socket and the clients first; the trigger only once the workers
        # stopped: a streaming response that ends at shutdown (an event stream, a preview)
        # still pulls it when its worker finishes, and a closed trigger made that an OSError
        # traceback. (The server's own close() would close the trigger with the socket.)
        trigger = self._server.trigger
        for channel in list(self._map.values()):
            with contextlib.suppress(OSError):
                if channel is self._server:
                    wasyncore.dispatcher.close(channel)
                elif channel is not trigger:
                    channel.close()
        self._server.task_dispatcher.shutdown(timeout=2)
        with contextlib.suppress(OSError):
            trigger.close()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._server.pull_trigger()
        self._thread.join(5)


class StreamSlots:
    """At most `size` streaming responses at once; the rest are told to come back later."""

    def __init__(self, size: int = HttpLimits().streams) -> None:
        self.size = size
        self._free = threading.BoundedSemaphore(size)

    def take(self, chunks: Iterator[bytes]) -> Iterator[bytes] | None:
        """`chunks` holding a slot until it is closed (the server closes every response);
        None when no slot is free."""
        if not self._free.acquire(blocking=False):
            _close(chunks)
            return None
        return _Held(chunks, self._free.release)


class _Held:
    """An iterator that gives its slot back once, when closed."""

    def __init__(self, chunks: Iterator[bytes], release: Callable[[], None]) -> None:
        self._chunks = chunks
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> _Held:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            try:
                _close(self._chunks)
            finally:
                release()


def _close(chunks: object) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()
