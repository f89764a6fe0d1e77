"""Real `guidance-survey serve` processes: killed with SIGKILL mid-burst, and two at once.

Updates are delivered as Telegram does: each respondent's in order, everything not answered
200 again until it is, and some answered ones a second time (duplicates).
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import aiohttp
import pytest

from storage.db import make_sessionmaker
from tests.apptools import seed_school
from tests.faults.support import SECRET_KEY as KEY
from tests.faults.support import (
    Respondent_,
    deliver_until_ok,
    plan_people,
    post_update,
    stored_codes,
    survey_engine,
)

pytestmark = pytest.mark.faults

ROLES = ("learner", "teacher", "parent", "graduate", "employer", "staff", "union", "board")


def subject(user_id: int) -> str:
    from conversations.identity import subject_hash

    return subject_hash(KEY, "telegram", user_id)


async def people_of(db_engine: Any, count: int) -> tuple[Any, list[Respondent_]]:
    sessionmaker = make_sessionmaker(db_engine)
    seeded = await seed_school(sessionmaker)
    return sessionmaker, plan_people(survey_engine(), seeded.invites, ROLES, count)


async def check_stored(sessionmaker: Any, people: list[Respondent_]) -> None:
    for p in people:
        status, codes = await stored_codes(sessionmaker, subject(p.user.id))
        assert codes == p.expected, (p.role, sorted(set(p.expected) ^ set(codes)))
        assert status == "completed", p.role


async def test_sigkill_mid_burst_then_restart_stores_every_answer_once(
    serve_factory, db_engine: Any
) -> None:
    sessionmaker, people = await people_of(db_engine, 16)
    total = sum(len(p.updates) for p in people)
    server = serve_factory()
    await server.start()
    ok = 0
    reached = asyncio.Event()  # 40 % of the updates were answered: time to kill
    killed = asyncio.Event()
    back = asyncio.Event()
    duplicates = 0

    async def respondent(session: aiohttp.ClientSession, p: Respondent_, deadline: float) -> None:
        nonlocal ok, duplicates
        for i, planned in enumerate(p.updates):
            await deliver_until_ok(session, server.url, planned.body, deadline=deadline)
            ok += 1
            if ok >= total * 0.4:
                reached.set()
            if i % 4 == 3:  # Telegram sometimes delivers an answered update again
                assert await post_update(session, server.url, planned.body) in (0, 200, 503)
                duplicates += 1

    async def killer() -> None:
        await reached.wait()
        server.signal(signal.SIGKILL)
        assert await server.wait(10) == -signal.SIGKILL
        killed.set()
        await asyncio.sleep(0.5)
        await server.start()
        back.set()

    async with asyncio.timeout(150):
        deadline = time.monotonic() + 120
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(killer(), *(respondent(session, p, deadline) for p in people))
            # Late duplicates of everything after the restart: all answered 200, no change.
            for p in people[:4]:
                for planned in p.updates:
                    assert await post_update(session, server.url, planned.body) == 200
    assert killed.is_set() and back.is_set() and duplicates > 0
    await check_stored(sessionmaker, people)


async def test_two_processes_give_the_same_result_as_one(serve_factory, db_engine: Any) -> None:
    sessionmaker, people = await people_of(db_engine, 12)
    a, b = serve_factory(), serve_factory()
    await asyncio.gather(a.start(), b.start())

    async with asyncio.timeout(120):
        deadline = time.monotonic() + 100
        async with aiohttp.ClientSession() as session:

            async def respondent(p: Respondent_, n: int) -> None:
                for i, planned in enumerate(p.updates):
                    one, other = (a, b) if (i + n) % 2 == 0 else (b, a)
                    if i % 5 == 4:
                        # The same update at both processes at once (a retry racing
                        # the original): one processes it, the other sees a duplicate.
                        statuses = await asyncio.gather(
                            post_update(session, one.url, planned.body),
                            post_update(session, other.url, planned.body),
                        )
                        if 200 not in statuses:
                            await deliver_until_ok(
                                session, one.url, planned.body, deadline=deadline
                            )
                    else:
                        await deliver_until_ok(session, one.url, planned.body, deadline=deadline)

            await asyncio.gather(*(respondent(p, n) for n, p in enumerate(people)))
    await check_stored(sessionmaker, people)
    assert "Traceback" not in a.log() + b.log()
