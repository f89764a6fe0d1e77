"""Accounts and access for the dashboard: signed session cookie, CSRF, login limits, API tokens.

The session is a small JSON document in a cookie, signed with HMAC-SHA256 under a key
derived from the app's SECRET_KEY (no server-side store, so any number of processes
share it). It holds a random session id (renewed at login: no fixation), the user id,
the CSRF token, the issue time and a fingerprint of the user's password hash (a new
password logs every session out). API tokens are derived the same way: no table.
Failed logins are counted in Redis when the app has one (shared by all processes, under
keyed hashes: no e-mail or IP in Redis), else in memory (the embedded single process).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import secrets
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from storage.errors import is_transient
from storage.models import User

log = logging.getLogger(__name__)

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
    """`gst_<user id>_<HMAC(secret, user id + password fingerprint + version)>`.

    A new password revokes it, and so does replacing it (`api_token_version` + 1); version 0
    signs as before it existed, so tokens issued earlier stay valid."""
    key = _derive(secret, "api-token")
    version = user.api_token_version or 0
    msg = f"{user.id}:{password_fingerprint(secret, user)}{f':{version}' if version else ''}"
    msg = msg.encode()
    return f"{API_TOKEN_PREFIX}_{user.id}_{_b64(hmac.new(key, msg, hashlib.sha256).digest())}"


def api_token_user_id(token: str) -> int | None:
    """The user id a token claims (not yet verified)."""
    prefix, _, rest = token.partition("_")
    uid, _, sig = rest.partition("_")
    digits = uid.isascii() and uid.isdigit()  # isdigit() alone takes "²", which int() refuses
    if prefix != API_TOKEN_PREFIX or not digits or not sig or len(uid) > 12:
        return None
    return int(uid)


def api_token_ok(secret: str, user: User, token: str) -> bool:
    return hmac.compare_digest(api_token(secret, user), token)


# --- login rate limiting -----------------------------------------------------------------

LOGIN_LIMIT = 5  # failed logins ...
LOGIN_WINDOW = 15 * 60  # ... per this many seconds, per client IP and per account
REDIS_RETRY_AFTER = 5  # seconds: what a 503 asks for when Redis could not be reached


class LimiterUnavailable(web.HTTPServiceUnavailable):
    """The shared limiter could not be asked (a transient Redis failure): 503, Retry-After.

    An HTTP exception, so that the dashboard's error middleware shows its error page
    ("Please try again.", in the reader's language) with the Retry-After header, not a 500.
    """

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": str(REDIS_RETRY_AFTER)})


class LoginLimiter(ABC):
    """At most `limit` failed logins per `window` seconds, per client IP and per account.

    The keys are `ip:<address>` and `acct:<normalised e-mail>`. `blocked` is asked before
    the password is checked, `failed` after a wrong one, `succeeded` after a right one
    (it forgets the account's failures, not the IP's).

    Two implementations: `MemoryLoginLimiter` for the embedded single-process default
    (no REDIS_URL), and `RedisLoginLimiter`, shared by every `serve` process behind a
    load balancer (with per-process memory an attacker would get N times the limit).
    """

    def __init__(
        self,
        limit: int = LOGIN_LIMIT,
        window: float = LOGIN_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock

    @abstractmethod
    async def blocked(self, keys: Iterable[str]) -> float:
        """Seconds until a blocked key may try again; 0 if none is blocked."""

    @abstractmethod
    async def failed(self, keys: Iterable[str]) -> None:
        """Count a failed login against each key."""

    @abstractmethod
    async def succeeded(self, account_key: str) -> None:
        """Forget the failures of the account that just logged in."""


class MemoryLoginLimiter(LoginLimiter):
    """In memory, per process: for the embedded default (one process, no Redis)."""

    def __init__(
        self,
        limit: int = LOGIN_LIMIT,
        window: float = LOGIN_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(limit, window, clock)
        self._fails: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        while q and now - q[0] > self.window:
            q.popleft()
        if not q:
            self._fails.pop(key, None)
        return q

    async def blocked(self, keys: Iterable[str]) -> float:
        now = self._clock()
        wait = 0.0
        for key in keys:
            q = self._recent(key, now)
            if len(q) >= self.limit:
                wait = max(wait, self.window - (now - q[-self.limit]))
        return wait

    async def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        for key in keys:
            self._recent(key, now)
            self._fails.setdefault(key, deque()).append(now)
            if len(self._fails) > 100_000:  # bound the memory an attacker can make us use
                self._fails.pop(next(iter(self._fails)))

    async def succeeded(self, account_key: str) -> None:
        self._fails.pop(account_key, None)


class RedisLoginLimiter(LoginLimiter):
    """Shared by all processes: one Redis sorted set per key, scored by failure time.

    Keys are `{prefix}loginfail:{HMAC-SHA256(secret, "ip:..." / "acct:...")}`: no e-mail
    address or IP is stored in Redis, and the key cannot be guessed without the secret.
    `failed` runs ZADD + ZREMRANGEBYSCORE (older than the window) + ZREMRANGEBYRANK (keep
    the newest `limit`) + PEXPIRE in one MULTI/EXEC; `blocked` reads the `limit`-th newest
    failure inside the window (ZREVRANGEBYSCORE ... LIMIT) of every key in one pipeline.

    Time is wall-clock (`time.time`) of the app's host: processes on several machines
    need clocks in step to within seconds, which NTP gives (the window is minutes).

    Redis outages fail closed: a transient Redis error (storage.errors.is_transient,
    the same test that makes the Telegram webhook answer 503 so that Telegram retries)
    raises `LimiterUnavailable`, a 503 with Retry-After, from `blocked` and `failed`.
    Failing open would allow unlimited guessing for as long as Redis is down (or can be
    made to look down); a coordinator who cannot log in for a few seconds loses little,
    and the app already answers 503 for the survey channels while Redis is down.
    `succeeded` only logs such an error: the password was right, and the account's
    failures then expire with the window. Other Redis errors (our bugs) propagate (500).
    """

    def __init__(
        self,
        client: Any,
        secret: str,
        prefix: str = "gs:",
        limit: int = LOGIN_LIMIT,
        window: float = LOGIN_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(limit, window, clock)
        self.client = client  # redis.asyncio.Redis, shared with the session store
        self.prefix = prefix
        self._key = _derive(secret, "login-limiter")

    def redis_key(self, key: str) -> str:
        digest = hmac.new(self._key, key.encode(), hashlib.sha256).hexdigest()
        return f"{self.prefix}loginfail:{digest}"

    async def blocked(self, keys: Iterable[str]) -> float:
        now = self._clock()
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrevrangebyscore(
                    self.redis_key(key),
                    "+inf",
                    now - self.window,
                    start=self.limit - 1,
                    num=1,
                    withscores=True,
                )
            found = await self._run(pipe)
        wait = 0.0
        for hits in found:
            if hits:  # the limit-th newest failure is inside the window
                wait = max(wait, self.window - (now - float(hits[0][1])))
        return max(wait, 0.0)

    async def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        async with self.client.pipeline(transaction=True) as pipe:
            for key in keys:
                rkey = self.redis_key(key)
                member = f"{now!r}:{secrets.token_hex(4)}"  # two failures in one instant: two
                pipe.zadd(rkey, {member: now})
                pipe.zremrangebyscore(rkey, "-inf", f"({now - self.window!r}")
                pipe.zremrangebyrank(rkey, 0, -self.limit - 1)  # bound a key's set
                pipe.pexpire(rkey, max(1, math.ceil(self.window * 1000)))
            await self._run(pipe)

    async def succeeded(self, account_key: str) -> None:
        try:
            await self.client.delete(self.redis_key(account_key))
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("login limiter: could not clear an account (%s)", type(exc).__name__)

    async def _run(self, pipe: Any) -> list[Any]:
        try:
            return await pipe.execute()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("login limiter: Redis unavailable (%s), answering 503", type(exc).__name__)
            raise LimiterUnavailable() from exc


def make_login_limiter(redis_client: Any, secret: str, prefix: str) -> LoginLimiter:
    """Shared through Redis when the app has one (REDIS_URL), else in this process's memory."""
    if redis_client is None:
        return MemoryLoginLimiter()
    return RedisLoginLimiter(redis_client, secret, prefix)


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
