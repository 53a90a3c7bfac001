"""Camera URLs: which schemes are live, checks that name the fault, credential redaction."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from crowdwatch.errors import SourceError

LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "http", "https"})
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# A scheme with '//' (any case), or a live scheme followed by any number of slashes:
# "rtsp:/user:pw@host" and "rtsp:user:pw@host" reach OpenCV and the logs too. Userinfo runs
# to the last '@' before the path on that line, so a password with '@' or spaces is covered;
# '/', '?' and '#' end it (RFC 3986: they must be percent-encoded in a password).
_CREDENTIALS = re.compile(
    r"((?:\b[A-Za-z][A-Za-z0-9+.-]*:)?//+|\b(?:rtsps?|rtmp|https?):/*)[^/?#\r\n]*@",
    re.IGNORECASE)
# How a camera URL looks, in words the credential redaction leaves alone.
URL_FORM = "expected e.g. rtsp://host:554/path, with user:password@ before the host if needed"
# A live scheme followed by one slash or none: "rtsp:/cam/1", "rtsp:cam".
BROKEN_SCHEME = re.compile(r"^(rtsps?|rtmp|https?):(?!//)", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace the user:password part of every URL in text with ***."""
    return _CREDENTIALS.sub(r"\1***@", text)


def is_url(source: str) -> bool:
    return SCHEME.match(source) is not None


def check_url(source: str) -> None:
    """SourceError naming the fault if a live URL cannot be right (no host, bad port...)."""
    problem = None
    if any(c.isspace() or ord(c) < 32 for c in source):
        problem = "it contains a space or control character; percent-encode it (%20)"
    else:
        try:
            parts = urlsplit(source)
            port = parts.port  # ValueError: not a number or out of range
        except ValueError as error:
            problem = str(error).lower()
        else:
            if not parts.hostname:
                problem = "no host"
            elif port == 0:
                problem = "port 0"
    if problem:
        # Hide everything up to the last '@': a password with a space in it ends redact()'s
        # match early and would show.
        scheme, _, rest = source.partition("://")
        shown = f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else source
        raise SourceError(f"{shown}: malformed URL ({problem}); {URL_FORM}")
