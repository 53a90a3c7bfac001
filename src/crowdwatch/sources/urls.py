"""Camera URLs: which schemes are live, checks that name the fault, credential redaction."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from crowdwatch.errors import SourceError

LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "http", "https"})
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# A scheme with '//' (any case), or a live scheme followed by any number of slashes:
# "rtsp:/user:pw@host" and "rtsp:user:pw@host" reach OpenCV and the logs too. The secret runs
# from there to the LAST '@' on the line: operators type passwords with '@', spaces, '/', '?'
# and '#' unencoded, so no character but a line break can be trusted to end them. A line
# with an '@' after a URL's host ("...?mail=a@b") hides more than the password: a
# redaction that errs, errs towards hiding.
_CREDENTIALS = re.compile(
    r"((?:\b[A-Za-z][A-Za-z0-9+.-]*:)?//+|\b(?:rtsps?|rtmp|https?):/*)[^\r\n]*@",
    re.IGNORECASE)
# How a camera URL looks, in words the credential redaction leaves alone: no '@' (redact()
# hides everything up to the last one on a line).
URL_FORM = ("expected e.g. rtsp://host:554/path, with user:password and an at sign before the "
            "host if needed")
# A live scheme followed by one slash or none: "rtsp:/cam/1", "rtsp:cam".
BROKEN_SCHEME = re.compile(r"^(rtsps?|rtmp|https?):(?!//)", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace the user:password part of every URL in text with ***."""
    return _CREDENTIALS.sub(r"\1***@", text)


def is_url(source: str) -> bool:
    return SCHEME.match(source) is not None


def _shown(source: str) -> str:
    """The source with everything up to its last '@' hidden: the password may contain any
    character, so this is worked out before, and without, any parsing."""
    scheme, sep, rest = source.partition("://")
    if not sep:
        return redact(source)
    return f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else source


def _port_problem(source: str) -> str:
    """Why the port did not parse, judged from the text after the last '@' only (what comes
    before it may be the password)."""
    host_port = source.partition("://")[2].rpartition("@")[2].split("/")[0]
    port = host_port.rpartition("]")[2].rpartition(":")[2] if ":" in host_port else ""
    if port.isdigit() and int(port) > 65535:
        return "port out of range: it must be 1-65535"
    if port and "@" not in source:
        return "port could not be cast to integer: give a number from 1 to 65535"
    return ("the port is not a number from 1 to 65535, or the password holds '/', '?', '#', "
            "'[' or ']' unencoded; percent-encode them (%2F %3F %23 %5B %5D)")


def check_url(source: str) -> None:
    """SourceError naming the fault if a live URL cannot be right (no host, bad port...).

    The messages are crowdwatch's own: a parser's message quotes the text it choked on
    (urlsplit's "port could not be cast to integer value as 'hunter2'"), which may be the
    password, changed (lower case) beyond what redaction recognises."""
    shown = _shown(source)
    problem = None
    if any(c.isspace() or ord(c) < 32 for c in source):
        problem = "it contains a space or control character; percent-encode it (%20)"
    else:
        try:
            parts = urlsplit(source)
            port = parts.port  # ValueError: not a number or out of range
        except ValueError:
            parts, port = None, None
            problem = _port_problem(source)
        if parts is not None:
            after_host = source[len(f"{parts.scheme}://{parts.netloc}"):]
            if "@" in after_host:
                # "rtsp://user:123/pw@host/x" parses as host "user", port 123: the password
                # held a '/', '?' or '#' that ended the host part early.
                # No '@' in the words: redact() would hide the message up to it.
                problem = ("an at sign after the host: the password holds '/', '?' or '#' "
                           "unencoded; percent-encode them (%2F %3F %23)")
            elif not parts.hostname:
                problem = "no host"
            elif port == 0:
                problem = "port 0"
    if problem:
        raise SourceError(f"{shown}: malformed URL ({problem}); {URL_FORM}")
