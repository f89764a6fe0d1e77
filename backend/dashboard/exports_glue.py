"""Charts (backend.charts) and exports (backend.exports) of a cycle's report, for its readers.

Both are pure functions of the report from `build_report`, so the anonymity gate has
already been applied; they run in a worker thread (matplotlib and fpdf are CPU-bound).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from functools import partial
from typing import Any

from aiohttp import web

from backend.analytics.report import build_report
from backend.dashboard.queries import actions_for_export, list_actions
from backend.dashboard.web import cycle_for, for_reader, sessionmaker
from conversations.model import load_model
from storage import repo

EXPORTS: dict[str, tuple[str, str]] = {  # format -> (label, content type)
    "csv": ("CSV", "text/csv; charset=utf-8"),
    "xlsx": ("Excel", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "json": ("JSON", "application/json"),
    "pdf": ("PDF report", "application/pdf"),
}


def links(
    request: web.Request, cycle_id: int, report: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The overview's chart images and export downloads; with the report, each chart's
    alt text and its data as a table (the accessible alternative shown beside the image)."""
    router = request.app.router
    cid = str(cycle_id)
    charts = [
        {
            "url": str(router["dash:chart_gaps"].url_for(cycle_id=cid)),
            "label": "Biggest gaps between the school's view and the groups'",
            "kind": "gaps",
        }
    ] + [
        {
            "url": str(router["dash:chart_dimension"].url_for(cycle_id=cid, dim=d.id)),
            "label": f"Dimension {d.id}: {d.title} — self vs groups by theme",
            "kind": "dimension",
            "dim": d.id,
        }
        for d in load_model().dimensions
    ]
    if report is not None:
        for c in charts:
            c.update(_chart_text(report, c))
    exports = [
        {"url": str(router["dash:export"].url_for(cycle_id=cid, fmt=fmt)), "label": label}
        for fmt, (label, _) in EXPORTS.items()
    ]
    exports.append(
        {"url": str(router["dash:chart_heatmap"].url_for(cycle_id=cid)), "label": "Heatmap (SVG)"}
    )
    return {"charts": charts, "exports": exports}


def _chart_text(report: dict[str, Any], chart: dict[str, Any]) -> dict[str, Any]:
    """alt (the chart function's own) and table {head, rows} of one overview chart."""
    from backend import charts
    from backend.analytics.report import biggest_gaps

    if chart["kind"] == "gaps":
        gaps = biggest_gaps(report, 10) if report.get("indicators") else []
        head = ["Indicator", "Group", "Self", "Group mean", "n", "Gap", "Reading"]
        rows = [
            [
                g["id"],
                charts.role_label(g["role"], short=False),
                charts.fmt_value(g["self"]),
                f"{g['mean']:.2f}",
                str(g["n"]),
                f"{g['gap']:+.2f}",
                g["flag"].replace("_", " ") if g["flag"] else "",
            ]
            for g in gaps
        ]
        return {"alt": charts.gaps_alt(report), "table": {"head": head, "rows": rows}}
    data = charts.dimension_data(report, chart["dim"])
    head = ["Theme", *[name for name, _, _ in data.series]]
    rows = [
        [
            f"{t} {data.titles.get(t, '')}".strip(),
            *[f"{vals[i]:.2f}" if vals[i] is not None else "—" for _, _, vals in data.series],
        ]
        for i, t in enumerate(data.themes)
    ]
    return {"alt": data.alt, "table": {"head": head, "rows": rows}}


async def _report(request: web.Request) -> tuple[Any, dict[str, Any], Any]:
    async with sessionmaker(request).begin() as s:
        cycle = await cycle_for(request, s, request.match_info["cycle_id"])
        report = await build_report(s, cycle.id, load_model())
        school = await repo.get_school(s, cycle.school_id)
    return cycle, for_reader(request, report, cycle.school_id), school


async def _in_thread(fn: Callable[..., bytes], *args: Any, **kw: Any) -> bytes:
    return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args, **kw))


def _svg(body: bytes) -> web.Response:
    return web.Response(
        body=body,
        content_type="image/svg+xml",
        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
    )


async def chart_heatmap(request: web.Request) -> web.Response:
    from backend import charts

    _, report, _ = await _report(request)
    return _svg(await _in_thread(charts.heatmap_svg, report))


async def chart_gaps(request: web.Request) -> web.Response:
    from backend import charts

    _, report, _ = await _report(request)
    return _svg(await _in_thread(charts.gaps_chart_svg, report))


async def chart_dimension(request: web.Request) -> web.Response:
    from backend import charts

    dim = request.match_info["dim"]
    if dim not in {d.id for d in load_model().dimensions}:
        raise web.HTTPNotFound()
    _, report, _ = await _report(request)
    return _svg(await _in_thread(charts.dimension_chart_svg, report, dim))


async def chart_indicator(request: web.Request) -> web.Response:
    from backend import charts

    key = request.match_info["key"]
    if key not in load_model().index():
        raise web.HTTPNotFound()
    _, report, _ = await _report(request)
    return _svg(await _in_thread(charts.distribution_svg, report, key))


def _filename(school: Any, cycle: Any, ext: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9-]+", "-", f"{school.slug}-{cycle.name}").strip("-")
    return f"{stem or 'report'}-report.{ext}"


async def export(request: web.Request) -> web.Response:
    from backend import exports

    fmt = request.match_info["fmt"]
    if fmt not in EXPORTS:
        raise web.HTTPNotFound()
    cycle, report, school = await _report(request)
    if fmt == "csv":
        body = await _in_thread(exports.report_csv, report)
    elif fmt == "xlsx":
        body = await _in_thread(exports.report_xlsx, report)
    elif fmt == "json":
        body = exports.report_json(report)
    else:
        async with sessionmaker(request).begin() as s:
            items = await repo.list_evidence(s, cycle.id)
            earlier = [c for c in await repo.list_cycles(s, cycle.school_id) if c.id < cycle.id]
            previous = await build_report(s, earlier[0].id, load_model()) if earlier else None
            actions = actions_for_export(await list_actions(s, cycle.id))
        evidence = [
            {
                "indicator_key": e.indicator_key,
                "title": e.filename or e.url,
                "kind": e.kind,
                "note": e.note,
                "created_at": e.created_at,
            }
            for e in items
        ]
        body = await _in_thread(
            exports.report_pdf, report, evidence=evidence, previous=previous, actions=actions
        )
    return web.Response(
        body=body,
        headers={
            "Content-Type": EXPORTS[fmt][1],
            "Content-Disposition": f'attachment; filename="{_filename(school, cycle, fmt)}"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def routes() -> list[tuple[str, str, Any, str]]:
    c = "/dashboard/cycles/{cycle_id:\\d+}"
    return [
        ("GET", c + "/charts/heatmap.svg", chart_heatmap, "dash:chart_heatmap"),
        ("GET", c + "/charts/gaps.svg", chart_gaps, "dash:chart_gaps"),
        ("GET", c + "/charts/dimension-{dim:\\d+}.svg", chart_dimension, "dash:chart_dimension"),
        ("GET", c + "/charts/indicator/{key}.svg", chart_indicator, "dash:chart_indicator"),
        ("GET", c + "/export.{fmt:[a-z]+}", export, "dash:export"),
    ]
