"""Accounts and access for the dashboard: signed session cookie, CSRF, login limits, API tokens.

The session is a small JSON document in a cookie, signed with HMAC-SHA256 under a key
derived from the app's SECRET_KEY (no server-side store, so any number of processes
share it). It holds a random session id (renewed at login: no fixation), the user id,
the CSRF token, the issue time and a fingerprint of the user's password hash (a new
password logs every session out). API tokens are derived the same way: no table.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from storage.models import User

COOKIE = "gs_session"
SESSION_MAX_AGE = 12 * 3600  # seconds; a login lasts one working day
API_TOKEN_PREFIX = "gst"  # noqa: S105 (a label, not a secret)


def _derive(secret: str, purpose: str) -> bytes:
    return hmac.new(secret.encode(), f"guidance-survey:{purpose}".encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- the session cookie ------------------------------------------------------------------


class SessionCodec:
    """Signs and verifies the session cookie's value."""

    def __init__(self, secret: str) -> None:
        self._key = _derive(secret, "dashboard-session")

    def dumps(self, data: dict[str, Any]) -> str:
        body = _b64(json.dumps(data, separators=(",", ":"), sort_keys=True).encode())
        sig = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        return f"{body}.{sig}"

    def loads(self, value: str, now: float | None = None) -> dict[str, Any] | None:
        """The session, or None if the value is forged, malformed or too old."""
        body, _, sig = value.partition(".")
        if not body or not sig:
            return None
        want = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(want, sig):
            return None
        try:
            data = json.loads(_unb64(body))
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("iat"), int | float):
            return None
        if (now or time.time()) - data["iat"] > SESSION_MAX_AGE:
            return None
        return data


def new_session() -> dict[str, Any]:
    """A fresh anonymous session: new id, new CSRF token."""
    return {
        "sid": secrets.token_urlsafe(18),
        "csrf": secrets.token_urlsafe(24),
        "iat": round(time.time(), 3),  # ms: a logout and a new login may share a second
    }


def password_fingerprint(secret: str, user: User) -> str:
    """Changes when the password does, so that a new password ends old sessions and tokens."""
    key = _derive(secret, "password-fingerprint")
    return _b64(hmac.new(key, user.password_hash.encode(), hashlib.sha256).digest()[:12])


def csrf_ok(session: dict[str, Any], given: str | None) -> bool:
    want = session.get("csrf")
    return bool(want) and bool(given) and hmac.compare_digest(str(want), str(given))


# --- API tokens --------------------------------------------------------------------------


def api_token(secret: str, user: User) -> str:
    """`gst_<user id>_<HMAC(secret, user id + password fingerprint)>`; a new password revokes it."""
    key = _derive(secret, "api-token")
    msg = f"{user.id}:{password_fingerprint(secret, user)}".encode()
    return f"{API_TOKEN_PREFIX}_{user.id}_{_b64(hmac.new(key, msg, hashlib.sha256).digest())}"


def api_token_user_id(token: str) -> int | None:
    """The user id a token claims (not yet verified)."""
    prefix, _, rest = token.partition("_")
    uid, _, sig = rest.partition("_")
    if prefix != API_TOKEN_PREFIX or not uid.isdigit() or not sig or len(uid) > 12:
        return None
    return int(uid)


def api_token_ok(secret: str, user: User, token: str) -> bool:
    return hmac.compare_digest(api_token(secret, user), token)


# --- login rate limiting -----------------------------------------------------------------


class LoginLimiter:
    """At most `limit` failed logins per `window` seconds, per client IP and per account.

    In memory, per process: behind a load balancer with N processes an attacker gets up
    to N times the limit (move it to Redis when that matters).
    """

    def __init__(self, limit: int = 5, window: float = 15 * 60) -> None:
        self.limit = limit
        self.window = window
        self._fails: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        while q and now - q[0] > self.window:
            q.popleft()
        if not q:
            self._fails.pop(key, None)
        return q

    def blocked(self, keys: Iterable[str], now: float | None = None) -> float:
        """Seconds until a blocked key may try again; 0 if none is blocked."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        for key in keys:
            q = self._recent(key, now)
            if len(q) >= self.limit:
                wait = max(wait, self.window - (now - q[0]))
        return wait

    def failed(self, keys: Iterable[str], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for key in keys:
            self._recent(key, now)
            self._fails.setdefault(key, deque()).append(now)
            if len(self._fails) > 100_000:  # bound the memory an attacker can make us use
                self._fails.pop(next(iter(self._fails)))

    def succeeded(self, account_key: str) -> None:
        self._fails.pop(account_key, None)


# --- who may read what -------------------------------------------------------------------

WRITER_ROLES = frozenset({"coordinator", "admin"})


@dataclass(frozen=True, slots=True)
class Access:
    """The schools a user may read: `all_schools`, or exactly `school_ids`."""

    all_schools: bool
    school_ids: frozenset[int]

    def reads(self, school_id: int) -> bool:
        return self.all_schools or school_id in self.school_ids


def readable_schools(user: User, peer_schools: Iterable[int] = ()) -> Access:
    """THE decision of which schools a user may read.

    admin: every school. coordinator: their own. peer: their own plus the schools of
    their review cluster (`peer_schools`, empty until the cluster mode exists).
    """
    if user.role == "admin":
        return Access(True, frozenset())
    own = {user.school_id} if user.school_id is not None else set()
    if user.role == "peer":
        return Access(False, frozenset(own | set(peer_schools)))
    return Access(False, frozenset(own))


def may_write(user: User, school_id: int) -> bool:
    """Coordinators change their own school's data, admins any; peers only read."""
    if user.role == "admin":
        return True
    return user.role == "coordinator" and user.school_id == school_id


def client_ip(request: web.Request) -> str:
    return request.remote or "unknown"
