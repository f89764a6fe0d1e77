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
import ipaddress
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

from backend.web import keys
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
        if not same_secret(want, sig):
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


def same_secret(expected: str, given: str) -> bool:
    """Constant-time comparison as bytes: `compare_digest` raises TypeError for a str with
    non-ASCII characters, which anyone can send in a form field, header or cookie."""
    return hmac.compare_digest(
        expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
    )


def password_fingerprint(secret: str, user: User) -> str:
    """Changes when the password does, so that a new password ends old sessions and tokens."""
    key = _derive(secret, "password-fingerprint")
    return _b64(hmac.new(key, user.password_hash.encode(), hashlib.sha256).digest()[:12])


def csrf_ok(sess: dict[str, Any], given: str | None) -> bool:
    want = sess.get("csrf")
    return bool(want) and bool(given) and same_secret(str(want), str(given))


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
    return same_secret(api_token(secret, user), token)


# --- login rate limiting -----------------------------------------------------------------
#
# Three bounds on failed logins, each over a sliding window of LOGIN_WINDOW seconds:
#
# - per (account, address): PAIR_LIMIT failures lock that account for that address only.
#   Someone guessing from elsewhere no longer locks a coordinator out (the old single
#   per-account lock was a denial of service on any coordinator whose e-mail was known);
# - per address, across accounts: ADDRESS_LIMIT failures lock the address (password
#   spraying: one address trying many accounts);
# - per account, across addresses: from ACCOUNT_SLOW_AFTER failures on, the account takes
#   one try per ACCOUNT_SPACING seconds, whatever the address (guessing from many addresses
#   is slowed to at most 2 tries a minute, about 2,900 a day, not locked). A browser that
#   has logged in to the account before (a signed device cookie, `DeviceCodec`) is exempt,
#   so the coordinator at their own computer is not slowed by an attack elsewhere; such a
#   browser has its own lock instead (DEVICE_LIMIT failures per account and device cookie),
#   so a stolen device cookie buys few guesses too.
#
# The address is `login_address(client_ip(request))`: behind a reverse proxy, only the
# proxies in TRUSTED_PROXIES are believed about the client's address; an IPv6 client counts
# by its /64 (one host gets a whole /64 and could otherwise change address at every try).

LOGIN_WINDOW = 15 * 60  # seconds: how long a failed login counts
PAIR_LIMIT = 5  # failures of one account from one address: that pair waits
ADDRESS_LIMIT = 20  # failures from one address, all accounts together: that address waits
ACCOUNT_SLOW_AFTER = 10  # failures of one account from all addresses: from then on ...
ACCOUNT_SPACING = 30  # ... one try per this many seconds (a known browser is exempt)
DEVICE_LIMIT = 5  # failures of one account from one known browser: that browser waits
LOGIN_LIMIT = PAIR_LIMIT  # the limit a person meets first (kept for readers of the old name)
REDIS_RETRY_AFTER = 5  # seconds: what a 503 asks for when Redis could not be reached


@dataclass(frozen=True, slots=True)
class LoginLimits:
    pair: int = PAIR_LIMIT
    address: int = ADDRESS_LIMIT
    account: int = ACCOUNT_SLOW_AFTER
    account_spacing: float = ACCOUNT_SPACING
    device: int = DEVICE_LIMIT
    window: float = LOGIN_WINDOW


@dataclass(frozen=True, slots=True)
class LoginWait:
    """A refused try: how long to wait, and which bound refused it."""

    seconds: float
    bound: str  # "pair", "address", "account" or "device"


class LimiterUnavailable(web.HTTPServiceUnavailable):
    """The shared limiter could not be asked (a transient Redis failure): 503, Retry-After.

    An HTTP exception, so that the dashboard's error middleware shows its error page
    ("Please try again.", in the reader's language) with the Retry-After header, not a 500.
    """

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": str(REDIS_RETRY_AFTER)})


