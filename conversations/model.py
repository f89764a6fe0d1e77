"""The ETF excellence model in career guidance for VET, as versioned data.

The data lives in `data/model/*.yaml`; this module is its schema and loader.
Every indicator occurrence has a unique `key`. The `id` is the id as printed in
the ETF document; where the document prints the same id twice with different
texts (VL-14, CC-5, CC-6), the second occurrence gets the key `<id>@<theme>`
(e.g. `VL-14@1.2.3`) and a `note` saying which is which.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from conversations.scales import AnswerKind

INDICATOR_ID = re.compile(r"^[A-Z]{2}-\d+(\.\d+)?$")
INDICATOR_KEY = re.compile(r"^[A-Z]{2}-\d+(\.\d+)?(@\d\.\d\.\d)?$")

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class Strict(BaseModel):
    """The base of every schema read from data/: no unknown field, frozen once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NumberSpec(Strict):
    """What a count or rate indicator takes: a number with a unit and bounds."""

    unit: NonEmpty  # e.g. "visits per year", "%"
    kind: Literal["count", "rate"] = "count"
    min: float = 0
    max: float = 100000
    integer: bool = True
    breakdown: list[NonEmpty] = Field(default_factory=list)  # e.g. ["primary", "secondary"]

    @model_validator(mode="after")
    def _bounds(self) -> NumberSpec:
        if self.min > self.max:
            raise ValueError("number.min is above number.max")
        if self.kind == "rate" and (self.min < 0 or self.max > 100):
            raise ValueError("a rate is a percentage between 0 and 100")
        return self


class Indicator(Strict):
    key: NonEmpty
    id: NonEmpty
    text: NonEmpty
    verification: str | None = None  # "means of verification"; some counts have none
    kind: AnswerKind
    kind_reason: NonEmpty  # why this scale: so a reviewer can challenge the choice
    number: NumberSpec | None = None
    note: str | None = None  # e.g. for ids the ETF document prints twice

    @model_validator(mode="after")
    def _shape(self) -> Indicator:
        if not INDICATOR_ID.match(self.id):
            raise ValueError(f"indicator id {self.id!r} is not of the form XX-n or XX-n.n")
        if not INDICATOR_KEY.match(self.key) or not self.key.startswith(self.id):
            raise ValueError(f"indicator key {self.key!r} must be its id, or id@theme")
        if (self.kind == AnswerKind.NUMBER) != (self.number is not None):
            raise ValueError(f"{self.key}: a NUMBER indicator needs `number`, and only it")
        return self


class Theme(Strict):
    id: NonEmpty  # "1.2.3"
    title: NonEmpty
    indicators: list[Indicator] = Field(default_factory=list)
    # Keys of indicators defined in another theme that the document lists here too
    # (FL-6 and FL-7 under 1.2.3; all of 1.2.3 under alumni 1.3.1).
    includes: list[NonEmpty] = Field(default_factory=list)
    note: str | None = None


class Criterion(Strict):
    id: NonEmpty  # "1.2"
    code: str | None = None  # "VL"; alumni (1.3) have none
    title: NonEmpty
    themes: list[Theme]


class Dimension(Strict):
    id: NonEmpty  # "1"
    title: NonEmpty
    criteria: list[Criterion]


class ClosingQuestion(Strict):
    text: NonEmpty
    help: str | None = None


