"""A classroom at once: 100 people open the link and agree within a second, with the real
outbound limits (30 messages/s in all, 1/s per chat)."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select

from storage.models import Invite, Response
from tests.bot.conftest import open_bench
from tests.bot.walker import button

N = 100


async def test_burst_of_100_respondents(storage, fake_api, capsys):
    rates = {"global_rate": 30.0, "chat_rate": 1.0, "chat_burst": 3}
    async with open_bench(storage, fake_api, bot_rates=rates) as bench:
        tg = bench.tg
        users = [tg.user() for _ in range(N)]
        code = bench.seeded.invites["learner"]

        async def timed(coro):
            started = time.monotonic()
            statuses = await coro
            return statuses, time.monotonic() - started

        started = time.monotonic()
        starts = await asyncio.gather(*(timed(tg.send(u, f"/start {code}")) for u in users))
        acked_starts = time.monotonic() - started
        await tg.settle()
        cards = {u.id: fake_api.card(u.id) for u in users}
        taps = await asyncio.gather(
            *(timed(tg.tap(u, cards[u.id], button(cards[u.id], "!c", "yes"))) for u in users)
        )
        await tg.settle()
        total = time.monotonic() - started

        assert all(s == [200] for s, _ in starts + taps)
        async with bench.sm() as s:
            assert await s.scalar(select(func.count()).select_from(Response)) == N
            assert await s.scalar(select(Invite.uses).where(Invite.code == code)) == N
        sent = fake_api.called("sendMessage") + fake_api.called("editMessageText")
        assert len(sent) == 2 * N  # one message call per update: the card, then its edit
        assert all(fake_api.card(u.id).text.startswith("Question 1 of") for u in users)
        # Never more than the bucket allows: 5 at once, then 30 a second.
        times = sorted(c.at for c in sent)
        worst = max(sum(1 for t in times if t0 <= t < t0 + 1.0) for t0 in times)
        assert worst <= 45  # 30/s + a burst of 5, plus event-loop jitter at the fake
        assert total >= (2 * N - 5) / 30 * 0.95
        slowest_ack = max(d for _, d in starts + taps)
        with capsys.disabled():
            print(
                f"\n[burst {N}] acks: starts {acked_starts:.2f}s, slowest {slowest_ack:.2f}s;"
                f" all {2 * N} cards delivered in {total:.2f}s; worst 1s window {worst} calls"
            )
