"""Outbound rate limits for the Bot API: at most 30 messages in any second in all, about one
a second per chat (a small burst allowed). Token buckets that hand out reservations, so
concurrent senders queue fairly without a lock: each caller takes a token (the balance
may go negative) and sleeps until its turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable

# Messages per second, the whole bot. With a burst of one, no one-second window holds more
# than 30: Telegram's "about 30 a second" is not overstepped even at the start of a burst
# (a 429 there makes every chat wait its `retry_after`: +2 s on the bench's burst).
GLOBAL_RATE = 29.0
CHAT_RATE = 1.0  # messages per second, one chat
CHAT_BURST = 3  # a chat may have this many at once (a notice, then the card)


class TokenBucket:
    def __init__(
        self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be positive and capacity at least 1")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = float(capacity)
        self._updated = clock()

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        return now

    def reserve(self) -> float:
        """Take one token; the seconds to wait before using it (0: go now)."""
        self._refill()
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def wait(self) -> float:
        """The seconds until a token is there (0: one is there now); none is taken."""
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def idle(self) -> bool:
        """Full again: nobody has used it lately (a per-chat bucket may be forgotten)."""
        self._refill()
        return self._tokens >= self.capacity

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)


class RateLimiter:
    """A global bucket and one bucket per chat; `acquire(chat)` waits for both."""

    def __init__(
        self,
        global_rate: float = GLOBAL_RATE,
        chat_rate: float = CHAT_RATE,
        chat_burst: int = CHAT_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        # A global burst of one: any one-second window holds at most `global_rate` + 1.
        self.global_bucket = TokenBucket(global_rate, 1.0, clock)
        self.chat_rate = chat_rate
        self.chat_burst = chat_burst
        self._chats: dict[Hashable, TokenBucket] = {}

    async def acquire(self, chat: Hashable | None = None) -> None:
        if chat is not None:
            await self._bucket(chat).acquire()
        await self.global_bucket.acquire()

    def chat_wait(self, chat: Hashable) -> float:
        """The seconds until `chat` may send again (0: now); nothing is taken."""
        bucket = self._chats.get(chat)
        return 0.0 if bucket is None else bucket.wait()

    def take(self, chat: Hashable) -> None:
        """`chat` sends now (after `chat_wait` said 0 and the global bucket gave a turn)."""
        self._bucket(chat).reserve()

    def _bucket(self, chat: Hashable) -> TokenBucket:
        bucket = self._chats.get(chat)
        if bucket is None:
            if len(self._chats) > 10_000:
                self._prune()
            bucket = self._chats[chat] = TokenBucket(self.chat_rate, self.chat_burst, self._clock)
        return bucket

    def _prune(self) -> None:
        for key in [k for k, b in self._chats.items() if b.idle()]:
            del self._chats[key]
