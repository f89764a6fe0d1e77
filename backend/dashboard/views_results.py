"""Results: the cycle overview (rates, heatmap, biggest gaps) and the per-indicator drill-down.

Every figure comes from `build_report`, which applies the anonymity gate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from backend.dashboard import exports_glue
from backend.dashboard.auth import may_write
from backend.dashboard.modeltree import points, tree
from backend.dashboard.rates import response_rates
from backend.dashboard.views_self import indicator_or_404
from backend.dashboard.web import (
    R_SCHOOL,
    cycle_for,
    hides_raw,
    release_figures,
    render,
    sessionmaker,
    texts_of,
    user_of,
)
from backend.i18n import Texts
from backend.reporting.charts import reading
from backend.reporting.comments import comment_sections
from backend.reporting.report import biggest_gaps, build_report
from conversations.model import load_model
from conversations.roles import ROLE_LABELS, ROLES, Role
from storage import responses, schools
from storage.clusters import list_feedback
from storage.reminders import MAX_ANNOUNCEMENT_CHARS, announcement_audience, get_announcement
from storage.schools import list_actions


def role_labels(tx: Texts) -> dict[str, str]:
    """The model's names of the groups in the reader's language, by slug."""
    return {r.value: tx.role_name(r.value) for r in ROLES}


def role_label(role: str) -> str:
    """The model's English name of a group (the slug if it is none)."""
    try:
        return ROLE_LABELS[Role(role)]
    except ValueError:
        return role


def signed(tx: Texts, x: float, digits: int = 2) -> str:
    """`x` with its sign ("+0.50", "-1.25"), in the reader's digits."""
    return ("-" if x < 0 else "+") + tx.number(abs(x), digits)


def cell_style(mean: float | None) -> str:
    """The background of a 0..4 figure: the one scale of every chart (orange, a warm grey,
    blue: colour-blind readers tell them apart), black text on each."""
    if mean is None:
        return ""
    return f"background: {reading.scale_colour(mean)}"


def _distribution_alt(report: dict[str, Any], key: str, tx: Texts) -> str:
    return reading.distribution_alt(report, key, tx=tx)


def _heat_rows(report: dict[str, Any], roles: list[str], tx: Texts) -> list[dict[str, Any]]:
    titles = {d.id: d.title for d in tree(tx.model)}
    labels = reading.indicator_labels(tx.model)
    texts = {p.indicator.key: p.indicator.text for p in tx.model.placed()}
    threshold = tx.number(report["thresholds"]["anonymity"])
    rows: list[dict[str, Any]] = []
    last_dim = None
    for ind in report["indicators"]:
        if ind["dimension"] != last_dim:
            last_dim = ind["dimension"]
            rows.append({"heading": f"{last_dim}. {titles.get(last_dim, '')}"})
        cells = []
        for r in roles:
            g = ind["roles"][r]
            group = tx.label("short group", r)
            counts = reading.group_counts(g, tx) if g["n"] or g.get("respondents") else ""
            if g["n"] == 0:
                cells.append(
                    {"kind": "empty", "title": tx.gettext("%(group)s: no answers", group=group)}
                )
            elif g["mean"] is None:
                cells.append(
                    {
                        "kind": "suppressed",
                        "n": g.get("respondents") or g["n"],
                        "title": tx.gettext(
                            "%(group)s: %(counts)s, below the anonymity threshold of %(threshold)s",
                            group=group,
                            counts=counts,
                            threshold=threshold,
                        ),
                    }
                )
            else:
                mean, gap = tx.number(g["mean"], 2), ind["gap"][r]
                if gap is None:
                    title = tx.gettext(
                        "%(group)s: mean %(mean)s of 4 (%(counts)s)",
                        group=group,
                        mean=mean,
                        counts=counts,
                    )
                else:
                    title = tx.gettext(
                        "%(group)s: mean %(mean)s of 4 (%(counts)s), gap %(gap)s",
                        group=group,
                        mean=mean,
                        counts=counts,
                        gap=signed(tx, gap),
                    )
                cells.append(
                    {
                        "kind": "mean",
                        "n": g["n"],
                        "mean": g["mean"],
                        "style": cell_style(g["mean"]),
                        "flag": ind["flag"][r],
                        "title": title,
                    }
                )
        rows.append(
            {
                "ind": ind,
                "label": labels.get(ind["key"], ind["id"]),
                "text": texts.get(ind["key"], ""),
                "cells": cells,
                "self": _num(ind),
                "self_style": cell_style(_num(ind)),
                "self_title": _self_title(ind, tx),
            }
        )
    return rows


