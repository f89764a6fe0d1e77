"""The report as a PDF (fpdf2) for the school board and a certification portfolio.

Title page, summary (responses per group, thresholds, the anonymity rule),
heatmaps and theme charts per dimension, the biggest gaps, a per-indicator
table (full statements, group heads that never break inside a word), what respondents
wrote, the evidence list, the change since the previous cycle and the action plan
when given.
Text is set in DejaVu Sans, shipped with matplotlib, which covers Latin,
Cyrillic and Armenian. Only the (already safe) report is read. Every text, number
and date is in the reader's language (`tx`); the charts too.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import matplotlib
from fpdf import FPDF
from fpdf.enums import Align, TableCellFillMode, XPos, YPos
from fpdf.fonts import FontFace

from backend.i18n import ENGLISH, Texts
from backend.reporting import charts
from backend.reporting.charts.reading import gap_heads
from backend.reporting.comments import comment_sections, withheld_note
from backend.reporting.report import biggest_gaps

FONT = "DejaVu"
_TTF = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
DPI = 170
HEAD_STYLE = FontFace(emphasis="BOLD", fill_color=(221, 227, 234))


class _Report(FPDF):
    def __init__(self, footer_text: str, tx: Texts = ENGLISH) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.footer_text = footer_text
        self.tx = tx
        self.add_font(FONT, "", os.path.join(_TTF, "DejaVuSans.ttf"))
        self.add_font(FONT, "B", os.path.join(_TTF, "DejaVuSans-Bold.ttf"))
        self.add_font(FONT, "I", os.path.join(_TTF, "DejaVuSans-Oblique.ttf"))
        self.set_auto_page_break(auto=True, margin=16)
        self.set_margins(15, 15, 15)
        self.set_font(FONT, size=10)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, size=8)
        self.set_text_color(110)
        page = self.tx.gettext("page %(page)s", page=self.tx.number(self.page_no()))
        self.cell(0, 6, f"{self.footer_text}   ·   {page}", align="C")
        self.set_text_color(0)

    # -- building blocks ------------------------------------------------------

    def heading(self, text: str, size: int = 16) -> None:
        self.set_font(FONT, "B", size)
        self.multi_cell(0, size * 0.5, text, align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(2)
        self.set_font(FONT, size=10)

    def para(self, text: str, size: float = 10, style: str = "") -> None:
        self.set_font(FONT, style, size)
        self.multi_cell(0, size * 0.5, text, align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1.5)
        self.set_font(FONT, size=10)

    def chart(self, result: charts.ChartResult, *, max_h: float | None = None) -> None:
        """Place a PNG chart at full width, scaled down to fit what is left of the page."""
        from PIL import Image  # Pillow (matplotlib's): only when a chart is placed

        with Image.open(io.BytesIO(result.data)) as img:
            w_px, h_px = img.size
        avail_w = self.epw
        room = self.h - self.b_margin - self.get_y()
        if max_h is None:
            max_h = self.h - self.t_margin - self.b_margin
        h_full = avail_w * h_px / w_px
        if h_full > room and room < min(max_h, h_full) * 0.6:
            self.add_page()
            room = self.h - self.b_margin - self.get_y()
        h = min(h_full, max_h, room)
        w = h * w_px / h_px
        self.image(io.BytesIO(result.data), x=self.l_margin + (avail_w - w) / 2, w=w, h=h)
        self.set_y(self.get_y() + 2)


def _fmt(x: Any, tx: Texts = ENGLISH) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return charts.fmt_value(x, 2, tx)
    if isinstance(x, int):
        return tx.number(x)
    return str(x)


def _date(x: Any, tx: Texts = ENGLISH) -> str:
    """A date as the reader writes it (ISO "2026-03-05" in English, as always)."""
    if isinstance(x, str) and x:
        try:
            x = datetime.fromisoformat(x.replace("Z", "+00:00"))
        except ValueError:
            return x[:10]
    if isinstance(x, datetime):
        x = x.date()
    if isinstance(x, date):
        return x.isoformat() if tx.lang == ENGLISH.lang else tx.date(x, "medium")
    return str(x)[:10] if x else ""


def _title_page(pdf: _Report, report: dict[str, Any]) -> None:
    tx = pdf.tx
    school = (report.get("school") or {}).get("name") or tx.gettext("School")
    cycle = report.get("cycle") or {}
    pdf.add_page()
    pdf.set_y(60)
    pdf.set_font(FONT, "B", 24)
    pdf.multi_cell(0, 12, school, align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(6)
    pdf.set_font(FONT, "", 16)
    pdf.multi_cell(
        0,
        8,
        tx.gettext("Career guidance: self-assessment and stakeholder views"),
        align=Align.C,
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.ln(14)
    pdf.set_font(FONT, "", 12)
    lines = [
        tx.gettext(
            "Cycle: %(name)s (%(status)s)",
            name=cycle.get("name") or "–",
            status=tx.label("cycle status", cycle.get("status")) or "–",
        ),
        tx.gettext("Date: %(date)s", date=_date(report.get("generated_at"), tx)),
        tx.gettext(
            "Model: ETF excellence model in career guidance for VET, version %(version)s",
            version=report.get("model_version") or "–",
        ),
    ]
    for line in lines:
        pdf.multi_cell(0, 7, line, align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _summary(pdf: _Report, report: dict[str, Any]) -> None:
    tx = pdf.tx
    k = (report.get("thresholds") or {}).get("anonymity", 5)
    t = (report.get("thresholds") or {}).get("free_text", 10)
    pdf.add_page()
    pdf.heading(tx.gettext("Summary"))
    inds = report.get("indicators", [])
    rated = sum(1 for i in inds if i.get("self") is not None)
    flags = [f for i in inds for f in i["flag"].values() if f]
    margin = charts.fmt_fixed(charts.FLAG_MARGIN, 2, tx)
    rated_text = tx.ngettext(
        "The school rated %(rated)s of the model's %(num)s indicator.",
        "The school rated %(rated)s of the model's %(num)s indicators.",
        len(inds),
        rated=tx.number(rated),
    )
    blind = tx.ngettext(
        "Across all groups there is %(num)s blind spot (the school rates itself at least"
        " %(margin)s points above a group)",
        "Across all groups there are %(num)s blind spots (the school rates itself at least"
        " %(margin)s points above a group)",
        flags.count("blind_spot"),
        margin=margin,
    )
    hidden = tx.ngettext(
        "%(num)s hidden strength (a group rates the school at least %(margin)s points above"
        " its own rating)",
        "%(num)s hidden strengths (a group rates the school at least %(margin)s points above"
        " its own rating)",
        flags.count("hidden_strength"),
        margin=margin,
    )
    # Translators: %(blind_spots)s and %(hidden_strengths)s are the two counted phrases above.
    flags_text = tx.gettext(
        "%(blind_spots)s and %(hidden_strengths)s.", blind_spots=blind, hidden_strengths=hidden
    )
    pdf.para(f"{rated_text} {flags_text}")
    pdf.para(
        tx.gettext(
            "Anonymity: a group's figures are shown only when at least %(k)s people answered"
            " (free-text comments: at least %(t)s); smaller groups show only how many answered.",
            k=tx.number(k),
            t=tx.number(t),
        ),
        style="I",
    )
    pdf.ln(2)
    pdf.heading(tx.gettext("Responses per group"), 12)
    rows = [[tx.gettext("Group"), tx.gettext("Started"), tx.gettext("Completed")]]
    for role, counts in (report.get("roles") or {}).items():
        rows.append(
            [
                charts.role_label(role, short=False, tx=tx),
                tx.number(counts.get("started", 0)),
                tx.number(counts.get("completed", 0)),
            ]
        )
    _table(pdf, rows, col_widths=(110, 30, 30), align_right_from=1)


PAD = 0.8  # a table cell's padding (mm), each side
WORD_CAP = 40.0  # mm: a longer word in a cell (a link) may break rather than widen its column


def _widest_word(pdf: _Report, text: str, size: float, style: str = "") -> float:
    """The width (mm) of the longest word of `text`: a column narrower than it would break
    that word (fpdf breaks at spaces first, inside a word only when one does not fit)."""
    pdf.set_font(FONT, style, size)
    return max((pdf.get_string_width(w) for w in text.split()), default=0.0)


def _fits(pdf: _Report, text: str, width: float, size: float, style: str = "") -> bool:
    return _widest_word(pdf, text, size, style) <= width - 2 * PAD - 0.4


def _fit_words(
    pdf: _Report, rows: Sequence[Sequence[str]], widths: Sequence[float], size: float
) -> list[float]:
    """Column widths in which no head breaks inside a word, nor a cell's word up to
    WORD_CAP mm long (a long link may still break): a column narrower than its longest word
    is widened, taking the width from columns with room to spare, and the table grows (up
    to the page's width) for the rest."""
    need = [2 * PAD + 0.6 + _widest_word(pdf, h, size, "B") for h in rows[0]]
    for row in rows[1:]:
        for c, value in enumerate(row):
            word = min(WORD_CAP, _widest_word(pdf, str(value), size))
            need[c] = max(need[c], 2 * PAD + 0.6 + word)
    out = [max(w, n) for w, n in zip(widths, need, strict=True)]
    short = sum(out) - sum(widths)
    if short <= 0:
        return list(widths)
    spare = [max(0.0, w - n) for w, n in zip(widths, need, strict=True)]
    take = min(short, sum(spare))
    if take:
        out = [o - take * sp / sum(spare) for o, sp in zip(out, spare, strict=True)]
    if sum(out) > pdf.epw:  # not even the page is wide enough: shrink all alike
        out = [o * (pdf.epw - 0.01) / sum(out) for o in out]  # (a hair under: rounding)
    return out


def _table(
    pdf: _Report,
    rows: Sequence[Sequence[str]],
    *,
    col_widths: Sequence[float],
    align_right_from: int = 99,
    size: float = 9,
    fills: Iterable[tuple[int, int, tuple[int, int, int]]] = (),
) -> None:
    """A table with a heading row repeated on every page, its heads never broken inside a word
    (`_fit_words`); `fills`: (row, col, rgb)."""
    fill_at = {(r, c): rgb for r, c, rgb in fills}
    if rows:
        col_widths = _fit_words(pdf, rows, col_widths, size)
    pdf.set_font(FONT, size=size)
    with pdf.table(
        col_widths=tuple(col_widths),
        width=sum(col_widths),
        headings_style=HEAD_STYLE,
        line_height=size * 0.55,
        text_align="LEFT",
        align="LEFT",
        cell_fill_mode=TableCellFillMode.NONE,
        padding=PAD,
    ) as table:
        for r, values in enumerate(rows):
            row = table.row()
            for c, value in enumerate(values):
                style = None
                if (r, c) in fill_at:
                    style = FontFace(fill_color=fill_at[(r, c)])
                align = "RIGHT" if c >= align_right_from and r else "LEFT"
                row.cell(value, style=style, align=align)
    pdf.ln(3)
    pdf.set_font(FONT, size=10)


def _charts(pdf: _Report, report: dict[str, Any]) -> None:
    tx = pdf.tx
    titles = charts.unit_titles(report, tx)
    for dim in charts.dimensions_of(report):
        pdf.add_page()
        name = titles.get(dim)
        pdf.heading(
            tx.gettext("Dimension %(dim)s: %(title)s", dim=dim, title=name)
            if name
            else tx.gettext("Dimension %(dim)s", dim=dim)
        )
        pdf.chart(charts.heatmap_chart(report, dimension_id=dim, fmt="png", dpi=DPI, tx=tx))
        pdf.add_page()
        pdf.chart(charts.dimension_chart(report, dim, fmt="png", dpi=DPI, tx=tx))


def _gaps(pdf: _Report, report: dict[str, Any]) -> None:
    tx = pdf.tx
    pdf.add_page()
    pdf.heading(tx.gettext("The biggest gaps"))
    pdf.chart(charts.gaps_chart(report, 10, fmt="png", dpi=DPI, tx=tx), max_h=200)
    gaps = biggest_gaps(report, 20)
    if not gaps:
        return
    rows = [
        [
            tx.gettext("Indicator"),
            *gap_heads(tx),
            tx.gettext("Flag"),
        ]
    ]
    fills = []
    for r, g in enumerate(gaps, 1):
        ci = g.get("gap_ci95")
        flag = [tx.label("flag", g["flag"])] if g["flag"] else []
        if g.get("gap_clear") is False:  # the interval includes 0
            flag.append(tx.gettext(charts.MAY_BE_NOISE))
        rows.append(
            [
                g["id"],
                charts.role_label(g["role"], tx=tx),
                charts.self_text(g["self"], g.get("self_status"), tx),
                _fmt(g["mean"], tx),
                tx.number(g["respondents"]),
                charts.fmt_signed(g["gap"], 2, tx)
                + ("\n" + "…".join(charts.fmt_signed(v, 1, tx) for v in ci) if ci else ""),
                ", ".join(flag),
            ]
        )
        if g["flag"] == "blind_spot":
            fills.append((r, 6, (244, 165, 130)))
        elif g["flag"] == "hidden_strength":
            fills.append((r, 6, (146, 197, 222)))
    _table(pdf, rows, col_widths=(22, 34, 14, 22, 24, 18, 30), align_right_from=2, fills=fills)
    if any(g.get("gap_ci95") for g in gaps):
        pdf.para(
            tx.gettext(
                "Under each gap, its interval (95%): a gap whose interval includes 0 may be noise."
            ),
            size=9,
        )


def _role_heads(
    pdf: _Report, roles: list[str], width: float, size: float
) -> tuple[list[str], list[tuple[str, str]]]:
    """The role columns' heads and a legend: the groups' short names where every word fits
    the column, else everybody's abbreviation, spelt out in the legend."""
    tx = pdf.tx
    names = [charts.role_label(r, tx=tx) for r in roles]
    if all(_fits(pdf, name, width, size, "B") for name in names):
        return names, []
    abbrs = [tx.label("group abbreviation", r) or r for r in roles]
    return abbrs, [(a, tx.role_name(r)) for a, r in zip(abbrs, roles, strict=True)]


def _indicator_table(pdf: _Report, report: dict[str, Any]) -> None:
    tx = pdf.tx
    roles = charts.answered_roles(report)
    k = (report.get("thresholds") or {}).get("anonymity", 5)
    size = 8
    pdf.add_page(orientation="L")
    pdf.heading(tx.gettext("Indicators: self-assessment and groups"))
    pdf.para(
        tx.gettext(
            "Each group cell: mean (number of people who answered). '<%(k)s' marks a group too"
            " small to show; '–' no answers. Flags: ▼ blind spot, ▲ hidden strength. Counts (#)"
            " are the school's own numbers, not on the 0–4 scale.",
            k=tx.number(k),
        ),
        size=9,
    )
    indicators = report.get("indicators", [])
    avail = pdf.epw
    fixed = [tx.gettext("ID"), tx.gettext("Indicator"), tx.gettext("Self")]
    first = (
        2 * PAD
        + 0.6
        + max(
            [_widest_word(pdf, fixed[0], size, "B")]
            + [_widest_word(pdf, i["id"], size) for i in indicators]
        )
    )
    self_w = max(13.0, 2 * PAD + 0.6 + _widest_word(pdf, fixed[2], size, "B"))
    text_min = 70.0
    each = min(26.0, (avail - first - self_w - text_min) / max(1, len(roles)))
    heads, legend = _role_heads(pdf, roles, each, size)
    if legend:
        pdf.para(
            tx.gettext("Groups: %(legend)s", legend="; ".join(f"{a} {n}" for a, n in legend)),
            size=9,
        )
    text_w = avail - first - self_w - each * len(roles)
    rows = [[*fixed, *heads]]
    fills = []
    for ind in indicators:
        self_text = _fmt(ind["self"], tx)
        if ind.get("kind") != "NUMBER" and ind.get("self_status") == "draft":
            self_text = charts.self_text(ind["self"], "draft", tx)
        if ind.get("kind") == "NUMBER" and ind["self"] is not None:
            self_text = f"#{self_text}"
        text = charts.indicator_text(report, ind["key"], tx) or ""
        row = [ind["id"], text, self_text]
        for c, r in enumerate(roles, 3):
            g = ind["roles"][r]
            if g["suppressed"]:
                row.append(f"<{tx.number(k)} ({tx.number(g.get('respondents') or g['n'])})")
                fills.append((len(rows), c, (217, 217, 217)))
            elif g["mean"] is None:
                row.append("–")
            else:
                mark = {"blind_spot": " ▼", "hidden_strength": " ▲"}.get(ind["flag"][r] or "", "")
                people = tx.number(g.get("respondents") or g["n"])
                row.append(f"{charts.fmt_fixed(g['mean'], 2, tx)} ({people}){mark}")
                if mark:
                    rgb = (244, 165, 130) if "▼" in mark else (146, 197, 222)
                    fills.append((len(rows), c, rgb))
        rows.append(row)
    _table(
        pdf,
        rows,
        col_widths=(first, text_w, self_w, *([each] * len(roles))),
        align_right_from=2,
        size=size,
        fills=fills,
    )


def _comments(pdf: _Report, report: dict[str, Any]) -> None:
    """What respondents wrote: the report's released texts by question and group (groups
    below the free-text threshold say only how many wrote)."""
    tx = pdf.tx
    t = (report.get("thresholds") or {}).get("free_text", 10)
    pdf.add_page(orientation="P")
    pdf.heading(tx.gettext("What respondents wrote"))
    sections = comment_sections(report, tx)
    if not sections:
        pdf.para(
            tx.gettext(
                "No free-text answer has been released yet. A group's texts are released once"
                " at least %(t)s of its respondents have written one.",
                t=tx.number(t),
            )
        )
        return
    pdf.para(
        tx.gettext(
            "The free-text answers of this cycle, by question and group, with the indicators"
            " each question gives evidence for. A group's texts appear once at least %(t)s of"
            " its people have written; they are listed in alphabetical order, so the order"
            " says nothing about who wrote when.",
            t=tx.number(t),
        ),
        size=9,
        style="I",
    )
    for q in sections:
        pdf.ln(2)
        pdf.heading(q.text, 12)
        if q.indicators:
            evidence = "; ".join(f"{i.id} {i.text}".strip() for i in q.indicators)
            label = tx.ngettext(
                "Evidence for the indicator", "Evidence for the indicators", len(q.indicators)
            )
            pdf.para(f"{label}: {evidence}", size=9)
        for g in q.groups:
            wrote = tx.ngettext("%(num)s person wrote", "%(num)s people wrote", g.answered)
            pdf.para(f"{tx.role_name(g.role)} — {wrote}", size=10, style="B")
            if g.texts is None:
                pdf.para(withheld_note(g.answered, t, tx), size=9, style="I")
                continue
            for text in g.texts:
                pdf.set_x(pdf.l_margin + 4)
                pdf.set_font(FONT, "", 9.5)
                pdf.multi_cell(pdf.epw - 4, 4.8, f"“{text}”", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(1.2)
            pdf.set_font(FONT, size=10)


def _listing(pdf: _Report, title: str, items: list[Any], empty: str) -> bool:
    """A portrait page headed `title`: True if there are `items` to list, else the `empty`
    note stands on it."""
    pdf.add_page(orientation="P")
    pdf.heading(title)
    if not items:
        pdf.para(empty)
    return bool(items)


def _evidence(pdf: _Report, report: dict[str, Any], evidence: list[dict[str, Any]]) -> None:
    tx = pdf.tx
    empty = tx.gettext("No evidence has been attached yet.")
    if not _listing(pdf, tx.gettext("Evidence portfolio"), evidence, empty):
        return
    by_key: dict[str, list[dict[str, Any]]] = {}
    for item in evidence:
        key = item.get("indicator_key") or item.get("key") or ""
        by_key.setdefault(key, []).append(item)
    order = [i["key"] for i in report.get("indicators", [])]
    keys = sorted(by_key, key=lambda k: order.index(k) if k in order else len(order))
    for key in keys:
        text = charts.indicator_text(report, key, tx)
        pdf.heading(f"{key}" + (f": {text}" if text else ""), 11)
        rows = [[tx.gettext("Title"), tx.gettext("Kind"), tx.gettext("Note"), tx.gettext("Date")]]
        for item in by_key[key]:
            title = item.get("title") or item.get("filename") or item.get("url") or "–"
            when = item.get("date") or item.get("created_at")
            rows.append(
                [
                    str(title),
                    tx.label("evidence", item.get("kind")),
                    str(item.get("note") or ""),
                    _date(when, tx),
                ]
            )
        _table(pdf, rows, col_widths=(60, 16, 82, 22))


def _comparison(pdf: _Report, report: dict[str, Any], previous: dict[str, Any]) -> None:
    tx = pdf.tx
    pdf.add_page(orientation="P")
    before = (previous.get("cycle") or {}).get("name") or tx.gettext("previous cycle")
    pdf.heading(tx.gettext("Change since %(before)s", before=before))
    chart = charts.cycle_comparison_chart(report, previous, fmt="png", dpi=DPI, tx=tx)
    pdf.chart(chart, max_h=175)
    dims, _moved = charts.comparison_rows(report, previous, tx=tx)
    if dims:
        head = [tx.gettext("Dimension"), tx.gettext("Rated by"), before, tx.gettext("now")]
        rows = [[*head, tx.gettext("Change")]]
        for label, series, b, n in dims:
            rows.append(
                [
                    label,
                    charts.series_name(series, tx),
                    charts.fmt_fixed(b, 2, tx),
                    charts.fmt_fixed(n, 2, tx),
                    charts.fmt_signed(n - b, 2, tx),
                ]
            )
        _table(pdf, rows, col_widths=(30, 50, 30, 30, 25), align_right_from=2)


def _actions(pdf: _Report, report: dict[str, Any], actions: list[dict[str, Any]]) -> None:
    tx = pdf.tx
    empty = tx.gettext("No action has been planned yet.")
    if not _listing(pdf, tx.gettext("Action plan"), actions, empty):
        return
    pdf.para(
        tx.gettext(
            "What the school will do next about its gaps, per indicator. Owners are members "
            "of staff or roles."
        ),
        size=9,
    )
    order = [i["key"] for i in report.get("indicators", [])]
    ids = {i["key"]: i["id"] for i in report.get("indicators", [])}

    def place(item: dict[str, Any]) -> tuple[int, str]:
        key = item.get("indicator_key") or item.get("key") or ""
        return (order.index(key) if key in order else len(order), _date(item.get("due_date")))

    rows = [
        [
            tx.gettext("Indicator"),
            tx.gettext("Action"),
            tx.gettext("Owner"),
            tx.gettext("Due"),
            tx.gettext("Status"),
        ]
    ]
    for item in sorted(actions, key=place):
        key = item.get("indicator_key") or item.get("key") or ""
        status = str(item.get("status") or "")
        rows.append(
            [
                ids.get(key, key),
                str(item.get("title") or ""),
                str(item.get("owner") or "–"),
                _date(item.get("due_date"), tx) or "–",
                tx.label("report action status", status),
            ]
        )
    _table(pdf, rows, col_widths=(20, 74, 38, 22, 26))


def report_pdf(
    report: dict[str, Any],
    *,
    evidence: list[dict[str, Any]] | None = None,
    previous: dict[str, Any] | None = None,
    actions: list[dict[str, Any]] | None = None,
    tx: Texts = ENGLISH,
    comments: bool = True,
) -> bytes:
    """The board / portfolio PDF. `evidence`: dicts with indicator_key (or key), title
    (or filename / url), kind, note, date (or created_at). `previous`: the report of
    the previous cycle, for the comparison section. `actions`: the action plan, dicts
    with indicator_key, title, owner, due_date and status (open|in_progress|done).
    `tx`: the reader's language (texts, numbers, dates, the charts and the model).
    `comments`: a section of what respondents wrote (not for a reader who may not read it)."""
    school = (report.get("school") or {}).get("name") or ""
    cycle = (report.get("cycle") or {}).get("name") or ""
    named = " · ".join(p for p in (school, cycle) if p)
    pdf = _Report(named or tx.gettext("Career guidance report"), tx)
    pdf.set_title(tx.gettext("Career guidance report %(name)s", name=f"{school} {cycle}").strip())
    pdf.set_lang(tx.lang)
    pdf.set_author(school or "guidance-survey")
    pdf.set_creator("guidance-survey")
    _title_page(pdf, report)
    _summary(pdf, report)
    if not charts.has_data(report):
        pdf.add_page()
        pdf.heading(tx.gettext(charts.NO_DATA))
        pdf.para(tx.gettext("No answers or self-assessment ratings in this report yet."))
    else:
        _charts(pdf, report)
        _gaps(pdf, report)
        _indicator_table(pdf, report)
    if comments:
        _comments(pdf, report)
    if evidence is not None:
        _evidence(pdf, report, evidence)
    if previous is not None:
        _comparison(pdf, report, previous)
    if actions is not None:
        _actions(pdf, report, actions)
    return bytes(pdf.output())
