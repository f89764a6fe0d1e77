"""A cycle beside an earlier one of the same school (by default the one just before it).

Both sides come from `build_report` (the anonymity gate); `analytics.compare` sets them
side by side and only compares figures shown in both.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from backend.dashboard.exports_glue import _in_thread, _svg
from backend.dashboard.web import (
    R_SCHOOL,
    cycle_for,
    release_figures,
    render,
    sessionmaker,
    texts_of,
)
from backend.reporting.compare import compare_reports
from backend.reporting.report import build_report
from conversations.model import load_model
from storage import schools
from storage.models import Cycle


def previous_cycle(cycles: list[Cycle], cycle: Cycle) -> Cycle | None:
    """The cycle just before `cycle` in `cycles` (newest first, as `schools.list_cycles`)."""
    ids = [c.id for c in cycles]
    if cycle.id not in ids:
        return None
    later = cycles[ids.index(cycle.id) + 1 :]
    return later[0] if later else None


async def _pair(request: web.Request, s: AsyncSession) -> tuple[Cycle, list[Cycle], Cycle | None]:
    """The cycle, the school's other cycles, and the one to compare with (404 if not its)."""
    cycle = await cycle_for(request, s, request.match_info["cycle_id"])
    cycles = await schools.list_cycles(s, cycle.school_id)
    others = [c for c in cycles if c.id != cycle.id]
    chosen = request.query.get("with")
    if chosen:
        other = next((c for c in others if str(c.id) == chosen), None)
        if other is None:
            raise web.HTTPNotFound()
    else:
        other = previous_cycle(cycles, cycle)
    return cycle, others, other


async def compare_page(request: web.Request) -> web.Response:
    model = load_model()
    await release_figures(request)
    async with sessionmaker(request).begin() as s:
        cycle, others, other = await _pair(request, s)
        school = await schools.get_school(s, cycle.school_id)
        now = await build_report(s, cycle.id, model)
        before = await build_report(s, other.id, model) if other else None
    comparison = compare_reports(now, before) if before else None
    tx = texts_of(request)
    only_changed = request.query.get("changed") == "1"
    rows = []
    if comparison:
        rows = [
            r for r in comparison["indicators"] if r["shown"] and (r["changed"] or not only_changed)
        ]
    request[R_SCHOOL] = school.slug
    return render(
        request,
        "dashboard/compare.html",
        {
            "school": school,
            "cycle": cycle,
            "others": others,
            "other": other,
            "comparison": comparison,
            "rows": rows,
            "only_changed": only_changed,
            "labels": {r: tx.role_name(r) for r in (comparison or {}).get("roles", [])},
            "threshold": now["thresholds"]["anonymity"],
            "model_changed": bool(other and other.model_version != cycle.model_version),
        },
    )


async def compare_chart(request: web.Request) -> web.Response:
    from backend.reporting import charts  # matplotlib: loaded with the first chart drawn

    model = load_model()
    await release_figures(request)
    async with sessionmaker(request).begin() as s:
        cycle, _others, other = await _pair(request, s)
        if other is None:
            raise web.HTTPNotFound()
        now = await build_report(s, cycle.id, model)
        before = await build_report(s, other.id, model)
    tx = texts_of(request)
    return _svg(await _in_thread(charts.cycle_comparison_svg, now, before, tx=tx), tx.lang)


def routes() -> list[tuple[str, str, Any, str]]:
    c = "/dashboard/cycles/{cycle_id:\\d+}"
    return [
        ("GET", c + "/compare", compare_page, "dash:compare"),
        ("GET", c + "/compare.svg", compare_chart, "dash:compare_chart"),
    ]
