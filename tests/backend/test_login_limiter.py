"""The login limiter shared through Redis (REDIS_URL set) by every process of the app.

Real Redis of this machine (the `redis_url` / `redis_prefix` / `redis_client` fixtures:
each test has its own key prefix, cleaned up after it; REQUIRE_SERVICES=1 fails instead
of skipping when Redis is missing). The password check is replaced by a fast one, as in
tests/security: argon2 takes about a second a try. SQLite only: the database is a bystander.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from backend import keys
from backend.dashboard import auth, views_account
from backend.dashboard.web import LIMITER
from storage import repo
from tests.apptools import create_schema, make_settings, running_app
from tests.security.bench import PASSWORD, login

EMAIL = "Secret.Coordinator@Example.org"
SECRET = "test-secret-key-" + "x" * 16


@pytest.fixture(autouse=True)
def fast_passwords(monkeypatch):
    monkeypatch.setattr(views_account, "verify_password", lambda h, p: p == PASSWORD)


@pytest.fixture
def redis_settings(tmp_path, redis_url: str, redis_prefix: str, redis_client):
    """Settings of an app with Redis; `redis_client` (ours) removes the prefix's keys after."""
    db = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    return make_settings(
        db, redis_url=redis_url, redis_prefix=redis_prefix, data_dir=tmp_path / "data"
    )


async def _add_user(client, email: str = EMAIL) -> None:
    async with client.app[keys.SESSIONMAKER].begin() as s:
        # Any string will do for the hash: verify_password is replaced above.
        await repo.create_user(s, None, email, "not-an-argon2-hash", "admin")


async def _login(client, email: str, password: str, ip: str = "127.0.0.1") -> Any:
    return await login(client, email, password, headers={"X-Test-Ip": ip})


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _limiter(client: Any, prefix: str, clock: Callable[[], float], **kw: Any):
    return auth.RedisLoginLimiter(client, SECRET, prefix, clock=clock, **kw)


async def _dump(client: Any, prefix: str) -> bytes:
    """Every key under the prefix with everything it holds, as one byte string."""
    out = []
    async for key in client.scan_iter(match=prefix + "*"):
        out.append(key)
        kind = await client.type(key)
        if kind == b"zset":
            for member, score in await client.zrange(key, 0, -1, withscores=True):
                out += [member, repr(score).encode()]
        elif kind == b"string":
            out.append(await client.get(key))
        else:
            out.append(repr(await client.dump(key)).encode())
    return b"\n".join(out)


# --- through the app ---------------------------------------------------------------------


async def test_the_app_picks_redis_with_a_redis_url_and_memory_without(redis_settings):
    await create_schema(redis_settings.database_url)
    async with running_app(redis_settings) as client:
        assert isinstance(client.app[LIMITER], auth.RedisLoginLimiter)
        assert client.app[LIMITER].client is client.app[keys.REDIS]  # the app's one client
        assert client.app[LIMITER].prefix == redis_settings.redis_prefix
    plain = redis_settings.model_copy(update={"redis_url": ""})
    async with running_app(plain) as client:
        assert isinstance(client.app[LIMITER], auth.MemoryLoginLimiter)


async def test_two_app_processes_share_the_limit(redis_settings):
    """Failures split across two apps (two `serve` processes) block the account on both."""
    await create_schema(redis_settings.database_url)
    async with running_app(redis_settings) as a, running_app(redis_settings) as b:
        await _add_user(a)
        assert a.app[keys.REDIS] is not b.app[keys.REDIS]
        for client in (a, b, a, b, a):  # 3 + 2 = the limit of 5, in neither alone
            assert (await _login(client, EMAIL, "wrong password 123")).status == 401
        for client in (a, b):
            resp = await _login(client, EMAIL, PASSWORD)  # even the right password waits
            assert resp.status == 429
            assert 0 < int(resp.headers["Retry-After"]) <= auth.LOGIN_WINDOW + 1


async def test_the_account_limit_is_shared_across_apps_and_ips(redis_settings, fake_ip):
    await create_schema(redis_settings.database_url)
    async with running_app(redis_settings) as a, running_app(redis_settings) as b:
        await _add_user(a)
        for i in range(5):
            client = (a, b)[i % 2]
            resp = await _login(client, EMAIL.lower(), "wrong password 123", f"10.0.0.{i}")
            assert resp.status == 401
        # A new address on either app: the account (any spelling of it) still waits.
        assert (await _login(a, EMAIL, PASSWORD, "10.0.1.1")).status == 429
        assert (await _login(b, " " + EMAIL.upper(), PASSWORD, "10.0.1.2")).status == 429
        # Another account from a fresh address is not blocked.
        assert (await _login(b, "someone.else@example.org", "x", "10.0.1.3")).status == 401


async def test_a_success_clears_the_account_but_not_the_ip(redis_settings, redis_client, fake_ip):
    await create_schema(redis_settings.database_url)
    async with running_app(redis_settings) as a, running_app(redis_settings) as b:
        await _add_user(a)
        limiter = a.app[LIMITER]
        acct_key = limiter.redis_key(f"acct:{EMAIL.lower()}")
        ip_key = limiter.redis_key("ip:10.2.0.1")
        for _ in range(4):
            assert (await _login(a, EMAIL, "wrong password 123", "10.2.0.1")).status == 401
        assert await redis_client.zcard(acct_key) == 4
        assert (await _login(b, EMAIL, PASSWORD, "10.2.0.2")).status == 303  # on the other app
        assert await redis_client.exists(acct_key) == 0
        assert await redis_client.zcard(ip_key) == 4  # the address keeps its failures
        # The account counts from zero again: 4 more failures do not block it ...
        for _ in range(4):
            assert (await _login(b, EMAIL, "wrong password 123", "10.2.0.3")).status == 401
        assert (await _login(a, EMAIL, PASSWORD, "10.2.0.4")).status == 303
        # ... while the first address is one failure from its limit.
        assert (await _login(a, "nobody@example.org", "x", "10.2.0.1")).status == 401
        assert (await _login(a, EMAIL, PASSWORD, "10.2.0.1")).status == 429


