"""The use case's store (`conversations.ports.SurveyStore`) on SQLAlchemy, and on asyncpg itself
for the hot path on PostgreSQL (`storage.driver`): invites peeked, positions rebuilt, and the
writes of one step in one transaction.

Every statement is a function of `storage.responses` (or `storage.contacts`) or written
here; the use case (`conversations.survey`) never sees a session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from conversations import engine as E
from conversations.ports import Found, InviteFound, Redeemed
from storage import driver, responses
from storage.contacts import set_opt_in
from storage.driver import Alchemy, Query, Run
from storage.models import Cycle, Respondent, Response, School, utcnow

# A person's newest response with what rebuilds their position (`newest_response`).
NEWEST_RESPONSE = Query(
    lambda _dialect: (
        select(
            Response.id,
            Response.respondent_id,
            Cycle.id,
            Response.bank_tag,
            Response.language,
            Response.status,
            *responses.SCHOOL_TERMS,
        )
        .join(Respondent, Respondent.id == Response.respondent_id)
        .join(Cycle, Cycle.id == Response.cycle_id)
        .join(School, School.id == Cycle.school_id)
        .where(Respondent.subject_hash == bindparam("subject"))
        .order_by(Response.started_at.desc(), Response.id.desc())
        .limit(1)
    )
)


class SqlSurveyStore:
    """`conversations.ports.SurveyStore` for one database. `secret_key` encrypts the
    contact addresses of respondents who opt in to reminders (`storage.contacts`)."""

    def __init__(self, sessionmaker: async_sessionmaker, secret_key: str) -> None:
        self.sessionmaker = sessionmaker
        self.secret_key = secret_key
        engine = sessionmaker.kw["bind"]
        # On PostgreSQL, the pool whose connections asyncpg runs itself (`driver.connect`),
        # in autocommit: the reads of a /start, a consent, the one-statement write (`OneAnswer`).
        self.driven: AsyncEngine | None = engine if engine.dialect.name == "postgresql" else None

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[Run]:
        """A connection for the reads of a /start (the invite, the newest response): on
        PostgreSQL asyncpg's own, in autocommit (no BEGIN and ROLLBACK round trips around
        them; the person's own writes wait for the lock this caller holds)."""
        if self.driven is not None:
            async with driver.connect(self.driven, transaction=False) as run:
                yield run
            return
        async with self.sessionmaker() as s:
            yield Alchemy(await s.connection())

    async def peek_invite(self, code: str, now: datetime) -> InviteFound | str:
        """An invite that may be used now, without using it up; else why not (the lookup
        and the rule of the consent's `check_invite`)."""
        async with self._reading() as run:
            checked = await responses.check_invite(run, code, now)
        if not checked.ok:
            return checked.status.value
        invite = checked.invite
        assert invite is not None
        return InviteFound(
            invite_id=invite.invite_id,
            cycle_id=invite.cycle_id,
            role=invite.role,
            school_name=invite.school_name,
            school_languages=invite.school_languages,
            threshold=invite.threshold,
            free_text_threshold=invite.free_text_threshold,
        )

    async def newest_response(self, subject: str) -> Found | None:
        async with self._reading() as run:
            row = await run.row(NEWEST_RESPONSE, subject=subject)
            if row is None:
                return None
            (response_id, respondent_id, cycle_id, bank_tag, language, status) = row[:6]
            school, languages, threshold, free_text_threshold = row[6:]  # SCHOOL_TERMS
            answers = await responses.load_answers(run, response_id)
            comments = await responses.load_comments(run, response_id)
        codes = {qid: "t" for qid in comments}
        codes |= {
            qid: E.answer_code(
                value=a.value, na=a.na, number=a.number, choice=a.choice, skipped=a.skipped
            )
            for qid, a in answers.items()
        }
        return Found(
            response_id=response_id,
            respondent_id=respondent_id,
            cycle_id=cycle_id,
            bank_tag=bank_tag,
            language=language,
            status=status,
            answers=codes,
            school_name=school,
            school_languages=tuple(languages or ()),
            threshold=threshold,
            free_text_threshold=free_text_threshold,
        )

    async def set_reachable(self, subject: str, reachable: bool) -> None:
        """Only people who consented have a row; others have nothing to mark."""
        async with self.sessionmaker.begin() as s:
            respondent = await responses.get_respondent(s, subject)
            if respondent is not None:
                await responses.mark_blocked(s, respondent.id, blocked=not reachable)

    @asynccontextmanager
    async def writes(self, only: E.Effect | None = None) -> AsyncIterator[SqlWrites | OneAnswer]:
        """One transaction: committed when the block ends, rolled back if it raises.

        `only`: the block applies just this effect. An answer that is not free text is one
        statement on PostgreSQL (the upsert and its response's revision in one CTE), atomic
        by itself: it runs without BEGIN and COMMIT and without a session, one round trip
        instead of three (the most frequent write of all: every tap on a scale). A consent
        alone runs its statements through asyncpg (`storage.driver`)."""
        if self.driven is not None and _one_statement(only):
            yield OneAnswer(self.driven)
            return
        if self.driven is not None and isinstance(only, E.OpenResponse):
            # A consent: its statements run by asyncpg itself, in autocommit: each is whole
            # by itself (reads, the language of a respondent who consented before, and
            # `responses.open_counted`'s one statement that counts the use and opens).
            async with driver.connect(self.driven, transaction=False) as run:
                yield SqlWrites(run, self.secret_key)
            return
        async with self.sessionmaker.begin() as s:
            yield SqlWrites(s, self.secret_key)


