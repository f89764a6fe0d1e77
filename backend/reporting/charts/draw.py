"""Drawing the charts of the triangulation report: pure functions of the (already safe)
report dict, read through `reading`.

Nothing here reads the database or raw answers: every figure comes from the
report that `backend.reporting.build_report` made through the anonymity gate.
A suppressed group has no mean in the report, so no chart can draw one.

Each chart has a `*_chart(...) -> ChartResult` form (SVG or PNG bytes, alt text,
title) and an `*_svg(...) -> bytes` shortcut. Every text they draw or return is in the
reader's language: they take `tx` (a `backend.i18n.Texts`, English by default). Figures are built with
`matplotlib.figure.Figure` on the Agg canvas (never pyplot), under one lock and
an `rc_context`, so no global state leaks between calls or threads.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")  # no display, ever; we only draw on FigureCanvasAgg below

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LinearSegmentedColormap, Normalize, to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter

from backend.i18n import ENGLISH, Texts
from backend.reporting.charts.reading import (
    BLIND_COLOUR,
    CI_COLOUR,
    FLAG_MARGIN,
    HIDDEN_COLOUR,
    MAY_BE_NOISE,
    NEUTRAL_COLOUR,
    NO_DATA,
    SCALE_MAX,
    SCALE_STOPS,
    SELF_COLOUR,
    SELF_LABEL,
    SUPPRESSED_COLOUR,
    DimensionData,
    ci_text,
    comparison_rows,
    dimension_data,
    dimensions_of,
    distribution_alt,
    drafts_in,
    fmt_fixed,
    fmt_signed,
    fmt_value,
    gaps_alt,
    gaps_title,
    group_counts,
    has_data,
    hidden_roles,
    indicator_label,
    indicator_text,
    is_scale,
    model_for,
    profile_data,
    role_label,
    self_score,
    self_text,
    series_name,
    shorten,
    shown_roles,
    subtitle,
    unit_titles,
)
from backend.reporting.report import biggest_gaps

Format = Literal["svg", "png"]


# The one 0..4 scale of the pages and every chart (reading.SCALE_STOPS), as a colour map.
HEAT_CMAP = LinearSegmentedColormap.from_list("guidance-0-4", SCALE_STOPS)


NOISE_ALPHA = 0.35  # a gap whose 95% interval includes 0: lighter ...
NOISE_HATCH = "///"  # ... and hatched, so it does not read as firm as the others


_RC = {
    "svg.fonttype": "none",  # text stays text in the SVG: searchable, accessible, small
    "svg.hashsalt": "guidance-survey",  # stable ids: same report, same bytes
    "font.family": "DejaVu Sans",  # ships with matplotlib; covers Cyrillic and Armenian
    "font.size": 12,
    "axes.titlesize": 15,
    "axes.labelsize": 13,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "legend.fontsize": 11,
    "figure.titlesize": 17,
    "axes.spines.top": False,
    "axes.spines.right": False,
    # Every text is plain text: school, cycle and other names are the users' words, and
    # "$...$" in them must not be read as mathtext (invalid math, e.g. "$\frac$", raised
    # and broke every chart and the PDF). No LaTeX either. `_plain` makes sure of both.
    "text.parse_math": False,
    "text.usetex": False,
}


_LOCK = threading.Lock()  # matplotlib is not thread-safe; rc_context is process-wide


@dataclass(frozen=True, slots=True)
class ChartResult:
    """A rendered chart: the image bytes, its MIME type, its title and alt text."""

    data: bytes
    mime: str
    title: str
    alt: str


@contextmanager
def _figure(width: float, height: float) -> Iterator[Figure]:
    with _LOCK, matplotlib.rc_context(_RC), warnings.catch_warnings():
        # When labels are too long for the figure, constrained layout gives up on a pass
        # and warns; the figure is still drawn (as laid out by the previous pass).
        warnings.filterwarnings("ignore", "constrained_layout not applied", UserWarning)
        fig = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(fig)
        yield fig


# Characters XML 1.0 cannot hold: one in a name made the whole SVG malformed.
_NOT_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _plain(fig: Figure) -> None:
    """Every Text of the figure (titles, labels, tick labels, legends, annotations) as
    plain text, also one made with `parse_math=True` or before the rc settings applied,
    and without characters an SVG cannot hold."""
    for artist in fig.findobj(Text):
        artist.set_parse_math(False)
        artist.set_usetex(False)
        text = artist.get_text()
        if _NOT_IN_XML.search(text):
            artist.set_text(_NOT_IN_XML.sub("", text))


def _render(fig: Figure, fmt_: Format, dpi: int) -> bytes:
    _plain(fig)
    buf = io.BytesIO()
    if fmt_ == "svg":
        fig.savefig(buf, format="svg", metadata={"Date": None})
    else:
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def _result(
    draw: Callable[[Figure], None], size: tuple[float, float], title: str, alt: str, f: Format, dpi
) -> ChartResult:
    with _figure(*size) as fig:
        draw(fig)
        data = _render(fig, f, dpi)
    mime = "image/svg+xml" if f == "svg" else "image/png"
    return ChartResult(data=data, mime=mime, title=title, alt=alt)


CHART_WIDTH = 10.0  # inches: 960 px at 1:1 on a page; the pages never show one narrower
# than 720 px (a phone scrolls it sideways in its box), so an 11 pt text is 11 px or more.


def _legend_below(fig: Figure, handles_labels: tuple[list[Any], list[str]], title: str | None):
    """The legend under the plot, inside the figure (constrained layout makes room for it):
    never cut, however long the words of the reader's language are."""
    handles, labels = handles_labels
    longest = max((min(40, len(lbl)) for lbl in labels), default=1)
    ncol = max(1, min(len(labels), int(CHART_WIDTH * 9 / max(8, longest + 4))))
    leg = fig.legend(
        handles,
        [textwrap.fill(lbl, 40) for lbl in labels],
        loc="outside lower center",
        ncol=ncol,
        frameon=False,
        title=title,
        fontsize=11.5,
        title_fontsize=11.5,
    )
    leg.set_in_layout(True)
    return leg


