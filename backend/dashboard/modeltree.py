"""The excellence model shaped for templates: dimension > criterion > theme > indicator."""

from __future__ import annotations

from dataclasses import dataclass, field

from conversations.model import ExcellenceModel, Indicator, load_model
from conversations.scales import AnswerKind, ScalePoint, get_scale


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


def points(ind: Indicator) -> tuple[ScalePoint, ...]:
    """The scale points of a scale indicator (4 first), none for a number."""
    if ind.kind == AnswerKind.NUMBER:
        return ()
    return get_scale(str(ind.kind)).points


_TREES: dict[tuple[str, str], list[DimensionNode]] = {}


def tree(model: ExcellenceModel | None = None) -> list[DimensionNode]:
    model = model or load_model()
    key = (model.model_id, model.version)
    if key not in _TREES:
        _TREES[key] = _tree(model)
    return _TREES[key]


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
