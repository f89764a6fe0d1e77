"""The statements of the release rule: what could be released, releasing it, reading releases.

The rule itself (when a question may be released) is `backend.reporting.anonymity`; these
functions only count, write and read. A *unit* is one respondent's answer to one question
(`release_unit`, keyed by response and question, never by the answer's content): a new
release of a question needs enough units that no earlier release of it counted.

Every function takes the caller's session; `lock_cycle` first, in the same transaction,
makes two releasers of one cycle take turns (PostgreSQL: the cycle row's lock; SQLite: the
database's one writer).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    false,
    func,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import insert_for
from storage.models import (
    Answer,
    Comment,
    Cycle,
    QuestionMap,
    ReleaseCheck,
    ReleaseState,
    ReleaseUnit,
    Response,
    utcnow,
)

SCORES = (0, 1, 2, 3, 4)
DASHBOARD = "dashboard"  # response.origin of answers given from a dashboard-logged-in browser


@dataclass(frozen=True, slots=True)
class Candidate:
    """One question of one group as it stands now: what a release of it would show."""

    bank_tag: str
    question_id: str
    role: str
    kind: str  # scale | text
    current: int  # eligible respondents who answered it now
    fresh: int  # of them, those no earlier release of it counted
    distribution: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    na: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class ReleasedQuestion:
    bank_tag: str
    question_id: str
    role: str
    kind: str
    seq: int
    respondents: int
    distribution: tuple[int, int, int, int, int]
    na: int
    skipped: int
    released_at: datetime


async def lock_cycle(s: AsyncSession, cycle_id: int) -> Cycle | None:
    """Take the cycle's release lock for this transaction; the cycle, or None if gone.

    An UPDATE that changes nothing: on PostgreSQL it locks the row until commit, on SQLite
    it makes this transaction the database's writer before anything is read, so a second
    releaser waits and then reads what the first one wrote.
    """
    await s.execute(
        update(Cycle)
        .where(Cycle.id == cycle_id)
        .values(id=Cycle.id)
        .execution_options(synchronize_session=False)
    )
    return await s.get(Cycle, cycle_id, populate_existing=True)


def eligible(cycle: Cycle) -> ColumnElement[bool]:
    """The responses a release may count: finished ones (every one once the cycle is
    closed), never those given from a browser logged in to the dashboard."""
    finished = true() if cycle.status == "closed" else Response.status == "completed"
    return and_(Response.cycle_id == cycle.id, Response.origin != DASHBOARD, finished)


async def cycles_of_schools(s: AsyncSession, cycle_ids: Sequence[int] | None) -> list[Cycle]:
    """These cycles and the other cycles of their schools (every cycle with None)."""
    stmt = select(Cycle)
    if cycle_ids is not None:
        same_schools = select(Cycle.school_id).where(Cycle.id.in_(list(cycle_ids)))
        stmt = stmt.where(Cycle.school_id.in_(same_schools))
    return list(await s.scalars(stmt))


async def fingerprints(s: AsyncSession, cycles: Sequence[Cycle]) -> dict[int, str]:
    """cycle id -> a digest that changes whenever a release of the cycle could: an answer
    or a status changed (each bumps its response's revision), a response came or went, the
    cycle's status or thresholds changed."""
    counts = {
        cid: [int(n), int(revs or 0), int(top or 0)]
        for cid, n, revs, top in await s.execute(
            select(
                Response.cycle_id,
                func.count(Response.id),
                func.sum(Response.revision),
                func.max(Response.id),
            )
            .where(Response.cycle_id.in_([c.id for c in cycles]))
            .group_by(Response.cycle_id)
        )
    }
    return {
        c.id: hashlib.sha256(
            repr(
                [c.status, c.anonymity_threshold, c.free_text_threshold, counts.get(c.id)]
            ).encode()
        ).hexdigest()
        for c in cycles
    }


async def checked(s: AsyncSession, cycle_ids: Sequence[int]) -> dict[int, str]:
    """cycle id -> the fingerprint it had when its releases were last worked out."""
    return dict(
        (
            await s.execute(
                select(ReleaseCheck.cycle_id, ReleaseCheck.fingerprint).where(
                    ReleaseCheck.cycle_id.in_(list(cycle_ids))
                )
            )
        ).all()
    )


async def save_check(s: AsyncSession, cycle_id: int, print_: str) -> None:
    table = ReleaseCheck.__table__
    stmt = insert_for(s, table).values(cycle_id=cycle_id, fingerprint=print_, checked_at=utcnow())
    await s.execute(
        stmt.on_conflict_do_update(
            index_elements=[table.c.cycle_id],
            set_={"fingerprint": stmt.excluded.fingerprint, "checked_at": stmt.excluded.checked_at},
        )
    )


def _mapped() -> ColumnElement:
    """(bank, question) pairs that evidence some indicator: the scale questions."""
    return (
        select(QuestionMap.bank_tag, QuestionMap.question_id)
        .group_by(QuestionMap.bank_tag, QuestionMap.question_id)
        .subquery()
    )


def _unit_join(response_col, question_col) -> ColumnElement[bool]:
    return and_(ReleaseUnit.response_id == response_col, ReleaseUnit.question_id == question_col)


async def candidates(s: AsyncSession, cycle: Cycle) -> list[Candidate]:
    """Every question some eligible respondent answered, with its current counts: scale
    questions (those the question map ties to indicators) and free-text questions."""
    mapped = _mapped()
    scored = and_(
        Answer.value.is_not(None),
        Answer.value.between(0, 4),
        Answer.na.is_(false()),
        Answer.skipped.is_(false()),
    )
    fresh = func.sum(case((ReleaseUnit.response_id.is_(None), 1), else_=0))
    scale = (
        select(
            Response.bank_tag,
            Answer.question_id,
            Response.role,
            func.count(Answer.id),
            fresh,
            *(func.sum(case((and_(scored, Answer.value == v), 1), else_=0)) for v in SCORES),
            func.sum(case((Answer.na.is_(True), 1), else_=0)),
            func.sum(case((and_(Answer.skipped.is_(True), Answer.na.is_(false())), 1), else_=0)),
        )
        .select_from(Answer)
        .join(Response, Response.id == Answer.response_id)
        .join(
            mapped,
            and_(
                mapped.c.bank_tag == Response.bank_tag, mapped.c.question_id == Answer.question_id
            ),
        )
        .outerjoin(ReleaseUnit, _unit_join(Answer.response_id, Answer.question_id))
        .where(eligible(cycle))
        .group_by(Response.bank_tag, Answer.question_id, Response.role)
    )
    out = [
        Candidate(
            bank_tag=bank,
            question_id=qid,
            role=role,
            kind="scale",
            current=int(cur),
            fresh=int(new or 0),
            distribution=(int(d0), int(d1), int(d2), int(d3), int(d4)),
            na=int(na or 0),
            skipped=int(sk or 0),
        )
        for bank, qid, role, cur, new, d0, d1, d2, d3, d4, na, sk in await s.execute(scale)
    ]
    text = (
        select(
            Response.bank_tag,
            Comment.question_id,
            Response.role,
            func.count(Comment.id),
            func.sum(case((ReleaseUnit.response_id.is_(None), 1), else_=0)),
        )
        .select_from(Comment)
        .join(Response, Response.id == Comment.response_id)
        .outerjoin(ReleaseUnit, _unit_join(Comment.response_id, Comment.question_id))
        .where(eligible(cycle), func.length(func.trim(Comment.text)) > 0)
        .group_by(Response.bank_tag, Comment.question_id, Response.role)
    )
    out += [
        Candidate(bank, qid, role, "text", int(cur), int(new or 0))
        for bank, qid, role, cur, new in await s.execute(text)
    ]
    return out


async def release(s: AsyncSession, cycle: Cycle, c: Candidate, now: datetime) -> None:
    """Publish `c` as its question's new state and count its fresh units as released."""
    table = ReleaseState.__table__
    d = c.distribution
    values = {
        "kind": c.kind,
        "respondents": c.current,
        "d0": d[0],
        "d1": d[1],
        "d2": d[2],
        "d3": d[3],
        "d4": d[4],
        "na": c.na,
        "skipped": c.skipped,
        "released_at": now,
    }
    stmt = insert_for(s, table).values(
        cycle_id=cycle.id,
        role=c.role,
        bank_tag=c.bank_tag,
        question_id=c.question_id,
        seq=1,
        **values,
    )
    await s.execute(
        stmt.on_conflict_do_update(
            index_elements=[table.c.cycle_id, table.c.role, table.c.bank_tag, table.c.question_id],
            set_={**values, "seq": table.c.seq + 1},
        )
    )
    source = Comment if c.kind == "text" else Answer
    of_question = and_(
        eligible(cycle),
        Response.role == c.role,
        Response.bank_tag == c.bank_tag,
        source.question_id == c.question_id,
    )
    if c.kind == "text":
        of_question = and_(of_question, func.length(func.trim(Comment.text)) > 0)
    new_units = (
        select(
            source.response_id,
            source.question_id,
            literal(cycle.id),
            literal(None, type_=Comment.text.type),
        )
        .join(Response, Response.id == source.response_id)
        .outerjoin(ReleaseUnit, _unit_join(source.response_id, source.question_id))
        .where(of_question, ReleaseUnit.response_id.is_(None))
    )
    await s.execute(
        ReleaseUnit.__table__.insert().from_select(
            ["response_id", "question_id", "cycle_id", "text"], new_units
        )
    )
    if c.kind == "text":
        await _freeze_texts(s, cycle, c, of_question)


async def _freeze_texts(s: AsyncSession, cycle: Cycle, c: Candidate, of_question) -> None:
    """The texts the new state shows: each current writer's text as it is now; the units of
    this question that are not in the new state show nothing."""
    of_this = and_(
        ReleaseUnit.cycle_id == cycle.id,
        ReleaseUnit.question_id == c.question_id,
        ReleaseUnit.response_id.in_(
            select(Response.id).where(Response.role == c.role, Response.bank_tag == c.bank_tag)
        ),
    )
    await s.execute(
        update(ReleaseUnit)
        .where(of_this)
        .values(text=None)
        .execution_options(synchronize_session=False)
    )
    current = (
        select(Comment.text)
        .join(Response, Response.id == Comment.response_id)
        .where(
            of_question,
            Comment.response_id == ReleaseUnit.response_id,
            Comment.question_id == ReleaseUnit.question_id,
        )
        .scalar_subquery()
    )
    await s.execute(
        update(ReleaseUnit)
        .where(
            of_this,
            ReleaseUnit.response_id.in_(
                select(Comment.response_id)
                .join(Response, Response.id == Comment.response_id)
                .where(of_question)
            ),
        )
        .values(text=current)
        .execution_options(synchronize_session=False)
    )


# -- reading -----------------------------------------------------------------------------


async def released(s: AsyncSession, cycle_id: int) -> list[ReleasedQuestion]:
    """The current state of every released question of a cycle."""
    rows = await s.scalars(select(ReleaseState).where(ReleaseState.cycle_id == cycle_id))
    return [
        ReleasedQuestion(
            bank_tag=r.bank_tag,
            question_id=r.question_id,
            role=r.role,
            kind=r.kind,
            seq=r.seq,
            respondents=r.respondents,
            distribution=(r.d0, r.d1, r.d2, r.d3, r.d4),
            na=r.na,
            skipped=r.skipped,
            released_at=r.released_at,
        )
        for r in rows
    ]


async def question_indicators(
    s: AsyncSession, bank_tags: Iterable[str]
) -> dict[tuple[str, str], list[str]]:
    """(bank, question) -> the indicator keys it evidences."""
    out: dict[tuple[str, str], list[str]] = {}
    for bank, qid, key in await s.execute(
        select(QuestionMap.bank_tag, QuestionMap.question_id, QuestionMap.indicator_key)
        .where(QuestionMap.bank_tag.in_(sorted(set(bank_tags))))
        .order_by(QuestionMap.bank_tag, QuestionMap.question_id, QuestionMap.indicator_key)
    ):
        out.setdefault((bank, qid), []).append(key)
    return out


async def released_people(s: AsyncSession, cycle_id: int) -> dict[tuple[str, str], int]:
    """(indicator key, role) -> how many people the released units of the indicator's scale
    questions come from (one person answering two of its questions counts once)."""
    return {
        (key, role): int(n)
        for key, role, n in await s.execute(
            select(
                QuestionMap.indicator_key,
                Response.role,
                func.count(func.distinct(ReleaseUnit.response_id)),
            )
            .join(Response, Response.id == ReleaseUnit.response_id)
            .join(
                QuestionMap,
                and_(
                    QuestionMap.bank_tag == Response.bank_tag,
                    QuestionMap.question_id == ReleaseUnit.question_id,
                ),
            )
            .where(ReleaseUnit.cycle_id == cycle_id)
            .group_by(QuestionMap.indicator_key, Response.role)
        )
    }


async def released_texts(s: AsyncSession, cycle_id: int) -> dict[tuple[str, str], list[str]]:
    """(role, question) -> the free texts the current releases show (an erased respondent's
    text has left with their response)."""
    out: dict[tuple[str, str], list[str]] = {}
    for role, qid, text in await s.execute(
        select(Response.role, ReleaseUnit.question_id, ReleaseUnit.text)
        .join(Response, Response.id == ReleaseUnit.response_id)
        .where(ReleaseUnit.cycle_id == cycle_id, ReleaseUnit.text.is_not(None))
    ):
        out.setdefault((role, qid), []).append(text.strip())
    return out


async def state_prints(s: AsyncSession, cycle_ids: Sequence[int]) -> dict[int, list[int]]:
    """cycle id -> [released questions, sum of their release counters]: changes with every
    release (what a cache of figures computed from releases keys on)."""
    return {
        cid: [int(n), int(seqs or 0)]
        for cid, n, seqs in await s.execute(
            select(ReleaseState.cycle_id, func.count(), func.sum(ReleaseState.seq))
            .where(ReleaseState.cycle_id.in_(list(cycle_ids)))
            .group_by(ReleaseState.cycle_id)
        )
    }