def _titles(fig: Figure, title: str, report: dict[str, Any]) -> None:
    sub = subtitle(report)
    width = fig.get_figwidth()
    lines = textwrap.wrap(title, int(width * 6.2)) + textwrap.wrap(sub, int(width * 6.2))
    fig.suptitle("\n".join(lines), fontsize=16, fontweight="bold")


def _interval(
    ax: Any, x: float, y: float, ci: list[float], *, zorder: int, gid: str
) -> tuple[float, float]:
    """A 95% interval around `x` on row `y`: a black bar with caps, widened to reach `x`
    where it stops short of it; its `gid` names it in the SVG. Returns its ends."""
    low, high = min(ci[0], x), max(ci[1], x)
    bars = ax.errorbar(
        [x],
        [y],
        xerr=[[x - low], [high - x]],
        fmt="none",
        ecolor=CI_COLOUR,
        elinewidth=1.6,
        capsize=5,
        capthick=1.6,
        zorder=zorder,
    )
    bars.lines[2][0].set_gid(gid)
    return low, high


def _no_data(
    title: str,
    report: dict[str, Any],
    f: Format,
    dpi: int,
    why: str = "",
    tx: Texts = ENGLISH,
) -> ChartResult:
    """A chart that says there is nothing to draw yet; `why` is already translated."""
    message = why or tx.gettext("No answers or self-assessment ratings in this report yet.")
    no_data = tx.gettext(NO_DATA)

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.text(0.5, 0.6, no_data, ha="center", va="center", fontsize=28, color="#444444")
        ax.text(0.5, 0.38, message, ha="center", va="center", fontsize=13, color="#666666")
        _titles(fig, title, report)

    return _result(draw, (9, 4.5), title, f"{title}: {no_data}. {message}", f, dpi)