def _self_title(ind: dict[str, Any], tx: Texts) -> str:
    """What the heatmap's Self cell says on hover: the 0-4 rating, or why there is none."""
    if ind["kind"] == "NUMBER":
        if ind["self"] is None:
            return tx.gettext("A count, not a 0–4 rating: not given yet")
        return tx.gettext(
            "A count, not a 0–4 rating: %(number)s (on the indicator's page)",
            number=tx.number(ind["self"]),
        )
    if ind["self"] is None:
        return tx.gettext("Not rated yet")
    if ind.get("self_status") == "draft":
        return tx.gettext(
            "The school's own rating: %(value)s of 4, a draft (not submitted yet)",
            value=tx.number(ind["self"]),
        )
    return tx.gettext("The school's own rating: %(value)s of 4", value=tx.number(ind["self"]))


def _release_rows(report: dict[str, Any], roles: list[str]) -> list[dict[str, Any]]:
    """Per group with answers: how its answers came (live counts) and its latest release."""
    rows = []
    for role in roles:
        r = report["roles"].get(role) or {}
        released = r.get("released_at")
        rows.append(
            {
                "role": role,
                "shared": r.get("shared", 0),
                "dashboard": r.get("dashboard", 0),
                "released_at": datetime.fromisoformat(released) if released else None,
            }
        )
    return rows


def _num(ind: dict[str, Any]) -> float | None:
    return None if ind["kind"] == "NUMBER" or ind["self"] is None else float(ind["self"])


async def cycle_overview(request: web.Request) -> web.Response:
    model = load_model()
    tx = texts_of(request)
    await release_figures(request)
    async with sessionmaker(request).begin() as s:
        cycle = await cycle_for(request, s, request.match_info["cycle_id"])
        school = await schools.get_school(s, cycle.school_id)
        rates = await response_rates(s, cycle, tx)
        report = await build_report(s, cycle.id, model)
        invites = await responses.list_invites(s, cycle.id, include_revoked=False)
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
            "labels": role_labels(tx),
            "rows": _heat_rows(report, roles, tx),
            "release_rows": _release_rows(report, roles),
            "gaps": biggest_gaps(report, limit=10),
            "ind_labels": reading.indicator_labels(tx.model),
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

    return exports_glue.links(request, cycle_id, report)


async def indicator_page(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    tx = texts_of(request)
    ind = indicator_or_404(key, tx.model)
    placed = tx.model.index()[key]
    await release_figures(request)
    async with sessionmaker(request).begin() as s:
        cycle = await cycle_for(request, s, request.match_info["cycle_id"])
        school = await schools.get_school(s, cycle.school_id)
        report = await build_report(s, cycle.id, load_model())
        ratings = await schools.list_self_ratings(s, cycle.id)
        evidence = await schools.list_evidence(s, cycle.id, key)
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
                "label": tx.role_name(role),
                "g": g,
                "counts": reading.group_counts(g, tx),
                "gap": row["gap"][role],
                "flag": row["flag"][role],
                "ci": g.get("ci95"),
                "clear": row["gap_clear"][role],
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
    dims = {d.id: d for d in tree(tx.model)}
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
            "points": points(ind, tx),
            "evidence": evidence,
            "threshold": report["thresholds"]["anonymity"],
            "chart_alt": _distribution_alt(report, key, tx),
            "actions": actions,
            "feedback": feedback,
            "can_feedback": user.role == "peer" and user.school_id != cycle.school_id,
            "hide_comments": hides_raw(request, cycle.school_id),
            "comment_sections": (
                []
                if hides_raw(request, cycle.school_id)
                else comment_sections(report, tx, indicator=key)
            ),
            "free_text": report["thresholds"]["free_text"],
        },
    )


def routes() -> list[tuple[str, str, Any, str]]:
    c = "/dashboard/cycles/{cycle_id:\\d+}"
    return [
        ("GET", c, cycle_overview, "dash:cycle"),
        ("GET", c + "/indicators/{key}", indicator_page, "dash:indicator"),
    ]
