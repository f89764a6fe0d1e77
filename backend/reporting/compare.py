"""Comparison of two cycles of one school, indicator by indicator, from two gated reports.

Pure functions over reports made by `build_report` (so the anonymity gate applied to
both): a figure is compared only where it is shown in BOTH cycles; where one side is
withheld or missing, that side shows nothing and there is no change arrow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

UP, DOWN, SAME = "▲", "▼", "="
EPSILON = 0.005  # report figures carry two decimals

SELF = "self"


def arrow(delta: float | None) -> str | None:
    if delta is None:
        return None
    if delta > EPSILON:
        return UP
    if delta < -EPSILON:
        return DOWN
    return SAME


def _self(ind: dict[str, Any]) -> float | None:
    v = ind.get("self")
    return None if v is None else float(v)


def _mean(ind: dict[str, Any], role: str) -> float | None:
    g = (ind.get("roles") or {}).get(role)
    if not g or g.get("mean") is None:
        return None
    return float(g["mean"])


def pair(now: float | None, before: float | None) -> dict[str, Any]:
    """One series of one indicator: both figures, the delta and the arrow (both shown only)."""
    delta = None if now is None or before is None else round(now - before, 2)
    return {"now": now, "before": before, "delta": delta, "arrow": arrow(delta)}


def compare_reports(
    now: dict[str, Any], before: dict[str, Any], roles: Sequence[str] | None = None
) -> dict[str, Any]:
    """Per indicator of `now`: the self rating and each group's mean now vs before.

    Returns {"roles": [...], "indicators": [{key, id, kind, dimension, self: pair,
    roles: {role: pair}, changed: bool, shown: bool}]}; `roles` are the groups with a
    shown mean in either cycle (or those given).
    """
    old = {ind["key"]: ind for ind in before.get("indicators", [])}
    if roles is None:
        seen: dict[str, None] = {}
        for rep in (now, before):
            for ind in rep.get("indicators", []):
                for r, g in (ind.get("roles") or {}).items():
                    if g.get("mean") is not None:
                        seen[r] = None
        order = list((now.get("roles") or {}).keys())
        roles = [r for r in order if r in seen] + [r for r in seen if r not in order]
    rows = []
    for ind in now.get("indicators", []):
        prev = old.get(ind["key"], {})
        self_pair = pair(_self(ind), _self(prev) if prev else None)
        role_pairs = {r: pair(_mean(ind, r), _mean(prev, r) if prev else None) for r in roles}
        every = [self_pair, *role_pairs.values()]
        rows.append(
            {
                "key": ind["key"],
                "id": ind["id"],
                "kind": ind.get("kind"),
                "dimension": ind.get("dimension"),
                "self": self_pair,
                "roles": role_pairs,
                "shown": any(p["now"] is not None or p["before"] is not None for p in every),
                "changed": any(p["arrow"] in (UP, DOWN) for p in every),
            }
        )
    return {"roles": list(roles), "indicators": rows}
