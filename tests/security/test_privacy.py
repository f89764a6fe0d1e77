"""Respondents leave no raw Telegram id or username behind; the webhook resists forgery/replay.

Two people answer a whole survey through Telegram (the fake Bot API and the real webhook;
ids 987654321 and 987654322, usernames alice_secret and bob_secret_zz) and one through
the web chat. Afterwards neither id nor username is in any column of any table (every
table, read generically), in any Redis key or value of the test's prefix, in the JSON log
lines written meanwhile, or in any export of the cycle. SQLite + memory and PostgreSQL +
Redis (the `storage` fixture of the bot tests).
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from backend.dashboard import auth
from backend.dashboard.passwords import hash_password
from backend.web import keys
from backend.web.logs import JsonFormatter
from storage import schools
from storage.models import Answer, Response
from tests.bot.conftest import fake_api, open_bench, storage  # noqa: F401 (fixtures)
from tests.bot.fakebot import User
from tests.bot.walker import dump_storage, walk_survey
from tests.security.bench import csrf_of, readable
from tests.webtools import answer_everything, web_user

PEOPLE = [User(987654321, "alice_secret", "Zelmirax"), User(987654322, "bob_secret_zz", "Quorvath")]
NEEDLES = ["987654321", "987654322", "alice_secret", "bob_secret_zz", "Zelmirax", "Quorvath"]


async def test_no_raw_telegram_id_or_username_anywhere(storage, fake_api, caplog):  # noqa: F811
    caplog.set_level(logging.INFO)
    async with open_bench(storage, fake_api) as bench:
        tg = bench.tg
        # Forged or missing secret: 403, nothing stored.
        update = tg.message(PEOPLE[0], f"/start {bench.seeded.invites['learner']}")
        assert await tg.post(update, secret="not-the-secret") == 403
        assert await tg.post(update, secret="") == 403
        async with bench.sm() as s:
            assert await s.scalar(select(func.count()).select_from(Response)) == 0
        for person, role in zip(PEOPLE, ("learner", "parent"), strict=True):
            await walk_survey(bench, person, role)
        # A replayed update (same update_id): 200, no second write.
        async with bench.sm() as s:
            answers = await s.scalar(select(func.count()).select_from(Answer))
        card = fake_api.card(PEOPLE[0].id) or fake_api.last(PEOPLE[0].id)
        replay = tg.message(PEOPLE[0], "/start " + bench.seeded.invites["learner"])
        assert await tg.post(replay) == 200
        await tg.settle(PEOPLE[0])
        calls = len(fake_api.calls)
        assert await tg.post(replay) == 200
        await tg.settle(PEOPLE[0])
        assert len(fake_api.calls) == calls, "a replayed update was processed again"
        async with bench.sm() as s:
            assert await s.scalar(select(func.count()).select_from(Answer)) == answers
        assert card is not None
        # One more through the web chat.
        async with web_user(bench.client) as user:
            await user.start(bench.seeded.invites["teacher"])
            await answer_everything(user, text="Our careers week helps")
        # The exports of the cycle, fetched by its coordinator.
        async with bench.sm.begin() as s:
            coord = await schools.create_user(
                s, bench.seeded.school_id, "c@privacy.example", hash_password("pw " * 5)
            )
        token = auth.api_token(bench.app[keys.SECRET_KEY], coord)
        exported = []
        resp = await bench.client.get(
            f"/api/cycles/{bench.seeded.cycle_id}/report",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status == 200
        exported.append(await resp.text())
        csrf = await csrf_of(bench.client)
        resp = await bench.client.post(
            "/login",
            data={"csrf": csrf, "email": "c@privacy.example", "password": "pw " * 5},
            allow_redirects=False,
        )
        assert resp.status == 303
        for fmt in ("csv", "xlsx", "json", "pdf"):
            resp = await bench.client.get(f"/dashboard/cycles/{bench.seeded.cycle_id}/export.{fmt}")
            assert resp.status == 200, fmt
            exported.append(readable(await resp.read()))
        stored = await dump_storage(bench)
        async with bench.sm() as s:
            assert await s.scalar(select(func.count()).select_from(Response)) == 3
    formatter = JsonFormatter()
    logs = "\n".join(formatter.format(r) for r in caplog.records)
    assert len(caplog.records) > 10  # the run did log
    for needle in NEEDLES:
        assert needle not in stored, f"{needle} is stored"
        assert needle not in logs, f"{needle} is in the logs"
        for text in exported:
            assert needle not in text, f"{needle} is in an export"
