"""Respondents and what they gave: invites (one validity rule, `invite_refusal`), respondents,
responses, answers and free text, erasure, and the question map the figures join on.

Each function takes an `AsyncSession` first; the caller owns the transaction. The
concurrency-sensitive writes (get-or-create, answers, invite uses) are single statements,
safe with concurrent callers on PostgreSQL and SQLite.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Integer,
    TextClause,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from conversations.engine import SaveAnswer
from conversations.roles import Role
from storage.models import (
    Answer,
    Comment,
    Contact,
    Cycle,
    Invite,
    QuestionMap,
    ReleaseUnit,
    Respondent,
    Response,
    School,
    UTCDateTime,
    utcnow,
)

if TYPE_CHECKING:
    from conversations.banks import Bank
from storage.db import insert_for, insert_of
from storage.driver import Alchemy, Driver, Query, Run, run_of

RESPONSE_STATUSES = frozenset({"in_progress", "completed", "stopped"})


INVITE_CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # Telegram's /start payload alphabet


INVITE_CODE_BYTES = 12  # 96 random bits -> 16 URL-safe characters


def check_scale_value(value: int | None) -> None:
    if value is not None and not (isinstance(value, int) and 0 <= value <= 4):
        raise ValueError(f"a scale value is 0..4, not {value!r}")


def new_invite_code() -> str:
    """16 characters of [A-Za-z0-9_-] from 96 random bits: fits Telegram's start payload."""
    return secrets.token_urlsafe(INVITE_CODE_BYTES)


async def create_invites(
    s: AsyncSession,
    cycle_id: int,
    role: str,
    count: int = 1,
    max_uses: int | None = 1,
    expires_at: datetime | None = None,
    label: str | None = None,
) -> list[Invite]:
    """`count` invites for `role`; `max_uses=None` makes a reusable (e.g. classroom) link."""
    role = Role(role).value
    if not 1 <= count <= 10_000:
        raise ValueError("count is 1..10000")
    if max_uses is not None and max_uses < 1:
        raise ValueError("max_uses is at least 1 (or None: unlimited)")
    invites = [
        Invite(
            cycle_id=cycle_id,
            code=new_invite_code(),
            role=role,
            label=label,
            max_uses=max_uses,
            uses=0,
            expires_at=expires_at,
        )
        for _ in range(count)
    ]
    s.add_all(invites)
    await s.flush()
    return invites


class RedeemStatus(StrEnum):
    OK = "ok"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"
    USED_UP = "used_up"
    NOT_OPEN = "not_open"  # the cycle opens later
    CYCLE_CLOSED = "cycle_closed"


@dataclass(frozen=True, slots=True)
class InviteRow:
    """An invite as the respondent's side reads it: its terms, its cycle's window and
    thresholds, its school's name and languages (one lookup, `INVITE_BY_CODE`)."""

    invite_id: int
    role: str
    max_uses: int | None
    uses: int
    expires_at: datetime | None
    revoked_at: datetime | None
    cycle_id: int
    status: str  # the cycle's
    opens_at: datetime | None
    closes_at: datetime | None
    school_name: str
    school_languages: tuple[str, ...]
    threshold: int
    free_text_threshold: int

    @property
    def shared(self) -> bool:
        return self.max_uses != 1


@dataclass(frozen=True, slots=True)
class RedeemResult:
    status: RedeemStatus
    invite: InviteRow | None = None

    @property
    def ok(self) -> bool:
        return self.status is RedeemStatus.OK


def invite_refusal(invite: InviteRow, now: datetime) -> RedeemStatus | None:
    """THE rule of an invite's validity, for the peek (before consent) and the redemption
    (at consent) alike: None if it may be used now, else why not."""
    if invite.revoked_at is not None:
        return RedeemStatus.REVOKED
    if invite.expires_at is not None and now >= invite.expires_at:
        return RedeemStatus.EXPIRED
    if invite.status != "open":
        return RedeemStatus.CYCLE_CLOSED
    if invite.opens_at is not None and now < invite.opens_at:
        return RedeemStatus.NOT_OPEN
    if invite.closes_at is not None and now >= invite.closes_at:
        return RedeemStatus.CYCLE_CLOSED
    if invite.max_uses is not None and invite.uses >= invite.max_uses:
        return RedeemStatus.USED_UP
    return None


