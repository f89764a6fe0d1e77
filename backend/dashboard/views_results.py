"""Results: the cycle overview (rates, heatmap, biggest gaps) and the per-indicator drill-down.

Every figure comes from `build_report`, which applies the anonymity gate.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from backend.analytics.report import biggest_gaps, build_report
from backend.dashboard.auth import may_write
from backend.dashboard.modeltree import points, tree
from backend.dashboard.queries import (
    ACTION_STATUSES,
    list_actions,
    list_feedback,
    response_rates,
)
from backend.dashboard.views_self import indicator_or_404
from backend.dashboard.web import (
    R_SCHOOL,
    cycle_for,
    hides_raw,
    render,
    sessionmaker,
    user_of,
)
from backend.reminders import MAX_ANNOUNCEMENT_CHARS, announcement_audience, get_announcement
from conversations.model import load_model
from conversations.roles import ROLE_LABELS, ROLES, Role
from storage import repo

SHORT = {
    "teacher": "Teachers",
    "staff": "Staff",
    "board": "Board",
    "learner": "Learners",
    "graduate": "Graduates",
    "parent": "Parents",
    "employer": "Employers",
    "employer_sme": "SMEs",
    "union": "Unions",
    "education_provider": "Edu prov.",
    "local_government": "Local gov.",
    "national_government": "Nat. gov.",
    "research": "Research",
    "international_partner": "Intl partners",
    "prospective_learner": "Future learners",
}


def role_label(role: str) -> str:
    try:
        return ROLE_LABELS[Role(role)]
    except ValueError:
        return role


def cell_style(mean: float | None) -> str:
    """A background from orange (0) through a pale neutral (2) to blue (4): a diverging
    orange/blue scale that colour-blind readers tell apart (no red/green), dark text on it."""
    if mean is None:
        return ""
    x = max(0.0, min(4.0, float(mean))) / 4 * 2 - 1  # -1 .. 1
    hue = 30 if x < 0 else 210
    return f"background: hsl({hue}, {70 * abs(x):.0f}%, {90 - 16 * abs(x):.0f}%)"


def _distribution_alt(report: dict[str, Any], key: str) -> str:
    from backend import charts

    return charts.distribution_alt(report, key)


def _heat_rows(report: dict[str, Any], roles: list[str]) -> list[dict[str, Any]]:
    titles = {d.id: d.title for d in tree()}
    rows: list[dict[str, Any]] = []
    last_dim = None
    for ind in report["indicators"]:
        if ind["dimension"] != last_dim:
            last_dim = ind["dimension"]
            rows.append({"heading": f"{last_dim}. {titles.get(last_dim, '')}"})
        cells = []
        for r in roles:
            g = ind["roles"][r]
            if g["n"] == 0:
                cells.append({"kind": "empty", "title": f"{SHORT.get(r, r)}: no answers"})
            elif g["mean"] is None:
                cells.append(
                    {
                        "kind": "suppressed",
                        "n": g["n"],
                        "title": f"{SHORT.get(r, r)}: n={g['n']}, below the anonymity "
                        f"threshold of {report['thresholds']['anonymity']}",
                    }
                )
            else:
                cells.append(
                    {
                        "kind": "mean",
                        "n": g["n"],
                        "mean": g["mean"],
                        "style": cell_style(g["mean"]),
                        "flag": ind["flag"][r],
                        "title": f"{SHORT.get(r, r)}: mean {g['mean']:.2f} of 4, n={g['n']}"
                        + (f", gap {ind['gap'][r]:+.2f}" if ind["gap"][r] is not None else ""),
                    }
                )
        rows.append({"ind": ind, "cells": cells, "self_style": cell_style(_num(ind))})
    return rows


def _num(ind: dict[str, Any]) -> float | None:
    return None if ind["kind"] == "NUMBER" or ind["self"] is None else float(ind["self"])


async def cycle_overview(request: web.Request) -> web.Response:
    model = load_model()
    async with sessionmaker(request).begin() as s:
        cycle = await cycle_for(request, s, request.match_info["cycle_id"])
        school = await repo.get_school(s, cycle.school_id)
        rates = await response_rates(s, cycle)
        report = await build_report(s, cycle.id, model)
        invites = await repo.list_invites(s, cycle.id, include_revoked=False)
        announcement = await get_announcement(s, cycle.id)
        audience = await announcement_audience(s, cycle.id)
    active = [r for r in rates if r.started]
    roles = [r.role for r in active]
    request[R_SCHOOL] = school.slug
    return render(
        request,
        "dashboard/cycle.html",
        {
            "school": school,
            "cycle": cycle,
            "rates": rates,
            "report": report,
            "roles": roles,
            "short": SHORT,
            "labels": {r.value: ROLE_LABELS[r] for r in ROLES},
            "rows": _heat_rows(report, roles),
            "gaps": biggest_gaps(report, limit=10),
            "invite_count": len(invites),
            "started": sum(r.started for r in rates),
            "completed": sum(r.completed for r in rates),
            "extras": result_links(request, cycle.id, report),
            "can_plan": may_write(user_of(request), cycle.school_id),
            "announcement": announcement,
            "audience": audience,
            "max_announcement": MAX_ANNOUNCEMENT_CHARS,
        },
    )


def result_links(
    request: web.Request, cycle_id: int, report: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Links to charts and exports (with alt text and tables from the report)."""
    from backend.dashboard import exports_glue

    return exports_glue.links(request, cycle_id, report)


