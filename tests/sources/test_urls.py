"""Credential redaction: a password in a camera source never reaches any output.

Property tests: the password is drawn by hypothesis (with '@', ':' and spaces), the URL in
every form an operator may type (one slash, none, upper case), and every path that prints a
source is run in-process: redact() on a line, the CLI's error line (`run --source`), the
live source's retry log, and the error of a URL check.
"""

from __future__ import annotations

import logging
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from crowdwatch.cli import app, fail
from crowdwatch.config import CameraConfig
from crowdwatch.errors import SourceError
from crowdwatch.sources import check_url, redact, source_kind
from crowdwatch.sources.live import Backoff, LiveSource

# RFC 3986 userinfo characters plus the URL-special ones operators do put in passwords
# unencoded: '@', space, '/', '?', '#', '[' and ']'.
PASSWORD_CHARS = string.ascii_letters + string.digits + "!$%&'()*+,;=:@ -._~/?#[]"
passwords = st.text(PASSWORD_CHARS, min_size=6, max_size=24).map(lambda p: f"Pw{p}9")
schemes = st.sampled_from(["rtsp", "RTSP", "rtsps", "Rtsp", "http", "https", "rtmp"])
separators = st.sampled_from(["://", ":/", ":", ":///"])
users = st.sampled_from(["viewer", "admin", "", "u.ser-1"])
tails = st.sampled_from(["cam.local/stream", "10.0.0.5:554/h264?x=1", "cam", "[::1]:8554/a"])


def source_with(scheme: str, sep: str, user: str, password: str, tail: str) -> str:
    return f"{scheme}{sep}{user}:{password}@{tail}"


@pytest.mark.parametrize(("text", "expected"), [
    ("rtsp:/viewer:s3cret@cam.local/stream", "rtsp:/***@cam.local/stream"),
    ("rtsp:viewer:s3cret@cam.local/stream", "rtsp:***@cam.local/stream"),
    ("RTSP://viewer:s3cret@cam.local", "RTSP://***@cam.local"),
    ("rtsp:///viewer:s3cret@cam.local", "rtsp:///***@cam.local"),
    ("rtsp://viewer:s3 cr@t@cam.local/x", "rtsp://***@cam.local/x"),
    ("cam: rtsp://a:b@h/x failed", "cam: rtsp://***@h/x failed"),
    # Text that only looks like a scheme is left alone.
    ("error: mail ops@example.com", "error: mail ops@example.com"),
    # An '@' after the host hides everything before it: the password may hold '/' or '?'.
    ("rtsp://host/x?mail=a@b", "rtsp://***@b"),
    ("rtsp://user:123/PWEe5@127.0.0.1:8555/x", "rtsp://***@127.0.0.1:8555/x"),
    ("cannot open rtsp://admin:Hunter2Secret#x@127.0.0.1:8554/stream: refused",
     "cannot open rtsp://***@127.0.0.1:8554/stream: refused"),
    ("rtsp://a:p?w@h/x", "rtsp://***@h/x"),
])
def test_redact_forms(text: str, expected: str) -> None:
    assert redact(text) == expected


@settings(max_examples=300, deadline=None)
@given(schemes, separators, users, passwords, tails,
       st.sampled_from(["{}", "cannot open {}", "{}: read failed", "'{}' (errno 5)"]))
def test_redact_hides_the_password_in_any_line(scheme: str, sep: str, user: str,
                                               password: str, tail: str, line: str) -> None:
    source = source_with(scheme, sep, user, password, tail)
    shown = redact(line.format(source))
    assert password not in shown
    assert tail.split("/")[0] in shown  # the host stays, to say which camera failed


@settings(max_examples=200, deadline=None)
@given(schemes, separators, users, passwords, tails)
def test_source_checks_never_show_the_password(scheme: str, sep: str, user: str,
                                               password: str, tail: str) -> None:
    source = source_with(scheme, sep, user, password, tail)
    try:
        source_kind(source)
        check_url(source)
    except SourceError as error:
        # Lower case too: a parser's message may quote the password changed.
        assert password.lower() not in str(error).lower()


@pytest.mark.parametrize("source", [
    "rtsp://admin:Hunter2Secret#x@127.0.0.1:8554/stream",
    "rtsp://admin:Hunter2Secret?x@127.0.0.1:8554/stream",
    "rtsp://admin:Hunter2Secret/x@127.0.0.1:8554/stream",
    "rtsp://user:123/PWEe5@127.0.0.1:8555/x",  # parses as host 'user', port 123
])
def test_an_unencoded_special_character_in_the_password_fails_without_showing_it(
        source: str) -> None:
    with pytest.raises(SourceError) as error:
        source_kind(source)
    message = str(error.value)
    assert "malformed URL" in message and "percent-encode" in message
    assert "127.0.0.1" in message
    for part in ("hunter2secret", "pwee5"):
        assert part not in message.lower()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schemes, st.sampled_from([":/", ":", "://"]), users, passwords)
def test_cli_error_line_and_logs_never_show_the_password(
        caplog: pytest.LogCaptureFixture, model_path: Path, scheme: str, sep: str, user: str,
        password: str) -> None:
    # A malformed URL (bad port, or a broken scheme) fails at start-up with one line.
    source = source_with(scheme, sep, user, password, "cam.local:0/stream")
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        result = CliRunner().invoke(app, ["run", "--source", source, "--model", str(model_path)])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("crowdwatch: error: ")
    assert "malformed URL" in result.output
    everything = result.output + "\n".join(r.getMessage() for r in caplog.records)
    assert password not in everything


@pytest.mark.parametrize("message", [
    "cannot open rtsp://viewer:s3cret@cam.local/x",
    "rtsp:/viewer:s3cret@cam.local/x: no such file",
])
def test_the_cli_error_line_is_redacted_whatever_raised(
        capsys: pytest.CaptureFixture[str], message: str) -> None:
    # Errors from libraries quote URLs unredacted; fail() is the last line of defence.
    assert fail(message).exit_code == 1
    err = capsys.readouterr().err
    assert err.startswith("crowdwatch: error: ") and "cam.local/x" in err
    assert "s3cret" not in err


class RaisingCapture:
    """A capture factory whose errors quote the URL, as OpenCV and FFmpeg messages do."""

    def __init__(self, url: str) -> None:
        raise RuntimeError(f"could not open {url}: connection refused")


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schemes, separators, users, passwords)
def test_live_source_retry_log_never_shows_the_password(
        caplog: pytest.LogCaptureFixture, scheme: str, sep: str, user: str,
        password: str) -> None:
    source = source_with(scheme, sep, user, password, "cam.local/stream")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="crowdwatch.sources"):
        live = LiveSource(source, "gate", CameraConfig(id="gate", source=0), RaisingCapture,
                          Backoff(base=0.001, cap=0.001))
        try:
            assert live.read(0.05) is None
        finally:
            live.close()
    messages = [r.getMessage() for r in caplog.records]
    assert any("could not open" in m for m in messages)
    assert all(password not in m for m in messages)
