"""The statements of the coordinators' e-mail about certification rounds (composed and
sent by `backend.certification.notices`): a queue in `coordinator_mail`.

A row is queued in the transaction that makes it due (the board's decision, a deadline
reminder), so it exists exactly when that commits. Each look claims what is due in one
transaction, safe with any number of processes, as `storage.reminders` does:

    SELECT due rows ... FOR UPDATE SKIP LOCKED     (PostgreSQL; SQLite has one writer)
    UPDATE coordinator_mail SET attempts = k + 1, next_attempt_at = now + backoff(k + 1)
           WHERE id = ? AND attempts = k           (compare-and-set)

so a claimed row is not due again before its backoff: if the sending fails, or the process
dies while sending, it is tried again then (at least once; a crash between the mail server's
answer and `mark_sent` may send it twice). Deadline reminders are one row per (round, school,
days before): the unique constraint makes a second queueing a no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Agency,
    CertRound,
    CoordinatorMail,
    Decision,
    RoundSchool,
    School,
    Submission,
    User,
    utcnow,
)

KINDS = ("decision", "revocation", "deadline")


async def queue(
    s: AsyncSession,
    round_id: int,
    school_id: int,
    kind: str,
    *,
    decision_id: int | None = None,
    days_before: int | None = None,
    now: datetime | None = None,
    status: str = "pending",
) -> bool:
    """Queue one mail (the caller owns the transaction); False if this deadline reminder
    was queued before. status "skipped": recorded as done without sending (a reminder whose
    day passed while no server looked)."""
    if kind not in KINDS:
        raise ValueError(f"unknown mail kind {kind!r}")
    now = now or utcnow()
    try:
        async with s.begin_nested():
            s.add(
                CoordinatorMail(
                    round_id=round_id,
                    school_id=school_id,
                    kind=kind,
                    decision_id=decision_id,
                    days_before=days_before,
                    status=status,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
            await s.flush()
    except IntegrityError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Recipient:
    email: str
    language: str | None  # the coordinator's own choice in the dashboard


@dataclass(frozen=True, slots=True)
class DueMail:
    """What a mail says: names, dates and links, never anything a respondent gave."""

    id: int
    kind: str
    attempt: int  # 1 for the first try
    days_before: int | None
    school_slug: str
    school_name: str
    school_languages: tuple[str, ...]
    round_id: int
    round_name: str
    round_kind: str
    deadline: date
    agency: str
    recipients: tuple[Recipient, ...]
    outcome: str | None = None
    valid_from: date | None = None
    valid_until: date | None = None
    has_conditions: bool = False
    token: str | None = None


async def coordinators(s: AsyncSession, school_id: int) -> list[Recipient]:
    rows = await s.execute(
        select(User.email, User.language)
        .where(User.school_id == school_id, User.role == "coordinator")
        .order_by(User.id)
    )
    return [Recipient(email, lang) for email, lang in rows]


async def claim(
    s: AsyncSession, now: datetime, batch: int, backoff: Callable[[int], float]
) -> list[DueMail]:
    """The pending rows due now (up to `batch`), each claimed for one attempt; `backoff(k)`:
    seconds after the k-th attempt before the next may start."""
    rows = (
        await s.execute(
            select(CoordinatorMail)
            .where(CoordinatorMail.status == "pending", CoordinatorMail.next_attempt_at <= now)
            .order_by(CoordinatorMail.next_attempt_at, CoordinatorMail.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
    ).scalars()
    claimed = []
    for row in list(rows):
        k = row.attempts
        result = await s.execute(
            update(CoordinatorMail)
            .where(CoordinatorMail.id == row.id, CoordinatorMail.attempts == k)
            .values(attempts=k + 1, next_attempt_at=now + timedelta(seconds=backoff(k + 1)))
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            continue
        if row.kind == "deadline" and await _submitted(s, row.round_id, row.school_id):
            await _close(s, row.id, "skipped", "submitted")  # submitted since it was queued
            continue
        due = await _describe(s, row, k + 1)
        if due is None:  # the school, round or decision is gone: nothing to say
            await _close(s, row.id, "failed", "gone")
            continue
        claimed.append(due)
    return claimed


async def _submitted(s: AsyncSession, round_id: int, school_id: int) -> bool:
    found = await s.scalar(
        select(Submission.id)
        .where(Submission.round_id == round_id, Submission.school_id == school_id)
        .limit(1)
    )
    return found is not None


async def _close(s: AsyncSession, mail_id: int, status: str, error: str) -> None:
    await s.execute(
        update(CoordinatorMail)
        .where(CoordinatorMail.id == mail_id)
        .values(status=status, error=error)
        .execution_options(synchronize_session=False)
    )


async def _describe(s: AsyncSession, row: CoordinatorMail, attempt: int) -> DueMail | None:
    school = await s.get(School, row.school_id)
    rnd = await s.get(CertRound, row.round_id)
    agency = await s.get(Agency, rnd.agency_id) if rnd else None
    decision = await s.get(Decision, row.decision_id) if row.decision_id else None
    if school is None or rnd is None or (row.decision_id and decision is None):
        return None
    return DueMail(
        id=row.id,
        kind=row.kind,
        attempt=attempt,
        days_before=row.days_before,
        school_slug=school.slug,
        school_name=school.name,
        school_languages=tuple(school.languages or ()),
        round_id=rnd.id,
        round_name=rnd.name,
        round_kind=rnd.kind,
        deadline=rnd.deadline,
        agency=agency.name if agency else "",
        recipients=tuple(await coordinators(s, school.id)),
        outcome=decision.outcome if decision else None,
        valid_from=decision.valid_from if decision else None,
        valid_until=decision.valid_until if decision else None,
        has_conditions=bool(decision and decision.conditions),
        token=decision.token if decision else None,
    )


async def mark_sent(s: AsyncSession, mail_id: int, now: datetime | None = None) -> None:
    await s.execute(
        update(CoordinatorMail)
        .where(CoordinatorMail.id == mail_id)
        .values(status="sent", sent_at=now or utcnow(), error=None)
        .execution_options(synchronize_session=False)
    )


async def mark_failed(s: AsyncSession, mail_id: int, error: str, *, final: bool) -> None:
    """Record why the attempt failed; `final`: no more attempts (status failed)."""
    values: dict[str, object] = {"error": error[:200]}
    if final:
        values["status"] = "failed"
    await s.execute(
        update(CoordinatorMail)
        .where(CoordinatorMail.id == mail_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def list_mail(s: AsyncSession, school_id: int | None = None) -> list[CoordinatorMail]:
    q = select(CoordinatorMail).order_by(CoordinatorMail.id)
    if school_id is not None:
        q = q.where(CoordinatorMail.school_id == school_id)
    return list(await s.scalars(q))


# --- deadlines ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pending:
    """A school listed in an open round that has not submitted to it."""

    round_id: int
    school_id: int
    deadline: date


async def unsubmitted(s: AsyncSession, until: date, school_id: int | None = None) -> list[Pending]:
    """Every (open round, listed school) with a deadline on or before `until` and no
    submission from that school yet (a certification round lists no school: a school
    that submits has applied)."""
    sent = select(Submission.id).where(
        Submission.round_id == RoundSchool.round_id, Submission.school_id == RoundSchool.school_id
    )
    q = (
        select(RoundSchool.round_id, RoundSchool.school_id, CertRound.deadline)
        .join(CertRound, CertRound.id == RoundSchool.round_id)
        .where(CertRound.status == "open", CertRound.deadline <= until, ~sent.exists())
        .order_by(CertRound.deadline, RoundSchool.round_id, RoundSchool.school_id)
    )
    if school_id is not None:
        q = q.where(RoundSchool.school_id == school_id)
    return [Pending(r, sch, d) for r, sch, d in await s.execute(q)]


async def reminded_days(
    s: AsyncSession, pairs: list[tuple[int, int]]
) -> dict[tuple[int, int], set[int]]:
    """(round, school) -> the days before the deadline already queued for it."""
    out: dict[tuple[int, int], set[int]] = {p: set() for p in pairs}
    if not pairs:
        return out
    rounds = sorted({r for r, _ in pairs})
    rows = await s.execute(
        select(
            CoordinatorMail.round_id, CoordinatorMail.school_id, CoordinatorMail.days_before
        ).where(CoordinatorMail.kind == "deadline", CoordinatorMail.round_id.in_(rounds))
    )
    for r, sch, days in rows:
        if (r, sch) in out and days is not None:
            out[(r, sch)].add(days)
    return out
