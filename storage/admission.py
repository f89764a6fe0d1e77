"""How many new respondents one network may start through one shared code: a fixed window.

A shared code (one printed on a poster, sent to every parent) opens a new response for
every new browser, so someone could answer many times and "pad" a small group around a
real respondent's answer (README, Privacy). The web chat therefore admits at most `limit`
new respondents per (shared code, client address) per `window` seconds; the ones after
wait for the next window. Keys are keyed hashes made by the caller: no code or address is
kept in clear, and nothing outlives its window.

`admit(key)` counts one attempt and says whether it is within the limit (Redis: INCR, with
the window's expiry set by the first; shared by every server process).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from storage.sessions import DEFAULT_PREFIX

_INCR_WITH_WINDOW = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class AdmissionLimit(ABC):
    def __init__(self, limit: int, window: int) -> None:
        if limit < 1 or window < 1:
            raise ValueError("limit and window must be positive")
        self.limit = limit
        self.window = window

    @abstractmethod
    async def admit(self, key: str) -> bool:
        """Count one new respondent for `key`; False once the window's limit is passed."""

    async def close(self) -> None:  # noqa: B027 - optional for implementations
        """Release resources."""


class MemoryAdmissionLimit(AdmissionLimit):
    """One process (the embedded default); a bounded memory, oldest windows dropped first."""

    def __init__(
        self,
        limit: int,
        window: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(limit, window)
        self.max_keys = max_keys
        self._clock = clock
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()  # key -> (end, n)

    async def admit(self, key: str) -> bool:
        now = self._clock()
        end, n = self._windows.get(key, (0.0, 0))
        if end <= now:
            end, n = now + self.window, 0
        self._windows[key] = (end, n + 1)
        self._windows.move_to_end(key)
        while len(self._windows) > self.max_keys:
            self._windows.popitem(last=False)
        return n + 1 <= self.limit


class RedisAdmissionLimit(AdmissionLimit):
    """Shared by every process: `{prefix}admit:{key}`, counted with INCR, expiring with the
    window (one round trip)."""

    def __init__(self, client: Any, limit: int, window: int, prefix: str = DEFAULT_PREFIX):
        super().__init__(limit, window)
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(_INCR_WITH_WINDOW)

    async def admit(self, key: str) -> bool:
        n = await self._script(keys=[f"{self.prefix}admit:{key}"], args=[self.window])
        return int(n) <= self.limit
