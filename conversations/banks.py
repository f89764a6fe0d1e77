"""Role question banks: short plain-language statements per stakeholder group.

Each bank is `data/banks/<role>.yaml`. A question is one of:
- `scale`: an AGM or EXTENT statement mapped to one or more model indicators;
- `choice`: a routing question (not scored) whose answer other questions' `when` reads;
- `number`: a typed number within bounds;
- `text`: an optional free-text answer (the model's closing question); its `indicators`
  name what its answers are evidence of (shown beside the comments, never scored: only
  scale questions enter the question map and the figures).
Question ids are short and stable (they travel in Telegram callback data).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import ConfigDict, Field, model_validator

from conversations.model import ExcellenceModel, NonEmpty, Strict, load_model
from conversations.roles import Role
from conversations.scales import ScaleId

QUESTION_ID = re.compile(r"^[a-z][a-z0-9_]{0,11}$")
OPTION_ID = re.compile(r"^[a-z0-9_]{1,8}$")


class Option(Strict):
    id: NonEmpty
    label: NonEmpty


class When(Strict):
    """Ask this question only if an earlier choice question was answered with one of `in_`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    question: NonEmpty
    in_: list[NonEmpty] = Field(alias="in", min_length=1)


class NumberBounds(Strict):
    min: float = 0
    max: float = 100000
    integer: bool = True
    unit: str | None = None


class Question(Strict):
    id: NonEmpty
    kind: Literal["scale", "choice", "number", "text"] = "scale"
    text: NonEmpty
    help: str | None = None
    scale: ScaleId | None = None  # AGM or EXTENT for kind=scale
    allow_na: bool = True  # "Not applicable" button (scale questions)
    optional: bool = True  # a Skip / "prefer not to say" button
    indicators: list[NonEmpty] = Field(default_factory=list)
    options: list[Option] = Field(default_factory=list)
    number: NumberBounds | None = None
    max_length: int = Field(default=1000, ge=1, le=4000)
    when: When | None = None

    @model_validator(mode="after")
    def _shape(self) -> Question:
        if not QUESTION_ID.match(self.id):
            raise ValueError(f"question id {self.id!r}: 1-12 of a-z, 0-9, _ starting with a letter")
        if self.kind == "scale":
            if self.scale not in (ScaleId.AGM, ScaleId.EXTENT):
                raise ValueError(f"{self.id}: a scale question takes scale AGM or EXTENT")
            if not self.indicators:
                raise ValueError(f"{self.id}: a scale question maps to at least one indicator")
        elif self.scale is not None:
            raise ValueError(f"{self.id}: only scale questions have a scale")
        if self.kind == "choice":
            if len(self.options) < 2:
                raise ValueError(f"{self.id}: a choice question needs at least two options")
            for o in self.options:
                if not OPTION_ID.match(o.id):
                    raise ValueError(f"{self.id}: option id {o.id!r} is not 1-8 of a-z0-9_")
        elif self.options:
            raise ValueError(f"{self.id}: only choice questions have options")
        if self.kind in ("choice", "number") and self.indicators:
            raise ValueError(f"{self.id}: only scale and text questions name indicators")
        if self.kind == "number" and self.number is None:
            raise ValueError(f"{self.id}: a number question needs `number` bounds")
        return self


class Bank(Strict):
    role: Role
    version: int = Field(ge=1)
    model_version: NonEmpty
    title: NonEmpty
    intro: NonEmpty  # one or two sentences shown before the first question
    minutes: int = Field(ge=1, le=30)  # honest estimate shown at consent
    questions: list[Question] = Field(min_length=1)

    @model_validator(mode="after")
    def _refs(self) -> Bank:
        seen: dict[str, Question] = {}
        for q in self.questions:
            if q.id in seen:
                raise ValueError(f"{self.role}: question id {q.id} appears twice")
            if q.when is not None:
                src = seen.get(q.when.question)
                if src is None or src.kind != "choice":
                    raise ValueError(
                        f"{self.role}/{q.id}: `when` must name an earlier choice question"
                    )
                unknown = set(q.when.in_) - {o.id for o in src.options}
                if unknown:
                    raise ValueError(f"{self.role}/{q.id}: `when` names unknown options {unknown}")
            seen[q.id] = q
        return self

    @property
    def tag(self) -> str:
        """Short version tag, e.g. `learner@1`."""
        return f"{self.role.value}@{self.version}"

    def question(self, qid: str) -> Question:
        for q in self.questions:
            if q.id == qid:
                return q
        raise KeyError(qid)

    def check_against(self, model: ExcellenceModel) -> None:
        keys = model.index()
        for q in self.questions:
            for k in q.indicators:
                if k not in keys:
                    raise ValueError(f"{self.role}/{q.id} maps to unknown indicator {k}")


def visible_questions(bank: Bank, answers: Mapping[str, str]) -> list[Question]:
    """The questions asked given the answers so far (a `when` reads a routing answer)."""
    out = []
    for q in bank.questions:
        if q.when is not None:
            got = answers.get(q.when.question, "")
            if not got.startswith("c:") or got[2:] not in q.when.in_:
                continue
        out.append(q)
    return out


def question_range(bank: Bank, answers: Mapping[str, str] | None = None) -> tuple[int, int]:
    """The fewest and the most questions the bank asks over every route still open after
    `answers` (each unanswered routing question taken every way, and skipped if it may be):
    equal when routing does not change the length (or is already answered)."""

    def walk(given: Mapping[str, str]) -> tuple[int, int]:
        shown = visible_questions(bank, given)
        for q in shown:
            if q.kind == "choice" and q.id not in given:
                ways = ["c:" + o.id for o in q.options] + (["s"] if q.optional else [])
                counts = [walk({**given, q.id: way}) for way in ways]
                return min(c[0] for c in counts), max(c[1] for c in counts)
        return len(shown), len(shown)

    return walk(dict(answers or {}))


def count_text(low: int, high: int) -> str:
    """ "14" or "14–15": a number of questions, a range where routing changes it."""
    return str(low) if low == high else f"{low}\u2013{high}"


def parse_bank(text: str) -> Bank:
    return Bank.model_validate(yaml.safe_load(text))


@cache
def load_banks() -> dict[Role, Bank]:
    """Every role's bank shipped with the package, each checked against the model."""
    model = load_model()
    folder = resources.files("conversations") / "data" / "banks"
    banks: dict[Role, Bank] = {}
    for role in Role:
        bank = parse_bank((folder / f"{role.value}.yaml").read_text(encoding="utf-8"))
        if bank.role != role:
            raise ValueError(f"{role.value}.yaml declares role {bank.role}")
        bank.check_against(model)
        banks[role] = bank
    return banks
