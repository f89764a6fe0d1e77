"""The anonymity gate: the ONE place that decides which figures may be released and shown.

Every figure anyone reads (dashboard pages, JSON API, exports, charts, the `report`
command, the cluster view's stored summaries, cycle comparison, peer views) is computed
from RELEASES, and releases are made only by the rule below; `enforce` then turns
released figures into the `SafeAggregates` readers get, and nothing else can make one.

The release rule, with k = the cycle's anonymity threshold (default 5, never below 3)
and t = its free-text threshold (default 10, never below 3):

- A figure is released per question and group: the answers of one role (one bank
  version) to one question of one cycle, counted as a frozen state (a distribution of
  0..4, "not applicable" and "skipped" counts; for a free-text question, the texts).
  Indicator figures, means, gaps, roll-ups and comparisons are computed only from these
  states, never from live answers.
- A question's first release needs at least k respondents (t for free text); a question
  answered by fewer is in no figure at all, not only out of its own line.
- A NEW release of a question needs at least k respondents (t for free text) whose answer
  to it no earlier release counted ("fresh"). So any two states a reader can see of a
  figure, and any sum or difference of them, mix at least k people's answers: the newest
  state with a non-zero weight holds k fresh answers that no older state holds.
- Only finished responses are released (completed; every response once the cycle is
  closed), never those given from a browser logged in to the dashboard.
- Erasure deletes a respondent's rows at once; released counts keep their answer until
  the question's next release, which then also holds k fresh answers, so the erasure
  cannot be read off by comparison. A released free text leaves at once with its writer.
- Live *counts* of responses per role (started, completed, how they came) are shown as
  they are: they say who took part, not what anyone answered.

`enforce` adds the reader's own threshold (never below the cycle's): a group's mean and
distribution are shown when its released figure holds at least k scored answers, and
free texts when at least t respondents wrote. Why per question and why "fresh": see the
README's Privacy section (attacks by comparison, and what each reader can learn).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from backend.reporting.aggregate import RawAggregates, RoleCounts

MIN_THRESHOLD = 3


class ThresholdTooLow(ValueError):
    """A threshold below the floor of 3, or below the cycle's own."""


class _HasThresholds(Protocol):
    anonymity_threshold: int
    free_text_threshold: int


@dataclass(frozen=True, slots=True)
class Thresholds:
    anonymity: int = 5
    free_text: int = 10

    def __post_init__(self) -> None:
        for name in ("anonymity", "free_text"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < MIN_THRESHOLD:
                raise ThresholdTooLow(f"{name} threshold {value!r} is below {MIN_THRESHOLD}")

    @classmethod
    def for_cycle(cls, cycle: _HasThresholds) -> Thresholds:
        """The thresholds a cycle fixed when it opened."""
        return cls(cycle.anonymity_threshold, cycle.free_text_threshold)


class _Candidate(Protocol):
    kind: str  # scale | text
    fresh: int  # respondents whose answer to the question no earlier release counted


def may_release(candidate: _Candidate, thresholds: Thresholds) -> bool:
    """THE release rule: a question's state may be (re)released when at least k (t for free
    text) of its respondents were counted by no earlier release of it."""
    need = thresholds.free_text if candidate.kind == "text" else thresholds.anonymity
    return candidate.fresh >= need


# -- the shown figures -------------------------------------------------------

_SEAL = object()


@dataclass(frozen=True, slots=True)
class ShownGroup:
    """One (indicator, role) group as it may be shown."""

    n: int  # scored answers in the released figure (people, where one statement is asked)
    mean: float | None  # full precision; None when suppressed or nothing released
    distribution: dict[int, int] | None
    na: int | None
    skipped: int | None
    suppressed: bool  # released, but fewer than k scored answers or people: figures withheld
    respondents: int = 0  # the people behind the answers, each once
    questions: int = 0  # how many statements the answers are to


@dataclass(frozen=True, slots=True)
class ShownText:
    answered: int
    texts: tuple[str, ...] | None  # None below the free-text threshold


@dataclass(frozen=True, slots=True)
class SafeAggregates:
    """Figures that passed `enforce`. Only `enforce` can make one."""

    cycle_id: int
    thresholds: Thresholds
    groups: Mapping[tuple[str, str], ShownGroup]
    roles: Mapping[str, RoleCounts]  # live counts: always shown as they are
    comments: Mapping[str, Mapping[str, ShownText]]
    seal: object

    def __post_init__(self) -> None:
        if self.seal is not _SEAL:
            raise TypeError("SafeAggregates is made only by anonymity.enforce")

    def group(self, indicator_key: str, role: str) -> ShownGroup:
        """The shown figures of a group; an empty one where nobody answered."""
        return self.groups.get((indicator_key, role), _EMPTY)


_EMPTY = ShownGroup(n=0, mean=None, distribution=None, na=None, skipped=None, suppressed=False)


def enforce(raw: RawAggregates, thresholds: Thresholds) -> SafeAggregates:
    """Released figures as a reader with `thresholds` may see them; the only way to figures
    that may be shown."""
    floor = raw.cycle_thresholds
    if thresholds.anonymity < floor.anonymity or thresholds.free_text < floor.free_text:
        raise ThresholdTooLow(f"thresholds {thresholds} are below the cycle's own {floor}")
    k, t = thresholds.anonymity, thresholds.free_text

    groups: dict[tuple[str, str], ShownGroup] = {}
    for gkey, g in raw.groups.items():
        people = g.respondents or g.n  # two questions' answers may come from fewer people
        counts = {"respondents": g.respondents or g.n, "questions": len(g.questions)}
        if g.n >= k and people >= k:
            groups[gkey] = ShownGroup(
                n=g.n,
                mean=g.mean,
                distribution=dict(g.distribution),
                na=g.na,
                skipped=g.skipped,
                suppressed=False,
                **counts,
            )
        else:
            groups[gkey] = ShownGroup(
                n=g.n,
                mean=None,
                distribution=None,
                na=None,
                skipped=None,
                suppressed=True,
                **counts,
            )

    comments = {
        role: {
            qid: ShownText(answered=a.answered, texts=a.texts if a.answered >= t else None)
            for qid, a in by_q.items()
        }
        for role, by_q in raw.comments.items()
    }
    return SafeAggregates(
        cycle_id=raw.cycle_id,
        thresholds=thresholds,
        groups=groups,
        roles=raw.roles,
        comments=comments,
        seal=_SEAL,
    )
