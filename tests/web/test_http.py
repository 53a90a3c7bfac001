"""The HTTP listener's limits: header size, body size, idle sockets, backlog, stream slots.

Each test talks raw HTTP over loopback, so what a hostile client can send is what is sent.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Gauge

from crowdwatch.health import HealthState
from crowdwatch.types import FrameResult
from crowdwatch.web.http import HttpLimits, HttpServer, StreamSlots
from crowdwatch.web.preview import PreviewHub
from crowdwatch.web.server import Server
from crowdwatch.web.ui import AccessGuard, WebUI


def _exchange(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        answer = b""
        try:
            sock.sendall(request)
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:  # refused while the request was still being sent
            pass
        return answer


def _status(answer: bytes) -> int:
    """The status code; 0 for a connection reset before any answer."""
    return int(answer.split(b" ", 2)[1]) if answer else 0


@pytest.fixture
def metrics_port() -> Iterator[int]:
    registry = CollectorRegistry()
    Gauge("crowdwatch_test_value", "a test gauge", registry=registry).set(3)
    server = Server(HealthState(["a"]), "127.0.0.1", 0, registry)
    yield server.port
    server.close()


def test_metrics_answer(metrics_port: int) -> None:
    answer = _exchange(metrics_port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       b"Connection: close\r\n\r\n")
    assert _status(answer) == 200 and b"crowdwatch_test_value 3.0" in answer


def test_headers_past_the_total_limit_are_refused(metrics_port: int) -> None:
    # 99 headers of 65 KB were accepted and kept in memory; the total is now capped.
    big = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(80))
    answer = _exchange(metrics_port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n" + big
                       + b"Connection: close\r\n\r\n")
    assert _status(answer) in (431, 0)
    assert len(big) > HttpLimits().header_bytes
    assert _status(_exchange(metrics_port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Connection: close\r\n\r\n")) == 200


def test_a_body_past_the_limit_is_refused_before_the_app_reads_it(metrics_port: int) -> None:
    size = HttpLimits().body_bytes + 1
    answer = _exchange(metrics_port, b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       b"Content-Length: %d\r\nConnection: close\r\n\r\n" % size)
    assert _status(answer) in (413, 0)


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def test_an_idle_socket_is_closed() -> None:
    server = HttpServer(_app, "127.0.0.1", 0, HttpLimits(idle_s=1))
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            started = time.monotonic()
            assert sock.recv(1) == b""  # closed by the server, not by the timeout
            assert time.monotonic() - started < 29
    finally:
        server.close()


def test_the_backlog_takes_many_connections_at_once() -> None:
    # A backlog of 5 made every 6th connect wait for a SYN retry (1 s).
    server = HttpServer(_app, "127.0.0.1", 0)
    sockets = []
    try:
        for _ in range(200):
            sock = socket.socket()
            sock.setblocking(False)
            assert sock.connect_ex(("127.0.0.1", server.port)) in (0, 115)  # EINPROGRESS
            sockets.append(sock)
        assert HttpLimits().backlog >= 128
        answer = _exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.endswith(b"ok")
    finally:
        for sock in sockets:
            sock.close()
        server.close()


def test_stream_slots_are_given_back_when_closed() -> None:
    slots = StreamSlots(1)
    first = slots.take(iter([b"a"]))
    assert first is not None and slots.take(iter([b"b"])) is None
    first.close()  # type: ignore[attr-defined]
    assert slots.take(iter([b"c"])) is not None


def test_previews_past_the_cap_get_503_and_metrics_keep_answering() -> None:
    hub = PreviewHub(["cam0"], fps=30)
    hub.offer("cam0", np.zeros((48, 64, 3), np.uint8), FrameResult("cam0", 0, 0.0, 0.0, 1, 1))
    registry = CollectorRegistry()
    Gauge("crowdwatch_test_value", "a test gauge", registry=registry).set(3)
    web = WebUI(AccessGuard(None), hub)
    server = Server(HealthState(["cam0"]), "127.0.0.1", 0, registry, web)
    streams = []
    try:
        for _ in range(web.streams.size):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"GET /cameras/cam0/preview.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(12) == b"HTTP/1.1 200"
            streams.append(sock)
        over = _exchange(server.port, b"GET /cameras/cam0/preview.mjpg HTTP/1.1\r\n"
                         b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert _status(over) == 503
        answers: list[int] = []
        threads = [threading.Thread(target=lambda: answers.append(_status(_exchange(
            server.port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Connection: close\r\n\r\n")))) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert answers == [200] * 4
    finally:
        for sock in streams:
            sock.close()
        hub.close()
        server.close()



def test_a_stream_ending_at_shutdown_logs_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """An event stream (or preview) that ends while the server closes finishes quietly: its
    worker wakes the server through a pipe, which must stay open until the workers stopped.
    The worst order is forced: the stream ends just after the pipe was closed."""
    end = threading.Event()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        while not end.is_set():
            yield b"data: x\n\n"
            time.sleep(0.02)

    server = HttpServer(app, "127.0.0.1", 0)
    trigger = server._server.trigger  # waitress' wake-up pipe
    close_pipe = trigger.close

    def close_then_end_the_stream() -> None:
        close_pipe()
        end.set()  # the stream ends now, its connection still open if closed after this
        time.sleep(0.3)

    trigger.close = close_then_end_the_stream
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        with caplog.at_level("ERROR", logger="waitress"):
            server.close()
    finally:
        sock.close()
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
