"""The anonymity gate: the ONE place that decides which figures may be shown.

Every reader (dashboard pages, JSON API, exports, the `report` command) gets
its figures from `enforce`; `SafeAggregates` can be made by nothing else.

The rules, with k = the cycle's anonymity threshold (default 5, never below 3)
and t = its free-text threshold (default 10, never below 3):

- A group (indicator x role) whose `n` (people with a scored answer) is below
  k shows `n` but no `mean`, no `distribution` and no `na`/`skipped` counts.
  The exact small n is shown on purpose: it tells the school how many more
  answers it needs, and a count alone reveals no one's answer; the
  distribution would (with n = 1 it IS the answer).
- Response counts per role (started, completed) are always shown.
- Free text of a role to a question is shown only when at least t respondents
  of that role wrote an answer to it; below t only that count is shown.
- A filter (subset of roles, statuses, languages) is refused with
  `SuppressedFilter` when, for any role it covers, it selects between 1 and
  k-1 responses, or when it selects some and differs from the default view
  (statuses completed + in_progress, every language) by between 1 and k-1
  responses: comparing the two views would isolate those people. Within a
  filter that passes, a group whose scored respondents differ from the
  default view's by 1..k-1 people is suppressed like a small group.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from backend.analytics.aggregate import RawAggregates

MIN_THRESHOLD = 3
DEFAULT_STATUSES: tuple[str, ...] = ("completed", "in_progress")


class ThresholdTooLow(ValueError):
    """A threshold below the floor of 3, or below the cycle's own."""


class SuppressedFilter(Exception):
    """A filter would isolate a group smaller than the anonymity threshold."""

    def __init__(self, role: str, size: int, threshold: int, reason: str) -> None:
        self.role = role
        self.size = size
        self.threshold = threshold
        self.reason = reason
        super().__init__(
            f"filter refused for role {role!r}: it {reason} {size} respondent(s), "
            f"fewer than the threshold of {threshold}"
        )


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


@dataclass(frozen=True, slots=True)
class FilterGroup:
    """Responses of one role: selected by a filter, in the default view, and in both."""

    selected: int
    default: int
    overlap: int

    @property
    def differing(self) -> int:
        """Responses in one view and not the other."""
        return self.selected + self.default - 2 * self.overlap


def check_filter(groups: Mapping[str, FilterGroup], thresholds: Thresholds) -> None:
    """Refuse (SuppressedFilter) a filter that isolates fewer than k respondents of any role."""
    k = thresholds.anonymity
    for role in sorted(groups):
        g = groups[role]
        if 0 < g.selected < k:
            raise SuppressedFilter(role, g.selected, k, "selects")
        if g.selected and 0 < g.differing < k:  # a role left out entirely shows nothing
            raise SuppressedFilter(role, g.differing, k, "sets apart")


# -- the shown figures -------------------------------------------------------

_SEAL = object()


@dataclass(frozen=True, slots=True)
class ShownGroup:
    """One (indicator, role) group as it may be shown."""

    n: int
    mean: float | None  # full precision; None when suppressed or nobody scored
    distribution: dict[int, int] | None
    na: int | None
    skipped: int | None
    suppressed: bool  # answered, but too few (or too few differing): figures withheld


@dataclass(frozen=True, slots=True)
class ShownText:
    answered: int
    texts: tuple[str, ...] | None  # None below the free-text threshold


@dataclass(frozen=True, slots=True)
class ShownRole:
    started: int
    completed: int


@dataclass(frozen=True, slots=True)
class SafeAggregates:
    """Figures that passed `enforce`. Only `enforce` can make one."""

    cycle_id: int
    thresholds: Thresholds
    groups: Mapping[tuple[str, str], ShownGroup]
    roles: Mapping[str, ShownRole]
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
    """Apply the anonymity rules to raw figures; the only way to figures that may be shown."""
    floor = raw.cycle_thresholds
    if thresholds.anonymity < floor.anonymity or thresholds.free_text < floor.free_text:
        raise ThresholdTooLow(f"thresholds {thresholds} are below the cycle's own {floor}")
    k, t = thresholds.anonymity, thresholds.free_text

    groups: dict[tuple[str, str], ShownGroup] = {}
    for gkey, g in raw.groups.items():
        if g.n >= k and not 0 < g.differing < k:
            groups[gkey] = ShownGroup(
                n=g.n,
                mean=g.mean,
                distribution=dict(g.distribution),
                na=g.na,
                skipped=g.skipped,
                suppressed=False,
            )
        else:
            groups[gkey] = ShownGroup(
                n=g.n, mean=None, distribution=None, na=None, skipped=None, suppressed=True
            )

    comments = {
        role: {
            qid: ShownText(answered=a.answered, texts=a.texts if a.answered >= t else None)
            for qid, a in by_q.items()
        }
        for role, by_q in raw.comments.items()
    }
    roles = {r: ShownRole(started=c.started, completed=c.completed) for r, c in raw.roles.items()}
    return SafeAggregates(
        cycle_id=raw.cycle_id,
        thresholds=thresholds,
        groups=groups,
        roles=roles,
        comments=comments,
        seal=_SEAL,
    )
