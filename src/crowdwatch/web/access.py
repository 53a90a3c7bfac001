"""Who may use the page and the API: host names, origins, token rules, login throttling,
expiring sessions.

Host and Origin close DNS rebinding and cross-site requests: a page served under a foreign
name that resolves to 127.0.0.1 sends that name as Host, and its requests carry its Origin.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from crowdwatch.config.web import WebConfig
from crowdwatch.errors import CrowdwatchError

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost",
                            "ip6-loopback"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REMOTE_TOKEN_MIN = 16
SESSION_S = 12 * 3600


def check_token(token: str | None, allow_remote: bool, variable: str) -> None:
    """CrowdwatchError for a token nobody should rely on: blank, or short for remote use."""
    if token is None:
        return
    if not token.strip():
        raise CrowdwatchError(f"${variable} is set but blank; set a real access token or "
                              f"unset {variable}")
    if allow_remote and len(token) < REMOTE_TOKEN_MIN:
        raise CrowdwatchError(f"${variable} has {len(token)} characters; with web.allow_remote "
                              f"the access token needs at least {REMOTE_TOKEN_MIN} (e.g. "
                              "python -c 'import secrets; print(secrets.token_urlsafe(24))')")


def check_web_config(web: WebConfig) -> None:
    """CrowdwatchError for a page config `run` would refuse: remote clients without a token,
    a blank token, a short one with remote clients (the same check in `check` and `run`)."""
    if not web.enabled:
        return
    variable = web.token_env or "CROWDWATCH_TOKEN"
    token = os.environ.get(web.token_env) if web.token_env else None
    if web.allow_remote and not token:
        raise CrowdwatchError(f"web.allow_remote needs an access token: set ${variable} (and "
                              "web.token_env) or turn allow_remote off")
    check_token(token, web.allow_remote, variable)


def host_name(value: str) -> str:
    """The host of a Host header or URL authority, lower case, without port or brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") > 1:  # a bare IPv6 address
        return value
    return value.rpartition(":")[0] if ":" in value else value


def _is_ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


class HostPolicy:
    """Host names the page answers to, and the origins allowed to change state."""

    def __init__(self, hosts: Iterable[str] = (), allow_remote: bool = False) -> None:
        self.hosts = frozenset(h.lower().rstrip(".") for h in hosts)
        self.allow_remote = allow_remote

    def host_allowed(self, host: str) -> bool:
        name = host_name(host).rstrip(".")
        if not name:
            return False
        if name in LOOPBACK_NAMES or name.endswith(".localhost") or name in self.hosts:
            return True
        address = _is_ip(name)
        # An address cannot be rebound to another: any is fine once remote clients may come.
        return address is not None and (address.is_loopback or self.allow_remote)

    def origin_allowed(self, environ: dict[str, Any]) -> bool:
        """A state-changing request from a browser must come from this page's own origin."""
        if environ.get("REQUEST_METHOD", "GET") not in STATE_CHANGING:
            return True
        if environ.get("HTTP_SEC_FETCH_SITE", "same-origin") not in ("same-origin", "none"):
            return False
        origin = environ.get("HTTP_ORIGIN")
        if origin is None:  # not a browser (curl, scripts): no ambient cookies to abuse
            return True
        parts = urlsplit(origin)
        return (parts.scheme in ("http", "https")
                and parts.netloc.lower() == environ.get("HTTP_HOST", "").lower()
                and self.host_allowed(parts.netloc))


class Throttle:
    """Failed token guesses: a bucket of `burst` tries refilled at `per_s` a second, shared by
    every client (loopback clients all share one address)."""

    def __init__(self, burst: int = 10, per_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.per_s = per_s
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_s)
        self._at = now

    def blocked(self) -> float:
        """Seconds until the next guess is allowed; 0 when one is allowed now."""
        with self._lock:
            self._refill()
            return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.per_s

    def failed(self) -> None:
        with self._lock:
            self._refill()
            self._tokens = max(0.0, self._tokens - 1)


class Sessions:
    """Login cookies that expire and can all be ended by a logout.

    The value is `<expiry>.<hmac>`, keyed by a digest of the token: a leaked cookie does not
    give away the token, and expires; logging out moves the epoch so every earlier cookie
    stops working (one token, one user)."""

    def __init__(self, token: str, lifetime_s: float = SESSION_S,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = hashlib.sha256(b"crowdwatch-session:" + token.encode()).digest()
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._epoch = 0

    def _sign(self, expiry: int) -> str:
        message = f"{self._epoch}.{expiry}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def issue(self) -> str:
        expiry = int(self._clock() + self.lifetime_s)
        return f"{expiry}.{self._sign(expiry)}"

    def valid(self, value: str) -> bool:
        expiry_text, _, signature = value.partition(".")
        if not expiry_text.isdigit() or len(expiry_text) > 12:
            return False
        expiry = int(expiry_text)
        return (hmac.compare_digest(signature.encode(), self._sign(expiry).encode())
                and self._clock() < expiry)

    def end_all(self) -> None:
        self._epoch += 1
