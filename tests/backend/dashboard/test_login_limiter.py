"""The login limiter: per (account, address) locks, the address and account bounds, and the
client's address behind trusted reverse proxies.

Both limiters run here: in memory (the embedded default) and shared through Redis (REDIS_URL
set) by every process of the app. Real Redis of this machine (the `redis_url` /
`redis_prefix` / `redis_client` fixtures: each test has its own key prefix, cleaned up after
it; REQUIRE_SERVICES=1 fails instead of skipping when Redis is missing). The password check
is replaced by a fast one, as in tests/security: argon2 takes about a second a try. SQLite
only: the database is a bystander.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from pydantic import ValidationError

from backend.dashboard import auth, views_account
from backend.web import keys
from backend.web.keys import LIMITER
from storage import schools
from tests.apptools import create_schema, make_settings, running_app
from tests.security.bench import PASSWORD, login

EMAIL = "Secret.Coordinator@Example.org"
SECRET = "test-secret-key-" + "x" * 16
WRONG = "wrong password 123"


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


@pytest.fixture(params=["memory", "redis"])
def any_settings(request, tmp_path):
    """Settings of an app with the memory limiter, then with the Redis one."""
    if request.param == "redis":
        return request.getfixturevalue("redis_settings")
    return make_settings(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}", data_dir=tmp_path / "d")


async def _add_user(client, email: str = EMAIL) -> None:
    async with client.app[keys.SESSIONMAKER].begin() as s:
        # Any string will do for the hash: verify_password is replaced above.
        await schools.create_user(s, None, email, "not-an-argon2-hash", "admin")


async def _login(client, email: str, password: str, ip: str = "127.0.0.1", **kw: Any) -> Any:
    return await login(client, email, password, headers={"X-Test-Ip": ip, **kw})


def _forget_device(client) -> None:
    """A browser that never logged in to the account: no device cookie."""
    client.session.cookie_jar.clear(lambda c: c.key == auth.DEVICE_COOKIE)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _redis_limiter(client: Any, prefix: str, clock: Callable[[], float], **kw: Any):
    return auth.RedisLoginLimiter(client, SECRET, prefix, auth.LoginLimits(**kw), clock=clock)


@pytest.fixture(params=["memory", "redis"])
def make_limiter(request):
    """A factory of limiters of either kind with an injected clock and limits."""
    if request.param == "memory":
        return lambda clock, **kw: auth.MemoryLoginLimiter(auth.LoginLimits(**kw), clock=clock)
    client = request.getfixturevalue("redis_client")
    prefix = request.getfixturevalue("redis_prefix")
    return lambda clock, **kw: _redis_limiter(client, prefix, clock, **kw)


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


# --- through the app: who is locked out, and who is not ----------------------------------


async def test_failures_from_one_address_lock_the_account_only_there(any_settings, fake_ip):
    """The review's denial of service: 5 failures from anywhere locked out the coordinator."""
    await create_schema(any_settings.database_url)
    async with running_app(any_settings) as client:
        await _add_user(client)
        for _ in range(auth.PAIR_LIMIT):
            assert (await _login(client, EMAIL, WRONG, "198.51.100.7")).status == 401
        resp = await _login(client, EMAIL, PASSWORD, "198.51.100.7")  # even the right one
        assert resp.status == 429
        assert auth.LOGIN_WINDOW - 5 < int(resp.headers["Retry-After"]) <= auth.LOGIN_WINDOW + 1
        assert "Too many failed logins" in await resp.text()
        # Any spelling of the account is the same account ...
        assert (await _login(client, " " + EMAIL.upper(), PASSWORD, "198.51.100.7")).status == 429
        # ... and the coordinator at school, at another address, logs in.
        assert (await _login(client, EMAIL, PASSWORD, "192.0.2.10")).status == 303