async def test_redis_holds_no_email_or_ip(redis_settings, redis_client, fake_ip):
    await create_schema(redis_settings.database_url)
    prefix = redis_settings.redis_prefix
    ip = "203.0.113.77"
    async with running_app(redis_settings) as a:
        for _ in range(3):
            assert (await _login(a, EMAIL, "wrong password 123", ip)).status == 401
    dump = await _dump(redis_client, prefix)
    assert dump.count(b"loginfail:") == 2  # the account's key and the address's key
    for raw in (EMAIL, EMAIL.lower(), "secret.coordinator", "example.org", ip, "203.0.113"):
        assert raw.encode() not in dump
    # Nor can one find the keys from the e-mail or IP without the app's secret.
    other = auth.RedisLoginLimiter(redis_client, "another-secret-" + "y" * 16, prefix)
    for key in (f"acct:{EMAIL.lower()}", f"ip:{ip}"):
        assert await redis_client.exists(other.redis_key(key)) == 0
        assert await redis_client.zcard(a.app[LIMITER].redis_key(key)) == 3


async def test_a_redis_outage_answers_503_with_retry_after(tmp_path):
    """Fail closed: no unlimited guessing while Redis is down, and no 500 either."""
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'test.db'}",
        redis_url=f"redis://127.0.0.1:{port}/0",
        data_dir=tmp_path / "data",
    )
    await create_schema(settings.database_url)
    async with running_app(settings) as client:
        resp = await _login(client, EMAIL, PASSWORD)
        assert resp.status == 503
        assert int(resp.headers["Retry-After"]) == auth.REDIS_RETRY_AFTER
        assert "Please try again." in await resp.text()


# --- the limiter itself ------------------------------------------------------------------


async def test_redis_window_expiry_with_an_injected_clock(redis_client, redis_prefix):
    clock = Clock()
    lim = _limiter(redis_client, redis_prefix, clock, limit=2, window=60)
    t0 = clock.now
    await lim.failed(["ip:a", "acct:x"])
    clock.now = t0 + 1
    assert await lim.blocked(["ip:a"]) == 0
    clock.now = t0 + 2
    await lim.failed(["ip:a", "acct:y"])
    clock.now = t0 + 3
    assert await lim.blocked(["ip:a"]) == pytest.approx(57)  # until the first one is 60 s old
    assert await lim.blocked(["ip:b", "acct:x"]) == 0
    assert await lim.blocked(["acct:x", "ip:a"]) == pytest.approx(57)
    clock.now = t0 + 60
    assert await lim.blocked(["ip:a"]) == 0  # the first failure is out of the window
    # Redis forgets a key by itself one window after its last failure.
    ttl = await redis_client.pttl(lim.redis_key("ip:a"))
    assert 0 < ttl <= 60_000


async def test_redis_limiter_counts_every_failure_and_bounds_a_key(redis_client, redis_prefix):
    clock = Clock()
    lim = _limiter(redis_client, redis_prefix, clock, limit=3, window=600)
    for _ in range(10):  # all in the same instant: ten failures, not one
        await lim.failed(["acct:z"])
    assert await lim.blocked(["acct:z"]) == pytest.approx(600)
    assert await redis_client.zcard(lim.redis_key("acct:z")) == 3  # only the newest `limit`
    clock.now += 100
    await lim.failed(["acct:z"])
    # Blocked until the limit-th newest failure leaves the window, not the oldest one.
    assert await lim.blocked(["acct:z"]) == pytest.approx(500)
    clock.now += 500
    assert await lim.blocked(["acct:z"]) == 0
    await lim.succeeded("acct:z")
    assert await redis_client.exists(lim.redis_key("acct:z")) == 0


async def test_two_redis_limiters_share_their_counts(redis_url, redis_client, redis_prefix):
    import redis.asyncio as aioredis

    other_client = aioredis.from_url(redis_url)
    try:
        clock = Clock()
        a = _limiter(redis_client, redis_prefix, clock, limit=4, window=60)
        b = _limiter(other_client, redis_prefix, clock, limit=4, window=60)
        await a.failed(["ip:q"])
        await b.failed(["ip:q"])
        await a.failed(["ip:q"])
        assert await a.blocked(["ip:q"]) == 0
        await b.failed(["ip:q"])
        assert await a.blocked(["ip:q"]) > 0 and await b.blocked(["ip:q"]) > 0
        # Another prefix (another deployment on the same Redis) is another count.
        c = _limiter(other_client, redis_prefix + "other:", clock, limit=4, window=60)
        assert await c.blocked(["ip:q"]) == 0
    finally:
        await other_client.aclose()


async def test_memory_limiter_keeps_its_own_count():
    clock = Clock(0)
    lim = auth.MemoryLoginLimiter(limit=2, window=60, clock=clock)
    await lim.failed(["ip:a", "acct:x"])
    await lim.failed(["ip:a", "acct:x"])
    assert await lim.blocked(["acct:x"]) == pytest.approx(60)
    await lim.succeeded("acct:x")
    assert await lim.blocked(["acct:x"]) == 0
    assert await lim.blocked(["ip:a"]) == pytest.approx(60)
    clock.now = 61
    assert await lim.blocked(["ip:a"]) == 0
