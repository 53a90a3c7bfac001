"""Why a camera URL does not open: OpenCV only says it failed, so ask the server ourselves.

One DESCRIBE (RTSP) or GET (HTTP) without credentials, and once more with them when the
server asks (Basic or Digest), tells wrong credentials, a wrong path, a refused or silent port
and an unknown host apart. Only the status line and headers are read.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "http": 80, "https": 443}
_AUTH_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')

Response = tuple[int, str, dict[str, str]]


def diagnose(url: str, timeout: float) -> str:
    """A short reason (with the fix) why url yields no stream; never raises."""
    try:
        return _diagnose(url, timeout)
    except Exception as error:  # a diagnosis must never take the reader thread down
        return f"no stream ({type(error).__name__} while asking the server why)"


def _diagnose(url: str, timeout: float) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    where = f"{host}:{port}"
    try:
        socket.create_connection((host, port), timeout).close()
    except socket.gaierror:
        return f"unknown host {host!r} (name lookup failed); check the host name"
    except ConnectionRefusedError:
        return f"connection refused by {where}; check the port and that the camera's server runs"
    except TimeoutError:
        return (f"timeout: no answer from {where} within {timeout:g}s; "
                "check the address and firewall")
    except OSError as error:
        return f"cannot reach {where} ({error.strerror or error})"
    if scheme not in ("rtsp", "http"):
        return f"{where} accepts connections but no stream could be opened"
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password or "")
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    uri = f"rtsp://{host}:{port}{path}" if scheme == "rtsp" else path
    method = "DESCRIBE" if scheme == "rtsp" else "GET"
    try:
        code, reason, headers = _ask(scheme, host, port, method, uri, None, timeout)
        if code == 401 and user is not None:
            auth = _authorization(headers.get("www-authenticate", ""), user, password, method,
                                  uri)
            if auth:
                code, reason, headers = _ask(scheme, host, port, method, uri, auth, timeout)
    except TimeoutError:
        return f"timeout: {where} accepts connections but does not answer within {timeout:g}s"
    except (OSError, ValueError) as error:
        return f"{where} gave no valid {scheme.upper()} answer ({error})"
    status = f"{scheme.upper()} {code} {reason}".strip()
    if code in (401, 403):
        if user is None:
            return (f"the camera needs credentials ({status}); add user:password and an at "
                    "sign before the host in the URL")
        return f"wrong credentials ({status}); check the user and password"
    if code == 404:
        return f"stream not found ({status}); check the path after the host"
    if 200 <= code < 300:
        return f"the server answers ({status}) but OpenCV/FFmpeg could not open the stream"
    return f"the server refused the stream ({status})"


def _ask(scheme: str, host: str, port: int, method: str, uri: str, auth: str | None,
         timeout: float) -> Response:
    proto = "RTSP/1.0" if scheme == "rtsp" else "HTTP/1.0"
    lines = [f"{method} {uri} {proto}", "CSeq: 1" if scheme == "rtsp" else f"Host: {host}",
             "User-Agent: crowdwatch"]
    if auth:
        lines.append(f"Authorization: {auth}")
    with socket.create_connection((host, port), timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status, *header_lines = head.split("\r\n")
    match = re.fullmatch(r"(?:RTSP|HTTP)/\d\.\d (\d{3}) ?(.*)", status.strip())
    if not match:
        raise ValueError(f"status line {status[:40]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        # Several WWW-Authenticate headers: keep the first (Digest is usually offered first).
        headers.setdefault(name.strip().lower(), value.strip())
    return int(match.group(1)), match.group(2), headers


def _authorization(challenge: str, user: str, password: str, method: str,
                   uri: str) -> str | None:
    scheme, _, rest = challenge.partition(" ")
    if scheme.lower() == "basic":
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if scheme.lower() != "digest":
        return None
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _AUTH_PARAM.finditer(rest)}
    realm, nonce = params.get("realm", ""), params.get("nonce", "")

    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"{method}:{uri}")
    fields = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    if "auth" in params.get("qop", "").split(","):
        cnonce, nc = "0a4f113b", "00000001"
        response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        response = md5(f"{ha1}:{nonce}:{ha2}")
    fields.append(f'response="{response}"')
    return "Digest " + ", ".join(fields)