async def test_many_addresses_slow_the_account_without_locking_it(any_settings, fake_ip):
    await create_schema(any_settings.database_url)
    async with running_app(any_settings) as client:
        await _add_user(client)
        # The coordinator logged in once from this browser before the attack.
        assert (await _login(client, EMAIL, PASSWORD, "192.0.2.10")).status == 303
        known = client.session.cookie_jar.filter_cookies(client.make_url("/login"))
        assert auth.DEVICE_COOKIE in known
        await client.post("/logout", data={"csrf": _csrf(client)}, allow_redirects=False)
        _forget_device(client)
        for i in range(auth.ACCOUNT_SLOW_AFTER):  # each address below its own lock
            assert (await _login(client, EMAIL, WRONG, f"203.0.113.{i}")).status == 401
        # A new address, the right password: slowed, for seconds, not locked for minutes.
        resp = await _login(client, EMAIL, PASSWORD, "203.0.113.200")
        assert resp.status == 429
        assert 0 < int(resp.headers["Retry-After"]) <= auth.ACCOUNT_SPACING + 1
        assert "one try at a time" in await resp.text()
        # The coordinator's own browser (its device cookie) is not slowed.
        client.session.cookie_jar.update_cookies(
            {auth.DEVICE_COOKIE: known[auth.DEVICE_COOKIE].value}, client.make_url("/login")
        )
        assert (await _login(client, EMAIL, PASSWORD, "203.0.113.201")).status == 303


async def test_one_address_trying_many_accounts_is_locked(any_settings, fake_ip):
    await create_schema(any_settings.database_url)
    async with running_app(any_settings) as client:
        await _add_user(client)
        for i in range(auth.ADDRESS_LIMIT):
            assert (await _login(client, f"user{i}@example.org", WRONG, "10.7.7.7")).status == 401
        assert (await _login(client, EMAIL, PASSWORD, "10.7.7.7")).status == 429
        assert (await _login(client, EMAIL, PASSWORD, "10.7.7.8")).status == 303


async def test_a_device_cookie_has_its_own_lock_and_is_bound_to_its_account(any_settings, fake_ip):
    await create_schema(any_settings.database_url)
    async with running_app(any_settings) as client:
        await _add_user(client)
        await _add_user(client, "other@example.org")
        assert (await _login(client, EMAIL, PASSWORD, "192.0.2.10")).status == 303
        # From many addresses with the stolen device cookie: locked after DEVICE_LIMIT.
        for i in range(auth.DEVICE_LIMIT):
            assert (await _login(client, EMAIL, WRONG, f"203.0.113.{i}")).status == 401
        assert (await _login(client, EMAIL, PASSWORD, "203.0.113.99")).status == 429
        # The cookie vouches for its account only: another account is slowed as usual.
        for i in range(auth.ACCOUNT_SLOW_AFTER):
            resp = await _login(client, "other@example.org", WRONG, f"198.51.100.{i}")
            assert resp.status == 401
        assert (await _login(client, "other@example.org", PASSWORD, "198.51.100.99")).status == 429
        # A device cookie signed with another key (forged) counts for nothing.
        forged = auth.DeviceCodec("another-secret-" + "y" * 16).after_login(
            None, "other@example.org"
        )
        _forget_device(client)
        client.session.cookie_jar.update_cookies(
            {auth.DEVICE_COOKIE: forged}, client.make_url("/login")
        )
        assert (await _login(client, "other@example.org", PASSWORD, "198.51.100.98")).status == 429


async def test_a_success_forgets_the_address_not_the_account(redis_settings, redis_client, fake_ip):
    await create_schema(redis_settings.database_url)
    async with running_app(redis_settings) as a, running_app(redis_settings) as b:
        await _add_user(a)
        limiter = a.app[LIMITER]
        account = EMAIL.lower()
        pair_key = limiter.redis_key(f"pair:{account}|10.2.0.1")
        acct_key = limiter.redis_key(f"acct:{account}")
        ip_key = limiter.redis_key("ip:10.2.0.1")
        for _ in range(4):
            assert (await _login(a, EMAIL, WRONG, "10.2.0.1")).status == 401
        assert await redis_client.zcard(pair_key) == 4
        assert (await _login(b, EMAIL, PASSWORD, "10.2.0.1")).status == 303  # on the other app
        assert await redis_client.exists(pair_key) == 0
        assert await redis_client.zcard(ip_key) == 4  # the address keeps its failures
        assert await redis_client.zcard(acct_key) == 4  # and so does the account
        # The pair counts from zero again: 4 more failures do not lock it.
        _forget_device(b)
        for _ in range(4):
            assert (await _login(b, EMAIL, WRONG, "10.2.0.1")).status == 401
        assert (await _login(a, EMAIL, PASSWORD, "10.2.0.1")).status == 303


async def test_two_app_processes_share_the_limit(redis_settings, fake_ip):
    """Failures split across two apps (two `serve` processes) lock the pair on both."""
    await create_schema(redis_settings.database_url)
    async with running_app(redis_settings) as a, running_app(redis_settings) as b:
        await _add_user(a)
        assert a.app[keys.REDIS] is not b.app[keys.REDIS]
        for client in (a, b, a, b, a):  # 3 + 2 = the limit of 5, in neither alone
            assert (await _login(client, EMAIL, WRONG, "10.3.0.1")).status == 401
        for client in (a, b):
            resp = await _login(client, EMAIL, PASSWORD, "10.3.0.1")
            assert resp.status == 429
            assert 0 < int(resp.headers["Retry-After"]) <= auth.LOGIN_WINDOW + 1


