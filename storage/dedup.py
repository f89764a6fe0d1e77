"""Update de-duplication: Telegram may deliver an update twice; process it once.

`claim(update_id)` is True the first time (Redis SET NX EX). When processing fails
transiently, `release(update_id)` lets Telegram's retry through.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from storage.sessions import DEFAULT_PREFIX, KeyBuilder

DEFAULT_TTL = 24 * 3600  # Telegram stops retrying an update well within a day


class UpdateDeduplicator(ABC):
    @abstractmethod
    async def claim(self, update_id: int) -> bool:
        """True if this update was not seen (within the TTL) and is now ours to process."""

    @abstractmethod
    async def release(self, update_id: int) -> None:
        """Forget a claim, so that a retry of this update is processed."""

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
        self._seen: OrderedDict[int, float] = OrderedDict()  # update_id -> expiry, by claim

    async def claim(self, update_id: int) -> bool:
        now = self._clock()
        while self._seen and next(iter(self._seen.values())) <= now:
            self._seen.popitem(last=False)
        expires = self._seen.get(update_id)
        if expires is not None and expires > now:
            return False
        self._seen[update_id] = now + self.ttl
        self._seen.move_to_end(update_id)
        while len(self._seen) > self.max_size:
            self._seen.popitem(last=False)
        return True

    async def release(self, update_id: int) -> None:
        self._seen.pop(update_id, None)


class RedisUpdateDeduplicator(UpdateDeduplicator):
    """Shared by every server process: `SET {prefix}update:{namespace}:{id} 1 NX EX ttl`."""

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

    async def claim(self, update_id: int) -> bool:
        return bool(await self.client.set(self.key(update_id), b"1", nx=True, ex=self.ttl))

    async def release(self, update_id: int) -> None:
        await self.client.delete(self.key(update_id))

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose()


def make_deduplicator(
    redis_url: str, prefix: str = DEFAULT_PREFIX, *, ttl: int = DEFAULT_TTL
) -> UpdateDeduplicator:
    """Redis when a URL is given, else in-memory (one process only)."""
    if not redis_url:
        return MemoryUpdateDeduplicator(ttl=ttl)
    import redis.asyncio as aioredis

    return RedisUpdateDeduplicator(aioredis.from_url(redis_url), prefix, ttl=ttl, owns_client=True)
