"""Why a camera URL does not open, asked of a fake RTSP/HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import threading
from collections.abc import Iterator

import pytest

from crowdwatch.config import CameraConfig
from crowdwatch.sources.diagnose import diagnose

USER, PASSWORD, REALM, NONCE = "admin", "s3cret", "cam", "abc123"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def answer(request: str) -> str:
    """An RTSP/HTTP server with one stream, /live, behind Digest auth (or Basic for HTTP)."""
    first, *lines = request.split("\r\n")
    method, uri, proto = first.split(" ")
    kind = proto.split("/")[0]
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}
    auth = headers.get("authorization", "")
    ok = False
    if auth.startswith("Digest "):
        p = dict(re.findall(r'(\w+)="?([^",]*)"?', auth[7:]))
        ha1, ha2 = md5(f"{USER}:{REALM}:{PASSWORD}"), md5(f"{method}:{p['uri']}")
        want = md5(f"{ha1}:{NONCE}:{ha2}")
        ok = p.get("username") == USER and p.get("response") == want
    challenge = f'WWW-Authenticate: Digest realm="{REALM}", nonce="{NONCE}"'
    if not ok:
        return f"{kind}/1.0 401 Unauthorized\r\nCSeq: 1\r\n{challenge}\r\n\r\n"
    if not uri.endswith("/live"):
        return f"{kind}/1.0 404 Not Found\r\nCSeq: 1\r\n\r\n"
    return f"{kind}/1.0 200 OK\r\nCSeq: 1\r\n\r\n"


@pytest.fixture
def server() -> Iterator[int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    if data:
                        conn.sendall(answer(data.decode()).encode())
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
@pytest.mark.parametrize(
    ("userinfo", "path", "expected"),
    [
        ("admin:wrong@", "/live", "wrong credentials ({S} 401 Unauthorized); check the user and password"),
        ("", "/live", "the camera needs credentials ({S} 401 Unauthorized); add user:password and an at sign before the host"),
        ("admin:s3cret@", "/other", "stream not found ({S} 404 Not Found); check the path"),
        ("admin:s3cret@", "/live", "the server answers ({S} 200 OK) but OpenCV/FFmpeg could not"),
    ],
)
def test_server_answers_are_classified(server: int, scheme: str, userinfo: str, path: str,
                                       expected: str) -> None:
    reason = diagnose(f"{scheme}://{userinfo}127.0.0.1:{server}{path}", 2.0)
    assert reason.startswith(expected.format(S=scheme.upper())), reason


def test_refused_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens
    assert diagnose(f"rtsp://127.0.0.1:{port}/live", 2.0).startswith(
        f"connection refused by 127.0.0.1:{port}")


def test_silent_server_is_a_timeout() -> None:
    with socket.socket() as listener:  # accepts (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        reason = diagnose(f"rtsp://127.0.0.1:{port}/live", 0.3)
    assert reason.startswith(f"timeout: 127.0.0.1:{port} accepts connections but does not "
                             "answer within 0.3s"), reason


def test_live_source_logs_camera_id_redacted_url_and_reason(
        server: int, caplog: pytest.LogCaptureFixture) -> None:
    from crowdwatch.sources import open_source
    from crowdwatch.sources.live import Backoff

    class Closed:
        def isOpened(self) -> bool:
            return False

        def release(self) -> None:
            pass

    def factory(target: str | int) -> Closed:
        return Closed()

    factory.diagnose = diagnose  # type: ignore[attr-defined]
    url = f"rtsp://admin:wrong@127.0.0.1:{server}/live"
    camera = CameraConfig(id="gate", source=url, read_timeout_s=1.0)
    with caplog.at_level(logging.WARNING, logger="crowdwatch"):
        source = open_source(camera, factory, backoff=Backoff(0.05, 0.05))
        try:
            deadline = threading.Event()
            for _ in range(100):
                if any("retrying" in r.getMessage() for r in caplog.records):
                    break
                deadline.wait(0.05)
        finally:
            source.close()
    line = next(r.getMessage() for r in caplog.records if "retrying" in r.getMessage())
    assert line.startswith(f"camera gate, rtsp://***@127.0.0.1:{server}/live: cannot open: "
                           "wrong credentials (RTSP 401 Unauthorized)"), line
    assert "wrong@" not in caplog.text