async def test_the_app_picks_redis_with_a_redis_url_and_memory_without(redis_settings):
    await create_schema(redis_settings.database_url)
    async with running_app(redis_settings) as client:
        assert isinstance(client.app[LIMITER], auth.RedisLoginLimiter)
        assert client.app[LIMITER].client is client.app[keys.REDIS]  # the app's one client
        assert client.app[LIMITER].prefix == redis_settings.redis_prefix
    plain = redis_settings.model_copy(update={"redis_url": ""})
    async with running_app(plain) as client:
        assert isinstance(client.app[LIMITER], auth.MemoryLoginLimiter)


async def test_redis_holds_no_email_or_ip(redis_settings, redis_client, fake_ip):
    await create_schema(redis_settings.database_url)
    prefix = redis_settings.redis_prefix
    ip = "203.0.113.77"
    async with running_app(redis_settings) as a:
        for _ in range(3):
            assert (await _login(a, EMAIL, WRONG, ip)).status == 401
    dump = await _dump(redis_client, prefix)
    assert dump.count(b"loginfail:") == 3  # the pair's, the address's and the account's keys
    for raw in (EMAIL, EMAIL.lower(), "secret.coordinator", "example.org", ip, "203.0.113"):
        assert raw.encode() not in dump
    # Nor can one find the keys from the e-mail or IP without the app's secret.
    other = auth.RedisLoginLimiter(redis_client, "another-secret-" + "y" * 16, prefix)
    for key in (f"acct:{EMAIL.lower()}", f"ip:{ip}", f"pair:{EMAIL.lower()}|{ip}"):
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


def _csrf(client) -> str:
    from tests.security.bench import session_csrf

    return session_csrf(client)


# --- the limiter itself, memory and Redis alike --------------------------------------------


async def test_the_pair_lock_lasts_the_window(make_limiter):
    clock = Clock()
    lim = make_limiter(clock, pair=2, address=10, account=10, window=60)
    t0 = clock.now
    await lim.failed("x", "a")
    clock.now = t0 + 1
    assert await lim.blocked("x", "a") is None
    clock.now = t0 + 2
    await lim.failed("x", "a")
    clock.now = t0 + 3
    wait = await lim.blocked("x", "a")
    assert wait.bound == "pair" and wait.seconds == pytest.approx(57)  # until t0's is 60 s old
    assert await lim.blocked("x", "b") is None  # the same account elsewhere
    assert await lim.blocked("y", "a") is None  # another account from here
    clock.now = t0 + 60
    assert await lim.blocked("x", "a") is None  # the first failure is out of the window
    await lim.failed("x", "a")
    assert (await lim.blocked("x", "a")).bound == "pair"
    await lim.succeeded("x", "a")
    assert await lim.blocked("x", "a") is None


async def test_the_account_bound_spaces_tries_and_the_address_bound_locks(make_limiter):
    clock = Clock()
    lim = make_limiter(clock, pair=5, address=3, account=3, account_spacing=30, window=600)
    for i in range(3):
        await lim.failed("x", f"10.0.0.{i}")
        clock.now += 1
    wait = await lim.blocked("x", "10.9.9.9")
    assert wait.bound == "account" and wait.seconds == pytest.approx(29)
    clock.now += 29
    assert await lim.blocked("x", "10.9.9.9") is None  # one try may go ahead ...
    await lim.failed("x", "10.9.9.9")
    assert (await lim.blocked("x", "10.9.9.10")).seconds == pytest.approx(30)  # ... then wait
    assert await lim.blocked("x", "10.9.9.10", device="d1") is None  # a known browser goes on
    await lim.succeeded("x", "10.9.9.9")  # a login does not reset the account's bound
    assert (await lim.blocked("x", "10.9.9.10")).bound == "account"
    # The address bound: 3 accounts from one address lock that address for the window.
    for account in ("p", "q", "r"):
        await lim.failed(account, "10.5.5.5")
    wait = await lim.blocked("s", "10.5.5.5")
    assert wait.bound == "address" and wait.seconds == pytest.approx(600)
    assert await lim.blocked("s", "10.5.5.6") is None


