"""Update de-duplication: Telegram may deliver an update twice; process it once.

`claim(update_id)` is True the first time (Redis SET NX EX). When processing fails
transiently, `release(update_id)` lets Telegram's retry through.

A process can die between the claim and the database commit (SIGKILL, OOM, a lost
machine). So the channel claims with a short `lease` and calls `finish(update_id)` once
the update is processed: a claim that is not finished is "in progress" (`is_done` False),
answered 503 so that Telegram retries, and it expires with its lease, like the
respondent's lock of the crashed process: the retry is then processed, not dropped.

An update that changes a respondent's session is claimed and finished by the session
store's hold instead (`conversations.ports.Once`), in the same scripts as the lock: the
mark's format is this module's, `mark_on` hands its key to a store on the same Redis.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from storage.sessions import DEFAULT_PREFIX, KeyBuilder, redis_client

DEFAULT_TTL = 24 * 3600  # Telegram stops retrying an update well within a day
PROCESSING_LEASE = 30  # seconds; as long as a crashed holder keeps a respondent's lock
_DONE, _IN_PROGRESS = b"1", b"p"


class UpdateDeduplicator(ABC):
    @abstractmethod
    async def claim(self, update_id: int, lease: int | None = None) -> bool:
        """True if this update was not seen (within the TTL) and is now ours to process.

        With `lease` (seconds) the claim is "in progress" until `finish`, and expires
        after `lease` if never finished; without, it counts as done at once."""

    @abstractmethod
    async def finish(self, update_id: int) -> None:
        """The claimed update was processed: remember it as done for the full TTL."""

    @abstractmethod
    async def is_done(self, update_id: int) -> bool:
        """True if this update was processed (False: unknown, or still in progress)."""

    @abstractmethod
    async def release(self, update_id: int) -> None:
        """Forget a claim, so that a retry of this update is processed."""

    def mark_on(self, client: Any, update_id: int) -> tuple[str, int] | None:
        """The update's mark as (Redis key, ttl s) if it lives on `client`, so that a
        session store on the same client claims and finishes it in its own scripts (one
        round trip each way for the whole step: `storage.sessions`, `conversations.ports.Once`)."""
        return None

    async def close(self) -> None:  # noqa: B027 - optional for implementations
        """Release resources."""


class MemoryUpdateDeduplicator(UpdateDeduplicator):
    """Bounded in-process memory of recent update ids (oldest forgotten first)."""

    def __init__(
        self,
        ttl: int = DEFAULT_TTL,
        max_size: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self._clock = clock
        # update_id -> (expiry, done), oldest claim first
        self._seen: OrderedDict[int, tuple[float, bool]] = OrderedDict()

    async def claim(self, update_id: int, lease: int | None = None) -> bool:
        now = self._clock()
        while self._seen and next(iter(self._seen.values()))[0] <= now:
            self._seen.popitem(last=False)
        item = self._seen.get(update_id)
        if item is not None and item[0] > now:
            return False
        self._remember(update_id, now + (lease or self.ttl), lease is None)
        return True

    async def finish(self, update_id: int) -> None:
        self._remember(update_id, self._clock() + self.ttl, True)

    async def is_done(self, update_id: int) -> bool:
        item = self._seen.get(update_id)
        return item is not None and item[1] and item[0] > self._clock()

    def _remember(self, update_id: int, expires: float, done: bool) -> None:
        self._seen[update_id] = (expires, done)
        self._seen.move_to_end(update_id)
        while len(self._seen) > self.max_size:
            self._seen.popitem(last=False)

    async def release(self, update_id: int) -> None:
        self._seen.pop(update_id, None)


class RedisUpdateDeduplicator(UpdateDeduplicator):
    """Shared by every server process: `SET {prefix}update:{namespace}:{id} 1 NX EX ttl`
    (`p` instead of `1` while a leased claim is in progress)."""

    def __init__(
        self,
        client: Any,
        prefix: str = DEFAULT_PREFIX,
        *,
        ttl: int = DEFAULT_TTL,
        namespace: str = "telegram",
        owns_client: bool = False,
    ) -> None:
        self.client = client
        self.keys = KeyBuilder(prefix)
        self.ttl = ttl
        self.namespace = namespace  # e.g. the bot id: update ids are per bot
        self._owns_client = owns_client

    def key(self, update_id: int) -> str:
        return self.keys.update(self.namespace, update_id)

    async def claim(self, update_id: int, lease: int | None = None) -> bool:
        value = _DONE if lease is None else _IN_PROGRESS
        return bool(
            await self.client.set(self.key(update_id), value, nx=True, ex=lease or self.ttl)
        )

    async def finish(self, update_id: int) -> None:
        await self.client.set(self.key(update_id), _DONE, ex=self.ttl)

    async def is_done(self, update_id: int) -> bool:
        return await self.client.get(self.key(update_id)) == _DONE

    async def release(self, update_id: int) -> None:
        await self.client.delete(self.key(update_id))

    def mark_on(self, client: Any, update_id: int) -> tuple[str, int] | None:
        return (self.key(update_id), self.ttl) if client is self.client else None

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose()


def make_deduplicator(
    redis_url: str, prefix: str = DEFAULT_PREFIX, *, ttl: int = DEFAULT_TTL
) -> UpdateDeduplicator:
    """Redis when a URL is given, else in-memory (one process only)."""
    if not redis_url:
        return MemoryUpdateDeduplicator(ttl=ttl)

    return RedisUpdateDeduplicator(redis_client(redis_url), prefix, ttl=ttl, owns_client=True)
