"""PostgreSQL unreachable for a while: 503 (Telegram retries), /readyz says so, and each
retried update lands exactly once when the database is back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from storage.models import Answer, Comment
from tests.apptools import db_url_of
from tests.bot.conftest import open_bench
from tests.faults.support import TcpProxy, plan_people, stored_codes

pytestmark = pytest.mark.faults

ROLES = ("learner", "teacher", "employer")


async def test_postgres_outage_answers_503_and_retries_land_once(
    fake_api, db_engine: Any, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    real = make_url(db_url_of(db_engine))
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
    await proxy.up()
    storage = {
        "database_url": real.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        ),
        "redis_url": redis_url,
        "redis_prefix": redis_prefix,
    }
    try:
        async with asyncio.timeout(90), open_bench(storage, fake_api) as bench:
            people = plan_people(bench.survey.engine, bench.seeded.invites, ROLES)
            # Open the survey and answer three questions, all fine.
            for p in people:
                for planned in p.updates[:5]:
                    assert await bench.tg.post(planned.body) == 200
                    p.sent += 1
            await bench.tg.settle()

            await proxy.down()  # established connections dropped, new ones refused
            in_outage = [p.updates[p.sent].body for p in people]
            for body in in_outage:
                assert await bench.tg.post(body) == 503
            resp = await bench.client.get("/readyz")
            assert resp.status == 503
            ready = await resp.json()
            assert ready["checks"]["database"].startswith("error"), ready
            assert ready["checks"]["redis"] == "ok"
            assert await bench.tg.post(in_outage[0]) == 503  # Telegram's retry, still down

            await proxy.up()
            deadline = time.monotonic() + 30
            for body in in_outage:  # Telegram retries until 200
                while (status := await bench.tg.post(body)) != 200:
                    assert status == 503 and time.monotonic() < deadline
                    await asyncio.sleep(0.1)
            for p in people:
                p.sent += 1
            for body in in_outage:  # and a late duplicate changes nothing
                assert await bench.tg.post(body) == 200
            assert (await bench.client.get("/readyz")).status == 200

            for p in people:
                state = await bench.survey.load_state(bench.subject(p.user))
                assert state["pos"] == p.updates[p.sent].question_id
                _, codes = await stored_codes(bench.sm, bench.subject(p.user))
                answered = [u.question_id for u in p.updates[: p.sent] if u.question_id]
                assert set(codes) == set(answered)
                assert codes == {q: p.expected[q] for q in answered}

            # The rest of the survey goes through as usual.
            for p in people:
                for planned in p.updates[p.sent :]:
                    assert await bench.tg.post(planned.body) == 200
            await bench.tg.settle()
            total = 0
            for p in people:
                status, codes = await stored_codes(bench.sm, bench.subject(p.user))
                assert (status, codes) == ("completed", p.expected)
                total += len(p.expected)
            async with bench.sm() as s:
                rows = await s.scalar(select(func.count()).select_from(Answer))
                rows += await s.scalar(select(func.count()).select_from(Comment))
            assert rows == total
        # The outage was a transient failure, never "an error in our code".
        assert not [
            r for r in caplog.records if r.name == "backend.web.webhook" and r.levelno >= 40
        ]
        assert [r for r in caplog.records if "transient" in r.getMessage()]
    finally:
        await proxy.close()
