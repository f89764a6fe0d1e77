"""The excellence model shaped for templates: dimension > criterion > theme > indicator."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from conversations.model import ExcellenceModel, Indicator, load_model
from conversations.scales import AnswerKind, ScalePoint, get_scale

if TYPE_CHECKING:
    from backend.i18n import Texts


@dataclass(frozen=True)
class ThemeNode:
    id: str
    title: str
    indicators: list[Indicator]
    includes: list[str]


@dataclass(frozen=True)
class CriterionNode:
    id: str
    title: str
    themes: list[ThemeNode]


@dataclass(frozen=True)
class DimensionNode:
    id: str
    title: str
    criteria: list[CriterionNode]
    keys: list[str] = field(default_factory=list)


def points(ind: Indicator, tx: Texts | None = None) -> tuple[ScalePoint, ...]:
    """The scale points of a scale indicator (4 first), none for a number; with `tx`,
    their labels in the reader's language."""
    if ind.kind == AnswerKind.NUMBER:
        return ()
    scale = str(ind.kind)
    found = get_scale(scale).points
    if tx is None:
        return found
    return tuple(replace(p, label=tx.scale_label(scale, p.value)) for p in found)


# By the model object itself (a localized model is another object with the same id and
# version): the entry keeps the model, so that its id() cannot be reused by another.
_TREES: dict[int, tuple[ExcellenceModel, list[DimensionNode]]] = {}


def tree(model: ExcellenceModel | None = None) -> list[DimensionNode]:
    """The model as a tree; pass the reader's model (`texts_of(request).model`) for a page."""
    model = model or load_model()
    found = _TREES.get(id(model))
    if found is None or found[0] is not model:
        if len(_TREES) >= 32:  # models made on the fly (tests): keep the cache small
            _TREES.clear()
        found = _TREES[id(model)] = (model, _tree(model))
    return found[1]


def _tree(model: ExcellenceModel) -> list[DimensionNode]:
    out = []
    for d in model.dimensions:
        crits = []
        keys: list[str] = []
        for c in d.criteria:
            themes = []
            for t in c.themes:
                themes.append(ThemeNode(t.id, t.title, list(t.indicators), list(t.includes)))
                keys.extend(i.key for i in t.indicators)
            crits.append(CriterionNode(c.id, c.title, themes))
        out.append(DimensionNode(d.id, d.title, crits, keys))
    return out


def theme_indicators(theme_id: str, model: ExcellenceModel | None = None) -> list[Indicator]:
    """The indicators defined in one theme (not those it only lists again)."""
    model = model or load_model()
    return [p.indicator for p in model.placed() if p.theme_id == theme_id]
