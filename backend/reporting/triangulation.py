"""Pure comparisons of the school's self-assessment with the stakeholder groups' views.

All figures are on the 0..4 scale and must already have passed the anonymity
gate (a suppressed mean is None here and simply takes no part).

- gap = group mean - self. Only for scale indicators: a NUMBER indicator's
  self figure is a count, not comparable with a 0..4 mean.
- flag: `blind_spot` when the school rates itself at least a third of the
  scale (4/3 points) above the group (gap <= -4/3); `hidden_strength` when
  the group rates it at least 4/3 above the school (gap >= 4/3); else None.
- agreement between the groups shown for one indicator: the range (max - min)
  and the population standard deviation of their means, and a label:
  `agree` when the range is below 1 point (every group within one scale step),
  `disagree` when it is 2 points or more (half the scale), `mixed` between.
  Fewer than two shown groups: no label (None).
- roll-ups per theme, criterion and dimension: the plain mean of the
  indicator-level figures present (self, and each role's shown means). A theme
  counts the indicators it `includes` as its own too; a criterion or dimension
  counts each indicator once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from conversations.model import ExcellenceModel

SCALE_MAX = 4
FLAG_MARGIN = SCALE_MAX / 3  # a third of the 0..4 scale
AGREE_BELOW = 1.0
DISAGREE_FROM = 2.0
_EPS = 1e-9  # so that 4 - 2.6666... counts as a full third

BLIND_SPOT = "blind_spot"
HIDDEN_STRENGTH = "hidden_strength"


def gap(mean: float | None, self_score: float | None) -> float | None:
    """Group mean minus the school's own score; None when either is unknown."""
    if mean is None or self_score is None:
        return None
    return mean - self_score


def flag(gap_value: float | None) -> str | None:
    if gap_value is None:
        return None
    if gap_value <= -FLAG_MARGIN + _EPS:
        return BLIND_SPOT
    if gap_value >= FLAG_MARGIN - _EPS:
        return HIDDEN_STRENGTH
    return None


@dataclass(frozen=True, slots=True)
class Agreement:
    groups: int  # shown group means compared
    range: float | None
    sd: float | None
    label: str | None  # agree | mixed | disagree; None with fewer than two groups


def agreement(means: Iterable[float | None]) -> Agreement:
    shown = [m for m in means if m is not None]
    if len(shown) < 2:
        return Agreement(groups=len(shown), range=None, sd=None, label=None)
    spread = max(shown) - min(shown)
    avg = sum(shown) / len(shown)
    sd = math.sqrt(sum((m - avg) ** 2 for m in shown) / len(shown))
    if spread < AGREE_BELOW - _EPS:
        label = "agree"
    elif spread >= DISAGREE_FROM - _EPS:
        label = "disagree"
    else:
        label = "mixed"
    return Agreement(groups=len(shown), range=spread, sd=sd, label=label)


def mean_of(values: Iterable[float | None]) -> tuple[float | None, int]:
    """The mean of the known values and how many there were."""
    known = [v for v in values if v is not None]
    return (sum(known) / len(known) if known else None), len(known)


@dataclass(frozen=True, slots=True)
class Figure:
    mean: float | None
    count: int  # indicators that contributed


@dataclass(frozen=True, slots=True)
class RollUp:
    indicators: int  # indicators the unit holds
    self: Figure
    roles: dict[str, Figure]


def units(model: ExcellenceModel) -> dict[str, dict[str, list[str]]]:
    """Member indicator keys of every theme, criterion and dimension (each key once)."""
    themes: dict[str, list[str]] = {}
    criteria: dict[str, list[str]] = {}
    dimensions: dict[str, list[str]] = {}
    for d in model.dimensions:
        dim_keys: list[str] = []
        for c in d.criteria:
            crit_keys: list[str] = []
            for t in c.themes:
                members = list(dict.fromkeys(model.theme_members(t.id)))
                themes[t.id] = members
                crit_keys.extend(k for k in members if k not in crit_keys)
            criteria[c.id] = crit_keys
            dim_keys.extend(k for k in crit_keys if k not in dim_keys)
        dimensions[d.id] = dim_keys
    return {"themes": themes, "criteria": criteria, "dimensions": dimensions}


def rollups(
    model: ExcellenceModel,
    self_scores: Mapping[str, float | None],
    role_means: Mapping[str, Mapping[str, float | None]],
) -> dict[str, dict[str, RollUp]]:
    """Roll-ups per theme, criterion and dimension.

    `self_scores`: indicator key -> the school's 0..4 score (None for NUMBER
    indicators and unrated ones); `role_means`: role -> indicator key -> shown mean.
    """
    out: dict[str, dict[str, RollUp]] = {}
    for level, members_of in units(model).items():
        out[level] = {}
        for uid, members in members_of.items():
            self_mean, self_count = mean_of(self_scores.get(k) for k in members)
            roles = {}
            for role, means in role_means.items():
                m, c = mean_of(means.get(k) for k in members)
                roles[role] = Figure(m, c)
            out[level][uid] = RollUp(
                indicators=len(members), self=Figure(self_mean, self_count), roles=roles
            )
    return out
