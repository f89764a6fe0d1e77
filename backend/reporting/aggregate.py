"""A cycle's figures per indicator and stakeholder role, read from its RELEASES only.

Releases are made by `backend.reporting.releases` under the rule of `anonymity`; nothing
here reads a live answer. The figures here are RAW in one sense only: a released group may
still hold fewer scored answers than a reader's threshold, so every reader passes them
through `anonymity.enforce`.

How released answers count (release_state JOIN question_map):

- A question's released state is a distribution of 0..4 values, plus counts of "Not
  applicable" and "skipped" answers. NA and skipped answers never enter a mean.
- A statement mapped to two indicators counts for both.
- An indicator's figure for a role is the sum of the released states of the statements
  mapped to it (over the role's bank versions): `n` counts scored answers, `mean` is their
  mean, `distribution` counts them by value. Where a group is asked one statement per
  indicator (the usual case) answers and people are the same; where it is asked two, a
  person counts twice, and the distribution, `n` and the mean say the same thing.
  `respondents` counts the people behind them (each once) and `questions` the statements:
  a figure says "35 respondents, 64 answers to 2 questions", never one count for the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from backend.reporting.anonymity import Thresholds
from storage import releases, responses
from storage.reporting import load_cycle

SCORES = (0, 1, 2, 3, 4)


@dataclass(slots=True)
class GroupStats:
    """Released figures of one (indicator, role) group."""

    n: int = 0  # scored answers
    total: float = 0.0  # sum of their values
    distribution: dict[int, int] = field(default_factory=lambda: dict.fromkeys(SCORES, 0))
    na: int = 0  # answers "Not applicable"
    skipped: int = 0  # answers skipped ("prefer not to say")
    respondents: int = 0  # people behind the released answers, each once (0: not known)
    questions: set[str] = field(default_factory=set)  # the statements the answers are to

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None


@dataclass(frozen=True, slots=True)
class RoleCounts:
    started: int  # responses of the role (any status), live
    completed: int
    shared: int = 0  # came through a shared code
    dashboard: int = 0  # from a dashboard-logged-in browser: in no release
    released_at: datetime | None = None  # the role's latest release


@dataclass(frozen=True, slots=True)
class TextAnswers:
    """The released free-text answers of one role to one text question."""

    answered: int  # respondents the release counted
    texts: tuple[str, ...]  # sorted, so their order says nothing about who wrote when


@dataclass(frozen=True, slots=True)
class RawAggregates:
    cycle_id: int
    cycle_thresholds: Thresholds  # the cycle's own; enforce() refuses anything lower
    groups: dict[tuple[str, str], GroupStats]  # (indicator_key, role) -> figures
    roles: dict[str, RoleCounts]
    comments: dict[str, dict[str, TextAnswers]]  # role -> question_id -> answers


async def aggregate_cycle(
    s: AsyncSession, cycle_id: int, *, roles: Sequence[str] | None = None
) -> RawAggregates:
    """The released per-(indicator, role) figures of a cycle (of `roles` only, if given)."""
    cycle = await load_cycle(s, cycle_id)
    wanted = None if roles is None else set(roles)
    states = [q for q in await releases.released(s, cycle_id) if wanted is None or q.role in wanted]
    indicators = await releases.question_indicators(s, {q.bank_tag for q in states})

    groups: dict[tuple[str, str], GroupStats] = {}
    latest: dict[str, datetime] = {}
    answered: dict[tuple[str, str], int] = {}
    for q in states:
        latest[q.role] = max(latest.get(q.role, q.released_at), q.released_at)
        if q.kind == "text":
            answered[(q.role, q.question_id)] = (
                answered.get((q.role, q.question_id), 0) + q.respondents
            )
            continue
        for key in indicators.get((q.bank_tag, q.question_id), ()):
            g = groups.setdefault((key, q.role), GroupStats())
            for value, count in zip(SCORES, q.distribution, strict=True):
                g.distribution[value] += count
                g.n += count
                g.total += value * count
            g.na += q.na
            g.skipped += q.skipped
            g.questions.add(q.question_id)
            # At least as many people as answered any one of its questions (an erased
            # respondent leaves the units before the next release updates the states).
            g.respondents = max(g.respondents, q.respondents)
    for gkey, people in (await releases.released_people(s, cycle_id)).items():
        if gkey in groups:
            groups[gkey].respondents = max(groups[gkey].respondents, people)

    texts = await releases.released_texts(s, cycle_id)
    comments: dict[str, dict[str, TextAnswers]] = {}
    for (role, qid), people in answered.items():
        comments.setdefault(role, {})[qid] = TextAnswers(
            answered=people, texts=tuple(sorted(texts.get((role, qid), ())))
        )

    return RawAggregates(
        cycle_id=cycle_id,
        cycle_thresholds=Thresholds.for_cycle(cycle),
        groups=groups,
        roles={
            role: RoleCounts(
                started=t.started,
                completed=t.completed,
                shared=t.shared,
                dashboard=t.dashboard,
                released_at=latest.get(role),
            )
            for role, t in (await responses.role_counts(s, cycle_id, wanted)).items()
        },
        comments=comments,
    )
