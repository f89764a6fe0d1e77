"""The four response scales of the ETF excellence model, exactly as the seed prints them.

Each scale runs 4..0. AGM also has "Not applicable", which is no score: it is
counted apart and never enters a mean (the seed prints a stray "1" beside it).
Indicators that ask for a number use NUMBER, which is no scale at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ScaleId(StrEnum):
    EXTENT = "EXTENT"
    TIME = "TIME"
    YN = "YN"
    AGM = "AGM"


class AnswerKind(StrEnum):
    """How an indicator is rated by the school: on a scale, or as a number."""

    EXTENT = "EXTENT"
    TIME = "TIME"
    YN = "YN"
    NUMBER = "NUMBER"


@dataclass(frozen=True, slots=True)
class ScalePoint:
    value: int
    label: str


@dataclass(frozen=True, slots=True)
class Scale:
    id: ScaleId
    name: str
    points: tuple[ScalePoint, ...]  # 4 first, 0 last
    has_na: bool = False

    @property
    def values(self) -> tuple[int, ...]:
        return tuple(p.value for p in self.points)

    def label(self, value: int) -> str:
        for p in self.points:
            if p.value == value:
                return p.label
        raise ValueError(f"{value!r} is not a point of the {self.id} scale")


NA = "na"  # the stored marker for "Not applicable"
MAX_SCORE = 4
MIN_SCORE = 0


def _scale(sid: ScaleId, name: str, labels: tuple[str, str, str, str, str], na: bool = False):
    return Scale(
        sid, name, tuple(ScalePoint(4 - i, label) for i, label in enumerate(labels)), has_na=na
    )


SCALES: dict[ScaleId, Scale] = {
    ScaleId.EXTENT: _scale(
        ScaleId.EXTENT,
        "Extent",
        (
            "To a large extent",
            "To some extent",
            "To a little extent",
            "Planned or in development",
            "Not at all",
        ),
    ),
    ScaleId.TIME: _scale(
        ScaleId.TIME,
        "Time",
        (
            "Every 1-2 years",
            "Between every 2 and 5 years",
            "More than every 5 years",
            "Planned or in development",
            "Never",
        ),
    ),
    ScaleId.YN: _scale(
        ScaleId.YN,
        "Yes/No",
        (
            "Fully achieved",
            "Mostly achieved",
            "Partially achieved",
            "Planned or in development",
            "Not achieved",
        ),
    ),
    ScaleId.AGM: _scale(
        ScaleId.AGM,
        "Agreement",
        ("Strongly agree", "Agree", "Neither agree nor disagree", "Disagree", "Strongly disagree"),
        na=True,
    ),
}

NA_LABEL = "Not applicable"


def get_scale(sid: str | ScaleId) -> Scale:
    return SCALES[ScaleId(sid)]
