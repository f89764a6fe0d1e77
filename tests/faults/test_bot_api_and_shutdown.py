"""The Bot API slow, failing with 5xx, or answering 429; and a graceful SIGTERM.

Nothing is dropped silently: every prompt is delivered, or given up after the retry
budget with a log line and a counter; waits honour `retry_after`; the webhook answers at
once whatever the Bot API does.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from backend.web import keys
from storage.db import make_sessionmaker
from tests.apptools import seed_school
from tests.bot.conftest import open_bench
from tests.faults.support import ServeProcess, Updates, post_update, wait_for

pytestmark = pytest.mark.faults


def metric(bench: Any, name: str, **labels: str) -> float:
    return bench.app[keys.METRICS].registry.get_sample_value(name, labels or None) or 0.0


async def test_slow_failing_and_rate_limiting_bot_api(
    storage: dict[str, Any], fake_api: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with asyncio.timeout(60), open_bench(storage, fake_api, bot_backoff=0.2) as bench:
        tg = bench.tg
        slow, flaky, limited, dead = (tg.user() for _ in range(4))
        fake_api.slow("sendMessage", 2.0, times=1)  # whoever comes first waits 2 s
        fake_api.fail("sendMessage", 502, "Bad Gateway", times=2, chat_id=flaky.id)
        fake_api.fail("sendMessage", 429, "Too Many Requests", retry_after=1, chat_id=limited.id)
        fake_api.fail("sendMessage", 500, "Internal", times=99, chat_id=dead.id)

        code = bench.seeded.invites["teacher"]
        started = time.monotonic()
        for user in (slow, flaky, limited, dead):
            t0 = time.monotonic()
            assert await tg.send(user, f"/start {code}") == [200]
            assert time.monotonic() - t0 < 1.0, "the webhook waited for the Bot API"
        await tg.settle()
        assert time.monotonic() - started >= 2.0  # the slow call really was slow

        def tries(user: Any) -> list[Any]:
            return fake_api.called("sendMessage", user.id, status=None)

        # Slow: delivered once. 5xx twice: delivered on the third try, after backing off.
        assert [c.status for c in tries(slow)] == [200]
        assert [c.status for c in tries(flaky)] == [502, 502, 200]
        gaps = [b.at - a.at for a, b in zip(tries(flaky), tries(flaky)[1:], strict=False)]
        assert gaps[0] >= 0.2 * 0.95 and gaps[1] >= 0.4 * 0.95, gaps
        # 429: the retry came no sooner than retry_after.
        first, second = tries(limited)
        assert (first.status, second.status) == (429, 200)
        assert second.at - first.at >= 1.0 * 0.98
        # Always 5xx: given up after the retry budget (5 tries), logged and counted.
        assert [c.status for c in tries(dead)] == [500] * 5
        assert metric(bench, "gs_errors_total", kind="bot_send_network") == 1
        assert metric(bench, "gs_bot_api_calls_total", method="sendMessage", outcome="gave_up") == 1
        assert any("given up (network)" in r.getMessage() for r in caplog.records)
        # Everyone else sees the consent card; the person left without it can /start again.
        for user in (slow, flaky, limited):
            assert fake_api.card(user.id) is not None
        fake_api.faults.clear()  # the Bot API recovered
        assert await tg.send(dead, "/start " + code) == [200]
        await tg.settle()
        assert fake_api.card(dead.id) is not None


async def test_sigterm_completes_in_flight_updates_and_drains_sends(
    db_engine: Any, fake_api: Any, serve_factory: Callable[[], ServeProcess]
) -> None:
    seeded = await seed_school(make_sessionmaker(db_engine))
    server = serve_factory()
    await server.start()
    updates = Updates()
    users = [updates.user() for _ in range(12)]
    fake_api.slow("sendMessage", 1.0, times=len(users))  # sends still pending at SIGTERM
    code = seeded.invites["learner"]
    bodies = [updates.message(u, f"/start {code}") for u in users]

    async with asyncio.timeout(40), aiohttp.ClientSession() as session:
        first = asyncio.gather(*(post_update(session, server.url, b) for b in bodies[:8]))
        # Requests are in flight and the sends have begun.
        await wait_for(lambda: fake_api.called("sendMessage", status=None), 20, "a send")
        server.signal(signal.SIGTERM)
        late = asyncio.gather(*(post_update(session, server.url, b) for b in bodies[8:]))
        early, after = await first, await late
        t0 = time.monotonic()
        assert await server.wait(20) == 0
        stopped_in = time.monotonic() - t0

    assert all(s == 200 for s in early), early  # in flight at SIGTERM: completed
    assert all(s in (0, 200, 503) for s in after), after  # refused or done, never lost
    for user, status in zip(users, early + after, strict=True):
        if status == 200:  # an acknowledged update's message went out before exit
            assert [c.status for c in fake_api.called("sendMessage", user.id)] == [200]
    assert "not delivered" not in server.log()
    assert stopped_in < 15