async def test_a_device_lock_is_per_account_and_device(make_limiter):
    clock = Clock()
    lim = make_limiter(clock, pair=5, address=50, account=50, device=2, window=600)
    await lim.failed("x", "10.0.0.1", device="d1")
    await lim.failed("x", "10.0.0.2", device="d1")
    assert (await lim.blocked("x", "10.0.0.3", device="d1")).bound == "device"
    assert await lim.blocked("x", "10.0.0.3", device="d2") is None
    assert await lim.blocked("x", "10.0.0.3") is None


async def test_every_failure_counts_and_a_key_stays_bounded(make_limiter):
    clock = Clock()
    lim = make_limiter(clock, pair=3, address=4, account=50, window=600)
    for _ in range(10):  # all in the same instant: ten failures, not one
        await lim.failed("z", "a")
    assert (await lim.blocked("z", "a")).seconds == pytest.approx(600)
    clock.now += 100
    await lim.failed("z", "a")
    # Locked until the limit-th newest failure leaves the window, not the oldest one.
    assert (await lim.blocked("z", "a")).seconds == pytest.approx(500)
    clock.now += 500
    assert await lim.blocked("z", "a") is None


async def test_redis_keys_expire_and_stay_small(redis_client, redis_prefix):
    clock = Clock()
    lim = _redis_limiter(redis_client, redis_prefix, clock, pair=3, address=4, window=60)
    for _ in range(10):
        await lim.failed("z", "a")
    assert await redis_client.zcard(lim.redis_key("pair:z|a")) == 3  # only the newest that decide
    assert await redis_client.zcard(lim.redis_key("ip:a")) == 4
    # Redis forgets a key by itself one window after its last failure.
    ttl = await redis_client.pttl(lim.redis_key("ip:a"))
    assert 0 < ttl <= 60_000


async def test_two_redis_limiters_share_their_counts(redis_url, redis_client, redis_prefix):
    import redis.asyncio as aioredis

    other_client = aioredis.from_url(redis_url)
    try:
        clock = Clock()
        a = _redis_limiter(redis_client, redis_prefix, clock, pair=4, window=60)
        b = _redis_limiter(other_client, redis_prefix, clock, pair=4, window=60)
        await a.failed("q", "ip")
        await b.failed("q", "ip")
        await a.failed("q", "ip")
        assert await a.blocked("q", "ip") is None
        await b.failed("q", "ip")
        assert await a.blocked("q", "ip") and await b.blocked("q", "ip")
        # Another prefix (another deployment on the same Redis) is another count.
        c = _redis_limiter(other_client, redis_prefix + "other:", clock, pair=4, window=60)
        assert await c.blocked("q", "ip") is None
    finally:
        await other_client.aclose()


