"""The session store: where each respondent stands, as a small JSON dict with a TTL.

A narrow interface in the manner of aiogram's FSM storage: load, save, delete, close,
plus a per-respondent lock so that two updates of one person (even in two server
processes) are applied one at a time. The database stays the truth; a lost session
is rebuilt from the stored answers by the caller.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from conversations.ports import Held, Once, Repeated, SessionKey

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "gs:"


class LockTimeout(TimeoutError):
    """The per-respondent lock could not be had in time (transient: a retry may succeed)."""


def _dumps(state: dict[str, Any]) -> str:
    return json.dumps(state, separators=(",", ":"), ensure_ascii=False)


class KeyBuilder:
    """Owns the Redis key format: `{prefix}session:{channel}:{subject}` and friends."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix

    def session(self, key: SessionKey) -> str:
        return f"{self.prefix}session:{key.channel}:{key.subject}"

    def lock(self, key: SessionKey) -> str:
        return f"{self.prefix}lock:{key.channel}:{key.subject}"

    def update(self, namespace: str, update_id: int) -> str:
        return f"{self.prefix}update:{namespace}:{update_id}"


class SessionStore(ABC):
    @abstractmethod
    async def load(self, key: SessionKey) -> dict[str, Any] | None:
        """The saved state, or None if there is none (never saved, deleted or expired)."""

    async def load_many(self, keys: list[SessionKey]) -> list[dict[str, Any] | None]:
        """`load` of several keys (in one round trip where the store can)."""
        return [await self.load(key) for key in keys]

    @abstractmethod
    async def save(self, key: SessionKey, state: dict[str, Any], ttl: int) -> None:
        """Store `state` (JSON-serialisable) for `ttl` seconds."""

    @abstractmethod
    async def delete(self, key: SessionKey) -> None: ...

    @abstractmethod
    def lock(self, key: SessionKey, timeout: float = 10.0) -> AbstractAsyncContextManager[None]:
        """Hold the respondent's lock; raise LockTimeout if not had within `timeout` s."""

    def hold(
        self,
        key: SessionKey,
        also: SessionKey | None = None,
        timeout: float = 10.0,
        *,
        once: Once | None = None,
    ) -> AbstractAsyncContextManager[Held]:
        """The lock of `key` with its state (and `also`'s) read; `Held.save` writes the
        state back as the lock is let go, unless the block raises. `once`: the update
        this step applies, claimed with the lock (Repeated if it was claimed before) and
        finished as it is let go, unless the block raises (then its claim is the caller's
        to release or finish). A store that can does each end in one round trip (Redis:
        two scripts, the update's mark included)."""
        return self._held(key, also, timeout, once)

    @asynccontextmanager
    async def _held(
        self, key: SessionKey, also: SessionKey | None, wait: float, once: Once | None
    ) -> AsyncIterator[Held]:
        if once is not None:
            await once.claim()
        async with self.lock(key, wait):
            if also is None:
                held = Held(await self.load(key))
            else:
                state, extra = await self.load_many([key, also])
                held = Held(state, extra)
            yield held
            if held.keep is not None:
                await self.save(key, *held.keep)
        if once is not None:
            await once.finish()

    async def close(self) -> None:  # noqa: B027 - optional for implementations
        """Release resources (a Redis client this store created)."""


