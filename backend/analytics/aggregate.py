"""SQL aggregation of one cycle's answers, per indicator and stakeholder role.

The figures here are RAW: they may describe groups of one. Nothing may show
them; every reader passes them through `anonymity.enforce` first.

How answers count (answer JOIN response JOIN question_map):

- An answer is *scored* when it has a value 0..4 and is neither "Not
  applicable" nor skipped. NA and skipped answers never enter a mean.
- A statement mapped to two indicators counts for both.
- A respondent who answered several statements mapped to the same indicator
  contributes ONE figure to that indicator: their own mean of those answers.
  So `n` counts people (distinct responses with at least one scored answer
  for the indicator) and `mean` is the mean of those per-person means.
- `distribution`, `na` and `skipped` count answers, not people (with one
  statement per indicator, the usual case, the two are the same).

Under a filter, each group also records how many of its people the filtered
and the default view do not share (`differing`), so that the gate can refuse
to show a group whose comparison with the default view would single them out.

All of it is computed by the database (GROUP BY); no answer row is loaded
into Python. Free-text comments are loaded as text, with the number of
respondents who wrote one per (role, question).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Float, and_, case, cast, distinct, false, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from backend.analytics.anonymity import (
    DEFAULT_STATUSES,
    FilterGroup,
    Thresholds,
    check_filter,
)
from storage.models import Answer, Comment, Cycle, QuestionMap, Response, SelfRating

SCORES = (0, 1, 2, 3, 4)


@dataclass(slots=True)
class GroupStats:
    """Raw figures of one (indicator, role) group."""

    n: int = 0  # people with a scored answer
    total: float = 0.0  # sum of the per-person means
    distribution: dict[int, int] = field(default_factory=lambda: dict.fromkeys(SCORES, 0))
    na: int = 0  # answers "Not applicable"
    skipped: int = 0  # answers skipped ("prefer not to say")
    # Under a filter: people scored in this view or the default view but not both.
    differing: int = 0

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None


@dataclass(frozen=True, slots=True)
class RoleCounts:
    started: int  # responses of the role (any status) under the role/language filter
    completed: int


@dataclass(frozen=True, slots=True)
class TextAnswers:
    """The free-text answers of one role to one text question."""

    answered: int  # distinct respondents who wrote something
    texts: tuple[str, ...]  # sorted, so their order says nothing about who wrote when


@dataclass(frozen=True, slots=True)
class RawAggregates:
    cycle_id: int
    cycle_thresholds: Thresholds  # the cycle's own; enforce() refuses anything lower
    groups: dict[tuple[str, str], GroupStats]  # (indicator_key, role) -> figures
    roles: dict[str, RoleCounts]
    comments: dict[str, dict[str, TextAnswers]]  # role -> question_id -> answers


@dataclass(frozen=True, slots=True)
class SelfRatingRow:
    value: int | None
    number: float | None
    status: str  # draft|submitted


class CycleNotFound(LookupError):
    pass


async def load_cycle(s: AsyncSession, cycle_id: int) -> Cycle:
    cycle = await s.get(Cycle, cycle_id)
    if cycle is None:
        raise CycleNotFound(cycle_id)
    return cycle


def _response_filter(
    cycle_id: int,
    roles: Sequence[str] | None,
    statuses: Sequence[str],
    languages: Sequence[str] | None,
) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [
        Response.cycle_id == cycle_id,
        Response.status.in_(list(statuses)),
    ]
    if roles is not None:
        conds.append(Response.role.in_(list(roles)))
    if languages is not None:
        conds.append(Response.language.in_(list(languages)))
    return conds


async def _filter_groups(
    s: AsyncSession,
    cycle_id: int,
    roles: Sequence[str] | None,
    statuses: Sequence[str],
    languages: Sequence[str] | None,
) -> dict[str, FilterGroup]:
    """Per role: how many responses the filter selects, the default view holds, and both."""
    selected = and_(*_response_filter(cycle_id, None, statuses, languages))
    default = Response.status.in_(list(DEFAULT_STATUSES))
    stmt = (
        select(
            Response.role,
            func.sum(case((selected, 1), else_=0)),
            func.sum(case((default, 1), else_=0)),
            func.sum(case((and_(selected, default), 1), else_=0)),
        )
        .where(Response.cycle_id == cycle_id)
        .group_by(Response.role)
    )
    if roles is not None:
        stmt = stmt.where(Response.role.in_(list(roles)))
    rows = (await s.execute(stmt)).all()
    return {
        role: FilterGroup(selected=int(sel or 0), default=int(dft or 0), overlap=int(both or 0))
        for role, sel, dft, both in rows
    }


def _mapped_answers(*columns: Any) -> Select:
    """Answers joined to their response and to the indicators their question evidences
    (through the question map of the response's bank version)."""
    return (
        select(*columns)
        .select_from(Answer)
        .join(Response, Response.id == Answer.response_id)
        .join(
            QuestionMap,
            and_(
                QuestionMap.bank_tag == Response.bank_tag,
                QuestionMap.question_id == Answer.question_id,
            ),
        )
    )


async def aggregate_cycle(
    s: AsyncSession,
    cycle_id: int,
    *,
    roles: Sequence[str] | None = None,
    statuses: Sequence[str] = DEFAULT_STATUSES,
    languages: Sequence[str] | None = None,
) -> RawAggregates:
    """Raw per-(indicator, role) figures of a cycle; a filter goes through `check_filter`."""
    cycle = await load_cycle(s, cycle_id)
    thresholds = Thresholds.for_cycle(cycle)
    is_filtered = roles is not None or languages is not None or tuple(statuses) != DEFAULT_STATUSES
    if is_filtered:
        groups_seen = await _filter_groups(s, cycle_id, roles, statuses, languages)
        check_filter(groups_seen, thresholds)

    conds = _response_filter(cycle_id, roles, statuses, languages)
    scored = and_(
        Answer.value.is_not(None),
        Answer.value.between(0, 4),
        Answer.na.is_(false()),
        Answer.skipped.is_(false()),
    )
    base = _mapped_answers().where(*conds)

    # One row per (indicator, role, respondent): that person's mean and their NA/skip counts.
    per_person = (
        base.add_columns(
            QuestionMap.indicator_key.label("key"),
            Response.role.label("role"),
            Answer.response_id.label("rid"),
            func.avg(case((scored, cast(Answer.value, Float)))).label("pmean"),
            func.sum(case((Answer.na.is_(True), 1), else_=0)).label("na"),
            func.sum(
                case((and_(Answer.skipped.is_(True), Answer.na.is_(false())), 1), else_=0)
            ).label("skipped"),
        )
        .group_by(QuestionMap.indicator_key, Response.role, Answer.response_id)
        .subquery()
    )
    per_group = select(
        per_person.c.key,
        per_person.c.role,
        func.count(per_person.c.pmean),
        func.sum(per_person.c.pmean),
        func.sum(per_person.c.na),
        func.sum(per_person.c.skipped),
    ).group_by(per_person.c.key, per_person.c.role)

    groups: dict[tuple[str, str], GroupStats] = {}
    for key, role, n, total, na, skipped in (await s.execute(per_group)).all():
        groups[(key, role)] = GroupStats(
            n=int(n), total=float(total or 0.0), na=int(na or 0), skipped=int(skipped or 0)
        )

    dist_stmt = (
        base.add_columns(
            QuestionMap.indicator_key, Response.role, Answer.value, func.count(Answer.id)
        )
        .where(scored)
        .group_by(QuestionMap.indicator_key, Response.role, Answer.value)
    )
    for key, role, value, count in (await s.execute(dist_stmt)).all():
        groups.setdefault((key, role), GroupStats()).distribution[int(value)] = int(count)

    if is_filtered:
        await _group_differences(s, cycle_id, roles, statuses, languages, scored, groups)

    return RawAggregates(
        cycle_id=cycle_id,
        cycle_thresholds=thresholds,
        groups=groups,
        roles=await _role_counts(s, cycle_id, roles, languages),
        comments=await _comments(s, conds),
    )


async def _group_differences(
    s: AsyncSession,
    cycle_id: int,
    roles: Sequence[str] | None,
    statuses: Sequence[str],
    languages: Sequence[str] | None,
    scored: ColumnElement[bool],
    groups: dict[tuple[str, str], GroupStats],
) -> None:
    """Per group, the people a filtered view and the default view do not share."""
    selected = and_(*_response_filter(cycle_id, None, statuses, languages))
    default = Response.status.in_(list(DEFAULT_STATUSES))
    stmt = (
        _mapped_answers(
            QuestionMap.indicator_key, Response.role, func.count(distinct(Answer.response_id))
        )
        .where(
            Response.cycle_id == cycle_id,
            scored,
            or_(and_(selected, not_(default)), and_(not_(selected), default)),
        )
        .group_by(QuestionMap.indicator_key, Response.role)
    )
    if roles is not None:
        stmt = stmt.where(Response.role.in_(list(roles)))
    for key, role, count in (await s.execute(stmt)).all():
        if (key, role) in groups:
            groups[(key, role)].differing = int(count)


async def _role_counts(
    s: AsyncSession, cycle_id: int, roles: Sequence[str] | None, languages: Sequence[str] | None
) -> dict[str, RoleCounts]:
    conds: list[ColumnElement[bool]] = [Response.cycle_id == cycle_id]
    if roles is not None:
        conds.append(Response.role.in_(list(roles)))
    if languages is not None:
        conds.append(Response.language.in_(list(languages)))
    stmt = (
        select(
            Response.role,
            func.count(Response.id),
            func.sum(case((Response.status == "completed", 1), else_=0)),
        )
        .where(*conds)
        .group_by(Response.role)
    )
    return {
        role: RoleCounts(started=int(started), completed=int(done or 0))
        for role, started, done in (await s.execute(stmt)).all()
    }


async def _comments(
    s: AsyncSession, conds: list[ColumnElement[bool]]
) -> dict[str, dict[str, TextAnswers]]:
    stmt = (
        select(Response.role, Comment.question_id, Comment.response_id, Comment.text)
        .join(Response, Response.id == Comment.response_id)
        .where(*conds, func.length(func.trim(Comment.text)) > 0)
    )
    collected: dict[str, dict[str, tuple[set[int], list[str]]]] = {}
    for role, qid, rid, text in (await s.execute(stmt)).all():
        people, texts = collected.setdefault(role, {}).setdefault(qid, (set(), []))
        people.add(rid)
        texts.append(text.strip())
    return {
        role: {
            qid: TextAnswers(answered=len(people), texts=tuple(sorted(texts)))
            for qid, (people, texts) in by_q.items()
        }
        for role, by_q in collected.items()
    }


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
