"""What the reports read besides the releases (`storage.releases`): the cycle, the school's
own ratings, and the cluster view's stored summaries (a cache keyed by a fingerprint).

Each function takes an `AsyncSession` first; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import insert_for
from storage.models import ClusterMember, Cycle, QuestionMap, ReportSummary, SelfRating, utcnow

LOCK_CLASS = 0x4753  # pg advisory lock (class, cycle id): one builder per summary at a time


class CycleNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class SelfRatingRow:
    value: int | None
    number: float | None
    status: str  # draft|submitted


async def load_cycle(s: AsyncSession, cycle_id: int) -> Cycle:
    cycle = await s.get(Cycle, cycle_id)
    if cycle is None:
        raise CycleNotFound(cycle_id)
    return cycle


async def load_self_ratings(
    s: AsyncSession, cycle_id: int, *, submitted_only: bool = False
) -> dict[str, SelfRatingRow]:
    """The school's own ratings of a cycle, by indicator key (drafts too unless asked not to)."""
    stmt = select(
        SelfRating.indicator_key, SelfRating.value, SelfRating.number, SelfRating.status
    ).where(SelfRating.cycle_id == cycle_id)
    if submitted_only:
        stmt = stmt.where(SelfRating.status == "submitted")
    return {
        key: SelfRatingRow(value=value, number=number, status=status)
        for key, value, number, status in (await s.execute(stmt)).all()
    }


# -- the cluster view's stored summaries -----------------------------------------------------


async def self_rating_rows(s: AsyncSession, cycle_ids: Sequence[int]) -> dict[int, list[Any]]:
    """cycle id -> its self-ratings as [key, value, number, status], by key (for fingerprints)."""
    out: dict[int, list[Any]] = {}
    for cid, key, value, number, status in await s.execute(
        select(
            SelfRating.cycle_id,
            SelfRating.indicator_key,
            SelfRating.value,
            SelfRating.number,
            SelfRating.status,
        )
        .where(SelfRating.cycle_id.in_(list(cycle_ids)))
        .order_by(SelfRating.cycle_id, SelfRating.indicator_key)
    ):
        out.setdefault(cid, []).append([key, value, number, status])
    return out


async def question_map_rows(s: AsyncSession) -> list[list[str]]:
    """Every (bank, question, indicator) of the question map, in order."""
    return [
        list(row)
        for row in await s.execute(
            select(
                QuestionMap.bank_tag, QuestionMap.question_id, QuestionMap.indicator_key
            ).order_by(QuestionMap.bank_tag, QuestionMap.question_id, QuestionMap.indicator_key)
        )
    ]


async def stored_summaries(s: AsyncSession, cycle_ids: Sequence[int]) -> dict[int, tuple[str, Any]]:
    """cycle id -> (fingerprint, summary) as stored."""
    return {
        cid: (fingerprint, summary)
        for cid, fingerprint, summary in await s.execute(
            select(ReportSummary.cycle_id, ReportSummary.fingerprint, ReportSummary.summary).where(
                ReportSummary.cycle_id.in_(list(cycle_ids))
            )
        )
    }


async def save_report_summary(
    s: AsyncSession, cycle_id: int, fingerprint: str, summary: dict[str, Any]
) -> None:
    """Store (or replace) a cycle's summary for the cluster view; two viewers building the
    same one at once both succeed (upsert)."""
    table = ReportSummary.__table__
    stmt = insert_for(s, table).values(
        cycle_id=cycle_id, fingerprint=fingerprint, summary=summary, computed_at=utcnow()
    )
    await s.execute(
        stmt.on_conflict_do_update(
            index_elements=[table.c.cycle_id],
            set_={
                "fingerprint": stmt.excluded.fingerprint,
                "summary": stmt.excluded.summary,
                "computed_at": stmt.excluded.computed_at,
            },
        )
    )


async def clustered_cycles(s: AsyncSession) -> dict[int, Cycle]:
    """school id -> the cycle a cluster view shows by default (the school's newest, as
    `schools.list_cycles` orders them), for every school in some cluster."""
    rows = await s.scalars(
        select(Cycle)
        .where(Cycle.school_id.in_(select(ClusterMember.school_id)))
        .order_by(Cycle.school_id, Cycle.created_at.desc(), Cycle.id.desc())
    )
    out: dict[int, Cycle] = {}
    for cycle in rows:
        out.setdefault(cycle.school_id, cycle)
    return out


async def claim_summary(s: AsyncSession, cycle_id: int) -> bool:
    """On PostgreSQL, True unless another process is building this summary right now (the
    lock ends with the transaction); SQLite has one writer at a time anyway."""
    if s.get_bind().dialect.name != "postgresql":
        return True
    got = await s.scalar(select(func.pg_try_advisory_xact_lock(LOCK_CLASS, cycle_id)))
    return bool(got)