def heatmap_chart(
    report: dict[str, Any],
    *,
    dimension_id: str | None = None,
    fmt: Format = "svg",
    dpi: int = 150,
    tx: Texts = ENGLISH,
) -> ChartResult:
    """Indicators (rows, grouped by dimension) x Self and the shown groups, coloured by mean.

    Suppressed cells are grey, hatched and marked "<k". The Self column holds 0..4 ratings
    only: a count indicator's number is not on the scale (it is on the indicator's page).
    """
    titles = unit_titles(report, tx)
    title = tx.gettext("Ratings by indicator and group (0–4)")
    if dimension_id is not None:
        title = tx.gettext(
            "Dimension %(dim)s: ratings by indicator and group (0–4)", dim=dimension_id
        )
    inds = [
        i
        for i in report.get("indicators", [])
        if dimension_id is None or i["dimension"] == dimension_id
    ]
    roles = shown_roles(report)
    if not inds or not has_data({**report, "indicators": inds}):
        return _no_data(title, report, fmt, dpi, tx=tx)
    k = report.get("thresholds", {}).get("anonymity", 5)
    model = model_for(report, tx)
    texts = {p.indicator.key: p.indicator.text for p in model.placed()} if model else {}
    cols = [tx.gettext(SELF_LABEL)] + [role_label(r, tx=tx) for r in roles]
    ncols = len(cols)
    # Rows: a header band per dimension (whole report only), then its indicators.
    rows: list[tuple[str, Any]] = []
    for ind in inds:
        if dimension_id is None and (not rows or rows[-1][1]["dimension"] != ind["dimension"]):
            rows.append(("dim", ind))
        rows.append(("ind", ind))
    nrows = len(rows)
    cmap = HEAT_CMAP
    norm = Normalize(0, SCALE_MAX)

    def cell_text(ax, col: int, row: int, text: str, colour: str, size: float = 11) -> None:
        ax.text(col + 0.5, row + 0.5, text, ha="center", va="center", fontsize=size, color=colour)

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        ylabels = []
        for row, (what, ind) in enumerate(rows):
            if what == "dim":
                ylabels.append("")
                name = titles.get(ind["dimension"])
                label = (
                    tx.gettext(
                        "Dimension %(dim)s: %(title)s",
                        dim=ind["dimension"],
                        title=shorten(name, 70),
                    )
                    if name
                    else tx.gettext("Dimension %(dim)s", dim=ind["dimension"])
                )
                ax.add_patch(
                    Rectangle((0, row), ncols, 1, facecolor="#F0F0F0", edgecolor="none", zorder=3)
                )
                ax.text(
                    0.08, row + 0.55, label, va="center", fontsize=12, fontweight="bold", zorder=4
                )
                continue
            text = texts.get(ind["key"])
            label = indicator_label(report, ind)
            ylabels.append(f"{label}  {shorten(text, 46)}" if text else label)
            cells: list[tuple[float | None, str | None, bool]] = []
            cells.append((self_score(ind), None, False))  # counts are not on the 0..4 scale
            for r in roles:
                g = ind["roles"][r]
                cells.append((g["mean"], None, bool(g["suppressed"])))
            for col, (value, label, suppressed) in enumerate(cells):
                if value is not None:
                    face = cmap(norm(value))  # black text reads on every colour of the scale
                    ax.add_patch(Rectangle((col, row), 1, 1, facecolor=face, edgecolor="white"))
                    shown = fmt_value(value, 0, tx) if col == 0 else fmt_fixed(value, 1, tx)
                    if col == 0 and ind.get("self_status") == "draft":  # hatched, starred
                        ax.add_patch(
                            Rectangle(
                                (col, row),
                                1,
                                1,
                                facecolor="none",
                                edgecolor="#555555",
                                hatch="///",
                                linewidth=0,
                            )
                        )
                        shown += "*"
                    cell_text(ax, col, row, shown, "black")
                elif suppressed:
                    ax.add_patch(
                        Rectangle(
                            (col, row),
                            1,
                            1,
                            facecolor=SUPPRESSED_COLOUR,
                            edgecolor="white",
                            hatch="//",
                        )
                    )
                    cell_text(ax, col, row, f"<{tx.number(k)}", "#333333", 11)
                else:
                    ax.add_patch(
                        Rectangle((col, row), 1, 1, facecolor="white", edgecolor="#EEEEEE")
                    )
                    if label:
                        cell_text(ax, col, row, label, "#333333", 11)
        ax.set_xlim(0, ncols)
        ax.set_ylim(nrows, 0)
        heads = ["\n".join(textwrap.wrap(c, 10, break_long_words=True)[:3]) or c for c in cols]
        ax.set_xticks([c + 0.5 for c in range(ncols)], heads, fontsize=11, ha="center")
        ax.xaxis.tick_top()
        ax.xaxis.set_label_position("top")
        ax.set_yticks([r + 0.5 for r in range(nrows)], ylabels, fontsize=11.5)
        ax.tick_params(length=0)
        for side in ("top", "right", "bottom", "left"):
            ax.spines[side].set_visible(False)
        ax.axvline(1, color="black", linewidth=2, zorder=2)  # Self apart from the groups
        ax.set_ylabel(tx.gettext("Indicator"))
        ax.set_xlabel(
            textwrap.fill(tx.gettext("Self-assessment and stakeholder groups (mean, 0–4)"), 45)
        )
        cbar = fig.colorbar(
            ScalarMappable(norm=norm, cmap=cmap),
            ax=ax,
            location="bottom",
            shrink=0.7,
            aspect=40,
            pad=0.01,
        )
        cbar.set_label(
            textwrap.fill(
                tx.gettext("Mean: 0 = not at all / strongly disagree … 4 = fully / strongly agree"),
                int(width * 7),
            ),
            fontsize=11.5,
        )
        if tx.lang != ENGLISH.lang:  # the reader's decimal separator ("2,5")
            cbar.ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: tx.number(v, 1)))
        handles = [
            Patch(
                facecolor=SUPPRESSED_COLOUR,
                hatch="//",
                label=tx.gettext("hidden: fewer than %(k)s answered", k=tx.number(k)),
            ),
            Patch(
                facecolor="white",
                edgecolor="#BBBBBB",
                label=tx.gettext("no answers / not rated"),
            ),
        ]
        if any(i.get("self_status") == "draft" and self_score(i) is not None for i in inds):
            handles.append(
                Patch(
                    facecolor="white",
                    edgecolor="#555555",
                    hatch="///",
                    label=tx.gettext("2* hatched: the school's draft rating, not submitted"),
                )
            )
        hidden = hidden_roles(report)
        notes = None
        if hidden:
            groups = ", ".join(
                tx.gettext("%(group)s (at most %(n)s)", group=role_label(r, tx=tx), n=tx.number(n))
                for r, n in hidden.items()
            )
            notes = textwrap.fill(
                tx.gettext(
                    "Not shown (fewer than %(k)s on every indicator): %(groups)s",
                    k=tx.number(k),
                    groups=groups,
                ),
                int(width * 8),
            )
        leg = fig.legend(
            handles=handles,
            loc="outside lower center",
            ncol=2,
            frameon=False,
            title=notes,
            title_fontsize=11,
            fontsize=11,
        )
        leg.set_in_layout(True)
        _titles(fig, title, report)

    width = max(CHART_WIDTH, 5.6 + 0.95 * ncols)
    height = 4.6 + 0.34 * nrows
    n_shown = sum(1 for i in inds for r in roles if i["roles"][r]["mean"] is not None)
    suppressed_total = sum(1 for i in inds for r in roles if i["roles"][r]["suppressed"])
    indicators = tx.ngettext("%(num)s indicator", "%(num)s indicators", len(inds))
    groups = tx.ngettext("%(num)s stakeholder group", "%(num)s stakeholder groups", len(roles))
    names = ", ".join(role_label(r, tx=tx) for r in roles) or tx.gettext("none shown yet")
    if dimension_id:
        # Translators: %(indicators)s is "71 indicators", %(groups)s "4 stakeholder groups".
        what = tx.gettext(
            "Heatmap of %(indicators)s against the school's self-assessment and"
            " %(groups)s (%(names)s).",
            indicators=indicators,
            groups=groups,
            names=names,
        )
    else:
        # Translators: %(indicators)s is "71 indicators", %(dimensions)s "3 dimensions",
        # %(groups)s "4 stakeholder groups".
        what = tx.gettext(
            "Heatmap of %(indicators)s in %(dimensions)s against the school's"
            " self-assessment and %(groups)s (%(names)s).",
            indicators=indicators,
            dimensions=tx.ngettext(
                "%(num)s dimension", "%(num)s dimensions", len(dimensions_of(report))
            ),
            groups=groups,
            names=names,
        )
    shown = tx.ngettext(
        "%(num)s group mean shown, %(hidden)s hidden because fewer than %(k)s people answered.",
        "%(num)s group means shown, %(hidden)s hidden because fewer than %(k)s people answered.",
        n_shown,
        hidden=tx.number(suppressed_total),
        k=tx.number(k),
    )
    colours = tx.gettext("Colour runs from dark blue (0) to yellow (4).")
    alt = f"{title}. {what} {shown} {colours}"
    return _result(draw, (width, height), title, alt, fmt, dpi)


