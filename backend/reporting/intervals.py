"""How sure a group mean is: a 95% t-interval from the released distribution (pure).

A board must not act on noise from five answers. Beside every group mean the report gives
the 95% confidence interval of the mean, and for the gap (group mean - the school's own
rating, a fixed number) the same interval shifted by the rating: the gap is *clear* when
that interval excludes zero, else it may be noise.

Why a t-interval (and not a bootstrap): the figures are released as a distribution over
0..4, so the mean and the sample standard deviation are exact; the groups are small (from
the anonymity threshold, 5, upwards), where the percentile bootstrap is known to be too
narrow (it cannot see values that were not drawn) while Student's t widens the interval for
small n as it should. A mean of a bounded 0..4 scale is close to normal from a handful of
answers unless nearly all answers sit at one end; the interval is clipped to 0..4.

Where a group answers two statements of one indicator, a person's answers are not
independent: the interval counts persons then (see `mean_interval`). What it does not know
(said in the README): a group whose answers are all the same has an interval of zero width
(its spread is zero), however few they are: `width_note` says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

SCALE_MIN, SCALE_MAX = 0.0, 4.0
LEVEL = 0.95

# Student's t, two-sided 95% (the 0.975 quantile), degrees of freedom 1..30.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
_Z = NormalDist().inv_cdf(0.975)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom.

    Exact (to 4 decimals) from the table up to 30; beyond, the Cornish-Fisher expansion
    around the normal quantile (error below 1e-4 from df = 30 on)."""
    if df < 1:
        raise ValueError("at least one degree of freedom")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float

    def excludes(self, value: float) -> bool:
        return value < self.low or value > self.high

    def shifted(self, by: float) -> Interval:
        return Interval(self.low + by, self.high + by)


def mean_interval(
    distribution: Mapping[int, int] | None, people: int | None = None
) -> Interval | None:
    """The 95% t-interval of the mean of scored answers counted by value (0..4), clipped
    to the scale; None with fewer than two (no spread to measure).

    `people`: how many persons gave the answers. Where one person answered two statements
    of an indicator, their answers are not independent: the interval then counts persons,
    not answers (n = people for the standard error and the degrees of freedom), which is
    conservative (as if each person's answers were one)."""
    if not distribution:
        return None
    answers = sum(distribution.values())
    if answers < 2:
        return None
    n = min(answers, people) if people else answers
    if n < 2:
        return None
    mean = sum(v * c for v, c in distribution.items()) / answers
    var = sum(c * (v - mean) ** 2 for v, c in distribution.items()) / (answers - 1)
    half = t975(n - 1) * math.sqrt(var / n)
    return Interval(max(SCALE_MIN, mean - half), min(SCALE_MAX, mean + half))


def gap_interval(mean_iv: Interval | None, self_score: float | None) -> Interval | None:
    """The interval of (group mean - the school's rating): the rating is a fixed number."""
    if mean_iv is None or self_score is None:
        return None
    return mean_iv.shifted(-self_score)


def gap_is_clear(gap_iv: Interval | None) -> bool | None:
    """True when the gap's interval excludes zero; None when there is no interval."""
    return None if gap_iv is None else gap_iv.excludes(0.0)


def width_note(distribution: Mapping[int, int] | None) -> str | None:
    """'same_answers' when every scored answer has one value (the interval has no width)."""
    if distribution and sum(1 for c in distribution.values() if c) == 1:
        return "same_answers"
    return None