def test_ipv6_clients_count_by_their_64():
    assert auth.login_address("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert auth.login_address("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert auth.login_address("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert auth.login_address("::ffff:192.0.2.1") == "192.0.2.1"
    assert auth.login_address("192.0.2.1") == "192.0.2.1"
    assert auth.login_address("unknown") == "unknown"


def test_the_device_cookie_is_signed_and_names_no_account():
    codec = auth.DeviceCodec(SECRET)
    value = codec.after_login(None, "a@example.org")
    assert "a@example.org" not in value and "example" not in codec.loads(value)[1][0]
    device = codec.device_for(value, "a@example.org")
    assert device and codec.device_for(value, "b@example.org") is None
    both = codec.after_login(value, "b@example.org")
    assert codec.device_for(both, "a@example.org") == codec.device_for(both, "b@example.org")
    assert codec.device_for(both, "a@example.org") == device  # the same browser
    assert auth.DeviceCodec("another-secret-" + "y" * 16).device_for(both, "a@example.org") is None
    body, _, sig = both.partition(".")
    assert codec.device_for(body + "." + sig[:-2] + "AA", "a@example.org") is None
    for n in range(8):  # a browser vouches for its most recent few accounts only
        both = codec.after_login(both, f"u{n}@example.org")
    assert len(codec.loads(both)[1]) == auth.DEVICE_ACCOUNTS


# --- the client's address behind reverse proxies -------------------------------------------


class _Transport:
    def __init__(self, peer: str) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.peer, 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


def _request(
    peer: str, trusted: str = "", public_url: str = "", lines: Any = (), **headers: str
) -> web.Request:
    app = web.Application()
    app[keys.SETTINGS] = make_settings(
        "sqlite+aiosqlite:///x.db", trusted_proxies=trusted, public_url=public_url
    )
    hdrs = [(k.replace("_", "-"), v) for k, v in headers.items()] + list(lines)
    return make_mocked_request("GET", "/login", headers=hdrs, app=app, transport=_Transport(peer))


def test_without_trusted_proxies_the_peer_is_the_client():
    req = _request("198.51.100.20", X_Forwarded_For="1.2.3.4", X_Forwarded_Proto="https")
    assert auth.client_ip(req) == "198.51.100.20"
    assert not auth.request_is_https(req)
    # A proxy that is not in the list is not believed either.
    req = _request("10.0.0.5", trusted="10.0.0.1", X_Forwarded_For="1.2.3.4")
    assert auth.client_ip(req) == "10.0.0.5"


def test_a_trusted_proxy_is_read_right_to_left():
    trusted = "127.0.0.1, 10.0.0.0/8"
    # The client wrote "6.6.6.6" itself; the edge proxy appended the address it saw.
    req = _request("10.0.0.2", trusted, X_Forwarded_For="6.6.6.6, 203.0.113.9, 10.1.1.1")
    assert auth.client_ip(req) == "203.0.113.9"
    # Two header lines are one list, in order.
    lines = [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "203.0.113.9, 10.0.0.3")]
    assert auth.client_ip(_request("127.0.0.1", trusted, lines=lines)) == "203.0.113.9"
    # Ports and brackets as some proxies write them; IPv4-mapped IPv6 peers.
    assert (
        auth.client_ip(_request("::ffff:10.0.0.2", trusted, X_Forwarded_For="[2001:db8::7]:443"))
        == "2001:db8::7"
    )
    assert auth.client_ip(_request("10.0.0.2", trusted, X_Forwarded_For="192.0.2.4:5555")) == (
        "192.0.2.4"
    )
    # Garbage stops the walk at the last trusted hop; no header: the proxy itself.
    req = _request("10.0.0.2", trusted, X_Forwarded_For="203.0.113.9, bogus, 10.0.0.9")
    assert auth.client_ip(req) == "10.0.0.9"
    assert auth.client_ip(_request("10.0.0.2", trusted)) == "10.0.0.2"
    # Every hop trusted (a client inside the proxies' network): the furthest one.
    assert auth.client_ip(_request("10.0.0.2", trusted, X_Forwarded_For="10.0.0.8")) == "10.0.0.8"


def test_https_is_believed_from_tls_a_trusted_proxy_or_the_public_url():
    assert auth.request_is_https(_request("10.0.0.2", "10.0.0.0/8", X_Forwarded_Proto="https"))
    assert not auth.request_is_https(_request("10.0.0.2", "10.0.0.0/8", X_Forwarded_Proto="http"))
    # The nearest proxy's word counts (the last one), not what the client sent first.
    req = _request("10.0.0.2", "10.0.0.0/8", X_Forwarded_Proto="https, http")
    assert not auth.request_is_https(req)
    assert not auth.request_is_https(_request("192.0.2.1", "10.0.0.0/8", X_Forwarded_Proto="https"))
    assert auth.request_is_https(_request("192.0.2.1", public_url="https://survey.example.org"))


def test_trusted_proxies_must_be_addresses_or_networks(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    ok = make_settings(url, trusted_proxies="127.0.0.1, 10.0.0.0/8,::1, 2001:db8::/32")
    assert len(ok.trusted_networks) == 4
    assert make_settings(url).trusted_networks == ()
    with pytest.raises(ValidationError, match=r"TRUSTED_PROXIES: 'proxy\.example' is not"):
        make_settings(url, trusted_proxies="10.0.0.1,proxy.example")


async def test_behind_a_trusted_proxy_each_client_has_its_own_lock(tmp_path):
    """The test server's peer is 127.0.0.1: as a reverse proxy on the same machine."""
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'test.db'}",
        data_dir=tmp_path / "data",
        trusted_proxies="127.0.0.1",
    )
    await create_schema(settings.database_url)
    async with running_app(settings) as client:
        await _add_user(client)
        via = {"X-Forwarded-For": "198.51.100.7"}
        for _ in range(auth.PAIR_LIMIT):
            assert (await login(client, EMAIL, WRONG, headers=via)).status == 401
        assert (await login(client, EMAIL, PASSWORD, headers=via)).status == 429
        # Another client through the same proxy is not the attacker.
        other = {"X-Forwarded-For": "198.51.100.7, 192.0.2.10"}  # its own spoofed entry first
        assert (await login(client, EMAIL, PASSWORD, headers=other)).status == 303
