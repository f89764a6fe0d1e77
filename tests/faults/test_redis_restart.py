"""Redis restarted (empty) mid-survey: the database is the truth, nobody loses a step."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import func, select

from bot import callback
from storage.models import Answer, Comment
from tests.bot.conftest import open_bench
from tests.faults.support import Respondent_, plan_people, stored_codes

pytestmark = pytest.mark.faults

ROLES = ("learner", "parent", "graduate", "board")


async def deliver(bench: Any, body: dict[str, Any], deadline: float) -> list[int]:
    statuses: list[int] = []
    while True:
        status = await bench.tg.post(body)
        statuses.append(status)
        if status == 200:
            return statuses
        assert status == 503, statuses  # only a transient failure may refuse
        assert time.monotonic() < deadline, statuses
        await asyncio.sleep(0.05)


async def test_redis_restart_mid_survey_loses_no_answer_and_no_position(
    own_redis, fake_api, db_engine: Any
) -> None:
    from tests.apptools import db_url_of

    storage = {
        "database_url": db_url_of(db_engine),
        "redis_url": own_redis.url,
        "redis_prefix": "gsfault:",
    }
    async with asyncio.timeout(90), open_bench(storage, fake_api) as bench:
        people = plan_people(bench.survey.engine, bench.seeded.invites, ROLES)
        half = {id(p): 2 + (len(p.updates) - 2) // 2 for p in people}
        deadline = time.monotonic() + 60

        async def run(p: Respondent_, upto: int) -> None:
            while p.sent < upto:
                await deliver(bench, p.updates[p.sent].body, deadline)
                p.sent += 1

        await asyncio.gather(*(run(p, half[id(p)]) for p in people))
        await bench.tg.settle()

        def next_question(p: Respondent_) -> str:
            q = p.updates[p.sent].question_id
            assert q is not None
            return q

        for p in people:
            state = await bench.survey.load_state(bench.subject(p.user))
            assert state["stage"] == "question" and state["pos"] == next_question(p)

        own_redis.restart()  # empty: no sessions, no card ids, no update claims

        async def load_state(p: Respondent_) -> dict[str, Any]:
            # Pooled connections to the old server fail once (a request would answer 503).
            for _ in range(3):
                try:
                    return await bench.survey.load_state(bench.subject(p.user))
                except RedisConnectionError:
                    await asyncio.sleep(0.05)
            raise AssertionError("Redis did not come back")

        for p in people:
            state = await load_state(p)
            assert state["stage"] == "question", "position rebuilt from the database"
            assert state["pos"] == next_question(p)
            assert await bench.survey.store.load(bench.survey.key(bench.subject(p.user))) is None

        # The card a person sees after the restart is the right question's.
        p = people[0]
        await bench.tg.post(bench.tg.message(p.user, "/resume"))
        await bench.tg.settle(p.user)
        card = fake_api.card(p.user.id)
        assert card is not None
        targets = {t.target for t in map(callback.decode, card.callback_data()) if t}
        assert next_question(p) in targets

        await asyncio.gather(*(run(p, len(p.updates)) for p in people))
        await bench.tg.settle()

        total = 0
        for p in people:
            status, codes = await stored_codes(bench.sm, bench.subject(p.user))
            assert status == "completed", p.role
            assert codes == p.expected, p.role
            total += len(p.expected)
        async with bench.sm() as s:
            rows = await s.scalar(select(func.count()).select_from(Answer))
            rows += await s.scalar(select(func.count()).select_from(Comment))
        assert rows == total  # nothing doubled, nothing lost