def _one_statement(effect: E.Effect | None) -> bool:
    """An effect `SqlWrites` applies in one statement (on PostgreSQL): a scored answer."""
    return isinstance(effect, E.SaveAnswer) and effect.text is None and not effect.free_text


def _scored(answer: E.SaveAnswer) -> dict[str, Any]:
    """The answer's stored fields (exactly one of them is set), as `upsert_answer` takes them."""
    return {
        "value": answer.value,
        "na": answer.na,
        "number": answer.number,
        "choice": answer.choice,
        "skipped": answer.skipped,
    }


class OneAnswer:
    """The `Writes` of a block that applies one scored answer on PostgreSQL: one statement,
    autocommit, on the pool's connection without a session (`responses.upsert_answer` on a
    `storage.driver.Driver`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def save_answer(self, response_id: int, answer: E.SaveAnswer) -> None:
        assert _one_statement(answer), "only a scored answer is one statement"
        async with driver.connect(self.engine, transaction=False) as run:
            await responses.upsert_answer(run, response_id, answer.question_id, **_scored(answer))


class SqlWrites:
    """`conversations.ports.Writes` in one database transaction: a session's, or a `Run`'s
    for a consent (its statements only: `SqlSurveyStore.writes`)."""

    def __init__(self, db: AsyncSession | Run, secret_key: str) -> None:
        self.db = db
        self.secret_key = secret_key

    @property
    def s(self) -> AsyncSession:
        assert isinstance(self.db, AsyncSession), "this write needs the step's session"
        return self.db

    async def respondent(self, subject: str, lang: str | None = None) -> int:
        return await responses.respondent_id(self.db, subject, lang)

    async def find_response(self, subject: str, cycle_id: int) -> tuple[int, int] | None:
        return await responses.response_of_subject(self.db, subject, cycle_id)

    async def check_invite(self, code: str, now: datetime) -> Redeemed | str:
        result = await responses.check_invite(self.db, code, now)
        if not result.ok:
            return result.status.value
        assert result.invite is not None
        return Redeemed(result.invite.invite_id, shared=result.invite.shared)

    async def open_counted(
        self, subject: str, invite_id: int, effect: E.OpenResponse, origin: str
    ) -> tuple[int, int] | str:
        opened = await responses.open_counted(
            self.db,
            subject,
            invite_id,
            cycle_id=effect.cycle_id,
            role=effect.role,
            bank_tag=effect.bank_tag,
            model_version=effect.model_version,
            language=effect.lang,
            consent_at=utcnow(),
            origin=origin,
        )
        return opened.value if isinstance(opened, responses.RedeemStatus) else opened

    async def erase(self, subject: str) -> None:
        await responses.erase_respondent(self.s, subject)

    async def save_answer(self, response_id: int, answer: E.SaveAnswer) -> None:
        if answer.text is not None:
            # Free text lives only in `comment` (shown under its own, higher threshold).
            await responses.delete_answer(self.s, response_id, answer.question_id)
            await responses.upsert_comment(self.s, response_id, answer.question_id, answer.text)
            return
        if answer.free_text:  # a free-text question skipped: no text of it is kept
            await responses.delete_comment(self.s, response_id, answer.question_id)
        await responses.upsert_answer(self.s, response_id, answer.question_id, **_scored(answer))

    async def delete_answers(self, response_id: int, question_ids: tuple[str, ...]) -> None:
        for qid in question_ids:
            await responses.delete_answer(self.s, response_id, qid)
            await responses.delete_comment(self.s, response_id, qid)

    async def set_status(self, response_id: int, status: str) -> None:
        await responses.set_status(self.s, response_id, status)

    async def set_language(self, response_id: int, respondent_id: int, lang: str) -> None:
        await responses.set_response_language(self.s, response_id, lang)
        await responses.set_language(self.s, respondent_id, lang)

    async def set_opt_in(
        self, response_id: int, given: bool, channel: str, address: str | int | None
    ) -> None:
        await set_opt_in(
            self.s,
            response_id,
            given=given,
            channel=channel,
            address=address,
            secret_key=self.secret_key,
        )
