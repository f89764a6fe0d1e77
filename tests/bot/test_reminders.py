"""Reminders and announcements, with a fake clock and the fake Bot API, on SQLite + memory
and PostgreSQL + Redis: they arrive as configured and stop as promised."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from backend.web import keys
from backend.web.keys import SCHEDULER
from bot.reminders import is_quiet
from conversations import engine as E
from conversations.banks import load_banks
from storage import contacts, migrate
from storage.models import Answer, Comment, Contact, Cycle, Invite, Respondent, Response, School
from storage.reminders import AnnouncementRefused, send_announcement
from storage.retention import forget_respondent_keys
from tests.apptools import make_settings, running_app
from tests.backend.dashboard.support import login
from tests.bot.conftest import FAST_RATES, open_bench
from tests.bot.walker import button, dump_storage, first_choice, start_and_consent
from tests.storage.support import table_names

T0 = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)  # a Monday, 10:00 UTC: when they stopped
REMIND = {"reminders_enabled": True, "quiet_hours": ""}


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, hours: float, start: datetime = T0) -> FakeClock:
        self.now = start + timedelta(hours=hours)
        return self


@asynccontextmanager
async def reminding(storage, fake, clock, **settings: Any) -> AsyncIterator[Any]:
    values = dict(REMIND)
    values.update(settings)
    async with open_bench(storage, fake, settings=values, clock=clock, reminder_loop=False) as b:
        yield b


# -- people ---------------------------------------------------------------------------------


async def started(bench, *, opt_in: bool | None = True, answers: int = 2, role: str = "learner"):
    """/start, consent, the opt-in card (yes / no / not shown), then `answers` taps."""
    tg, fake = bench.tg, bench.fake
    user = await start_and_consent(bench, role)
    if opt_in is not None:
        card = fake.card(user.id)
        assert card.text.startswith("One more question"), card.text
        assert await tg.tap(user, card, button(card, "!o", "yes" if opt_in else "no")) == [200]
        await tg.settle(user)
    for _ in range(answers):
        assert await tg.tap(user, fake.card(user.id), first_choice(fake.card(user.id))) == [200]
        await tg.settle(user)
    return user


async def finish(bench, user) -> None:
    """Answer every remaining question (first choice, the minimum, a short text)."""
    engine, tg, fake = bench.survey.engine, bench.tg, bench.fake
    for _ in range(200):
        state = await bench.survey.load_state(bench.subject(user))
        if state.get("stage") == "done":
            return
        q = engine.bank_for(state).question(state["pos"])
        if q.kind in ("scale", "choice"):
            assert await tg.tap(user, fake.card(user.id), first_choice(fake.card(user.id))) == [200]
        elif q.kind == "number":
            assert await tg.send(user, str(int(q.number.min))) == [200]
        else:
            assert await tg.send(user, "Fine.") == [200]
        await tg.settle(user)
    raise AssertionError("survey did not end")


async def response_of(bench, user) -> Response | None:
    async with bench.sm() as s:
        return await s.scalar(
            select(Response)
            .join(Respondent, Respondent.id == Response.respondent_id)
            .where(Respondent.subject_hash == bench.subject(user))
        )


async def contact_of(bench, user) -> Contact | None:
    response = await response_of(bench, user)
    if response is None:
        return None
    async with bench.sm() as s:
        return await s.scalar(select(Contact).where(Contact.response_id == response.id))


async def backdate(bench, *users, when: datetime = T0) -> None:
    """Pretend each person's last answer was at `when` (the fake clock's start)."""
    async with bench.sm.begin() as s:
        for user in users:
            rid = await s.scalar(
                select(Response.id)
                .join(Respondent, Respondent.id == Response.respondent_id)
                .where(Respondent.subject_hash == bench.subject(user))
            )
            await s.execute(update(Response).where(Response.id == rid).values(updated_at=when))
            await s.execute(
                update(Answer).where(Answer.response_id == rid).values(answered_at=when)
            )
            await s.execute(
                update(Comment).where(Comment.response_id == rid).values(created_at=when)
            )


def reminders(fake, user) -> list[str]:
    """Texts of the reminders this person was sent."""
    return [
        c.params["text"]
        for c in fake.called("sendMessage", user.id)
        if "|!r|" in str(c.params.get("reply_markup"))
    ]


async def tick(bench, clock: FakeClock, hours: float, start: datetime = T0) -> int:
    clock.at(hours, start)
    n = await bench.app[SCHEDULER].tick()
    await bench.tg.settle()
    return n


# -- the engine's opt-in step (pure) ----------------------------------------------------------


def _invite(can_remind: bool) -> E.InviteInfo:
    return E.InviteInfo("code1", 1, 7, "learner", "learner@1", "School", can_remind=can_remind)


def test_engine_asks_for_the_opt_in_only_where_the_channel_can_remind():
    engine = E.Engine.from_banks(load_banks().values())
    st = engine.step({}, E.Start(_invite(False))).state
    step = engine.step(st, E.Consent(True))
    assert step.state["stage"] == "question" and step.prompts[0].kind == "question"
    assert not any(isinstance(e, E.SetOptIn) for e in step.effects)

    st = engine.step({}, E.Start(_invite(True))).state
    step = engine.step(st, E.Consent(True))
    assert step.state["stage"] == "optin"
    assert step.prompts[0].kind == "optin"
    assert [c.id for c in step.prompts[0].choices] == [E.YES, E.NO]
    assert isinstance(step.effects[0], E.OpenResponse)
    at_optin = step.state

    typed = engine.step(at_optin, E.Answer(None, "maybe"))
    assert not typed.changed and typed.prompts[0].notice
    for given, via in ((True, E.OptIn(True)), (False, E.Answer(None, E.NO))):
        step = engine.step(at_optin, via)
        assert step.state["stage"] == "question" and step.prompts[0].question_id == "l01"
        assert step.effects == (E.SetOptIn(given),)
    stopped = engine.step(at_optin, E.Stop())
    assert stopped.state["stage"] == "stopped" and stopped.effects == (E.SetStatus("stopped"),)
    assert engine.step(at_optin, E.Resume()).prompts[0].kind == "optin"

    # "No more reminders" from a reminder, mid-survey: forget the address, stay put.
    mid = engine.step(at_optin, E.OptIn(True)).state
    off = engine.step(mid, E.OptIn(False))
    assert off.effects == (E.SetOptIn(False),) and not off.changed
    assert [p.kind for p in off.prompts] == ["info", "question"]
    assert engine.step(mid, E.OptIn(True)).effects == ()


def test_quiet_hours_in_the_schools_time_zone():
    at = datetime(2030, 1, 7, 17, 0, tzinfo=UTC)
    assert not is_quiet(at, "UTC", (20, 8))
    assert is_quiet(at, "Asia/Yerevan", (20, 8))  # 21:00 there
    assert not is_quiet(at, "Asia/Yerevan", None)
    assert is_quiet(at.replace(hour=3), "UTC", (20, 8))
    assert not is_quiet(at.replace(hour=8), "UTC", (20, 8))
    assert is_quiet(at.replace(hour=13), "UTC", (12, 14))
    assert not is_quiet(at, "No/Such_Zone", (20, 8))  # falls back to UTC


def test_addresses_are_encrypted_with_a_key_from_the_secret():
    token = contacts.encrypt_address("secret-one-" + "x" * 20, 7300007919)
    assert "7300007919" not in token
    assert contacts.decrypt_address("secret-one-" + "x" * 20, token) == "7300007919"
    assert contacts.decrypt_address("secret-two-" + "x" * 20, token) is None


# -- reminders arrive as configured -------------------------------------------------------------


async def test_two_reminders_at_24_and_72_hours_never_a_third(storage, fake_api):
    clock = FakeClock(T0)
    async with reminding(storage, fake_api, clock) as bench:
        user = await started(bench)
        row = await contact_of(bench, user)
        assert row is not None and row.reminders_sent == 0
        assert str(user.id) not in row.address
        await backdate(bench, user)

        assert await tick(bench, clock, 23.9) == 0
        assert await tick(bench, clock, 24) == 1
        texts = reminders(fake_api, user)
        assert len(texts) == 1 and "reminder 1 of 2" in texts[0]
        assert "Test Vocational School" in texts[0] and "/stop" in texts[0]
        assert await tick(bench, clock, 30) == 0
        assert await tick(bench, clock, 71.9) == 0
        assert await tick(bench, clock, 72) == 1
        assert "reminder 2 of 2" in reminders(fake_api, user)[1]
        for hours in (73, 200, 2000):
            assert await tick(bench, clock, hours) == 0
        assert len(reminders(fake_api, user)) == 2
        row = await contact_of(bench, user)
        assert row.reminders_sent == 2 and row.last_reminded_at == T0 + timedelta(hours=72)
        # The chat id is in no table and no session key in clear.
        assert str(user.id) not in await dump_storage(bench)


async def test_the_second_waits_for_its_own_gap_and_the_last_answer(storage, fake_api):
    clock = FakeClock(T0)
    async with reminding(storage, fake_api, clock, reminder_delays_hours="24,72") as bench:
        user = await started(bench)
        await backdate(bench, user)
        assert await tick(bench, clock, 24) == 1
        # They answer once more at T0+30h, then stop again: the clock starts anew.
        await backdate(bench, user, when=T0 + timedelta(hours=30))
        assert await tick(bench, clock, 72) == 0
        assert await tick(bench, clock, 101.9) == 0
        assert await tick(bench, clock, 102) == 1


async def test_quiet_hours_wait_for_the_morning_in_the_schools_time_zone(storage, fake_api):
    evening = datetime(2030, 1, 7, 17, 0, tzinfo=UTC)  # 21:00 in Yerevan (UTC+4)
    clock = FakeClock(evening)
    async with reminding(storage, fake_api, clock, quiet_hours="20-8") as bench:
        async with bench.sm.begin() as s:
            await s.execute(
                update(School)
                .where(School.id == bench.seeded.school_id)
                .values(timezone="Asia/Yerevan")
            )
        user = await started(bench)
        await backdate(bench, user, when=evening)
        assert await tick(bench, clock, 24, evening) == 0  # 21:00 local
        assert await tick(bench, clock, 30, evening) == 0  # 03:00 local
        assert await tick(bench, clock, 34.9, evening) == 0  # 07:54 local
        assert await tick(bench, clock, 35, evening) == 1  # 08:00 local
        assert len(reminders(fake_api, user)) == 1


# -- ... and stop as promised ---------------------------------------------------------------------


async def test_no_reminder_after_stop_completion_delete_decline_or_without_opt_in(
    storage, fake_api
):
    clock = FakeClock(T0)
    async with reminding(storage, fake_api, clock) as bench:
        tg = bench.tg
        control = await started(bench)
        stopper = await started(bench)
        assert await tg.send(stopper, "/stop") == [200]
        finisher = await started(bench)
        await finish(bench, finisher)
        deleter = await started(bench)
        assert await tg.send(deleter, "/delete") == [200]
        await tg.settle(deleter)
        card = bench.fake.card(deleter.id)
        assert await tg.tap(deleter, card, button(card, "!d", "yes")) == [200]
        decliner = await started(bench, opt_in=False)
        await tg.settle()

        assert (await response_of(bench, stopper)).status == "stopped"
        assert (await response_of(bench, finisher)).status == "completed"
        assert await response_of(bench, deleter) is None
        assert await contact_of(bench, decliner) is None
        async with bench.sm() as s:
            assert len((await s.scalars(select(Contact))).all()) == 3  # control, stop, finish
        await backdate(bench, control, stopper, finisher, decliner)

        for hours in (24, 72, 500):
            await tick(bench, clock, hours)
        assert len(reminders(bench.fake, control)) == 2
        for user in (stopper, finisher, deleter, decliner):
            assert reminders(bench.fake, user) == []


async def test_no_reminder_without_reminders_enabled_and_no_opt_in_card(storage, fake_api):
    async with open_bench(storage, fake_api) as bench:  # REMINDERS_ENABLED unset
        assert bench.app[SCHEDULER] is None
        user = await started(bench, opt_in=None)
        assert (await bench.survey.load_state(bench.subject(user)))["stage"] == "question"
        assert await contact_of(bench, user) is None


async def test_no_reminder_once_the_cycle_closes(storage, fake_api):
    clock = FakeClock(T0)
    async with reminding(storage, fake_api, clock) as bench:
        user = await started(bench)
        await backdate(bench, user)
        cycle_id = bench.seeded.cycle_id
        async with bench.sm.begin() as s:  # closes by date before 24 h
            await s.execute(
                update(Cycle).where(Cycle.id == cycle_id).values(closes_at=T0 + timedelta(hours=12))
            )
        assert await tick(bench, clock, 24) == 0
        async with bench.sm.begin() as s:  # closed by hand, no date
            await s.execute(
                update(Cycle).where(Cycle.id == cycle_id).values(closes_at=None, status="closed")
            )
        assert await tick(bench, clock, 72) == 0
        assert reminders(fake_api, user) == []

        # Retention deletes the addresses of cycles closed long enough ago.
        async with bench.sm.begin() as s:
            await s.execute(update(Cycle).where(Cycle.id == cycle_id).values(closes_at=T0))
        async with bench.sm.begin() as s:
            await forget_respondent_keys(s, now=T0 + timedelta(days=10))
        assert await contact_of(bench, user) is not None  # still in the 30-day grace
        async with bench.sm.begin() as s:
            await forget_respondent_keys(s, now=T0 + timedelta(days=31))
        async with bench.sm() as s:
            assert (await s.scalars(select(Contact))).all() == []


async def test_a_blocked_respondent_gets_nothing_more(storage, fake_api):
    clock = FakeClock(T0)
    async with reminding(storage, fake_api, clock) as bench:
        user = await started(bench)
        await backdate(bench, user)
        fake_api.fail("sendMessage", 403, "Forbidden: bot was blocked by the user", chat_id=user.id)
        assert await tick(bench, clock, 24) == 1  # claimed; Telegram says 403
        async with bench.sm() as s:
            blocked = await s.scalar(
                select(Respondent.blocked_at).where(Respondent.subject_hash == bench.subject(user))
            )
        assert blocked is not None
        assert await tick(bench, clock, 72) == 0
        assert len(fake_api.called("sendMessage", user.id, status=403)) == 1


# -- the reminder's buttons -------------------------------------------------------------------------


async def test_continue_brings_back_the_current_question_and_opt_out_ends_it(storage, fake_api):
    clock = FakeClock(T0)
    async with reminding(storage, fake_api, clock) as bench:
        tg, fake = bench.tg, fake_api
        goer = await started(bench, answers=2)
        quitter = await started(bench, answers=1)
        await backdate(bench, goer, quitter)
        assert await tick(bench, clock, 24) == 2

        reminder = fake.last(goer.id)
        assert reminder.text.startswith("Hello again")
        assert await tg.tap(goer, reminder, button(reminder, "!r", "go")) == [200]
        await tg.settle(goer)
        shown = fake.messages(goer.id)[-1]
        assert shown.message_id == reminder.message_id  # the reminder became the card
        assert shown.text.startswith("Question 3 of"), shown.text
        assert await tg.tap(goer, shown, first_choice(shown)) == [200]
        await tg.settle(goer)
        assert fake.card(goer.id).text.startswith("Question 4 of")

        reminder = fake.last(quitter.id)
        assert await tg.tap(quitter, reminder, button(reminder, "!r", "off")) == [200]
        await tg.settle(quitter)
        assert await contact_of(bench, quitter) is None
        texts = [m.text for m in fake.messages(quitter.id)]
        assert any(t.startswith("Done: no more reminders") for t in texts)
        assert fake.card(quitter.id).text.startswith("Question 2 of")
        assert (await response_of(bench, quitter)).status == "in_progress"

        await backdate(bench, goer, quitter)
        assert await tick(bench, clock, 72) == 1
        assert len(reminders(fake, goer)) == 2 and len(reminders(fake, quitter)) == 1


# -- several processes ------------------------------------------------------------------------------


# Several server processes share PostgreSQL; SQLite is one process: PostgreSQL only.
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_two_schedulers_on_one_postgresql_send_each_reminder_once(storage, fake_api, db_url):
    clock = FakeClock(T0)
    async with reminding(storage, fake_api, clock, reminder_batch=3) as bench:
        users = [await started(bench, answers=1) for _ in range(12)]
        await backdate(bench, *users)
        values = dict(storage)
        values.update(
            REMIND,
            reminder_batch=3,
            telegram_bot_token=bench.app[keys.SETTINGS].telegram_bot_token,
            telegram_webhook_secret=bench.app[keys.SETTINGS].telegram_webhook_secret,
            telegram_api_base_url=fake_api.url,
        )
        db = values.pop("database_url")
        async with running_app(
            make_settings(db, **values), bot_rates=FAST_RATES, clock=clock, reminder_loop=False
        ) as other:
            schedulers = [bench.app[SCHEDULER], other.app[SCHEDULER]]
            for hours in (24, 72):
                clock.at(hours)
                for _ in range(10):
                    got = await asyncio.gather(*(s.tick() for s in schedulers for _ in range(2)))
                    if sum(got) == 0:
                        break
                await asyncio.gather(bench.channel.outbox.join(), other.app[keys.BOT].outbox.join())
            assert all(s.sent > 0 for s in schedulers)  # both did part of the work
        for user in users:
            texts = reminders(fake_api, user)
            assert len(texts) == 2, texts
            assert "reminder 1 of 2" in texts[0] and "reminder 2 of 2" in texts[1]


# -- announcements ------------------------------------------------------------------------------------


async def test_one_announcement_reaches_the_opted_in_of_that_cycle_once(storage, fake_api):
    clock = FakeClock(datetime.now(UTC))
    async with reminding(storage, fake_api, clock) as bench:
        sm = bench.sm
        async with sm.begin() as s:  # a second cycle of the same school, with its invite
            other = Cycle(school_id=bench.seeded.school_id, name="2027/28", model_version="1.0.0")
            s.add(other)
            await s.flush()
            s.add(Invite(cycle_id=other.id, code="other-cycle-code", role="learner", uses=0))
            other_id = other.id
        reader = await started(bench)
        finisher = await started(bench)
        await finish(bench, finisher)
        decliner = await started(bench, opt_in=False)
        stopper = await started(bench)
        assert await bench.tg.send(stopper, "/stop") == [200]
        shared = bench.seeded.invites["learner"]
        bench.seeded.invites["learner"] = "other-cycle-code"
        elsewhere = await started(bench)
        bench.seeded.invites["learner"] = shared
        await bench.tg.settle()

        text = "Thank you! 212 of you answered. Results: {see the notice board}."
        assert await send_announcement(sm, bench.seeded.cycle_id, text) == 2
        with pytest.raises(AnnouncementRefused):
            await send_announcement(sm, bench.seeded.cycle_id, "Once more")
        clock.now = datetime.now(UTC)
        assert await bench.app[SCHEDULER].tick() == 2
        await bench.tg.settle()
        assert await bench.app[SCHEDULER].tick() == 0

        def announcements(user) -> list[str]:
            return [
                c.params["text"]
                for c in fake_api.called("sendMessage", user.id)
                if c.params["text"].startswith("A message from")
            ]

        expected = f"A message from Test Vocational School:\n\n{text}"
        assert announcements(reader) == [expected]
        assert announcements(finisher) == [expected]
        for user in (decliner, stopper, elsewhere):
            assert announcements(user) == []
        # The other cycle's own announcement reaches its own people.
        assert await send_announcement(sm, other_id, "Hello, 2027/28") == 1
        assert await bench.app[SCHEDULER].tick() == 1
        await bench.tg.settle()
        assert announcements(elsewhere) == [
            "A message from Test Vocational School:\n\nHello, 2027/28"
        ]
        assert announcements(reader) == [expected]
        with pytest.raises(AnnouncementRefused):
            await send_announcement(sm, other_id, "   ")


def test_announce_from_the_command_line_once_per_cycle(monkeypatch, tmp_path):
    from backend.cli import app as cli

    for k in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "REDIS_URL"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SECRET_KEY", "cli-test-secret-key-0123456789")
    monkeypatch.setenv("TELEGRAM_BOT_USERNAME", "some_bot")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args))

    assert invoke("db", "upgrade").exit_code == 0
    assert invoke("school", "create", "--slug", "ogre", "--name", "Ogre").exit_code == 0
    assert invoke("invite", "create", "--school", "ogre", "--role", "learner").exit_code == 0
    note = tmp_path / "note.txt"
    note.write_text("Results are out: see the notice board.", encoding="utf-8")
    r = invoke("announce", "--school", "ogre", "--text-file", str(note))
    assert r.exit_code == 0, r.output
    assert "0 opted-in respondent(s)" in r.output
    r = invoke("announce", "--school", "ogre", "--text-file", str(note))
    assert r.exit_code == 1 and "already" in r.output
    r = invoke("announce", "--school", "nope", "--text-file", str(note))
    assert r.exit_code == 1


# -- the migration ----------------------------------------------------------------------------------


async def test_migration_0002_up_and_down(empty_db_url):
    db_url = empty_db_url
    await migrate.upgrade(db_url, "0002")
    assert {"contact", "announcement", "response"} <= await table_names(db_url)
    await migrate.downgrade(db_url, "0001")
    assert await migrate.current(db_url) == "0001"
    have = await table_names(db_url)
    assert "contact" not in have and "announcement" not in have and "response" in have
    await migrate.upgrade(db_url, "0002")
    assert {"contact", "announcement"} <= await table_names(db_url)
    await migrate.downgrade(db_url, "base")
    assert await table_names(db_url) <= {"alembic_version"}


async def test_a_coordinator_sends_the_announcement_from_the_dashboard_once(storage, fake_api):
    """The dashboard's form: CSRF-protected, once per cycle, then shown on the overview."""
    from backend.dashboard.passwords import hash_password
    from storage import schools
    from storage.models import Announcement

    clock = FakeClock(T0)
    async with reminding(storage, fake_api, clock) as bench:
        opted = await started(bench)
        client = bench.client
        sm = client.app[keys.SESSIONMAKER]
        async with sm.begin() as s:
            await schools.create_user(
                s,
                bench.seeded.school_id,
                "coord@school.test",
                hash_password("long enough pw"),
                "coordinator",
            )
        r = await login(client, "coord@school.test", "long enough pw")
        assert r.status == 303
        cycle_id = bench.seeded.cycle_id
        page = await (await client.get(f"/dashboard/cycles/{cycle_id}")).text()
        assert "Send the announcement" in page and "the 1 respondent who agreed" in page
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        url = f"/dashboard/cycles/{cycle_id}/announcement"
        assert (
            await client.post(url, data={"text": "Thanks!"}, allow_redirects=False)
        ).status == 403
        r = await client.post(url, data={"csrf": csrf, "text": "Thank you: we will add mentors."})
        assert r.status == 200 and "goes to 1 respondent" in await r.text()
        r = await client.post(url, data={"csrf": csrf, "text": "A second one"})
        assert "already had its announcement" in await r.text()
        page = await (await client.get(f"/dashboard/cycles/{cycle_id}")).text()
        assert "we will add mentors" in page and "Send the announcement" not in page
        async with sm() as s:
            rows = (await s.execute(select(Announcement))).scalars().all()
        assert [a.text for a in rows] == ["Thank you: we will add mentors."]
        assert opted is not None
