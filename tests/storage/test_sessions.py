"""One contract, every implementation: the memory and Redis session stores and deduplicators."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from conversations.ports import Once, Repeated
from storage.dedup import (
    DEFAULT_TTL,
    MemoryUpdateDeduplicator,
    RedisUpdateDeduplicator,
    UpdateDeduplicator,
    make_deduplicator,
)
from storage.errors import is_transient
from storage.sessions import (
    KeyBuilder,
    LockTimeout,
    MemorySessionStore,
    RedisSessionStore,
    SessionKey,
    SessionStore,
    make_session_store,
    redis_client,
)
from tests.apptools import redis_commands
from tests.faults.support import TcpProxy

KEY = SessionKey("telegram", "a" * 64)
OTHER = SessionKey("web", "a" * 64)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    kind: str
    store: SessionStore
    dedup: UpdateDeduplicator
    clock: FakeClock | None = None
    client: Any = None
    prefix: str = ""


@pytest.fixture
def harness(request: pytest.FixtureRequest) -> Harness:
    """Sync on purpose: `getfixturevalue` of the async `redis_client` works only from here."""
    if request.param == "memory":
        clock = FakeClock()
        h = Harness(
            "memory", MemorySessionStore(clock=clock), MemoryUpdateDeduplicator(clock=clock), clock
        )
    else:
        client = request.getfixturevalue("redis_client")
        prefix = request.getfixturevalue("redis_prefix")
        h = Harness(
            "redis",
            RedisSessionStore(client, prefix),
            RedisUpdateDeduplicator(client, prefix),
            client=client,
            prefix=prefix,
        )
    return h  # the Redis client belongs to its fixture, which closes it


@pytest.mark.parametrize("harness", ["memory", "redis"], indirect=True)
class TestSessionStoreContract:
    async def test_load_save_delete(self, harness: Harness) -> None:
        store = harness.store
        assert await store.load(KEY) is None
        state = {"q": "l3", "answers": {"l1": 4, "l2": None}, "lang": "ü"}
        await store.save(KEY, state, ttl=60)
        assert await store.load(KEY) == state
        assert await store.load(OTHER) is None  # the channel is part of the key
        state["q"] = "changed after save"
        assert (await store.load(KEY))["q"] == "l3"
        await store.save(KEY, {"q": "l4"}, ttl=60)
        assert await store.load(KEY) == {"q": "l4"}
        await store.delete(KEY)
        assert await store.load(KEY) is None
        await store.delete(KEY)  # deleting nothing is fine

    async def test_rejects_bad_ttl_and_unserialisable_state(self, harness: Harness) -> None:
        with pytest.raises(ValueError):
            await harness.store.save(KEY, {}, ttl=0)
        with pytest.raises(TypeError):
            await harness.store.save(KEY, {"x": object()}, ttl=60)

    async def test_ttl_expiry(self, harness: Harness) -> None:
        store = harness.store
        await store.save(KEY, {"q": "l1"}, ttl=2)
        if harness.clock is not None:
            harness.clock.now += 1.9
            assert await store.load(KEY) == {"q": "l1"}
            harness.clock.now += 0.2
        else:
            key = KeyBuilder(harness.prefix).session(KEY)
            assert 0 < await harness.client.pttl(key) <= 2000
            assert (await harness.client.get(key)) == b'{"q":"l1"}'  # compact JSON
            await harness.client.pexpire(key, 30)
            await asyncio.sleep(0.1)
        assert await store.load(KEY) is None

    async def test_lock_serialises_critical_sections(self, harness: Harness) -> None:
        store = harness.store
        order: list[str] = []

        async def section(name: str) -> None:
            async with store.lock(KEY, timeout=5):
                order.append(f"{name} in")
                await asyncio.sleep(0.05)
                order.append(f"{name} out")

        await asyncio.gather(section("a"), section("b"), section("c"))
        assert len(order) == 6
        for i in range(0, 6, 2):  # every entry is followed by its own exit
            assert order[i].split()[0] == order[i + 1].split()[0]
            assert order[i].endswith("in") and order[i + 1].endswith("out")

    async def test_lock_of_another_key_does_not_wait(self, harness: Harness) -> None:
        store = harness.store
        async with store.lock(KEY, timeout=1), store.lock(OTHER, timeout=0.2):
            pass

    async def test_lock_timeout_raises(self, harness: Harness) -> None:
        store = harness.store
        async with store.lock(KEY, timeout=1):
            with pytest.raises(LockTimeout) as info:
                async with store.lock(KEY, timeout=0.1):
                    pytest.fail("entered a held lock")
            assert isinstance(info.value, TimeoutError)
        async with store.lock(KEY, timeout=1):  # free again after the holder left
            pass

    async def test_lock_released_on_error(self, harness: Harness) -> None:
        with pytest.raises(RuntimeError):
            async with harness.store.lock(KEY):
                raise RuntimeError("boom")
        async with harness.store.lock(KEY, timeout=0.5):
            pass

    async def test_hold_reads_with_the_lock_and_saves_as_it_lets_go(self, harness: Harness) -> None:
        store = harness.store
        async with store.hold(KEY) as held:
            assert held.state is None and held.also is None
            held.save({"q": "l1"}, ttl=60)
            assert await store.load(KEY) is None  # written when the lock is let go
            with pytest.raises(LockTimeout):  # the lock is held meanwhile
                async with store.lock(KEY, timeout=0.05):
                    pytest.fail("entered a held lock")
        assert await store.load(KEY) == {"q": "l1"}
        await store.save(OTHER, {"m": 5}, ttl=60)
        async with store.hold(KEY, also=OTHER) as held:
            assert held.state == {"q": "l1"} and held.also == {"m": 5}
        assert await store.load(KEY) == {"q": "l1"}  # nothing saved: nothing changed
        async with store.lock(KEY, timeout=0.5):  # let go
            pass
        with pytest.raises(ValueError):
            async with store.hold(KEY) as held:
                held.save({"q": "x"}, ttl=0)

    async def test_hold_keeps_nothing_when_the_block_raises(self, harness: Harness) -> None:
        store = harness.store
        await store.save(KEY, {"q": "l1"}, ttl=60)
        with pytest.raises(RuntimeError):
            async with store.hold(KEY) as held:
                held.save({"q": "l2"}, ttl=60)
                raise RuntimeError("the database is down")
        assert await store.load(KEY) == {"q": "l1"}
        async with store.lock(KEY, timeout=0.5):  # and the lock was let go
            pass

    async def test_holds_of_one_key_take_turns(self, harness: Harness) -> None:
        """Each hold sees the state the one before it saved: no step is lost."""
        store = harness.store

        async def step() -> None:
            async with store.hold(KEY, timeout=5) as held:
                n = (held.state or {}).get("n", 0)
                await asyncio.sleep(0.005)
                held.save({"n": n + 1}, ttl=60)

        await asyncio.gather(*(step() for _ in range(10)))
        assert await store.load(KEY) == {"n": 10}

    async def test_dedup_claim_release(self, harness: Harness) -> None:
        dedup = harness.dedup
        assert await dedup.claim(101) is True
        assert await dedup.claim(101) is False
        assert await dedup.claim(102) is True
        await dedup.release(101)
        assert await dedup.claim(101) is True
        assert await dedup.claim(101) is False

    async def test_dedup_ttl(self, harness: Harness) -> None:
        dedup = harness.dedup
        assert await dedup.claim(7)
        if harness.clock is not None:
            harness.clock.now += DEFAULT_TTL + 1
            assert await dedup.claim(7) is True
        else:
            key = KeyBuilder(harness.prefix).update("telegram", 7)
            assert DEFAULT_TTL * 1000 - 5000 < await harness.client.pttl(key) <= DEFAULT_TTL * 1000

    async def test_dedup_concurrent_claims_one_wins(self, harness: Harness) -> None:
        results = await asyncio.gather(*(harness.dedup.claim(555) for _ in range(20)))
        assert results.count(True) == 1

    async def test_hold_claims_the_update_with_the_lock_and_finishes_it(self, harness) -> None:
        store, dedup = harness.store, harness.dedup
        once = Once(dedup, 901, lease=30)
        async with store.hold(KEY, once=once) as held:
            assert once.claimed and not once.finished
            assert not await dedup.is_done(901)  # in progress
            with pytest.raises(Repeated) as seen:  # a copy meanwhile: in progress
                async with store.hold(OTHER, once=Once(dedup, 901, lease=30)):
                    pytest.fail("a copy of a claimed update was applied")
            assert seen.value.done is False
            held.save({"q": "l1"}, ttl=60)
        assert once.finished and await dedup.is_done(901)
        assert await store.load(KEY) == {"q": "l1"}
        await once.finish()  # nothing left to do
        with pytest.raises(Repeated) as seen:  # a copy later: done
            async with store.hold(KEY, once=Once(dedup, 901, lease=30)):
                pytest.fail("a processed update was applied again")
        assert seen.value.done is True
        async with store.lock(KEY, timeout=0.5):  # a refused copy leaves the lock free
            pass

    async def test_hold_leaves_the_claim_to_its_caller_when_the_block_raises(self, harness) -> None:
        """The channel then releases it (a transient failure: Telegram's retry must run)
        or finishes it (a bug: answered 200, never again)."""
        store, dedup = harness.store, harness.dedup
        once = Once(dedup, 902, lease=30)
        with pytest.raises(RuntimeError):
            async with store.hold(KEY, once=once) as held:
                held.save({"q": "l2"}, ttl=60)
                raise RuntimeError("the database is down")
        assert once.claimed and not once.finished
        assert not await dedup.is_done(902)
        assert await store.load(KEY) is None
        assert await dedup.claim(902) is False  # still claimed: in progress
        await dedup.release(902)
        async with store.hold(KEY, once=Once(dedup, 902, lease=30)):  # the retry runs
            pass
        assert await dedup.is_done(902)

    async def test_a_copy_waiting_for_the_lock_is_refused_once_it_is_free(self, harness) -> None:
        """Two copies of one update, both waiting for the respondent's lock (a step of
        theirs in progress): the first to get it applies the update; the other is refused."""
        store, dedup = harness.store, harness.dedup
        applied: list[int] = []

        async def copy(n: int) -> str:
            try:
                async with store.hold(KEY, timeout=5, once=Once(dedup, 903, lease=30)):
                    applied.append(n)
            except Repeated as seen:
                return "done" if seen.done else "in progress"
            return "applied"

        async with store.lock(KEY):
            tasks = [asyncio.create_task(copy(n)) for n in range(2)]
            await asyncio.sleep(0.1)
            assert not applied
        outcomes = sorted(await asyncio.gather(*tasks))
        assert len(applied) == 1
        assert outcomes in (["applied", "done"], ["applied", "in progress"])


def test_memory_locks_are_cleaned_up() -> None:
    store = MemorySessionStore()

    async def run() -> None:
        async def hold() -> None:
            async with store.lock(KEY):
                await asyncio.sleep(0.01)

        await asyncio.gather(hold(), hold())
        with pytest.raises(LockTimeout):
            async with store.lock(KEY), store.lock(KEY, timeout=0.01):
                pass

    asyncio.run(run())
    assert store._locks == {}


async def test_memory_dedup_is_bounded() -> None:
    dedup = MemoryUpdateDeduplicator(max_size=3)
    for i in range(5):
        assert await dedup.claim(i)
    assert await dedup.claim(4) is False
    assert await dedup.claim(0) is True  # forgotten: the oldest went first


def test_key_format() -> None:
    kb = KeyBuilder("gs:")
    assert kb.session(KEY) == f"gs:session:telegram:{'a' * 64}"
    assert kb.lock(KEY) == f"gs:lock:telegram:{'a' * 64}"
    assert kb.update("telegram", 9) == "gs:update:telegram:9"


async def test_factories(redis_url: str) -> None:
    assert isinstance(make_session_store(""), MemorySessionStore)
    assert isinstance(make_deduplicator(""), MemoryUpdateDeduplicator)
    store = make_session_store(redis_url, prefix="gstest:factory:")
    dedup = make_deduplicator(redis_url, prefix="gstest:factory:")
    try:
        assert isinstance(store, RedisSessionStore)
        await store.save(KEY, {"ok": True}, ttl=5)
        assert await store.load(KEY) == {"ok": True}
        await store.delete(KEY)
        assert isinstance(dedup, RedisUpdateDeduplicator)
        assert await dedup.claim(1)
        await dedup.release(1)
    finally:
        await store.close()
        await dedup.close()


async def test_redis_lock_is_shared_by_two_processes(redis_url: str, redis_client, redis_prefix):
    """Two stores with their own connections (as two server processes) share one lock."""
    import redis.asyncio as aioredis

    other_client = aioredis.from_url(redis_url)
    a = RedisSessionStore(redis_client, redis_prefix)
    b = RedisSessionStore(other_client, redis_prefix)
    order: list[str] = []

    async def section(store: RedisSessionStore, name: str) -> None:
        async with store.lock(KEY, timeout=5):
            order.append(name)
            await asyncio.sleep(0.05)
            order.append(name)

    try:
        await asyncio.gather(section(a, "a"), section(b, "b"))
        assert order in (["a", "a", "b", "b"], ["b", "b", "a", "a"])
        async with a.lock(KEY):
            with pytest.raises(LockTimeout):
                async with b.lock(KEY, timeout=0.1):
                    pass
    finally:
        await other_client.aclose()


async def test_redis_hold_outlived_by_its_lock(redis_client, redis_prefix, caplog):
    """A holder slower than lock_ttl: the next holder got the lock; the slow one's state is
    still written (the database stays the truth) but it does not delete the new holder's
    lock, and says so in the log."""
    store = RedisSessionStore(redis_client, redis_prefix, lock_ttl=0.05)
    lock_key = KeyBuilder(redis_prefix).lock(KEY)
    async with store.hold(KEY) as held:
        await asyncio.sleep(0.1)  # the lock expires
        assert await redis_client.get(lock_key) is None
        await redis_client.set(lock_key, b"another holder", px=5000)
        held.save({"q": "late"}, ttl=60)
    assert await redis_client.get(lock_key) == b"another holder"
    assert await store.load(KEY) == {"q": "late"}
    assert "lock expired before release" in caplog.text


async def test_redis_hold_is_two_round_trips(redis_client, redis_prefix):
    """Take + read, write + let go: what the hot path pays in Redis for a step."""
    store = RedisSessionStore(redis_client, redis_prefix)
    await redis_client.script_flush()  # a fresh server: the scripts get loaded once
    async with store.hold(KEY):
        pass
    await store.save(KEY, {"q": "l1"}, ttl=60)
    with redis_commands(redis_client) as calls:
        async with store.hold(KEY, also=OTHER) as held:
            held.save({"q": "l2"}, ttl=60)
    assert [c[0] for c in calls] == ["EVALSHA", "EVALSHA"]
    assert await store.load(KEY) == {"q": "l2"}


async def test_redis_hold_of_an_update_is_still_two_round_trips(redis_client, redis_prefix):
    """The update's claim rides on the lock's script, its done mark on the let-go's: a
    Telegram step costs two Redis round trips, not four."""
    store = RedisSessionStore(redis_client, redis_prefix)
    dedup = RedisUpdateDeduplicator(redis_client, redis_prefix)
    async with store.hold(KEY, once=Once(dedup, 1, lease=30)):  # scripts loaded
        pass
    with redis_commands(redis_client) as calls:
        once = Once(dedup, 2, lease=30)
        async with store.hold(KEY, also=OTHER, once=once) as held:
            held.save({"q": "l2"}, ttl=60)
        await once.finish()
    assert [c[0] for c in calls] == ["EVALSHA", "EVALSHA"]
    assert await store.load(KEY) == {"q": "l2"}
    mark = KeyBuilder(redis_prefix).update("telegram", 2)
    assert await redis_client.get(mark) == b"1"
    assert DEFAULT_TTL - 5 < await redis_client.ttl(mark) <= DEFAULT_TTL


async def test_redis_hold_claims_an_update_kept_elsewhere_on_its_own(redis_client, redis_prefix):
    """The deduplicator is not on the store's Redis (the memory one): claimed and finished
    by its own calls, with the same outcome."""
    store = RedisSessionStore(redis_client, redis_prefix)
    dedup = MemoryUpdateDeduplicator()
    once = Once(dedup, 5, lease=30)
    async with store.hold(KEY, once=once):
        assert once.claimed and await dedup.claim(5) is False
    assert once.finished and await dedup.is_done(5)
    with pytest.raises(Repeated):
        async with store.hold(KEY, once=Once(dedup, 5, lease=30)):
            pytest.fail("applied twice")


async def test_a_crowd_beyond_the_redis_pool_waits_for_a_connection(redis_url, redis_prefix):
    """More respondents at once than the process's Redis connections: each step waits for a
    free connection (`sessions.redis_client`), none fails (redis-py's default pool refused
    the connection beyond its limit at once: 500s for a crowd of a thousand in the bench)."""
    client = redis_client(redis_url, max_connections=2)
    store = RedisSessionStore(client, redis_prefix)

    async def step(n: int) -> None:
        key = SessionKey("web", f"{n:064x}")
        async with store.hold(key) as held:
            held.save({"n": n}, ttl=60)

    try:
        await asyncio.gather(*(step(n) for n in range(40)))
        states = await store.load_many([SessionKey("web", f"{n:064x}") for n in range(40)])
        assert [s["n"] for s in states] == list(range(40))
    finally:
        keys = [k async for k in client.scan_iter(match=redis_prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@asynccontextmanager
async def through_proxy(
    redis_url: str, redis_prefix: str, socket_timeout: float = 5.0
) -> AsyncIterator[tuple[Any, ...]]:
    """A store and its update marks on a Redis reached through a TCP proxy of the test's."""
    target = urlsplit(redis_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.up()
    client = redis_client(
        f"redis://127.0.0.1:{proxy.port}/{(target.path or '/0')[1:] or 0}",
        socket_timeout=socket_timeout,
    )
    store = RedisSessionStore(client, redis_prefix)
    dedup = RedisUpdateDeduplicator(client, redis_prefix)
    try:
        yield proxy, client, store, dedup
    finally:
        await proxy.close()
        await store.close()
        await client.aclose()


async def test_a_script_whose_reply_is_lost_is_not_sent_again(
    redis_url, redis_client, redis_prefix
):
    """The take that claims an update ran in Redis, but its reply never came back (the
    connection broke on the way): the error goes to the caller, who answers 503, and the
    script is not sent a second time (it would meet its own claim). Telegram's next try
    finds the claim still running."""
    async with through_proxy(redis_url, redis_prefix) as (proxy, client, store, dedup):
        async with store.hold(KEY, once=Once(dedup, 1, lease=30)):  # the lane's connection
            pass
        proxy.lose_replies = True
        with redis_commands(client) as calls, pytest.raises(RedisConnectionError):
            async with store.hold(KEY, once=Once(dedup, 2, lease=30)):
                pytest.fail("the step ran without its lock")
        assert [c[0] for c in calls] == ["EVALSHA"]
        mark = KeyBuilder(redis_prefix).update("telegram", 2)
        assert await redis_client.get(mark) == b"p"  # carried out once, by that one send
        proxy.lose_replies = False
        with pytest.raises(Repeated):  # Telegram's next try: the claim is still running
            async with store.hold(KEY, once=Once(dedup, 2, lease=30)):
                pytest.fail("applied while its claim runs")


async def test_a_connection_closed_while_idle_is_opened_again_before_use(redis_url, redis_prefix):
    """Redis restarted or dropped the lane's idle connections: the next step opens its
    connection again before sending, and does not fail (nor answer 503) for it."""
    async with through_proxy(redis_url, redis_prefix) as (proxy, _, store, _):
        async with store.hold(KEY) as held:
            held.save({"q": "l1"}, ttl=60)
        opened = proxy.connections
        await proxy.down()
        await proxy.up()
        await asyncio.sleep(0.05)  # the close reaches the client
        async with store.hold(KEY) as held:
            assert held.state == {"q": "l1"}
            held.save({"q": "l2"}, ttl=60)
        assert proxy.connections > opened
        assert await store.load(KEY) == {"q": "l2"}


async def test_a_round_trip_slower_than_the_socket_timeout_fails_and_the_next_reads_its_own(
    redis_url, redis_prefix
):
    """Redis answers later than `socket_timeout`: the step fails with Redis's TimeoutError
    (transient: 503), and the late answer is never read as the next command's (its
    connection was closed)."""
    async with through_proxy(redis_url, redis_prefix, socket_timeout=0.2) as (proxy, *_, store, _):
        await store.save(KEY, {"q": "mine"}, ttl=60)
        await store.save(OTHER, {"q": "other"}, ttl=60)
        proxy.reply_delay = 0.5
        with pytest.raises(RedisTimeoutError):
            await store.load(KEY)
        assert is_transient(RedisTimeoutError("x"))
        proxy.reply_delay = 0.0
        assert await store.load(OTHER) == {"q": "other"}
        await asyncio.sleep(0.5)  # the late answer arrives on the closed connection
        assert await store.load(OTHER) == {"q": "other"}
        assert await store.load(KEY) == {"q": "mine"}
