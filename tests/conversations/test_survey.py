"""The way of one answer, end to end below the channels: the use case + engine + storage.

Runs on SQLite with the in-memory store and on PostgreSQL with the real Redis.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from conversations import engine as E
from conversations.banks import load_banks
from conversations.model import load_model
from conversations.survey import Survey
from storage import responses
from storage.models import Answer, Comment, Invite, Respondent, Response
from storage.sessions import MemorySessionStore, RedisSessionStore
from storage.survey import SqlSurveyStore
from tests.apptools import seed_school


@pytest.fixture
async def store(request, db_url, redis_prefix):
    """The embedded default on SQLite, the real Redis on PostgreSQL."""
    if db_url.startswith("sqlite"):
        yield MemorySessionStore()
        return
    import redis.asyncio as aioredis

    client = aioredis.from_url(request.getfixturevalue("redis_url"))
    try:
        yield RedisSessionStore(client, redis_prefix)
    finally:
        keys = [k async for k in client.scan_iter(match=redis_prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def runner(sessionmaker, store):
    async with sessionmaker.begin() as s:
        await responses.sync_question_map(s, load_banks().values())
    engine = E.Engine.from_banks(load_banks().values(), load_model().version)
    return Survey(
        engine=engine,
        store=SqlSurveyStore(sessionmaker, "k" * 32),
        sessions=store,
        secret_key="k" * 32,
        ttl=3600,
    )


async def answer_all(runner: Survey, subject: str) -> E.Step:
    """Tap the first choice of every question (typing where typing is due) to the end."""
    step = (await runner.current(subject)).step
    for _ in range(60):
        p = step.prompts[-1]
        if p.final:
            return step
        if p.expects == "number":
            value = "3"
        elif p.expects == "text":
            value = "More company visits"
        else:
            value = p.choices[0].id
        step = (await runner.handle(subject, E.Answer(p.question_id, value))).step
    raise AssertionError("survey did not end")


async def count(sessionmaker, model) -> int:
    async with sessionmaker() as s:
        return (await s.execute(select(func.count()).select_from(model))).scalar_one()


async def test_full_learner_survey_lands_once(runner, sessionmaker):
    seeded = await seed_school(sessionmaker)
    subject = runner.subject("telegram", 1001)
    out = await runner.start(subject, seeded.invites["learner"])
    assert out.step.prompts[0].kind == "consent"
    assert await count(sessionmaker, Respondent) == 0  # nothing stored before consent
    out = await runner.handle(subject, E.Consent(True))
    assert out.step.prompts[0].kind == "question"
    done = await answer_all(runner, subject)
    assert done.state["stage"] == "done"
    n_questions = len(done.state["ans"])
    # every question once: free text in `comment`, all else in `answer`
    assert await count(sessionmaker, Comment) == 1
    assert await count(sessionmaker, Answer) == n_questions - 1
    async with sessionmaker() as s:
        response = (await s.execute(select(Response))).scalar_one()
        invite = (
            await s.execute(select(Invite).where(Invite.code == seeded.invites["learner"]))
        ).scalar_one()
    assert response.status == "completed" and response.role == "learner"
    assert invite.uses == 1
    # Opening the link again resumes: no second response, no second use.
    again = await runner.start(subject, seeded.invites["learner"])
    assert again.step.prompts[0].kind == "done"
    assert await count(sessionmaker, Response) == 1


async def test_position_is_rebuilt_from_the_database_when_sessions_are_lost(
    runner, sessionmaker, store
):
    seeded = await seed_school(sessionmaker)
    subject = runner.subject("web", "cookie-1")
    await runner.start(subject, seeded.invites["graduate"])
    step = (await runner.handle(subject, E.Consent(True))).step
    for _ in range(5):
        p = step.prompts[0]
        step = (await runner.handle(subject, E.Answer(p.question_id, p.choices[-1].id))).step
    live = step.state
    await store.delete(runner.key(subject))  # Redis restarted / TTL passed
    rebuilt = await runner.load_state(subject)
    assert rebuilt["pos"] == live["pos"]
    assert rebuilt["ans"] == live["ans"]
    assert rebuilt["inv"]["thr"] == 5


async def test_single_use_invite_taken_between_peek_and_consent(runner, sessionmaker):
    seeded = await seed_school(sessionmaker, roles=["parent"], max_uses=1)
    code = seeded.invites["parent"]
    a, b = runner.subject("telegram", 1), runner.subject("telegram", 2)
    await runner.start(a, code)
    await runner.start(b, code)  # both see the consent card
    ok = await runner.handle(a, E.Consent(True))
    late = await runner.handle(b, E.Consent(True))
    assert ok.step.prompts[0].kind == "question"
    assert "used as many times" in late.step.prompts[0].text
    assert await count(sessionmaker, Response) == 1
    # b's state is unchanged (still at consent), nothing stored for b
    assert (await runner.load_state(b)).get("stage") == "consent"


async def test_concurrent_taps_of_one_person_apply_one_at_a_time(runner, sessionmaker):
    seeded = await seed_school(sessionmaker)
    subject = runner.subject("telegram", 77)
    await runner.start(subject, seeded.invites["learner"])
    step = (await runner.handle(subject, E.Consent(True))).step
    first = step.prompts[0].question_id
    # A double tap on the same button, and a tap on the next card, all at once.
    results = await asyncio.gather(
        *(runner.handle(subject, E.Answer(first, "4")) for _ in range(5))
    )
    applied = [r for r in results if r.step.answer is not None]
    assert len(applied) == 1  # the others were stale taps: re-prompted, nothing written
    assert await count(sessionmaker, Answer) == 1


async def test_delete_erases_everything_of_that_person_only(runner, sessionmaker):
    seeded = await seed_school(sessionmaker)
    keep, gone = runner.subject("telegram", 5), runner.subject("telegram", 6)
    for subject in (keep, gone):
        await runner.start(subject, seeded.invites["learner"])
        await runner.handle(subject, E.Consent(True))
        await answer_all(runner, subject)
    await runner.handle(gone, E.DeleteRequest())
    out = await runner.handle(gone, E.DeleteConfirm(True))
    assert out.step.effects == (E.Erase(),)
    assert await count(sessionmaker, Response) == 1
    async with sessionmaker() as s:
        assert await responses.get_respondent(s, gone) is None
        assert await responses.get_respondent(s, keep) is not None
    # and a tap on an old card afterwards stores nothing
    after = await runner.handle(gone, E.Answer("l01", "4"))
    assert after.step.effects == ()
    assert await count(sessionmaker, Response) == 1


async def test_unknown_and_missing_codes(runner, sessionmaker):
    subject = runner.subject("telegram", 9)
    out = await runner.start(subject, "nope-nope")
    assert "not valid" in out.step.prompts[0].text
    out = await runner.start(subject, None)
    assert "invitation link" in out.step.prompts[0].text
    out = await runner.start(subject, "x" * 65)
    assert "not valid" in out.step.prompts[0].text


async def test_a_free_text_answer_and_its_skip_replace_each_other(runner, sessionmaker):
    """A free-text question holds either the text or "skipped", never both; the other
    questions never hold a text (their answers write no comment row to clean up)."""
    seeded = await seed_school(sessionmaker)
    subject = runner.subject("telegram", 1002)
    await runner.start(subject, seeded.invites["learner"])
    await runner.handle(subject, E.Consent(True))
    bank = runner.engine.banks[(await runner.load_state(subject))["bank"]]
    text_q = next(q.id for q in bank.questions if q.kind == "text")
    step = (await runner.current(subject)).step
    while step.prompts[-1].question_id != text_q:  # to the free-text question
        p = step.prompts[-1]
        choice = "3" if p.choices and p.choices[0].id.isdigit() else p.choices[0].id
        step = (await runner.handle(subject, E.Answer(p.question_id, choice))).step
    await runner.handle(subject, E.Answer(text_q, "More visits"))
    await runner.handle(subject, E.Back())  # from "done" back to the last question
    await runner.handle(subject, E.Skip(text_q))
    async with sessionmaker() as s:
        comments = (await s.execute(select(Comment))).scalars().all()
        skipped = (await s.execute(select(Answer).where(Answer.question_id == text_q))).scalars()
        assert comments == [] and [a.skipped for a in skipped] == [True]
    await runner.handle(subject, E.Back())
    await runner.handle(subject, E.Answer(text_q, "Mentors, please"))
    async with sessionmaker() as s:
        assert [c.text for c in (await s.execute(select(Comment))).scalars()] == ["Mentors, please"]
        assert not (await s.execute(select(Answer).where(Answer.question_id == text_q))).all()


async def test_a_scored_answer_and_a_consent_are_one_statement_each_without_begin_and_commit(
    runner, sessionmaker, monkeypatch, request
):
    """The most frequent write, a tap on a scale, is one round trip on PostgreSQL (the
    upsert and its response's revision in one statement, atomic by itself). The consent's
    writes (respondent, response, the invite's use) are one statement too, after its reads:
    the invite's row is locked only while that statement runs, never across a round trip."""
    if not request.node.callspec.id.startswith("postgres"):
        pytest.skip("SQLite keeps every step in a transaction")
    import asyncpg

    sent: list[str] = []

    def recording(name: str) -> Any:
        real = getattr(asyncpg.Connection, name)

        async def call(self, query, *args, **kwargs):  # BEGIN, COMMIT, ROLLBACK, statements
            sent.append(query.split()[0].rstrip(";").upper())
            return await real(self, query, *args, **kwargs)

        return call

    for name in ("execute", "fetch", "fetchrow", "fetchval"):
        monkeypatch.setattr(asyncpg.Connection, name, recording(name))
    seeded = await seed_school(sessionmaker)
    subject = runner.subject("telegram", 1003)
    sent.clear()
    await runner.start(subject, seeded.invites["learner"])
    assert "BEGIN" not in sent and "ROLLBACK" not in sent  # the /start only reads
    sent.clear()
    await runner.handle(subject, E.Consent(True))
    assert "BEGIN" not in sent and "COMMIT" not in sent, sent
    assert [w for w in sent if w != "SELECT"] == ["WITH"], sent  # count, respondent, response
    async with sessionmaker() as s:
        (response,) = (await s.execute(select(Response))).scalars()
        invite = await s.scalar(select(Invite).where(Invite.code == seeded.invites["learner"]))
    assert response.role == "learner" and response.status == "in_progress"
    assert invite.uses == 1
    p = (await runner.current(subject)).step.prompts[-1]
    sent.clear()
    await runner.handle(subject, E.Answer(p.question_id, p.choices[0].id))
    assert sent == ["WITH"]  # the upsert and the revision: one statement, nothing around it
    async with sessionmaker() as s:
        (answer,) = (await s.execute(select(Answer))).scalars()
        response = await s.get(Response, answer.response_id)
    assert answer.question_id == p.question_id and response.revision >= 1


async def _after_a_restart(sessionmaker, step):
    """Every other connection to the test database is dropped, as in a server restart; then
    `step` is retried until it lands. Each pooled connection that was dropped fails it once,
    as transient (503: Telegram retries). Returns what the step returned."""
    import asyncpg

    from storage.errors import is_transient

    url = sessionmaker.kw["bind"].url
    admin = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(False))
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    failures = []
    for _ in range(30):
        try:
            landed = await step()
            break
        except Exception as exc:
            failures.append(exc)
    assert failures and all(is_transient(e) for e in failures)
    assert len(failures) < 30
    return landed


async def test_a_scored_answer_on_a_dropped_connection_fails_transient_and_lands_on_retry(
    runner, sessionmaker, request
):
    """The one-statement write runs on the pool's connection without SQLAlchemy's execution
    layer: a connection the server dropped fails the answer as transient (503, Telegram
    retries), is taken out of the pool, and a retry lands the answer once."""
    if not request.node.callspec.id.startswith("postgres"):
        pytest.skip("only PostgreSQL writes a scored answer outside a session")
    seeded = await seed_school(sessionmaker)
    subject = runner.subject("telegram", 1004)
    await runner.start(subject, seeded.invites["learner"])
    await runner.handle(subject, E.Consent(True))
    p = (await runner.current(subject)).step.prompts[-1]
    await _after_a_restart(
        sessionmaker, lambda: runner.handle(subject, E.Answer(p.question_id, p.choices[0].id))
    )
    async with sessionmaker() as s:
        answers = (await s.execute(select(Answer))).scalars().all()
    assert [a.question_id for a in answers] == [p.question_id]


async def test_a_consent_on_a_dropped_connection_fails_transient_and_lands_once(
    runner, sessionmaker, request
):
    """The consent's statements run by asyncpg in a transaction of their own
    (`storage.driver.connect`): a connection the server dropped fails the step as transient,
    leaves the pool, and the retry makes one respondent, one response, one use."""
    if not request.node.callspec.id.startswith("postgres"):
        pytest.skip("only PostgreSQL runs the consent through asyncpg")
    seeded = await seed_school(sessionmaker)
    subject = runner.subject("telegram", 1006)
    await runner.start(subject, seeded.invites["learner"])
    outcome = await _after_a_restart(sessionmaker, lambda: runner.handle(subject, E.Consent(True)))
    assert outcome.step.prompts[-1].question_id  # the first question
    async with sessionmaker() as s:
        invite = await s.scalar(select(Invite).where(Invite.code == seeded.invites["learner"]))
        assert invite.uses == 1
        assert await s.scalar(select(func.count()).select_from(Response)) == 1


async def test_the_consent_counts_the_invite_use_last(runner, sessionmaker, monkeypatch):
    """A class on one shared code consents at once: each consent locks the invite's row
    from its use count to its end. In a transaction (SQLite) the count is the consent's last
    statement (the bench's /start-and-consent tail was this queue when the count came
    first). On PostgreSQL asyncpg runs the consent's statements itself (`storage.driver`,
    read where asyncpg looks each one up), and its writes are one statement in autocommit,
    the last: the row is locked only while PostgreSQL runs it, never across a round trip
    (the Mini App crowd's arrival tail was the queue on that round trip)."""
    import asyncpg
    from sqlalchemy import event

    engine = sessionmaker.kw["bind"].sync_engine
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(" ".join(statement.split()[:2]).upper())

    real = asyncpg.Connection._get_statement

    async def get_statement(self, query, *args, **kwargs):
        record(None, None, query)
        return await real(self, query, *args, **kwargs)

    seeded = await seed_school(sessionmaker)
    subject = runner.subject("telegram", 1005)
    await runner.start(subject, seeded.invites["learner"])
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        monkeypatch.setattr(asyncpg.Connection, "_get_statement", get_statement)
    else:
        event.listen(engine, "before_cursor_execute", record)
    try:
        await runner.handle(subject, E.Consent(True))
    finally:
        if not postgres:
            event.remove(engine, "before_cursor_execute", record)
    if postgres:
        writes = [w for w in seen if not w.startswith("SELECT")]
        assert writes == ["WITH USED"] and seen[-1] == "WITH USED", seen
    else:
        assert "INSERT INTO" in seen and seen[-1] == "UPDATE INVITE", seen
    async with sessionmaker() as s:
        invite = await s.scalar(select(Invite).where(Invite.code == seeded.invites["learner"]))
        assert invite.uses == 1
        assert await s.scalar(select(func.count()).select_from(Response)) == 1