class MemorySessionStore(SessionStore):
    """In-process store for the embedded single-process default and the tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._data: dict[SessionKey, tuple[float, str]] = {}
        self._locks: dict[SessionKey, tuple[asyncio.Lock, int]] = {}

    async def load(self, key: SessionKey) -> dict[str, Any] | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, raw = item
        if self._clock() >= expires:
            del self._data[key]
            return None
        return json.loads(raw)

    async def save(self, key: SessionKey, state: dict[str, Any], ttl: int) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self._purge()
        # Stored as JSON, like Redis: later changes to `state` do not leak in, and a
        # state that Redis could not hold fails here too.
        self._data[key] = (self._clock() + ttl, _dumps(state))

    async def delete(self, key: SessionKey) -> None:
        self._data.pop(key, None)

    def _purge(self) -> None:
        now = self._clock()
        for k in [k for k, (exp, _) in self._data.items() if now >= exp]:
            del self._data[k]

    def lock(self, key: SessionKey, timeout: float = 10.0) -> AbstractAsyncContextManager[None]:
        return self._locked(key, timeout)

    @asynccontextmanager
    async def _locked(self, key: SessionKey, wait: float) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            try:
                async with asyncio.timeout(wait):
                    await lock.acquire()
            except TimeoutError:
                raise LockTimeout(f"lock for {key.channel}:{key.subject[:8]}… busy") from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock_now, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock_now, users - 1)

    async def close(self) -> None:
        self._data.clear()


# The lock is a key holding the holder's random token for `lock_ttl` (then a crashed
# holder's lock expires), taken with SET NX PX and let go only by its holder, as redis-py's
# Lock does; here each end is one script, so that the state travels with the lock:
# KEYS: the lock, then the keys to read. ARGV: token, ttl in ms. Nil: the lock is busy.
_TAKE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if #KEYS > 1 then return redis.call('MGET', unpack(KEYS, 2)) end
  return {}
end
return false
"""
# The same with an update's mark (`storage.dedup`) checked first and claimed with the lock:
# KEYS: the lock, the mark, then the keys to read. ARGV: token, ttl in ms, the claim's lease
# in s. The mark's value if the update was claimed before ('1' done, 'p' in progress).
_TAKE_ONCE = """
local mark = redis.call('GET', KEYS[2])
if mark then return mark end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('SET', KEYS[2], 'p', 'EX', ARGV[3])
  if #KEYS > 2 then return redis.call('MGET', unpack(KEYS, 3)) end
  return {}
end
return false
"""
# KEYS: the lock, the session. ARGV: token, the state to keep ('' for none), its ttl in s.
# The state is kept even when the lock expired meanwhile (the database is the truth; a
# later holder's step was applied on its own reading); the lock is deleted only if ours.
_LET_GO = """
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3]) end
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# The same, the update's mark set done: KEYS: the lock, the session, the mark. ARGV: token,
# the state to keep ('' for none), its ttl in s, the mark's ttl in s.
_LET_GO_ONCE = """
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3]) end
redis.call('SET', KEYS[3], '1', 'EX', ARGV[4])
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lane:
    """The session store's commands on connections of the client's pool kept aside, used
    as they are.

    A round trip through redis-py's client cost the server about 60 µs of CPU here, most of
    it around the round trip: the blocking pool's condition, lock and timeout at every
    checkout and return, its connection check, its observability records and the retry
    wrapper. A respondent's step sends two scripts (take + read, write + let go) and, once
    its card is delivered, writes the card's id. The lane borrows up to `size` connections
    from the pool once and keeps them (the pool still closes them with the client), lends
    each to one command at a time and sends the command on it (a script as EVALSHA, as EVAL
    when Redis has forgotten it, as after a restart): about 30 µs a round trip
    (`python -m bench.redis_cost`; bench/README.md, the eighth pass). The pool's `socket_timeout` bounds the whole round trip, as one
    `asyncio.timeout`: the connection's own would wrap the write in `asyncio.wait_for`,
    which makes a task of every write on Python 3.11.

    A command is sent once, as the client sends it (its pool's connections have no retries):
    a take that claims an update, sent again, would meet its own claim. A connection that
    fails is closed (and opened again at its next use); the error goes to the caller, which
    answers 503 (Telegram sends the update again). One that the server closed while it was
    idle (a restart) is opened again before it is used, as the pool does at a checkout."""

    def __init__(self, pool: Any, size: int, wait: float) -> None:
        self.pool = pool
        self.wait = wait  # seconds a command may wait for a free connection
        self.timeout = pool.connection_kwargs.get("socket_timeout")  # a round trip's limit
        self._slots = asyncio.Semaphore(size)
        self._idle: list[Any] = []
        self._borrowed: list[Any] = []

    @classmethod
    def of(cls, pool: Any) -> Lane:
        """A lane of half of `pool` at most (the client's own commands, such as an update's
        mark without a session, the shared code's admission or a login, keep the rest),
        waiting for a free connection as long as the pool does."""
        return cls(
            pool,
            size=max(1, pool.max_connections // 2),
            wait=getattr(pool, "timeout", None) or REDIS_WAIT,
        )

    async def run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """The script's reply (`script`: a redis-py `AsyncScript`, for its sha and text)."""
        return await self.call(("EVALSHA", script.sha, len(keys), *keys, *args), script)

    async def call(self, command: tuple[Any, ...], script: Any = None) -> Any:
        """Redis's reply to `command` (its name first), as the connection reads it."""
        if self._slots.locked():
            try:
                async with asyncio.timeout(self.wait):
                    await self._slots.acquire()
            except TimeoutError:
                raise RedisConnectionError("No connection available.") from None
        else:
            await self._slots.acquire()  # free: returns at once
        try:
            conn = self._idle.pop() if self._idle else await self._borrow()
            try:
                return await self._send(conn, command, script)
            finally:
                self._idle.append(conn)
        finally:
            self._slots.release()

    async def _borrow(self) -> Any:
        conn = await self.pool.get_connection()
        conn.socket_timeout = None  # `_send` times the round trip
        self._borrowed.append(conn)
        return conn

    async def _send(self, conn: Any, command: tuple[Any, ...], script: Any) -> Any:
        try:
            if conn.is_connected:
                try:
                    stale = await conn.can_read()  # unread bytes: out of step
                except (RedisConnectionError, OSError):  # closed by the server
                    stale = True
                if stale:
                    await conn.disconnect()
            async with asyncio.timeout(self.timeout):
                await conn.send_command(*command)
                try:
                    return await conn.read_response()
                except NoScriptError:
                    if script is None:
                        raise
                    await conn.send_command("EVAL", script.script, *command[2:])
                    return await conn.read_response()
        except ResponseError:  # Redis answered: the connection is in step
            raise
        except BaseException as exc:  # the reply may still come: never read it as another's
            await conn.disconnect(nowait=True)
            if type(exc) is TimeoutError:  # ours: as the connection's own would say it
                raise RedisTimeoutError("Timeout reading from Redis") from None
            raise

    async def close(self) -> None:
        """Give the connections back to the pool."""
        borrowed, self._borrowed, self._idle = self._borrowed, [], []
        for conn in borrowed:
            conn.socket_timeout = self.timeout
            await self.pool.release(conn)


class RedisSessionStore(SessionStore):
    """Sessions in Redis (JSON with SET EX) and a lock shared by every server process; a
    held session (`hold`) costs two round trips: take + read, write + let go, both on
    the lane (`Lane`), as are its other commands."""

    def __init__(
        self,
        client: Any,
        prefix: str = DEFAULT_PREFIX,
        *,
        lock_ttl: float = 30.0,
        owns_client: bool = False,
    ) -> None:
        self.client = client  # redis.asyncio.Redis
        self.keys = KeyBuilder(prefix)
        self.lock_ttl = lock_ttl  # a crashed holder's lock expires after this
        self._owns_client = owns_client
        self._take_script = client.register_script(_TAKE)
        self._let_go_script = client.register_script(_LET_GO)
        self._take_once_script = client.register_script(_TAKE_ONCE)
        self._let_go_once_script = client.register_script(_LET_GO_ONCE)
        self.lane = Lane.of(client.connection_pool)

    async def load(self, key: SessionKey) -> dict[str, Any] | None:
        raw = await self.lane.call(("GET", self.keys.session(key)))
        return None if raw is None else json.loads(raw)

    async def load_many(self, keys: list[SessionKey]) -> list[dict[str, Any] | None]:
        if not keys:
            return []
        raws = await self.lane.call(("MGET", *(self.keys.session(key) for key in keys)))
        return [None if raw is None else json.loads(raw) for raw in raws]

    async def save(self, key: SessionKey, state: dict[str, Any], ttl: int) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        await self.lane.call(("SET", self.keys.session(key), _dumps(state), "EX", ttl))

    async def delete(self, key: SessionKey) -> None:
        await self.lane.call(("DEL", self.keys.session(key)))

    def lock(self, key: SessionKey, timeout: float = 10.0) -> AbstractAsyncContextManager[None]:
        return self._locked(key, timeout)

    @asynccontextmanager
    async def _locked(self, key: SessionKey, wait: float) -> AsyncIterator[None]:
        token, _ = await self._take(key, [], wait)
        try:
            yield
        finally:
            await self._let_go(key, token, None)

    @asynccontextmanager
    async def _held(
        self, key: SessionKey, also: SessionKey | None, wait: float, once: Once | None
    ) -> AsyncIterator[Held]:
        reads = [self.keys.session(key)]
        if also is not None:
            reads.append(self.keys.session(also))
        mark = None  # the update's (key, ttl) when it is claimed in the scripts
        if once is not None and not once.claimed:
            mark = once.dedup.mark_on(self.client, once.update_id)
            if mark is None:  # the update's mark lives elsewhere: claimed on its own
                await once.claim()
        claim = None if once is None or mark is None else (once, mark[0])
        token, raws = await self._take(key, reads, wait, claim)
        held = Held(*(None if raw is None else json.loads(raw) for raw in raws))
        try:
            yield held
        except BaseException:
            await self._let_go(key, token, None)
            raise
        await self._let_go(key, token, held.keep, mark)
        if claim is not None:
            claim[0].finished = True  # the let-go script marked it done
        elif once is not None:
            await once.finish()

    async def _take(
        self,
        key: SessionKey,
        reads: list[str],
        wait: float,
        claim: tuple[Once, str] | None = None,
    ) -> tuple[str, list]:
        """Take the lock and read `reads`; with `claim` (an update and its mark's key), the
        update is claimed in the same script (Repeated if it was claimed before)."""
        token = secrets.token_hex(8)
        keys = [self.keys.lock(key), *reads]
        args: list[Any] = [token, int(self.lock_ttl * 1000)]
        script = self._take_script
        if claim is not None:
            keys.insert(1, claim[1])
            args.append(claim[0].lease)
            script = self._take_once_script
        give_up = time.monotonic() + wait
        while (raws := await self.lane.run(script, keys, args)) is None:
            if time.monotonic() >= give_up:
                raise LockTimeout(f"lock for {key.channel}:{key.subject[:8]}… busy")
            await asyncio.sleep(0.02)
        if claim is not None:
            if isinstance(raws, (bytes, str)):  # the mark: claimed before
                raise Repeated(claim[0].update_id, raws in (b"1", "1"))
            claim[0].claimed = True
        return token, raws

    async def _let_go(
        self,
        key: SessionKey,
        token: str,
        keep: tuple[dict[str, Any], int] | None,
        mark: tuple[str, int] | None = None,
    ) -> None:
        """Let go of the lock, writing `keep`; with `mark` (key, ttl), set the update done."""
        keys = [self.keys.lock(key), self.keys.session(key)]
        args: list[Any] = [token, "", 0] if keep is None else [token, _dumps(keep[0]), keep[1]]
        script = self._let_go_script
        if mark is not None:
            keys.append(mark[0])
            args.append(mark[1])
            script = self._let_go_once_script
        if not await self.lane.run(script, keys, args):
            # Held longer than lock_ttl: another holder may have run meanwhile.
            log.warning("session lock expired before release (lock_ttl=%s)", self.lock_ttl)

    async def close(self) -> None:
        await self.lane.close()
        if self._owns_client:
            await self.client.aclose()


REDIS_CONNECTIONS = 100  # per process; a crowd beyond it waits for a free connection
REDIS_WAIT = 5.0  # seconds a command may wait for one before it fails (transient: 503)


def redis_client(
    url: str, *, max_connections: int = REDIS_CONNECTIONS, socket_timeout: float = 5.0
) -> Any:
    """The process's Redis client. Its pool makes a command wait for a free connection when
    all are busy: redis-py's default pool (100 connections since redis 8) refuses the 101st
    at once with MaxConnectionsError, which a crowd of a thousand Mini App respondents met
    as errors (`make bench`, `BENCH_MINIAPP_USERS=1000`)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=REDIS_WAIT,
        socket_timeout=socket_timeout,
        socket_connect_timeout=5,
    )
    return aioredis.Redis.from_pool(pool)


def make_session_store(redis_url: str, prefix: str = DEFAULT_PREFIX) -> SessionStore:
    """Redis when a URL is given, else the in-memory store (one process only)."""
    if not redis_url:
        return MemorySessionStore()

    return RedisSessionStore(redis_client(redis_url), prefix, owns_client=True)