async def get_invite_by_code(s: AsyncSession, code: str) -> Invite | None:
    if not INVITE_CODE.match(code):
        return None
    return await s.scalar(select(Invite).where(Invite.code == code))


# What a respondent's position keeps of their school and cycle (the invite's lookup, the
# position's rebuild): in this order, last in both selects.
SCHOOL_TERMS = (School.name, School.languages, Cycle.anonymity_threshold, Cycle.free_text_threshold)

INVITE_BY_CODE = Query(
    lambda _dialect: (
        select(
            Invite.id,
            Invite.role,
            Invite.max_uses,
            Invite.uses,
            Invite.expires_at,
            Invite.revoked_at,
            Cycle.id,
            Cycle.status,
            Cycle.opens_at,
            Cycle.closes_at,
            *SCHOOL_TERMS,
        )
        .join(Cycle, Cycle.id == Invite.cycle_id)
        .join(School, School.id == Cycle.school_id)
        .where(Invite.code == bindparam("code"))
    )
)


async def check_invite(db: AsyncSession | Run, code: str, now: datetime) -> RedeemResult:
    """The invite of `code` with its cycle and school (one round trip), and whether it may
    be used now (`invite_refusal`); nothing is counted (`count_invite_use` does that). The
    /start's peek and the consent's check alike."""
    if not INVITE_CODE.match(code):
        return RedeemResult(RedeemStatus.UNKNOWN)
    row = await (await run_of(db)).row(INVITE_BY_CODE, code=code)
    if row is None:
        return RedeemResult(RedeemStatus.UNKNOWN)
    *terms, name, languages, threshold, free_text_threshold = row
    invite = InviteRow(
        *terms,
        school_name=name,
        school_languages=tuple(languages or ()),
        threshold=threshold,
        free_text_threshold=free_text_threshold,
    )
    return RedeemResult(invite_refusal(invite, now) or RedeemStatus.OK, invite)


COUNT_USE = Query(
    lambda _dialect: (
        update(Invite.__table__)
        .where(
            Invite.id == bindparam("invite_id"),
            Invite.revoked_at.is_(None),
            or_(Invite.max_uses.is_(None), Invite.uses < Invite.max_uses),
        )
        .values(uses=Invite.uses + 1)
        .returning(Invite.uses)
    )
)
REVOKED_AT = Query(
    lambda _dialect: select(Invite.revoked_at).where(Invite.id == bindparam("invite_id"))
)


async def count_invite_use(db: AsyncSession | Run, invite_id: int) -> RedeemStatus:
    """Count one use of the invite unless it was revoked or used up meanwhile.

    One `UPDATE ... WHERE uses < max_uses`: with concurrent redeemers of the last use
    exactly one succeeds (PostgreSQL re-checks the WHERE on the row it waited for; SQLite
    serialises writers). The row stays locked until the caller's transaction ends: a
    consent runs this as its last statement, so that a class using one shared code at
    once waits for each other's COMMIT only, not for each other's whole consent."""
    run = await run_of(db)
    if await run.scalar(COUNT_USE, invite_id=invite_id) is not None:
        return RedeemStatus.OK
    revoked = await run.scalar(REVOKED_AT, invite_id=invite_id)
    return RedeemStatus.REVOKED if revoked is not None else RedeemStatus.USED_UP


async def redeem_invite(s: AsyncSession, code: str, now: datetime) -> RedeemResult:
    """Count one use of the invite if it may still be used (`check_invite`, then
    `count_invite_use`); the result's invite shows its uses after the count."""
    checked = await check_invite(s, code, now)
    if not checked.ok:
        return checked
    assert checked.invite is not None
    status = await count_invite_use(s, checked.invite.invite_id)
    if status is not RedeemStatus.OK:
        return RedeemResult(status, checked.invite)
    return RedeemResult(status, replace(checked.invite, uses=checked.invite.uses + 1))


async def revoke_invite(
    s: AsyncSession, invite_id: int, now: datetime | None = None, *, cycle_id: int | None = None
) -> bool:
    """Revoke an invite (only within `cycle_id` if given); False if none was revoked."""
    stmt = update(Invite).where(Invite.id == invite_id, Invite.revoked_at.is_(None))
    if cycle_id is not None:
        stmt = stmt.where(Invite.cycle_id == cycle_id)
    result = await s.execute(
        stmt.values(revoked_at=now or utcnow()).execution_options(synchronize_session="fetch")
    )
    return result.rowcount > 0