class ExcellenceModel(Strict):
    model_id: NonEmpty
    version: NonEmpty
    title: NonEmpty
    source: NonEmpty
    dimensions: list[Dimension]
    closing_question: ClosingQuestion

    @model_validator(mode="after")
    def _consistent(self) -> ExcellenceModel:
        keys: set[str] = set()
        for d in self.dimensions:
            for c in d.criteria:
                if not c.id.startswith(d.id + "."):
                    raise ValueError(f"criterion {c.id} is not under dimension {d.id}")
                for t in c.themes:
                    if not t.id.startswith(c.id + "."):
                        raise ValueError(f"theme {t.id} is not under criterion {c.id}")
                    for i in t.indicators:
                        if i.key in keys:
                            raise ValueError(f"indicator key {i.key} appears twice")
                        keys.add(i.key)
        for d in self.dimensions:
            for c in d.criteria:
                for t in c.themes:
                    for k in t.includes:
                        if k not in keys:
                            raise ValueError(f"theme {t.id} includes unknown indicator {k}")
        return self

    # -- lookups -------------------------------------------------------------

    def placed(self) -> list[PlacedIndicator]:
        """Every indicator occurrence in document order, with where it sits."""
        return list(_placed(self))

    def indicator(self, key: str) -> Indicator:
        return self.index()[key].indicator

    def index(self) -> dict[str, PlacedIndicator]:
        return {p.indicator.key: p for p in _placed(self)}

    def theme_members(self, theme_id: str) -> list[str]:
        """Keys of the indicators a theme holds, its own and those it includes."""
        for d in self.dimensions:
            for c in d.criteria:
                for t in c.themes:
                    if t.id == theme_id:
                        return [i.key for i in t.indicators] + list(t.includes)
        raise KeyError(theme_id)


@dataclass(frozen=True, slots=True)
class PlacedIndicator:
    indicator: Indicator
    dimension_id: str
    criterion_id: str
    theme_id: str


def _placed(model: ExcellenceModel):
    for d in model.dimensions:
        for c in d.criteria:
            for t in c.themes:
                for i in t.indicators:
                    yield PlacedIndicator(i, d.id, c.id, t.id)


MODEL_FILE = "etf-career-guidance-vet.yaml"


def parse_model(text: str) -> ExcellenceModel:
    return ExcellenceModel.model_validate(yaml.safe_load(text))


@cache
def load_model() -> ExcellenceModel:
    """The current model shipped with the package (validated)."""
    ref = resources.files("conversations") / "data" / "model" / MODEL_FILE
    return parse_model(ref.read_text(encoding="utf-8"))


# --- The model's statements in another language --------------------------------------


def _shown_texts(data: dict[str, Any]) -> Iterator[tuple[str, Any, str | int]]:
    """(catalog key, container, field) of every text a reader sees in a dumped model.

    `model.title`, `model.dim.<id>`, `model.crit.<id>`, `model.theme.<id>` (and `.note`),
    `model.ind.<key>` with `.verification`, `.note`, `.unit`, `.breakdown.<n>`.
    `kind_reason` and `source` are notes for reviewers of the data file, not shown.
    The one place that names the keys: `model_messages` reads through it and
    `translate_model` writes through it, so the two cannot drift apart.
    """
    yield "model.title", data, "title"
    for d in data["dimensions"]:
        yield f"model.dim.{d['id']}", d, "title"
        for c in d["criteria"]:
            yield f"model.crit.{c['id']}", c, "title"
            for th in c["themes"]:
                yield f"model.theme.{th['id']}", th, "title"
                yield f"model.theme.{th['id']}.note", th, "note"
                for i in th["indicators"]:
                    k = f"model.ind.{i['key']}"
                    yield k, i, "text"
                    yield f"{k}.verification", i, "verification"
                    yield f"{k}.note", i, "note"
                    if i["number"]:
                        yield f"{k}.unit", i["number"], "unit"
                        for n in range(len(i["number"]["breakdown"])):
                            yield f"{k}.breakdown.{n}", i["number"]["breakdown"], n


def model_messages(model: ExcellenceModel) -> dict[str, str]:
    """Every text of the model a reader sees (none left empty), keyed for the catalogs."""
    return {key: box[field] for key, box, field in _shown_texts(model.model_dump()) if box[field]}


def translate_model(model: ExcellenceModel, t: Callable[..., str]) -> ExcellenceModel:
    """A copy of `model` with every shown text looked up through `t(key, default=...)`.

    Ids, keys, kinds and bounds are unchanged, so everything keyed by them still works."""
    data = model.model_dump()
    for key, box, field in _shown_texts(data):
        if box[field] is not None:
            box[field] = t(key, default=box[field])
    return ExcellenceModel.model_validate(data)