def login_address(ip: str) -> str:
    """The address a login counts against: the IP, or an IPv6 address's /64 network."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class LoginLimiter(ABC):
    """The three bounds above (and the known browser's), for one login form.

    The view asks `blocked(account, address, device)` before checking the password (a
    refused try checks nothing and counts nothing), reports `failed(...)` after a wrong
    password and `succeeded(...)` after a right one. `account` is the normalised e-mail,
    `address` the `login_address`, `device` the id of a device cookie that vouches for
    this account (or None).

    Keys: `pair:<account>|<address>`, `ip:<address>`, `acct:<account>`,
    `dev:<account>|<device>`. Two implementations: `MemoryLoginLimiter` for the embedded
    single-process default (no REDIS_URL), and `RedisLoginLimiter`, shared by every `serve`
    process behind a load balancer (with per-process memory an attacker would get N times
    the limits).
    """

    def __init__(
        self,
        limits: LoginLimits = LoginLimits(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._clock = clock

    def keys(
        self, account: str, address: str, device: str | None = None
    ) -> dict[str, tuple[str, int]]:
        """bound -> (key, how many of its newest failures decide) for one try."""
        lim = self.limits
        found = {
            "pair": (f"pair:{account}|{address}", lim.pair),
            "address": (f"ip:{address}", lim.address),
            "account": (f"acct:{account}", lim.account),
        }
        if device:
            found["device"] = (f"dev:{account}|{device}", lim.device)
        return found

    def _wait(self, bound: str, limit: int, newest_first: list[float], now: float) -> float:
        if len(newest_first) < limit:
            return 0.0
        if bound == "account":  # slowed, not locked: one try per spacing
            return max(0.0, self.limits.account_spacing - (now - newest_first[0]))
        return max(0.0, self.limits.window - (now - newest_first[limit - 1]))

    async def blocked(
        self, account: str, address: str, device: str | None = None
    ) -> LoginWait | None:
        """The longest wait this try meets, or None if it may go ahead."""
        bounds = self.keys(account, address, device)
        if device:
            del bounds["account"]  # a browser the account logged in from is not slowed
        now = self._clock()
        found = await self._newest({key: limit for key, limit in bounds.values()}, now)
        worst: LoginWait | None = None
        for bound, (key, limit) in bounds.items():
            wait = self._wait(bound, limit, found[key], now)
            if wait > 0 and (worst is None or wait > worst.seconds):
                worst = LoginWait(wait, bound)
        return worst

    async def failed(self, account: str, address: str, device: str | None = None) -> None:
        """Count a wrong password against every bound of this try."""
        await self._add(dict(self.keys(account, address, device).values()), self._clock())

    async def succeeded(self, account: str, address: str, device: str | None = None) -> None:
        """A right password: forget this address's (and browser's) failures on the account.

        The account's failures from everywhere are not forgotten: the coordinator's own
        login must not give someone guessing elsewhere a fresh allowance.
        """
        keys = self.keys(account, address, device)
        await self._forget([keys[b][0] for b in ("pair", "device") if b in keys])

    @abstractmethod
    async def _newest(self, keys: dict[str, int], now: float) -> dict[str, list[float]]:
        """Per key, up to `n` of its failure times inside the window, newest first."""

    @abstractmethod
    async def _add(self, keys: dict[str, int], now: float) -> None:
        """A failure now for each key (keeping at least its newest `n`)."""

    @abstractmethod
    async def _forget(self, keys: list[str]) -> None: ...


class MemoryLoginLimiter(LoginLimiter):
    """In memory, per process: for the embedded default (one process, no Redis)."""

    MAX_KEYS = 100_000  # bound the memory an attacker can make us use

    def __init__(
        self,
        limits: LoginLimits = LoginLimits(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(limits, clock)
        self._fails: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        while q and now - q[0] >= self.limits.window:
            q.popleft()
        if not q:
            del self._fails[key]
        return q

    async def _newest(self, keys: dict[str, int], now: float) -> dict[str, list[float]]:
        out = {}
        for key, n in keys.items():
            q = self._recent(key, now)
            out[key] = [q[-i] for i in range(1, min(n, len(q)) + 1)]
        return out

    async def _add(self, keys: dict[str, int], now: float) -> None:
        for key, n in keys.items():
            self._recent(key, now)
            q = self._fails.setdefault(key, deque())
            q.append(now)
            while len(q) > n:  # only the newest n decide anything
                q.popleft()
            if len(self._fails) > self.MAX_KEYS:
                self._fails.pop(next(iter(self._fails)))

    async def _forget(self, keys: list[str]) -> None:
        for key in keys:
            self._fails.pop(key, None)


class RedisLoginLimiter(LoginLimiter):
    """Shared by all processes: one Redis sorted set per key, scored by failure time.

    Keys are `{prefix}loginfail:{HMAC-SHA256(secret, "pair:..." / "ip:..." / ...)}`: no
    e-mail address or IP is stored in Redis, and a key cannot be guessed without the
    secret. `_add` runs ZADD + ZREMRANGEBYSCORE (older than the window) + ZREMRANGEBYRANK
    (keep the newest that decide) + PEXPIRE per key in one MULTI/EXEC; `_newest` reads the
    newest failures inside the window (ZREVRANGEBYSCORE ... LIMIT) of every key of a try in
    one pipeline.

    Time is wall-clock (`time.time`) of the app's host: processes on several machines
    need clocks in step to within seconds, which NTP gives (the window is minutes).

    Redis outages fail closed: a transient Redis error (storage.errors.is_transient,
    the same test that makes the Telegram webhook answer 503 so that Telegram retries)
    raises `LimiterUnavailable`, a 503 with Retry-After, from `blocked` and `failed`.
    Failing open would allow unlimited guessing for as long as Redis is down (or can be
    made to look down); a coordinator who cannot log in for a few seconds loses little,
    and the app already answers 503 for the survey channels while Redis is down.
    `succeeded` only logs such an error: the password was right, and the failures then
    expire with the window. Other Redis errors (our bugs) propagate (500).
    """

    def __init__(
        self,
        client: Any,
        secret: str,
        prefix: str = "gs:",
        limits: LoginLimits = LoginLimits(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(limits, clock)
        self.client = client  # redis.asyncio.Redis, shared with the session store
        self.prefix = prefix
        self._key = _derive(secret, "login-limiter")

    def redis_key(self, key: str) -> str:
        digest = hmac.new(self._key, key.encode(), hashlib.sha256).hexdigest()
        return f"{self.prefix}loginfail:{digest}"

    async def _newest(self, keys: dict[str, int], now: float) -> dict[str, list[float]]:
        async with self.client.pipeline(transaction=False) as pipe:
            for key, n in keys.items():
                pipe.zrevrangebyscore(
                    self.redis_key(key),
                    "+inf",
                    f"({now - self.limits.window!r}",
                    start=0,
                    num=n,
                    withscores=True,
                )
            found = await self._run(pipe)
        return {
            key: [float(score) for _, score in hits] for key, hits in zip(keys, found, strict=True)
        }

    async def _add(self, keys: dict[str, int], now: float) -> None:
        window_ms = max(1, math.ceil(self.limits.window * 1000))
        async with self.client.pipeline(transaction=True) as pipe:
            for key, n in keys.items():
                rkey = self.redis_key(key)
                member = f"{now!r}:{secrets.token_hex(4)}"  # two failures in one instant: two
                pipe.zadd(rkey, {member: now})
                pipe.zremrangebyscore(rkey, "-inf", f"({now - self.limits.window!r}")
                pipe.zremrangebyrank(rkey, 0, -n - 1)  # bound a key's set
                pipe.pexpire(rkey, window_ms)
            await self._run(pipe)

    async def _forget(self, keys: list[str]) -> None:
        if not keys:
            return
        try:
            await self.client.delete(*(self.redis_key(k) for k in keys))
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("login limiter: could not clear a login (%s)", type(exc).__name__)

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


# --- the device cookie: "this browser has logged in to this account before" -------------

DEVICE_COOKIE = "gs_device"
DEVICE_MAX_AGE = 180 * 24 * 3600  # renewed at every login from the browser
DEVICE_ACCOUNTS = 5  # accounts one browser vouches for (the most recent logins)


class DeviceCodec:
    """A signed, random device id with the accounts that logged in from this browser.

    The accounts are keyed hashes of the normalised e-mails (nothing readable); the cookie
    only exempts the browser from the per-account slow-down, never from its own lock.
    """

    def __init__(self, secret: str) -> None:
        self._sign = _derive(secret, "login-device")
        self._tag = _derive(secret, "login-device-account")

    def account_tag(self, account: str) -> str:
        return _b64(hmac.new(self._tag, account.encode(), hashlib.sha256).digest()[:12])

    def dumps(self, device: str, tags: list[str]) -> str:
        body = _b64(json.dumps({"d": device, "a": tags[-DEVICE_ACCOUNTS:]}).encode())
        sig = _b64(hmac.new(self._sign, body.encode(), hashlib.sha256).digest())
        return f"{body}.{sig}"

    def loads(self, value: str | None) -> tuple[str, list[str]] | None:
        body, _, sig = (value or "").partition(".")
        if not body or not sig or len(body) > 1024:
            return None
        want = _b64(hmac.new(self._sign, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(want, sig):
            return None
        try:
            data = json.loads(_unb64(body))
            device, tags = str(data["d"]), [str(t) for t in data["a"]]
        except (ValueError, KeyError, TypeError):
            return None
        return device, tags

    def device_for(self, value: str | None, account: str) -> str | None:
        """The device id if the cookie vouches for this account, else None."""
        found = self.loads(value)
        if found is None or self.account_tag(account) not in found[1]:
            return None
        return found[0]

    def after_login(self, value: str | None, account: str) -> str:
        """The cookie's new value once `account` logged in from this browser."""
        device, tags = self.loads(value) or (secrets.token_urlsafe(12), [])
        tag = self.account_tag(account)
        return self.dumps(device, [t for t in tags if t != tag] + [tag])


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


