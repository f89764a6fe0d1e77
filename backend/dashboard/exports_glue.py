"""Charts (backend.reporting.charts) and exports (backend.reporting.exports) of a cycle's report, for its readers.

Both are pure functions of the report from `build_report`, so the anonymity gate has
already been applied; they run in a worker thread (matplotlib and fpdf are CPU-bound).
Charts, XLSX and PDF are in the reader's language (`texts_of`; an export URL's `?lang=xx`
may ask for another one); CSV and JSON are machine-readable and stay English.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from functools import partial
from typing import Any

from aiohttp import web

from backend.dashboard.web import (
    _,
    cycle_for,
    for_reader,
    hides_raw,
    release_figures,
    sessionmaker,
    texts_of,
)
from backend.i18n import N_, Texts, dashboard_languages, texts
from backend.reporting.charts import reading
from backend.reporting.extras import pdf_extras
from backend.reporting.report import biggest_gaps, build_report
from conversations.model import load_model
from storage import schools

EXPORTS: dict[str, tuple[str, str]] = {  # format -> (label, content type)
    "csv": (N_("CSV"), "text/csv; charset=utf-8"),
    "xlsx": (N_("Excel"), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "json": (N_("JSON"), "application/json"),
    "pdf": (N_("PDF report"), "application/pdf"),
}
TRANSLATED = {"xlsx", "pdf"}  # the exports in the reader's language (CSV and JSON: English)


def links(
    request: web.Request, cycle_id: int, report: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The overview's chart images and export downloads; with the report, each chart's
    alt text and its data as a table (the accessible alternative shown beside the image)."""
    router = request.app.router
    cid = str(cycle_id)
    tx = texts_of(request)
    charts = [
        {
            "url": str(router["dash:chart_profile"].url_for(cycle_id=cid)),
            "label": tx.gettext("Profiles: each group against the school's own rating"),
            "kind": "profile",
        },
        {
            "url": str(router["dash:chart_gaps"].url_for(cycle_id=cid)),
            "label": tx.gettext("Biggest gaps between the school's view and the groups'"),
            "kind": "gaps",
        },
    ] + [
        {
            "url": str(router["dash:chart_dimension"].url_for(cycle_id=cid, dim=d.id)),
            "label": tx.gettext(
                "Dimension %(dim)s: %(title)s — self vs groups by theme", dim=d.id, title=d.title
            ),
            "kind": "dimension",
            "dim": d.id,
        }
        for d in tx.model.dimensions
    ]
    if report is not None:
        for c in charts:
            c.update(_chart_text(report, c, tx))
    exports = [
        {
            "url": str(router["dash:export"].url_for(cycle_id=cid, fmt=fmt)),
            "label": tx.gettext(label),
        }
        for fmt, (label, _type) in EXPORTS.items()
    ]
    exports.append(
        {
            "url": str(router["dash:chart_heatmap"].url_for(cycle_id=cid)),
            "label": tx.gettext("Heatmap (SVG)"),
        }
    )
    return {"charts": charts, "exports": exports}


def _chart_text(report: dict[str, Any], chart: dict[str, Any], tx: Texts) -> dict[str, Any]:
    """alt (the chart function's own) and table {head, rows} of one overview chart."""
    if chart["kind"] == "gaps":
        gaps = biggest_gaps(report, 10) if report.get("indicators") else []
        head = [
            tx.gettext("Indicator"),
            *reading.gap_heads(tx),
            tx.gettext("Reading"),
        ]
        rows = [
            [
                g["id"],
                reading.role_label(g["role"], short=False, tx=tx),
                reading.self_text(g["self"], g.get("self_status"), tx),
                reading.fmt_fixed(g["mean"], 2, tx),
                tx.number(g["respondents"]),
                reading.fmt_signed(g["gap"], 2, tx),
                tx.label("flag", g["flag"]),
            ]
            for g in gaps
        ]
        return {"alt": reading.gaps_alt(report, tx=tx), "table": {"head": head, "rows": rows}}
    if chart["kind"] == "profile":
        prof = reading.profile_data(report, tx=tx)
        head = [tx.gettext("Criterion"), tx.gettext(reading.SELF_LABEL)]
        head += [name for _r, name, _c, _v in prof.groups]
        rows = [
            [
                f"{c} {prof.titles.get(c, '')}".strip(),
                reading.fmt_fixed(prof.self_values[i], 2, tx)
                if prof.self_values[i] is not None
                else "—",
                *[
                    reading.fmt_fixed(vals[i], 2, tx) if vals[i] is not None else "—"
                    for _r, _n, _c, vals in prof.groups
                ],
            ]
            for i, c in enumerate(prof.criteria)
        ]
        return {"alt": prof.alt, "table": {"head": head, "rows": rows}}
    data = reading.dimension_data(report, chart["dim"], tx=tx)
    head = [tx.gettext("Theme"), *[name for name, _colour, _values in data.series]]
    rows = [
        [
            f"{t} {data.titles.get(t, '')}".strip(),
            *[
                reading.fmt_fixed(vals[i], 2, tx) if vals[i] is not None else "—"
                for _name, _colour, vals in data.series
            ],
        ]
        for i, t in enumerate(data.themes)
    ]
    return {"alt": data.alt, "table": {"head": head, "rows": rows}}