def heatmap_svg(
    report: dict[str, Any], dimension_id: str | None = None, *, tx: Texts = ENGLISH
) -> bytes:
    return heatmap_chart(report, dimension_id=dimension_id, tx=tx).data


def dimension_chart(
    report: dict[str, Any],
    dimension_id: str,
    *,
    fmt: Format = "svg",
    dpi: int = 150,
    tx: Texts = ENGLISH,
) -> ChartResult:
    """Self vs each shown group per theme of one dimension (grouped horizontal bars)."""
    data = dimension_data(report, dimension_id, tx=tx)
    title, dim_title, titles = data.title, data.dim_title, data.titles
    themes, series = data.themes, data.series
    if not themes or all(v is None for _, _, vals in series for v in vals):
        return _no_data(title, report, fmt, dpi, tx=tx)

    nser = len(series)
    # Each theme shows the series that have a figure on it, packed (no empty slots): a bar
    # is 1 unit high, a theme's band is its bars plus a gap; a theme without figures says so.
    bands: list[tuple[float, float, list[tuple[int, float]]]] = []  # (top, centre, bars)
    y = 0.0
    for t in range(len(themes)):
        present = [(i, vals[t]) for i, (_n, _c, vals) in enumerate(series) if vals[t] is not None]
        size = max(1.4, float(len(present)))
        bands.append((y, y + size / 2, present))
        y += size + 0.9
    total = y - 0.9

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        for top, centre, present in bands:
            if not present:
                ax.text(
                    0.05,
                    centre,
                    tx.gettext("no figures yet"),
                    va="center",
                    fontsize=11,
                    color="#666666",
                )
            for j, (i, v) in enumerate(present):
                ax.barh(
                    top + j + 0.5,
                    v,
                    height=0.86,
                    color=series[i][1],
                    edgecolor="black" if i == 0 else "white",
                    linewidth=0.6,
                )
                # The value and whose it is: readable without matching colours.
                label = f"{fmt_fixed(v, 1, tx)}  {shorten(series[i][0], 22)}"
                ax.text(v + 0.04, top + j + 0.5, label, va="center", fontsize=11)
        ylabels = []
        for t in themes:
            name = titles.get(t)
            ylabels.append(
                f"{t}\n" + "\n".join(textwrap.wrap(shorten(name, 90), 30)) if name else t
            )
        ax.set_yticks([centre for _top, centre, _bars in bands], ylabels, fontsize=11.5)
        ax.set_ylim(total + 0.2, -0.2)
        ax.set_xlim(0, SCALE_MAX + 1.7)  # room for the labels right of a full bar
        ax.set_xticks(range(SCALE_MAX + 1))
        ax.grid(axis="x", color="#DDDDDD", linewidth=0.8)
        ax.set_axisbelow(True)
        ax.set_xlabel(textwrap.fill(tx.gettext("Mean rating of the theme's indicators (0–4)"), 45))
        ax.set_ylabel(tx.gettext("Theme"))
        handles = [
            Patch(facecolor=c, edgecolor="black" if i == 0 else c)
            for i, (_n, c, _v) in enumerate(series)
        ]
        _legend_below(fig, (handles, [n for n, _c, _v in series]), tx.gettext("Rated by"))
        if dim_title:
            ax.set_title(
                textwrap.fill(shorten(dim_title, 160), 80), fontsize=12, loc="left", color="#444444"
            )
        _titles(fig, title, report)

    rows_of_legend = -(-nser // 4)
    height = 2.8 + 0.3 * rows_of_legend + 0.26 * total
    return _result(draw, (CHART_WIDTH, height), title, data.alt, fmt, dpi)


def dimension_chart_svg(report: dict[str, Any], dimension_id: str, *, tx: Texts = ENGLISH) -> bytes:
    return dimension_chart(report, dimension_id, tx=tx).data


def gaps_chart(
    report: dict[str, Any],
    limit: int = 10,
    *,
    fmt: Format = "svg",
    dpi: int = 150,
    tx: Texts = ENGLISH,
) -> ChartResult:
    """The biggest gaps (group mean minus self) as a diverging bar chart, flags labelled."""

    title = gaps_title(limit, tx)
    gaps = biggest_gaps(report, limit) if report.get("indicators") else []
    if not gaps:
        why = tx.gettext(
            "No gaps yet: a gap needs a self rating and a shown group mean on one indicator."
        )
        return _no_data(title, report, fmt, dpi, why if has_data(report) else "", tx)
    title = gaps_title(len(gaps), tx)

    margin = fmt_fixed(FLAG_MARGIN, 2, tx)  # 1.33
    noisy = [g.get("gap_clear") is False for g in gaps]  # the interval includes 0

    def gap_note(g: dict[str, Any], noise: bool) -> tuple[str, bool]:
        """The words beside a bar: the flag (and "may be noise"), the gap and its figures,
        the 95% interval. Bold when flagged."""
        note = tx.gettext(
            "%(gap)s  (self %(self)s, group %(mean)s, %(people)s)",
            gap=fmt_signed(g["gap"], 2, tx),
            self=self_text(g["self"], g.get("self_status"), tx),
            mean=fmt_fixed(g["mean"], 2, tx),
            people=tx.ngettext("%(num)s respondent", "%(num)s respondents", g["respondents"]),
        )
        note = textwrap.fill(note, 30)
        if g.get("gap_ci95"):
            note += "\n" + ci_text(g["gap_ci95"], tx)
        head = [tx.label("flag", g["flag"]).upper()] if g["flag"] else []
        if noise:
            head.append(tx.gettext(MAY_BE_NOISE).upper())
        return "\n".join([*(textwrap.fill(h, 30) for h in head), note]), bool(g["flag"])

    notes = [gap_note(g, noise) for g, noise in zip(gaps, noisy, strict=True)]
    row = max(0.74, 0.2 + 0.185 * max(n.count("\n") + 1 for n, _ in notes))

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        ys = range(len(gaps))
        colours = [
            BLIND_COLOUR
            if g["flag"] == "blind_spot"
            else HIDDEN_COLOUR
            if g["flag"] == "hidden_strength"
            else NEUTRAL_COLOUR
            for g in gaps
        ]
        for y, g, colour, noise in zip(ys, gaps, colours, noisy, strict=True):
            # A gap whose interval includes 0 may be noise: lighter and hatched.
            (bar,) = ax.barh(
                y,
                g["gap"],
                color=to_rgba(colour, NOISE_ALPHA) if noise else colour,
                edgecolor=colour,
                hatch=NOISE_HATCH if noise else None,
                linewidth=1.0 if noise else 0,
                height=0.7,
            )
            state = "noise" if noise else "clear" if g.get("gap_clear") else "unknown"
            bar.set_gid(f"gap-{y}-{state}")
            ci = g.get("gap_ci95")
            if ci:  # the gap's 95% interval: a black bar with caps
                _interval(ax, g["gap"], y, ci, zorder=4, gid=f"gap-ci-{y}")
        for y, g, (note, bold) in zip(ys, gaps, notes, strict=True):
            ci = g.get("gap_ci95")
            # The note goes on the empty side of the zero line, clear of the interval's end.
            right = g["gap"] < 0
            if right:
                x = max(0.0, ci[1] if ci else 0.0) + 0.15
            else:
                x = min(0.0, ci[0] if ci else 0.0) - 0.15
            ax.text(
                x,
                y,
                note,
                ha="left" if right else "right",
                va="center",
                fontsize=11,
                fontweight="bold" if bold else "normal",
                linespacing=1.15,
            )
        ylabels = []
        for g in gaps:
            ind = next(i for i in report["indicators"] if i["key"] == g["key"])
            head = f"{indicator_label(report, ind)} · {role_label(g['role'], tx=tx)}"
            text = indicator_text(report, g["key"], tx)
            ylabels.append(
                head + ("\n" + "\n".join(textwrap.wrap(shorten(text, 66), 34)) if text else "")
            )
        ax.set_yticks(list(ys), ylabels, fontsize=11.5)
        ax.set_ylim(len(gaps) - 0.5, -0.5)
        ax.set_xlim(-4.6, 4.6)
        ax.axvline(0, color="black", linewidth=1.2)
        for x in (-FLAG_MARGIN, FLAG_MARGIN):
            ax.axvline(x, color="#777777", linewidth=0.9, linestyle="--")
        ax.set_xticks(range(-4, 5))
        ax.grid(axis="x", color="#EEEEEE")
        ax.set_axisbelow(True)
        ax.set_xlabel(
            textwrap.fill(tx.gettext("Gap = group mean − self rating (scale points)"), 45)
        )
        ax.set_ylabel(tx.gettext("Indicator · group"))
        ax.set_title(
            textwrap.fill(tx.gettext("← school rates itself higher"), 26),
            loc="left",
            fontsize=11.5,
            color=BLIND_COLOUR,
        )
        ax.set_title(
            textwrap.fill(tx.gettext("group rates the school higher →"), 26),
            loc="right",
            fontsize=11.5,
            color=HIDDEN_COLOUR,
        )
        handles: list[Any] = [
            Patch(
                color=BLIND_COLOUR,
                label=tx.gettext("blind spot (gap ≤ %(limit)s)", limit="−" + margin),
            ),
            Patch(
                color=HIDDEN_COLOUR,
                label=tx.gettext("hidden strength (gap ≥ %(limit)s)", limit="+" + margin),
            ),
            Patch(color=NEUTRAL_COLOUR, label=tx.gettext("within a third of the scale")),
        ]
        if any(g.get("gap_ci95") for g in gaps):
            handles.append(
                Line2D(
                    [],
                    [],
                    color=CI_COLOUR,
                    lw=1.6,
                    marker="|",
                    markersize=10,
                    markeredgewidth=1.6,
                    label=tx.gettext("black line: the gap's interval (95%)"),
                )
            )
        if any(noisy):
            handles.append(
                Patch(
                    facecolor=to_rgba(NEUTRAL_COLOUR, NOISE_ALPHA),
                    edgecolor=NEUTRAL_COLOUR,
                    hatch=NOISE_HATCH,
                    label=tx.gettext("light, hatched: the interval includes 0, may be noise"),
                )
            )
        _legend_below(fig, (handles, [h.get_label() for h in handles]), None)
        _titles(fig, title, report)

    alt = gaps_alt(report, limit, tx=tx)
    return _result(draw, (CHART_WIDTH, 3.4 + row * len(gaps)), title, alt, fmt, dpi)


def gaps_chart_svg(report: dict[str, Any], limit: int = 10, *, tx: Texts = ENGLISH) -> bytes:
    return gaps_chart(report, limit, tx=tx).data


def distribution_chart(
    report: dict[str, Any],
    indicator_key: str,
    *,
    fmt: Format = "svg",
    dpi: int = 150,
    tx: Texts = ENGLISH,
) -> ChartResult:
    """Per shown group, the share of answers at 0..4 and N/A, stacked."""
    ind = next((i for i in report.get("indicators", []) if i["key"] == indicator_key), None)
    if ind is None:
        raise KeyError(f"indicator {indicator_key!r} is not in the report")
    text = indicator_text(report, indicator_key, tx)
    title = tx.gettext("%(id)s: how each group answered", id=indicator_label(report, ind))
    rows = [
        (r, g)
        for r, g in ind["roles"].items()
        if not g["suppressed"] and g["distribution"] is not None
    ]
    if not rows:
        why = tx.gettext("No group has enough answers on this indicator to show yet.")
        return _no_data(title, report, fmt, dpi, why, tx)
    point_colours = [to_rgba(c) for c in SCALE_STOPS]  # the pages' and the heatmap's scale
    na_colour = to_rgba("#FFFFFF")  # N/A: white, dotted, grey edge

    own_rating = self_score(ind)  # a 0..4 rating (not a count), else None

    def draw(fig: Figure) -> None:
        # Left: the shares of the answers; right: each group's mean with its 95% interval.
        ax, mx = fig.subplots(1, 2, sharey=True, width_ratios=[3.1, 1.25])
        fig.get_layout_engine().set(wspace=0.06)
        for y, (_role, g) in enumerate(rows):
            counts = [g["distribution"].get(str(v), 0) for v in range(SCALE_MAX + 1)]
            na = g["na"] or 0
            total = sum(counts) + na
            left = 0.0
            for v, c in enumerate([*counts, na]):
                if not c:
                    continue
                share = 100 * c / total
                colour = point_colours[v] if v <= SCALE_MAX else na_colour
                na = v > SCALE_MAX
                ax.barh(
                    y,
                    share,
                    left=left,
                    color=colour,
                    edgecolor="#888888" if na else "white",
                    hatch=".." if na else None,
                    height=0.7,
                )
                if share >= 4:  # black reads on every colour of the scale
                    ax.text(
                        left + share / 2,
                        y,
                        tx.number(c),
                        ha="center",
                        va="center",
                        fontsize=11,
                        color="black",
                    )
                left += share
        ax.set_yticks(
            range(len(rows)),
            [
                tx.gettext(
                    "%(group)s, mean %(mean)s\n%(counts)s",
                    group=role_label(r, tx=tx),
                    counts=group_counts(g, tx),
                    mean=fmt_fixed(g["mean"], 2, tx),
                )
                if g["mean"] is not None
                else f"{role_label(r, tx=tx)}\n{group_counts(g, tx)}"
                for r, g in rows
            ],
        )
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlim(0, 100)
        ax.set_xlabel(
            textwrap.fill(
                tx.gettext("Share of the group's answers (%); numbers in bars are answers"), 45
            )
        )
        ax.set_ylabel(tx.gettext("Group"))
        for y, (role, g) in enumerate(rows):
            if g["mean"] is None:
                continue
            ci = g.get("ci95")
            if ci:
                low, high = _interval(mx, g["mean"], y, ci, zorder=3, gid=f"mean-ci-{role}")
                mx.text(
                    (low + high) / 2,
                    y - 0.2,
                    f"{fmt_fixed(ci[0], 1, tx)}–{fmt_fixed(ci[1], 1, tx)}",
                    ha="center",
                    va="bottom",
                    fontsize=11,
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5},
                    zorder=5,
                )
            (point,) = mx.plot([g["mean"]], [y], "D", color=CI_COLOUR, markersize=7, zorder=4)
            point.set_gid(f"mean-{role}")
        if own_rating is not None:
            mx.axvline(own_rating, color=SELF_COLOUR, linestyle="--", linewidth=1.2, zorder=2)
        mx.set_xlim(-0.25, SCALE_MAX + 0.25)
        mx.set_xticks(range(SCALE_MAX + 1))
        mx.grid(axis="x", color="#E5E5E5")
        mx.set_axisbelow(True)
        mx.tick_params(axis="y", left=False)
        mx.set_xlabel(textwrap.fill(tx.gettext("Mean (0–4) and its interval (95%)"), 22))
        labels = [tx.gettext("0 (lowest)"), "1", "2", "3", tx.gettext("4 (highest)")]
        handles: list[Any] = [
            Patch(color=c, label=lbl) for c, lbl in zip(point_colours, labels, strict=True)
        ]
        handles.append(
            Patch(
                facecolor=na_colour,
                edgecolor="#888888",
                hatch="..",
                label=tx.gettext("Not applicable"),
            )
        )
        handles.append(
            Line2D(
                [],
                [],
                color=CI_COLOUR,
                marker="D",
                markersize=7,
                lw=1.6,
                label=tx.gettext("the group's mean and its interval (95%)"),
            )
        )
        if own_rating is not None:
            handles.append(
                Line2D(
                    [],
                    [],
                    color=SELF_COLOUR,
                    linestyle="--",
                    lw=1.2,
                    label=tx.gettext("dashed: the school's own rating"),
                )
            )
        _legend_below(fig, (handles, [h.get_label() for h in handles]), None)
        own = ""
        if ind["self"] is not None and is_scale(ind):
            own = tx.gettext(
                "School's own rating: %(self)s",
                self=self_text(ind["self"], ind.get("self_status"), tx),
            )
        # The indicator's words (up to two lines) and, on a line of its own, the school's rating.
        wrapped = textwrap.fill(shorten(text, 240), width=64) if text else ""
        caption = "\n".join(p for p in (wrapped, own) if p)
        if caption:
            ax.set_title(caption, fontsize=12, loc="left", color="#444444")
        _titles(fig, title, report)

    alt = distribution_alt(report, indicator_key, tx=tx)
    return _result(draw, (CHART_WIDTH, 4.2 + 0.8 * len(rows)), title, alt, fmt, dpi)