# --- who the client is, behind reverse proxies ------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ip(text: str | None) -> IPAddress | None:
    """An address as a proxy writes it ("203.0.113.9", "[2001:db8::1]:443", "1.2.3.4:80")."""
    text = (text or "").strip().strip('"')
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _trusted(request: web.Request) -> tuple[Any, ...]:
    settings = request.config_dict.get(keys.SETTINGS)
    return settings.trusted_networks if settings is not None else ()


def _is_trusted(addr: IPAddress | None, networks: tuple[Any, ...]) -> bool:
    return addr is not None and any(addr in net for net in networks)


def _via_trusted_proxy(request: web.Request) -> bool:
    """Whether the TCP peer is one of TRUSTED_PROXIES (so its forwarded headers count)."""
    networks = _trusted(request)
    return bool(networks) and _is_trusted(_ip(request.remote), networks)


def client_ip(request: web.Request) -> str:
    """The client's IP address, as far as it can be known.

    The TCP peer, unless the peer is one of TRUSTED_PROXIES: then X-Forwarded-For is read
    right to left (each proxy appends the address it was reached from), skipping trusted
    proxies, and the first address that is not one is the client. What a client writes
    into the header itself stands left of that and is never reached; an entry that is not
    an address stops the walk at the last trusted hop. With TRUSTED_PROXIES empty (the
    default) the header is ignored: anybody can send it.
    """
    peer = _ip(request.remote)
    if peer is None:
        return request.remote or "unknown"
    networks = _trusted(request)
    if not _is_trusted(peer, networks):
        return str(peer)
    found = peer
    hops = [
        hop for value in request.headers.getall("X-Forwarded-For", ()) for hop in value.split(",")
    ]
    for hop in reversed(hops):
        addr = _ip(hop)
        if addr is None:
            break
        found = addr
        if not _is_trusted(addr, networks):
            break
    return str(found)


def request_is_https(request: web.Request) -> bool:
    """Whether the browser reached us over https: TLS on our own socket, or a trusted proxy
    says so (the last X-Forwarded-Proto, which the nearest proxy wrote), or the deployment
    is https by its PUBLIC_URL. A client's own X-Forwarded-Proto counts for nothing."""
    if request.secure:
        return True
    settings = request.config_dict.get(keys.SETTINGS)
    if settings is not None and settings.public_url.lower().startswith("https://"):
        return True
    if not _via_trusted_proxy(request):
        return False
    protos = [
        p.strip().lower()
        for value in request.headers.getall("X-Forwarded-Proto", ())
        for p in value.split(",")
        if p.strip()
    ]
    return bool(protos) and protos[-1] == "https"