async def indicator_page(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    ind = indicator_or_404(key)
    model = load_model()
    placed = model.index()[key]
    async with sessionmaker(request).begin() as s:
        cycle = await cycle_for(request, s, request.match_info["cycle_id"])
        school = await repo.get_school(s, cycle.school_id)
        report = await build_report(s, cycle.id, model)
        ratings = await repo.list_self_ratings(s, cycle.id)
        evidence = await repo.list_evidence(s, cycle.id, key)
        actions = await list_actions(s, cycle.id, indicator_key=key)
        feedback = await list_feedback(s, cycle.id, key)
    user = user_of(request)
    row = next(i for i in report["indicators"] if i["key"] == key)
    groups = []
    for role, g in row["roles"].items():
        if g["n"] == 0:
            continue
        dist = g["distribution"] or {}
        total = sum(dist.values()) or 1
        groups.append(
            {
                "role": role,
                "label": role_label(role),
                "g": g,
                "gap": row["gap"][role],
                "flag": row["flag"][role],
                "bars": [
                    {
                        "value": v,
                        "count": dist.get(str(v), 0),
                        "pct": 100 * dist.get(str(v), 0) / total,
                    }
                    for v in (4, 3, 2, 1, 0)
                ],
            }
        )
    dims = {d.id: d for d in tree(model)}
    dim = dims[placed.dimension_id]
    crit = next(c for c in dim.criteria if c.id == placed.criterion_id)
    theme = next(t for t in crit.themes if t.id == placed.theme_id)
    request[R_SCHOOL] = school.slug
    return render(
        request,
        "dashboard/indicator.html",
        {
            "school": school,
            "cycle": cycle,
            "ind": ind,
            "dim": dim,
            "crit": crit,
            "theme": theme,
            "row": row,
            "groups": groups,
            "rating": ratings.get(key),
            "points": points(ind),
            "evidence": evidence,
            "threshold": report["thresholds"]["anonymity"],
            "chart_alt": _distribution_alt(report, key),
            "actions": actions,
            "statuses": ACTION_STATUSES,
            "feedback": feedback,
            "can_feedback": user.role == "peer" and user.school_id != cycle.school_id,
            "hide_comments": hides_raw(request, cycle.school_id),
        },
    )


def routes() -> list[tuple[str, str, Any, str]]:
    c = "/dashboard/cycles/{cycle_id:\\d+}"
    return [
        ("GET", c, cycle_overview, "dash:cycle"),
        ("GET", c + "/indicators/{key}", indicator_page, "dash:indicator"),
    ]