async def list_invites(
    s: AsyncSession, cycle_id: int, role: str | None = None, *, include_revoked: bool = True
) -> list[Invite]:
    stmt = select(Invite).where(Invite.cycle_id == cycle_id)
    if role is not None:
        stmt = stmt.where(Invite.role == role)
    if not include_revoked:
        stmt = stmt.where(Invite.revoked_at.is_(None))
    return list(await s.scalars(stmt.order_by(Invite.created_at, Invite.id)))


async def get_respondent(s: AsyncSession, subject_hash: str) -> Respondent | None:
    return await s.scalar(select(Respondent).where(Respondent.subject_hash == subject_hash))


async def get_or_create_respondent(s: AsyncSession, subject_hash: str) -> Respondent:
    """Race-safe: INSERT ... ON CONFLICT DO NOTHING, then SELECT."""
    if len(subject_hash) != 64:
        raise ValueError("subject_hash is the 64-hex-char keyed hash, not a raw id")
    await s.execute(
        insert_for(s, Respondent.__table__)
        .values(subject_hash=subject_hash, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["subject_hash"])
    )
    return (
        await s.execute(
            select(Respondent)
            .where(Respondent.subject_hash == subject_hash)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()


def _respondent_upsert(dialect: str) -> Any:
    stmt = insert_of(dialect, Respondent.__table__).values(
        subject_hash=bindparam("subject"), created_at=bindparam("now"), language=bindparam("lang")
    )
    keep = func.coalesce(stmt.excluded.language, Respondent.__table__.c.language)
    return stmt.on_conflict_do_update(
        index_elements=["subject_hash"], set_={"language": keep}
    ).returning(Respondent.id)


RESPONDENT_ID = Query(_respondent_upsert)


async def respondent_id(
    db: AsyncSession | Run, subject_hash: str, language: str | None = None
) -> int:
    """`get_or_create_respondent`'s id in one statement: the upsert returns the row's id
    whether it made it or found it, no row loaded. `language`, if given, becomes the
    respondent's (the consent's language, in the same round trip)."""
    if len(subject_hash) != 64:
        raise ValueError("subject_hash is the 64-hex-char keyed hash, not a raw id")
    run = await run_of(db)
    return int(await run.scalar(RESPONDENT_ID, subject=subject_hash, now=utcnow(), lang=language))


async def set_language(s: AsyncSession, respondent_id: int, language: str) -> None:
    await s.execute(
        update(Respondent).where(Respondent.id == respondent_id).values(language=language)
    )


async def mark_blocked(
    s: AsyncSession, respondent_id: int, now: datetime | None = None, *, blocked: bool = True
) -> None:
    """The respondent blocked the bot (403): send nothing more. `blocked=False` undoes it."""
    await s.execute(
        update(Respondent)
        .where(Respondent.id == respondent_id)
        .values(blocked_at=(now or utcnow()) if blocked else None)
    )


def _new_response(dialect: str) -> Any:
    """INSERT the respondent's response in this cycle unless there is one (race-safe); every
    column given, so that asyncpg can run it as it is (`storage.driver`)."""
    return (
        insert_of(dialect, Response.__table__)
        .values(
            respondent_id=bindparam("respondent_id"),
            cycle_id=bindparam("cycle_id"),
            origin=bindparam("origin"),
            role=bindparam("role"),
            bank_tag=bindparam("bank_tag"),
            model_version=bindparam("model_version"),
            language=bindparam("language"),
            status="in_progress",
            consent_at=bindparam("consent_at"),
            started_at=bindparam("now"),
            updated_at=bindparam("now"),
            revision=0,
        )
        .on_conflict_do_nothing(index_elements=["respondent_id", "cycle_id"])
        .returning(Response.id)
    )


NEW_RESPONSE = Query(_new_response)
RESPONSE_ID_OF = Query(
    lambda _dialect: select(Response.id).where(
        Response.respondent_id == bindparam("respondent_id"),
        Response.cycle_id == bindparam("cycle_id"),
    )
)


def _counted_opening(dialect: str) -> Any:
    """PostgreSQL, one statement: count one use of the invite (`COUNT_USE`'s rule) and, only
    if it was counted, make or find the person's respondent (`lang` becomes theirs) and make
    their response in the cycle (`NEW_RESPONSE`'s columns). Returns (respondent id, response
    id): both null if the use was not counted (nothing written), the response's null if they
    had one in the cycle already. Run in autocommit, the invite's row is locked only while
    the statement runs inside PostgreSQL, not until a COMMIT sent after a round trip through
    a busy event loop: the consents of a crowd on one shared code queue on microseconds, not
    on each other's round trips."""
    assert dialect == "postgresql", "data-modifying WITH: PostgreSQL only"
    inv, person_t, response_t = Invite.__table__, Respondent.__table__, Response.__table__
    used = (
        update(inv)
        .where(
            inv.c.id == bindparam("invite_id", type_=Integer),
            inv.c.revoked_at.is_(None),
            or_(inv.c.max_uses.is_(None), inv.c.uses < inv.c.max_uses),
        )
        .values(uses=inv.c.uses + 1)
        .returning(inv.c.id)
        .cte("used")
    )
    now = bindparam("now", type_=person_t.c.created_at.type)
    person_new = insert_of(dialect, person_t).from_select(
        ["subject_hash", "created_at", "language"],
        select(
            bindparam("subject", type_=person_t.c.subject_hash.type),
            now,
            bindparam("lang", type_=person_t.c.language.type),
        ).select_from(used),
    )
    keep = func.coalesce(person_new.excluded.language, person_t.c.language)
    person = (
        person_new.on_conflict_do_update(index_elements=["subject_hash"], set_={"language": keep})
        .returning(person_t.c.id)
        .cte("person")
    )
    given = {
        name: bindparam(name, type_=response_t.c[name].type)
        for name in ("cycle_id", "origin", "role", "bank_tag", "model_version", "language")
    }
    opened = (
        insert_of(dialect, response_t)
        .from_select(
            [
                "respondent_id",
                *given,
                "status",
                "consent_at",
                "started_at",
                "updated_at",
                "revision",
            ],
            select(
                person.c.id,
                *given.values(),
                literal("in_progress", response_t.c.status.type),
                bindparam("consent_at", type_=response_t.c.consent_at.type),
                now,
                now,
                literal(0, Integer),
            ),
        )
        .on_conflict_do_nothing(index_elements=["respondent_id", "cycle_id"])
        .returning(response_t.c.id)
        .cte("opened")
    )
    return select(select(person.c.id).scalar_subquery(), select(opened.c.id).scalar_subquery())


COUNTED_OPENING = Query(_counted_opening)


async def open_counted(
    db: AsyncSession | Run, subject_hash: str, invite_id: int, **terms: Any
) -> tuple[int, int] | RedeemStatus:
    """A consent's writes, all or none: one use of the invite counted, the person's
    respondent (made at their first consent; the response's language becomes theirs) and
    their response in the cycle, on `terms`: `open_response_id`'s keyword arguments
    (cycle_id, role, bank_tag, model_version, language, consent_at, origin). Returns
    (response id, respondent id), or why the use was not counted (used up or revoked
    meanwhile; nothing written).

    On a `Driver` (PostgreSQL, autocommit) one statement (`COUNTED_OPENING`). In a session
    (SQLite, or a step with more writes) the session's statements, the use counted last, so
    that the invite's row stays locked only from there to the commit."""
    run = await run_of(db)
    if isinstance(run, Driver):
        given = {"origin": "invite", **terms, "role": Role(terms["role"]).value}
        person_id, response_id = await run.row(
            COUNTED_OPENING,
            invite_id=invite_id,
            subject=subject_hash,
            lang=terms["language"],
            now=utcnow(),
            **given,
        ) or (None, None)
        if person_id is None:
            revoked = await run.scalar(REVOKED_AT, invite_id=invite_id)
            return RedeemStatus.REVOKED if revoked is not None else RedeemStatus.USED_UP
        if response_id is None:  # theirs already (made meanwhile, past their lock)
            response_id = await response_id_of(run, person_id, terms["cycle_id"])
            assert response_id is not None
        return int(response_id), int(person_id)
    person_id = await respondent_id(run, subject_hash, terms["language"])
    response_id = await open_response_id(run, person_id, **terms)
    status = await count_invite_use(run, invite_id)
    if status is not RedeemStatus.OK:
        return status
    return response_id, person_id


RESPONSE_OF_SUBJECT = Query(
    lambda _dialect: (
        select(Response.id, Response.respondent_id)
        .join(Respondent, Respondent.id == Response.respondent_id)
        .where(
            Respondent.subject_hash == bindparam("subject"),
            Response.cycle_id == bindparam("cycle_id"),
        )
    )
)


async def response_of_subject(
    db: AsyncSession | Run, subject_hash: str, cycle_id: int
) -> tuple[int, int] | None:
    """The person's (response id, respondent id) in the cycle, if they have one."""
    run = await run_of(db)
    row = await run.row(RESPONSE_OF_SUBJECT, subject=subject_hash, cycle_id=cycle_id)
    return None if row is None else (int(row[0]), int(row[1]))


async def get_or_create_response(
    s: AsyncSession, respondent_id: int, cycle_id: int, *opening: Any, **named: Any
) -> Response:
    """The respondent's response in this cycle; created if there is none (race-safe).

    `opening`/`named`: the rest of `open_response_id`'s arguments (role, bank tag, model
    version, language, consent time, origin). An existing response is returned unchanged
    (role, bank and origin stay as first set). `origin`: invite | shared | dashboard; no link
    to the invite itself is kept.
    """
    await open_response_id(s, respondent_id, cycle_id, *opening, **named)
    response = await get_response(s, respondent_id, cycle_id)
    assert response is not None
    return response


async def open_response_id(
    db: AsyncSession | Run,
    respondent_id: int,
    cycle_id: int,
    role: str,
    bank_tag: str,
    model_version: str,
    language: str,
    consent_at: datetime,
    origin: str = "invite",
) -> int:
    """`get_or_create_response`'s id, in one round trip when the response is new (the
    consent: the insert returns it), without loading the row."""
    run = await run_of(db)
    new = await run.scalar(
        NEW_RESPONSE,
        respondent_id=respondent_id,
        cycle_id=cycle_id,
        origin=origin,
        role=Role(role).value,
        bank_tag=bank_tag,
        model_version=model_version,
        language=language,
        consent_at=consent_at,
        now=utcnow(),
    )
    if new is not None:
        return int(new)
    found = await response_id_of(run, respondent_id, cycle_id)
    assert found is not None
    return found


async def response_id_of(db: AsyncSession | Run, respondent_id: int, cycle_id: int) -> int | None:
    """The id of the respondent's response in this cycle, if any (no row loaded)."""
    run = await run_of(db)
    return await run.scalar(RESPONSE_ID_OF, respondent_id=respondent_id, cycle_id=cycle_id)


async def get_response(s: AsyncSession, respondent_id: int, cycle_id: int) -> Response | None:
    return (
        await s.execute(
            select(Response)
            .where(Response.respondent_id == respondent_id, Response.cycle_id == cycle_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def get_response_by_id(s: AsyncSession, response_id: int) -> Response | None:
    return await s.get(Response, response_id)


async def find_active_response(s: AsyncSession, respondent_id: int) -> Response | None:
    """The respondent's newest response still in progress."""
    return await s.scalar(
        select(Response)
        .where(Response.respondent_id == respondent_id, Response.status == "in_progress")
        .order_by(Response.started_at.desc(), Response.id.desc())
        .limit(1)
    )


async def set_status(
    s: AsyncSession, response_id: int, status: str, now: datetime | None = None
) -> None:
    """completed / stopped set `completed_at` (when it ended); in_progress clears it."""
    if status not in RESPONSE_STATUSES:
        raise ValueError(f"unknown response status {status!r}")
    now = now or utcnow()
    await s.execute(
        update(Response)
        .where(Response.id == response_id)
        .values(
            status=status,
            completed_at=None if status == "in_progress" else now,
            updated_at=now,
            revision=Response.revision + 1,
        )
        .execution_options(synchronize_session="fetch")
    )


def _touch(which: Any) -> Any:
    """UPDATE the responses `which` selects: `updated_at` says when their answers changed
    (the reminders' "last activity") and `revision` counts it (the fingerprint that tells
    a stored summary is out of date)."""
    return (
        update(Response)
        .where(which)
        .values(updated_at=utcnow(), revision=Response.revision + 1)
        .execution_options(synchronize_session=False)
    )


async def touch_response(s: AsyncSession, response_id: int) -> None:
    """Its answers changed (see `_touch`)."""
    await s.execute(_touch(Response.id == response_id))


async def set_response_language(s: AsyncSession, response_id: int, language: str) -> None:
    await s.execute(
        update(Response)
        .where(Response.id == response_id)
        .values(language=language, updated_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    question_id: str
    value: int | None
    na: bool
    number: float | None
    choice: str | None
    skipped: bool
    answered_at: datetime


_ANSWER_FIELDS = ("value", "na", "number", "choice", "skipped")


@cache
def _upsert_statements(dialect: str) -> tuple[TextClause, TextClause | None]:
    """The answer upsert, written once per dialect (a hot path: built and compiled once).

    PostgreSQL: one statement that inserts or changes the answer and, if it did, bumps its
    response's revision (a data-modifying CTE). SQLite: the upsert, then the bump when a
    row was written."""
    null_safe = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    changed = " OR ".join(f"answer.{c} {null_safe} excluded.{c}" for c in _ANSWER_FIELDS)
    columns = ", ".join(("response_id", "question_id", *_ANSWER_FIELDS, "answered_at"))
    upsert = (  # built from this module's own column names only, never from input
        f"INSERT INTO answer ({columns}) "  # noqa: S608
        "VALUES (:response_id, :question_id, :value, :na, :number, :choice, :skipped, :answered_at) "
        "ON CONFLICT (response_id, question_id) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in (*_ANSWER_FIELDS, "answered_at"))
        + f" WHERE {changed}"
    )
    touch = "UPDATE response SET updated_at = :now, revision = revision + 1"
    now = bindparam("now", type_=UTCDateTime())
    at = bindparam("answered_at", type_=UTCDateTime())
    if dialect == "postgresql":
        both = f"WITH saved AS ({upsert} RETURNING response_id) {touch} "
        both += "WHERE id IN (SELECT response_id FROM saved)"
        return text(both).bindparams(at, now), None
    return (
        text(upsert).bindparams(at),
        text(f"{touch} WHERE id = :response_id").bindparams(now),
    )


def _answer_params(
    response_id: int,
    question_id: str,
    value: int | None,
    na: bool,
    number: float | None,
    choice: str | None,
    skipped: bool,
    answered_at: datetime | None,
) -> dict[str, Any]:
    given = [value is not None, na, number is not None, choice is not None, skipped]
    if sum(given) != 1:
        raise ValueError("an answer is exactly one of value, na, number, choice, skipped")
    check_scale_value(value)
    now = utcnow()
    return {
        "response_id": response_id,
        "question_id": question_id,
        "value": value,
        "na": na,
        "number": None if number is None else float(number),
        "choice": choice,
        "skipped": skipped,
        "answered_at": answered_at or now,
        "now": now,
    }


async def upsert_answer(
    db: AsyncSession | Run,
    response_id: int,
    question_id: str,
    *,
    value: int | None = None,
    na: bool = False,
    number: float | None = None,
    choice: str | None = None,
    skipped: bool = False,
    answered_at: datetime | None = None,
) -> None:
    """Store one answer, exactly one of value / na / number / choice / skipped.

    Idempotent on (response, question): the same input again changes nothing (not even
    `answered_at`); a different answer replaces the old one and takes the new time. A new
    or changed answer touches its response (`touch_response`): on PostgreSQL in the same
    statement (one round trip on the hot path).

    On a `Driver` (an autocommit PostgreSQL connection, `storage.survey.OneAnswer`) asyncpg
    runs that one statement itself, atomic by itself: the most frequent write of all (every
    tap on a scale) needs no session, transaction or result processing (bench/README.md,
    "The third hot-path pass").
    """
    params = _answer_params(
        response_id, question_id, value, na, number, choice, skipped, answered_at
    )
    if isinstance(db, Driver):
        await db.execute(SCORED_ANSWER, **params)
        return
    conn = db.conn if isinstance(db, Alchemy) else await db.connection()
    upsert, touch = _upsert_statements(conn.dialect.name)
    written = await conn.execute(upsert, params)
    if touch is not None and written.rowcount:
        await conn.execute(touch, params)


# The answer's upsert as `Query` (on PostgreSQL one statement with the revision's bump).
SCORED_ANSWER = Query(lambda dialect: _upsert_statements(dialect)[0])


ANSWERS_OF = Query(
    lambda _dialect: (
        select(
            Answer.question_id,
            Answer.value,
            Answer.na,
            Answer.number,
            Answer.choice,
            Answer.skipped,
            Answer.answered_at,
        )
        .where(Answer.response_id == bindparam("response_id"))
        .order_by(Answer.id)
    )
)
COMMENTS_OF = Query(
    lambda _dialect: (
        select(Comment.question_id, Comment.text)
        .where(Comment.response_id == bindparam("response_id"))
        .order_by(Comment.id)
    )
)


async def load_answers(db: AsyncSession | Run, response_id: int) -> dict[str, AnswerRecord]:
    """The response's answers by question id, in the order first answered."""
    rows = await (await run_of(db)).rows(ANSWERS_OF, response_id=response_id)
    return {row[0]: AnswerRecord(*row) for row in rows}


async def delete_answer(s: AsyncSession, response_id: int, question_id: str) -> bool:
    result = await s.execute(
        delete(Answer).where(Answer.response_id == response_id, Answer.question_id == question_id)
    )
    if result.rowcount:
        await touch_response(s, response_id)
    return result.rowcount > 0


async def upsert_comment(s: AsyncSession, response_id: int, question_id: str, text: str) -> None:
    """Store (or replace) the free-text answer to one question; touches its response."""
    text = text.strip()
    if not text:
        raise ValueError("an empty comment is not stored (delete it instead)")
    stmt = insert_for(s, Comment.__table__).values(
        response_id=response_id, question_id=question_id, text=text, created_at=utcnow()
    )
    await s.execute(
        stmt.on_conflict_do_update(
            index_elements=["response_id", "question_id"],
            set_={"text": stmt.excluded.text, "created_at": stmt.excluded.created_at},
        )
    )
    await touch_response(s, response_id)


async def load_comments(db: AsyncSession | Run, response_id: int) -> dict[str, str]:
    rows = await (await run_of(db)).rows(COMMENTS_OF, response_id=response_id)
    return {qid: text for qid, text in rows}


async def delete_comment(s: AsyncSession, response_id: int, question_id: str) -> bool:
    result = await s.execute(
        delete(Comment).where(
            Comment.response_id == response_id, Comment.question_id == question_id
        )
    )
    if result.rowcount:
        await touch_response(s, response_id)
    return result.rowcount > 0


async def erase_respondent(s: AsyncSession, subject_hash: str) -> int:
    """Delete the respondent and everything they answered; returns how many responses.

    Real deletes, explicit (not left to ON DELETE CASCADE), so that they also happen
    where foreign keys are not enforced.
    """
    respondent_id = await s.scalar(
        select(Respondent.id).where(Respondent.subject_hash == subject_hash)
    )
    if respondent_id is None:
        return 0
    response_ids = list(
        await s.scalars(select(Response.id).where(Response.respondent_id == respondent_id))
    )
    if response_ids:
        # Released figures keep the erased answers until their question's next release (the
        # release rule: an erasure cannot be read off by comparison); released free texts
        # and the record of what was released leave now, with the response.
        await s.execute(delete(ReleaseUnit).where(ReleaseUnit.response_id.in_(response_ids)))
        await s.execute(delete(Contact).where(Contact.response_id.in_(response_ids)))
        await s.execute(delete(Answer).where(Answer.response_id.in_(response_ids)))
        await s.execute(delete(Comment).where(Comment.response_id.in_(response_ids)))
        await s.execute(delete(Response).where(Response.id.in_(response_ids)))
    await s.execute(delete(Respondent).where(Respondent.id == respondent_id))
    # Nothing erased may linger in this session's identity map.
    erased = set(response_ids)
    for obj in list(s.sync_session.identity_map.values()):
        if (
            (isinstance(obj, Respondent) and obj.id == respondent_id)
            or (isinstance(obj, Response) and obj.id in erased)
            or (isinstance(obj, Answer | Comment | Contact) and obj.response_id in erased)
        ):
            s.expunge(obj)
    return len(response_ids)


async def sync_question_map(s: AsyncSession, banks: Iterable[Bank]) -> int:
    """Make `question_map` hold exactly the scale questions' indicators of these banks.

    Idempotent; rows of other bank tags are left alone. Returns rows added or changed.
    """
    changes = 0
    table = QuestionMap.__table__
    for bank in banks:
        wanted: dict[tuple[str, str], str] = {
            (q.id, ind): str(q.scale)
            for q in bank.questions
            if q.kind == "scale" and q.scale is not None
            for ind in q.indicators
        }
        rows = await s.execute(
            select(QuestionMap.question_id, QuestionMap.indicator_key, QuestionMap.scale).where(
                QuestionMap.bank_tag == bank.tag
            )
        )
        have = {(qid, ind): scale for qid, ind, scale in rows}
        stale = [k for k in have if k not in wanted]
        for qid, ind in stale:
            await s.execute(
                delete(QuestionMap).where(
                    QuestionMap.bank_tag == bank.tag,
                    QuestionMap.question_id == qid,
                    QuestionMap.indicator_key == ind,
                )
            )
        todo = [
            {"bank_tag": bank.tag, "question_id": qid, "indicator_key": ind, "scale": scale}
            for (qid, ind), scale in wanted.items()
            if have.get((qid, ind)) != scale
        ]
        if todo:
            stmt = insert_for(s, table)
            await s.execute(
                stmt.on_conflict_do_update(
                    index_elements=["bank_tag", "question_id", "indicator_key"],
                    set_={"scale": stmt.excluded.scale},
                ),
                todo,
            )
        changes += len(todo)
    return changes


async def question_map(s: AsyncSession, bank_tag: str) -> dict[str, list[str]]:
    """question id -> indicator keys for one bank version."""
    rows = await s.execute(
        select(QuestionMap.question_id, QuestionMap.indicator_key)
        .where(QuestionMap.bank_tag == bank_tag)
        .order_by(QuestionMap.id)
    )
    out: dict[str, list[str]] = {}
    for qid, ind in rows:
        out.setdefault(qid, []).append(ind)
    return out


async def get_invite(s: AsyncSession, cycle_id: int, invite_id: int) -> Invite | None:
    return await s.scalar(select(Invite).where(Invite.id == invite_id, Invite.cycle_id == cycle_id))


# --- live counts -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoleCounts:
    """Live counts of one role's responses in a cycle: who took part, never what they said."""

    started: int
    completed: int
    shared: int  # came through a shared code
    dashboard: int  # from a dashboard-logged-in browser (in no release)


async def role_counts(
    s: AsyncSession, cycle_id: int, roles: Iterable[str] | None = None
) -> dict[str, RoleCounts]:
    stmt = (
        select(
            Response.role,
            func.count(Response.id),
            func.sum(case((Response.status == "completed", 1), else_=0)),
            func.sum(case((Response.origin == "shared", 1), else_=0)),
            func.sum(case((Response.origin == "dashboard", 1), else_=0)),
        )
        .where(Response.cycle_id == cycle_id)
        .group_by(Response.role)
    )
    if roles is not None:
        stmt = stmt.where(Response.role.in_(sorted(set(roles))))
    return {
        role: RoleCounts(int(n), int(done or 0), int(shared or 0), int(dash or 0))
        for role, n, done, shared, dash in await s.execute(stmt)
    }


# --- answers given in the past (the demo's sample) ---------------------------------------


async def add_past_response(
    s: AsyncSession,
    *,
    subject: str,
    cycle_id: int,
    role: str,
    bank_tag: str,
    model_version: str,
    origin: str,
    when: datetime,
    completed_at: datetime | None,
    answers: Sequence[SaveAnswer],
) -> int:
    """A respondent and their response as given at `when` (completed at `completed_at`, else
    in progress): the rows a survey would have left (the engine's `SaveAnswer`s), with their
    times."""
    respondent = Respondent(subject_hash=subject, language="en", created_at=when)
    s.add(respondent)
    await s.flush()
    response = Response(
        respondent_id=respondent.id,
        cycle_id=cycle_id,
        origin=origin,
        role=Role(role).value,
        bank_tag=bank_tag,
        model_version=model_version,
        language="en",
        status="completed" if completed_at else "in_progress",
        consent_at=when,
        started_at=when,
        completed_at=completed_at,
    )
    s.add(response)
    await s.flush()
    for a in answers:
        check_scale_value(a.value)
        if a.text is not None:
            s.add(Comment(response_id=response.id, question_id=a.question_id, text=a.text))
            continue
        s.add(
            Answer(
                response_id=response.id,
                question_id=a.question_id,
                value=a.value,
                na=a.na,
                number=a.number,
                choice=a.choice,
                skipped=a.skipped,
                answered_at=when,
            )
        )
    await s.flush()
    return response.id