def distribution_svg(report: dict[str, Any], indicator_key: str, *, tx: Texts = ENGLISH) -> bytes:
    return distribution_chart(report, indicator_key, tx=tx).data


def profile_chart(
    report: dict[str, Any],
    *,
    fmt: Format = "svg",
    dpi: int = 150,
    tx: Texts = ENGLISH,
) -> ChartResult:
    """One small radar per shown group: its mean per criterion (solid, labelled) against the
    school's own mean rating of the criterion (dashed, the same in every radar)."""
    data = profile_data(report, tx=tx)
    title = tx.gettext("Profiles: each group against the school's own rating, by criterion")
    if not data.groups:
        why = tx.gettext("No group has enough answers on any criterion to draw a profile yet.")
        return _no_data(title, report, fmt, dpi, why if has_data(report) else "", tx)
    n = len(data.groups)
    ncols = min(3, n)
    nrows = -(-n // ncols)
    m = len(data.criteria)
    angles = [2 * math.pi * i / m for i in range(m)]
    ring = angles + angles[:1]

    def closed(values: list[float | None]) -> list[float]:
        out = [math.nan if v is None else float(v) for v in values]
        return out + out[:1]

    def draw(fig: Figure) -> None:
        axes = fig.subplots(nrows, ncols, squeeze=False, subplot_kw={"projection": "polar"})
        for idx, ax in enumerate(axes.flat):
            if idx >= n:
                ax.set_axis_off()
                continue
            _role, name, colour, values = data.groups[idx]
            ax.set_theta_offset(math.pi / 2)
            ax.set_theta_direction(-1)
            ax.set_ylim(0, SCALE_MAX + 0.6)
            ax.set_yticks(range(1, SCALE_MAX + 1), [""] * SCALE_MAX)
            ax.set_xticks(angles, data.criteria, fontsize=11.5)
            ax.tick_params(axis="x", pad=2)
            ax.grid(color="#D5D5D5", linewidth=0.8)
            ax.spines["polar"].set_color("#BBBBBB")
            ax.plot(ring, closed(data.self_values), color=SELF_COLOUR, linestyle="--", lw=1.6)
            ax.plot(ring, closed(values), color=colour, lw=2.4, marker="o", markersize=4)
            if all(v is not None for v in values):
                ax.fill(ring, closed(values), color=colour, alpha=0.18)
            for a, v in zip(angles, values, strict=True):
                if v is not None:
                    ax.text(
                        a,
                        min(float(v) + 0.75, SCALE_MAX + 0.45),
                        fmt_fixed(v, 1, tx),
                        ha="center",
                        va="center",
                        fontsize=11,
                        color="#111111",
                    )
            ax.set_title(textwrap.fill(name, 28), fontsize=13, pad=22, color="#111111")
        key = [
            Line2D([], [], color=SELF_COLOUR, linestyle="--", lw=1.6),
            Line2D([], [], color="#555555", lw=2.4, marker="o", markersize=4),
        ]
        labels = [
            tx.gettext("the school's own rating (self)")
            + (
                " · " + tx.ngettext("%(num)s draft", "%(num)s drafts", drafts_in(report))
                if drafts_in(report)
                else ""
            ),
            tx.gettext("the group's mean (the numbers)"),
        ]
        for c in data.criteria:
            key.append(Line2D([], [], linestyle=""))
            labels.append(f"{c} {shorten(data.titles.get(c, ''), 60)}".strip())
        _legend_below(fig, (key, labels), tx.gettext("Criteria, mean on 0–4 (rings at 1 to 4)"))
        _titles(fig, title, report)

    height = 2.0 + 3.9 * nrows + 0.5 * (-(-(m + 2) // 2))
    return _result(draw, (CHART_WIDTH, height), title, data.alt, fmt, dpi)


def profile_svg(report: dict[str, Any], *, tx: Texts = ENGLISH) -> bytes:
    return profile_chart(report, tx=tx).data


def cycle_comparison_chart(
    report_now: dict[str, Any],
    report_before: dict[str, Any],
    *,
    fmt: Format = "svg",
    dpi: int = 150,
    limit: int = 12,
    tx: Texts = ENGLISH,
) -> ChartResult:
    """Change between two cycles: per dimension and the indicators that moved most (arrows)."""
    before_name = (report_before.get("cycle") or {}).get("name") or tx.gettext("before")
    now_name = (report_now.get("cycle") or {}).get("name") or tx.gettext("now")
    title = tx.gettext("Change from %(before)s to %(now)s", before=before_name, now=now_name)
    dims, moved = comparison_rows(report_now, report_before, limit, tx=tx)
    if not dims and not moved:
        why = tx.gettext("Nothing to compare: no figure is shown in both cycles.")
        return _no_data(title, report_now, fmt, dpi, why, tx)
    panels = [
        (p, rows)
        for p, rows in (
            (tx.gettext("By dimension"), dims),
            (tx.gettext("Largest changes by indicator"), moved),
        )
        if rows
    ]

    def change(before: float, now: float) -> str:
        return tx.gettext(
            "%(before)s → %(now)s (%(change)s)",
            before=fmt_fixed(before, 2, tx),
            now=fmt_fixed(now, 2, tx),
            change=fmt_signed(now - before, 2, tx),
        )

    def draw(fig: Figure) -> None:
        axes = fig.subplots(
            len(panels), 1, squeeze=False, height_ratios=[len(r) + 1.5 for _, r in panels]
        )[:, 0]
        for ax, (panel_title, rows) in zip(axes, panels, strict=True):
            for y, (_label, _series, before, now) in enumerate(rows):
                colour = (
                    HIDDEN_COLOUR
                    if now - before > 0.02
                    else BLIND_COLOUR
                    if before - now > 0.02
                    else "#555555"
                )
                ax.plot([before], [y], "o", color="#AAAAAA", markersize=9, zorder=3)
                if abs(now - before) > 0.02:
                    ax.annotate(
                        "",
                        xy=(now, y),
                        xytext=(before, y),
                        arrowprops={
                            "arrowstyle": "-|>",
                            "color": colour,
                            "lw": 2.2,
                            "mutation_scale": 18,
                            "shrinkA": 5,
                            "shrinkB": 0,
                        },
                    )
                else:
                    ax.plot([now], [y], "o", color=colour, markersize=9, zorder=4)
                ax.text(
                    4.15,
                    y,
                    change(before, now),
                    va="center",
                    fontsize=11,
                )
            ax.set_yticks(
                range(len(rows)), [f"{label} · {series_name(s, tx)}" for label, s, _, _ in rows]
            )
            ax.set_ylim(len(rows) - 0.5, -0.5)
            ax.set_xlim(0, 4)
            ax.set_xticks(range(SCALE_MAX + 1))
            ax.grid(axis="x", color="#E5E5E5")
            ax.set_axisbelow(True)
            ax.set_title(panel_title, loc="left", fontsize=13)
            ax.set_xlabel(textwrap.fill(tx.gettext("Mean rating (0–4)"), 45))
        handles = [
            Line2D([], [], marker="o", color="#AAAAAA", linestyle="", label=before_name),
            Patch(color=HIDDEN_COLOUR, label=tx.gettext("%(now)s: higher", now=now_name)),
            Patch(color=BLIND_COLOUR, label=tx.gettext("%(now)s: lower", now=now_name)),
        ]
        _legend_below(fig, (handles, [h.get_label() for h in handles]), None)
        _titles(fig, title, report_now)

    nrows = sum(len(r) for _, r in panels)
    parts = [
        tx.gettext(
            "%(label)s %(series)s %(before)s to %(now)s",
            label=label,
            series=series_name(s, tx),
            before=fmt_fixed(before, 2, tx),
            now=fmt_fixed(now, 2, tx),
        )
        for label, s, before, now in dims + moved
    ]
    how = tx.gettext(
        "Arrows from the earlier to the later mean (0–4): %(changes)s.", changes="; ".join(parts)
    )
    alt = f"{title}. {how}"
    size = (CHART_WIDTH, 3.4 + 0.42 * nrows + 0.8 * len(panels))
    return _result(draw, size, title, alt, fmt, dpi)


def cycle_comparison_svg(
    report_now: dict[str, Any], report_before: dict[str, Any], *, tx: Texts = ENGLISH
) -> bytes:
    return cycle_comparison_chart(report_now, report_before, tx=tx).data


__all__ = [
    "NO_DATA",
    "ChartResult",
    "DimensionData",
    "cycle_comparison_chart",
    "cycle_comparison_svg",
    "dimension_chart",
    "dimension_chart_svg",
    "dimension_data",
    "distribution_alt",
    "distribution_chart",
    "distribution_svg",
    "gaps_alt",
    "gaps_chart",
    "gaps_chart_svg",
    "heatmap_chart",
    "heatmap_svg",
    "profile_chart",
    "profile_svg",
    "series_name",
]
