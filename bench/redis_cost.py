"""What one round trip of the hot path's Redis script costs the server in CPU.

    python -m bench.redis_cost [--calls 20000] [--concurrency 8] [--redis-url redis://...]

The session store's take script (`storage.sessions`, lock + read), on a key of its own,
sent two ways, alternating, twice each: through redis-py's client (`AsyncScript.__call__`,
the pool's checkout and return around each call; how the store sent it until the eighth
hot-path pass of bench/README.md), and on the store's lane (`Lane.run`, how it sends
it now). `--concurrency` callers at once, on the event loop `serve` runs on. Prints the
process's CPU microseconds per call (Redis's own CPU is not in it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from backend.cli import event_loop
from storage.sessions import Lane, redis_client

DEFAULT_URL = "redis://127.0.0.1:6379/0"
# Takes the lock and reads one key (as `_TAKE` does), then lets go at once, so that every
# call finds the lock free.
SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local got = redis.call('MGET', KEYS[2])
  redis.call('DEL', KEYS[1])
  return got
end
return false
"""


async def _timed(call: Callable[[], Awaitable[Any]], calls: int, concurrency: int) -> float:
    async def worker(n: int) -> None:
        for _ in range(n):
            await call()

    share = calls // concurrency
    started = time.process_time()
    await asyncio.gather(*(worker(share) for _ in range(concurrency)))
    return round((time.process_time() - started) / (share * concurrency) * 1e6, 1)


async def main_async(args: argparse.Namespace) -> dict[str, list[float]]:
    client = redis_client(args.redis_url)
    prefix = f"bench:{secrets.token_hex(4)}:"
    keys = [prefix + "lock", prefix + "session"]
    script = client.register_script(SCRIPT)
    lane = Lane.of(client.connection_pool)  # as the session store makes it
    out: dict[str, list[float]] = {"client": [], "lane": []}
    try:
        await client.set(keys[1], "x" * 300, ex=600)  # about a session's size

        async def through_client() -> Any:
            return await script(keys=keys, args=["token", 30000])

        async def on_lane() -> Any:
            return await lane.run(script, keys, ["token", 30000])

        for warm in (through_client, on_lane):  # connections open, the script loaded
            await _timed(warm, 200 * args.concurrency, args.concurrency)
        for _ in range(2):
            for name, way in (("client", through_client), ("lane", on_lane)):
                out[name].append(await _timed(way, args.calls, args.concurrency))
    finally:
        await client.delete(*keys)
        await lane.close()
        await client.aclose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--redis-url", default=DEFAULT_URL)
    args = ap.parse_args()
    loop = event_loop()
    try:
        result = loop.run_until_complete(main_async(args))
    finally:
        loop.close()
    print(json.dumps({"cpu_us_per_call": result}, indent=2))


if __name__ == "__main__":
    main()