async def _report(request: web.Request) -> tuple[Any, dict[str, Any], Any]:
    await release_figures(request)
    async with sessionmaker(request).begin() as s:
        cycle = await cycle_for(request, s, request.match_info["cycle_id"])
        report = await build_report(s, cycle.id, load_model())
        school = await schools.get_school(s, cycle.school_id)
    return cycle, for_reader(request, report, cycle.school_id), school


async def _in_thread(fn: Callable[..., bytes], *args: Any, **kw: Any) -> bytes:
    return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args, **kw))


def _svg(body: bytes, lang: str | None = None) -> web.Response:
    """An SVG chart (never cached: it is the reader's, in the reader's language)."""
    headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
    if lang:
        headers["Content-Language"] = lang
    return web.Response(body=body, content_type="image/svg+xml", headers=headers)


async def chart_heatmap(request: web.Request) -> web.Response:
    from backend.reporting import charts  # matplotlib: loaded with the first chart drawn

    tx = texts_of(request)
    _cycle, report, _school = await _report(request)
    return _svg(await _in_thread(charts.heatmap_svg, report, tx=tx), tx.lang)


async def chart_gaps(request: web.Request) -> web.Response:
    from backend.reporting import charts  # matplotlib: loaded with the first chart drawn

    tx = texts_of(request)
    _cycle, report, _school = await _report(request)
    return _svg(await _in_thread(charts.gaps_chart_svg, report, tx=tx), tx.lang)


async def chart_profile(request: web.Request) -> web.Response:
    from backend.reporting import charts  # matplotlib: loaded with the first chart drawn

    tx = texts_of(request)
    _cycle, report, _school = await _report(request)
    return _svg(await _in_thread(charts.profile_svg, report, tx=tx), tx.lang)


async def chart_dimension(request: web.Request) -> web.Response:
    from backend.reporting import charts  # matplotlib: loaded with the first chart drawn

    dim = request.match_info["dim"]
    if dim not in {d.id for d in load_model().dimensions}:
        raise web.HTTPNotFound()
    tx = texts_of(request)
    _cycle, report, _school = await _report(request)
    return _svg(await _in_thread(charts.dimension_chart_svg, report, dim, tx=tx), tx.lang)


async def chart_indicator(request: web.Request) -> web.Response:
    from backend.reporting import charts  # matplotlib: loaded with the first chart drawn

    key = request.match_info["key"]
    if key not in load_model().index():
        raise web.HTTPNotFound()
    tx = texts_of(request)
    _cycle, report, _school = await _report(request)
    return _svg(await _in_thread(charts.distribution_svg, report, key, tx=tx), tx.lang)


def export_texts(request: web.Request) -> Texts:
    """The reader's language, or the one an export URL asks for with `?lang=xx` (400 if
    the dashboard has no such language)."""
    lang = request.query.get("lang")
    if lang is None:
        return texts_of(request)
    if lang not in dashboard_languages():
        raise web.HTTPBadRequest(
            text=_(
                request,
                "Unknown language “%(lang)s”: choose one of %(languages)s.",
                lang=lang[:20],
                languages=", ".join(dashboard_languages()),
            )
        )
    return texts(lang)


def _filename(school: Any, cycle: Any, ext: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9-]+", "-", f"{school.slug}-{cycle.name}").strip("-")
    return f"{stem or 'report'}-report.{ext}"


async def export(request: web.Request) -> web.Response:
    from backend.reporting import exports  # fpdf, openpyxl, matplotlib: with the first export

    fmt = request.match_info["fmt"]
    if fmt not in EXPORTS:
        raise web.HTTPNotFound()
    tx = export_texts(request)
    cycle, report, school = await _report(request)
    with_comments = not hides_raw(request, cycle.school_id)  # a peer reads no respondent's words
    if fmt == "csv":
        body = await _in_thread(exports.report_csv, report)
    elif fmt == "xlsx":
        body = await _in_thread(exports.report_xlsx, report, tx=tx, comments=with_comments)
    elif fmt == "json":
        body = exports.report_json(report)
    else:
        async with sessionmaker(request).begin() as s:
            extras = await pdf_extras(s, cycle)
        body = await _in_thread(
            exports.report_pdf,
            report,
            **extras,
            tx=tx,
            comments=with_comments,
        )
    headers = {
        "Content-Type": EXPORTS[fmt][1],
        "Content-Disposition": f'attachment; filename="{_filename(school, cycle, fmt)}"',
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if fmt in TRANSLATED:
        headers["Content-Language"] = tx.lang
    return web.Response(body=body, headers=headers)


def routes() -> list[tuple[str, str, Any, str]]:
    c = "/dashboard/cycles/{cycle_id:\\d+}"
    return [
        ("GET", c + "/charts/heatmap.svg", chart_heatmap, "dash:chart_heatmap"),
        ("GET", c + "/charts/gaps.svg", chart_gaps, "dash:chart_gaps"),
        ("GET", c + "/charts/profile.svg", chart_profile, "dash:chart_profile"),
        ("GET", c + "/charts/dimension-{dim:\\d+}.svg", chart_dimension, "dash:chart_dimension"),
        ("GET", c + "/charts/indicator/{key}.svg", chart_indicator, "dash:chart_indicator"),
        ("GET", c + "/export.{fmt:[a-z]+}", export, "dash:export"),
    ]
