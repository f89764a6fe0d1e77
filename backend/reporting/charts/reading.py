"""Reading the (already safe) report for the charts and the exports: which groups have
figures, the words of the model and the groups in the reader's language, the numbers as
the reader writes them, and each chart's data (dimension means, gaps, distributions, the
comparison of two cycles) before anything is drawn. No matplotlib here: the exports use
these helpers too.
"""

from __future__ import annotations

import math
import textwrap
from collections import Counter
from dataclasses import dataclass
from typing import Any

from backend.i18n import ENGLISH, LABELS, N_, Texts
from backend.reporting.report import biggest_gaps
from conversations.model import ExcellenceModel

SCALE_MAX = 4


FLAG_MARGIN = SCALE_MAX / 3


NO_DATA = N_("No data yet")  # the English source: show it as tx.gettext(NO_DATA)


SELF_LABEL = N_("Self")  # also the key of the school's own series (comparison_rows)


# Colour-blind-safe qualitative colours: Okabe-Ito, then Paul Tol's muted scheme.
SERIES_COLOURS = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#332288",
    "#88CCEE",
    "#117733",
    "#999933",
    "#882255",
    "#44AA99",
    "#AA4499",
    "#DDCC77",
    "#F0E442",  # yellow last: the faintest on white
)


SELF_COLOUR = "#222222"


# One diverging scale for the 0..4 ratings everywhere (the pages' heatmap and bars, every
# chart, the exports): orange (low) through a warm grey (2) to blue (high). Orange and blue
# stay apart with every common colour-vision deficiency, and black text reads on each stop
# (contrast 6.7:1 or more).
SCALE_STOPS = ("#E08A3C", "#F5C594", "#ECE8DF", "#A9CBEA", "#5B96D0")


def scale_colour(x: float) -> str:
    """The colour of a rating or a mean on 0..4, between the scale's stops ("#RRGGBB")."""
    x = max(0.0, min(float(SCALE_MAX), float(x)))
    i = min(int(x), SCALE_MAX - 1)
    f = x - i
    a, b = (tuple(int(c[k : k + 2], 16) for k in (1, 3, 5)) for c in SCALE_STOPS[i : i + 2])
    return "#" + "".join(f"{round(p + (q - p) * f):02X}" for p, q in zip(a, b, strict=True))


BLIND_COLOUR = "#D55E00"  # vermillion: the school rates itself higher than the group does


HIDDEN_COLOUR = "#0072B2"  # blue: the group rates the school higher than it does itself


NEUTRAL_COLOUR = "#9A9A9A"


SUPPRESSED_COLOUR = "#D9D9D9"


CI_COLOUR = "#111111"  # the 95% intervals' lines: black reads on every bar and on white


# A gap whose 95% interval includes 0 (`gap_clear` False): the same words as the indicator page.
NOISE_NOTE = N_("may be noise: the interval includes 0")
CLEAR_NOTE = N_("clear: the interval excludes 0")
NO_INTERVAL = N_("no interval (too few answers)")
MAY_BE_NOISE = N_("may be noise")  # beside the flag on the gaps chart


def role_label(role: str, *, short: bool = True, tx: Texts = ENGLISH) -> str:
    """A group's name in `tx`'s language: short for axes and column heads (the dashboard's
    own short names, `LABELS["short group"]`), else the model's."""
    if short and role in LABELS["short group"]:
        return tx.label("short group", role)
    return tx.role_name(role)


def series_name(series: str, tx: Texts = ENGLISH) -> str:
    """The name of a series: the school's own ratings (SELF_LABEL) or a group."""
    return tx.gettext(SELF_LABEL) if series == SELF_LABEL else role_label(series, tx=tx)


def model_for(report: dict[str, Any], tx: Texts = ENGLISH) -> ExcellenceModel | None:
    """The shipped model in `tx`'s language when the report was made with its version
    (for indicator texts and titles)."""
    try:
        model = tx.model
    except Exception:  # pragma: no cover - a broken install; charts still draw ids
        return None
    return model if model.version == report.get("model_version") else None


def indicator_text(report: dict[str, Any], key: str, tx: Texts = ENGLISH) -> str | None:
    model = model_for(report, tx)
    if model is None:
        return None
    placed = model.index().get(key)
    return placed.indicator.text if placed else None


def unit_titles(report: dict[str, Any], tx: Texts = ENGLISH) -> dict[str, str]:
    """Titles of dimensions, criteria and themes by id (empty without the model)."""
    model = model_for(report, tx)
    titles: dict[str, str] = {}
    if model is None:
        return titles
    for d in model.dimensions:
        titles[d.id] = d.title
        for c in d.criteria:
            titles[c.id] = c.title
            for t in c.themes:
                titles[t.id] = t.title
    return titles


def indicator_labels(model: ExcellenceModel) -> dict[str, str]:
    """key -> the indicator's id as readers see it. The ETF model numbers a few indicators
    twice (VL-14 in themes 1.2.2 and 1.2.3, CC-5 and CC-6 in 2.1.1 and 2.1.2): such an id
    carries its theme ("VL-14 (1.2.3)"), so two different indicators never look the same."""
    placed = model.placed()
    seen = Counter(p.indicator.id for p in placed)
    return {
        p.indicator.key: (
            f"{p.indicator.id} ({p.theme_id})" if seen[p.indicator.id] > 1 else p.indicator.id
        )
        for p in placed
    }


def indicator_label(report: dict[str, Any], ind: dict[str, Any]) -> str:
    """A report indicator's id as readers see it (see `indicator_labels`)."""
    seen = Counter(i["id"] for i in report.get("indicators", []))
    return f"{ind['id']} ({ind['theme']})" if seen[ind["id"]] > 1 else ind["id"]


def dimensions_of(report: dict[str, Any]) -> list[str]:
    """Dimension ids in report order."""
    return list(dict.fromkeys(ind["dimension"] for ind in report.get("indicators", [])))


def shown_roles(report: dict[str, Any]) -> list[str]:
    """Roles with at least one shown (non-suppressed) mean, in report order."""
    roles: list[str] = []
    for ind in report.get("indicators", []):
        for role, g in ind["roles"].items():
            if g["mean"] is not None and role not in roles:
                roles.append(role)
    order = list(report.get("roles", {}))
    return sorted(roles, key=lambda r: order.index(r) if r in order else len(order))


def answered_roles(report: dict[str, Any]) -> list[str]:
    """Roles with any answer (shown or suppressed) on any indicator, in report order."""
    roles: list[str] = []
    for ind in report.get("indicators", []):
        for role, g in ind["roles"].items():
            if g["n"] and role not in roles:
                roles.append(role)
    order = list(report.get("roles", {}))
    return sorted(roles, key=lambda r: order.index(r) if r in order else len(order))


def hidden_roles(report: dict[str, Any]) -> dict[str, int]:
    """Roles that answered but have no shown mean at all, with their largest n."""
    shown = set(shown_roles(report))
    out: dict[str, int] = {}
    for ind in report.get("indicators", []):
        for role, g in ind["roles"].items():
            if role not in shown and g["n"]:
                out[role] = max(out.get(role, 0), g.get("respondents") or g["n"])
    return out


def is_scale(ind: dict[str, Any]) -> bool:
    return ind.get("kind") != "NUMBER"


def self_score(ind: dict[str, Any]) -> float | None:
    """The school's 0..4 score (None for count indicators and unrated ones)."""
    if not is_scale(ind) or ind["self"] is None:
        return None
    return float(ind["self"])


def has_data(report: dict[str, Any]) -> bool:
    """True when the report holds any self rating or any answered group."""
    for ind in report.get("indicators", []):
        if ind.get("self") is not None:
            return True
        if any(g["n"] for g in ind["roles"].values()):
            return True
    return False


def subtitle(report: dict[str, Any]) -> str:
    school = (report.get("school") or {}).get("name") or ""
    cycle = (report.get("cycle") or {}).get("name") or ""
    return " · ".join(p for p in (school, cycle) if p)


DRAFT = N_("draft")  # a self rating saved but not submitted


def self_text(value: float | None, status: str | None, tx: Texts = ENGLISH) -> str:
    """The school's own rating as readers see it: "2", or "2 (draft)" until it is submitted."""
    text = fmt_value(value, 2, tx)
    if value is None or status != "draft":
        return text
    return tx.gettext("%(value)s (draft)", value=text)


def drafts_in(report: dict[str, Any], dimension_id: str | None = None) -> int:
    """How many rated 0-4 indicators (of one dimension, or all) hold a draft self rating."""
    return sum(
        1
        for i in report.get("indicators", [])
        if (dimension_id is None or i["dimension"] == dimension_id)
        and self_score(i) is not None
        and i.get("self_status") == "draft"
    )


def self_series_name(report: dict[str, Any], tx: Texts, dimension_id: str | None = None) -> str:
    """The self series' name in a chart, saying how many of its ratings are drafts."""
    n = drafts_in(report, dimension_id)
    name = tx.gettext(SELF_LABEL)
    if not n:
        return name
    return tx.ngettext("%(name)s (%(num)s draft)", "%(name)s (%(num)s drafts)", n, name=name)


def fmt_value(x: float | None, digits: int = 2, tx: Texts = ENGLISH) -> str:
    """At most `digits` decimals, none when whole ("2.5", "3"), as `tx` writes numbers."""
    if x is None:
        return "–"
    return tx.number(round(float(x), digits))


def fmt_fixed(x: float | None, digits: int = 2, tx: Texts = ENGLISH) -> str:
    """Exactly `digits` decimals ("2.50"), as `tx` writes numbers."""
    return tx.number(x, digits)


def fmt_signed(x: float, digits: int = 2, tx: Texts = ENGLISH) -> str:
    """With its sign, always ("+0.50", "-1.25"), as `tx` writes numbers."""
    text = tx.number(x, digits)
    negative = x < 0 or math.copysign(1.0, x) < 0
    return text if negative else "+" + text


def shorten(text: str, width: int) -> str:
    return textwrap.shorten(text, width=width, placeholder="…")


def fmt_num(x: float | int, tx: Texts = ENGLISH) -> str:
    return fmt_value(float(x), 1, tx)


def group_counts(g: dict[str, Any], tx: Texts = ENGLISH) -> str:
    """What a group's figure counts, in words: "35 respondents, 64 answers to 2 questions".

    People and answers are told apart: a group asked two statements of one indicator gives
    up to two answers per person (the distribution and the mean count answers)."""
    people = g.get("respondents") or g["n"]
    who = tx.ngettext("%(num)s respondent", "%(num)s respondents", people)
    answers = tx.ngettext("%(num)s answer", "%(num)s answers", g["n"])
    questions = g.get("questions") or 0
    if questions > 1:
        # Translators: %(people)s is "35 respondents", %(answers)s "64 answers".
        return tx.ngettext(
            "%(people)s, %(answers)s to %(num)s question",
            "%(people)s, %(answers)s to %(num)s questions",
            questions,
            people=who,
            answers=answers,
        )
    # Translators: %(people)s is "35 respondents", %(answers)s "33 answers".
    return tx.gettext("%(people)s, %(answers)s", people=who, answers=answers)


@dataclass(frozen=True)
class DimensionData:
    """What the per-dimension chart shows: for its alt text and its table alternative."""

    title: str
    dim_title: str | None
    titles: dict[str, str]
    themes: list[str]
    series: list[tuple[str, str, list[float | None]]]  # (name, colour, mean per theme)
    tx: Texts = ENGLISH

    @property
    def alt(self) -> str:
        tx = self.tx
        parts = []
        for name, _, values in self.series:
            known = [
                f"{t} {fmt_fixed(v, 1, tx)}"
                for t, v in zip(self.themes, values, strict=True)
                if v is not None
            ]
            figures = ", ".join(known) if known else tx.gettext("no figures")
            parts.append(f"{name}: {figures}")
        if not self.themes or all(v is None for _, _, vals in self.series for v in vals):
            return f"{self.title}: {tx.gettext(NO_DATA)}."
        title = f"{self.title} ({self.dim_title})" if self.dim_title else self.title
        how = tx.gettext("Horizontal bars per theme, mean on 0–4.")
        return f"{title}. {how} " + "; ".join(parts) + "."


def dimension_data(
    report: dict[str, Any], dimension_id: str, *, tx: Texts = ENGLISH
) -> DimensionData:
    """Per theme of one dimension: the self mean and each shown group's mean (no drawing)."""
    titles = unit_titles(report, tx)
    dim_title = titles.get(dimension_id)
    title = tx.gettext("Dimension %(dim)s: self vs groups by theme", dim=dimension_id)
    themes = list(
        dict.fromkeys(
            i["theme"] for i in report.get("indicators", []) if i["dimension"] == dimension_id
        )
    )
    # A theme with no own indicators (e.g. alumni 1.3.1) still has a roll-up.
    for tid in report.get("rollups", {}).get("themes", {}):
        if tid.startswith(dimension_id + ".") and tid not in themes:
            themes.append(tid)
    themes.sort(key=lambda t: [int(p) for p in t.split(".")])
    rollups = report.get("rollups", {}).get("themes", {})
    roles = [
        r
        for r in shown_roles(report)
        if any(
            rollups.get(t, {}).get("roles", {}).get(r, {}).get("mean") is not None for t in themes
        )
    ]
    series: list[tuple[str, str, list[float | None]]] = [
        (
            self_series_name(report, tx, dimension_id),
            SELF_COLOUR,
            [rollups.get(t, {}).get("self", {}).get("mean") for t in themes],
        )
    ]
    colours = role_colours(report)
    for r in roles:
        series.append(
            (
                role_label(r, tx=tx),
                colours[r],
                [rollups.get(t, {}).get("roles", {}).get(r, {}).get("mean") for t in themes],
            )
        )
    return DimensionData(title, dim_title, titles, themes, series, tx)


def role_colours(report: dict[str, Any]) -> dict[str, str]:
    """Each shown group's colour, the same in every chart of the report."""
    return {r: SERIES_COLOURS[n % len(SERIES_COLOURS)] for n, r in enumerate(shown_roles(report))}


@dataclass(frozen=True)
class ProfileData:
    """Per criterion of the model: the school's own mean rating and each shown group's mean
    (the profile chart: one small radar per group against the school's own rating)."""

    criteria: list[str]
    titles: dict[str, str]
    self_values: list[float | None]
    groups: list[tuple[str, str, str, list[float | None]]]  # (role, name, colour, means)
    tx: Texts = ENGLISH

    @property
    def alt(self) -> str:
        tx = self.tx
        title = tx.gettext("Profiles: each group against the school's own rating, by criterion")
        if not self.groups:
            return f"{title}: {tx.gettext(NO_DATA)}."
        parts = []
        for _role, name, _colour, values in self.groups:
            known = [
                tx.gettext(
                    "%(criterion)s %(group)s, self %(self)s",
                    criterion=c,
                    group=fmt_fixed(v, 1, tx),
                    self=fmt_fixed(s, 1, tx) if s is not None else "–",
                )
                for c, v, s in zip(self.criteria, values, self.self_values, strict=True)
                if v is not None
            ]
            parts.append(f"{name}: " + ", ".join(known))
        how = tx.gettext("One radar per group, mean on 0–4 per criterion.")
        return f"{title}. {how} " + "; ".join(parts) + "."


def profile_data(report: dict[str, Any], *, tx: Texts = ENGLISH) -> ProfileData:
    """The profile chart's data: criteria in model order, the self means, the shown groups'."""
    titles = unit_titles(report, tx)
    crits = report.get("rollups", {}).get("criteria", {})
    criteria = sorted(crits, key=lambda c: [int(p) for p in c.split(".")])
    self_values = [crits[c]["self"]["mean"] for c in criteria]
    colours = role_colours(report)
    groups = []
    for r in shown_roles(report):
        values = [crits[c]["roles"].get(r, {}).get("mean") for c in criteria]
        if any(v is not None for v in values):
            groups.append((r, role_label(r, tx=tx), colours[r], values))
    return ProfileData(criteria, titles, self_values, groups, tx)


def ci_text(ci: list[float] | tuple[float, float], tx: Texts = ENGLISH, signed: bool = True) -> str:
    """A 95% interval in words: "95% interval: −2.5 to −0.4" (ends to one decimal, as the
    report gives them; signed for gaps)."""
    low, high = (fmt_signed(v, 1, tx) if signed else fmt_fixed(v, 1, tx) for v in ci)
    return tx.gettext("95%% interval: %(low)s to %(high)s", low=low, high=high)


def gap_certainty(g: dict[str, Any], tx: Texts = ENGLISH) -> str:
    """Whether a gap's 95% interval excludes 0, with the interval: for alt texts."""
    ci, clear = g.get("gap_ci95"), g.get("gap_clear")
    if not ci or clear is None:
        return tx.gettext(NO_INTERVAL)
    return f"{ci_text(ci, tx)}, {tx.gettext(CLEAR_NOTE if clear else NOISE_NOTE)}"


def gaps_title(n: int, tx: Texts) -> str:
    return tx.ngettext(
        "The %(num)s biggest gap between the school and its stakeholders",
        "The %(num)s biggest gaps between the school and its stakeholders",
        n,
    )


def gap_heads(tx: Texts = ENGLISH) -> list[str]:
    """The heads of a gap's figures, in the order every gaps table shows them (page, PDF, xlsx)."""
    return [
        tx.gettext("Group"),
        tx.gettext("Self"),
        tx.gettext("Group mean"),
        tx.gettext("Respondents"),
        tx.gettext("Gap"),
    ]


def gaps_alt(report: dict[str, Any], limit: int = 10, *, tx: Texts = ENGLISH) -> str:
    """The gaps chart's alt text, without drawing it."""

    gaps = biggest_gaps(report, limit) if report.get("indicators") else []
    title = gaps_title(len(gaps) or limit, tx)
    if not gaps:
        return f"{title}: {tx.gettext(NO_DATA)}."
    items = []
    for g in gaps:
        flag = tx.label("flag", g["flag"])
        item = f"{g['id']} {role_label(g['role'], tx=tx)} {fmt_signed(g['gap'], 2, tx)}"
        notes = [flag] if flag else []
        notes.append(gap_certainty(g, tx))
        items.append(f"{item} ({'; '.join(notes)})")
    how = tx.gettext(
        "Diverging bars, group mean minus self rating: %(items)s.", items="; ".join(items)
    )
    return f"{title}. {how}"


def distribution_alt(report: dict[str, Any], indicator_key: str, *, tx: Texts = ENGLISH) -> str:
    """The distribution chart's alt text, without drawing it."""
    ind = next((i for i in report.get("indicators", []) if i["key"] == indicator_key), None)
    if ind is None:
        raise KeyError(f"indicator {indicator_key!r} is not in the report")
    title = tx.gettext("%(id)s: how each group answered", id=ind["id"])
    k = report.get("thresholds", {}).get("anonymity", 5)
    rows = [
        (r, g)
        for r, g in ind["roles"].items()
        if not g["suppressed"] and g["distribution"] is not None
    ]
    if not rows:
        return f"{title}: {tx.gettext(NO_DATA)}."
    hidden = [role_label(r, tx=tx) for r, g in ind["roles"].items() if g["suppressed"]]
    parts = []
    for r, g in rows:
        counts = ", ".join(f"{v}: {tx.number(g['distribution'].get(str(v), 0))}" for v in range(5))
        parts.append(
            tx.gettext(
                "%(group)s (%(who)s) %(counts)s, N/A: %(na)s",
                group=role_label(r, tx=tx),
                who=group_counts(g, tx),
                counts=counts,
                na=tx.number(g["na"] or 0),
            )
        )
        if g["mean"] is not None:  # the mean beside the bars, with its 95% interval
            ci = g.get("ci95")
            mean = tx.gettext("mean %(mean)s", mean=fmt_fixed(g["mean"], 2, tx))
            parts[-1] += f", {mean}, " + (
                ci_text(ci, tx, signed=False) if ci else tx.gettext(NO_INTERVAL)
            )
    how = tx.gettext(
        "Stacked bars of answers 0–4 and N/A per group. %(groups)s.", groups="; ".join(parts)
    )
    alt = f"{title}. {how}"
    if hidden:
        alt += " " + tx.gettext(
            "Not shown (fewer than %(k)s answered): %(groups)s.",
            k=tx.number(k),
            groups=", ".join(hidden),
        )
    return alt


def _series_means(report: dict[str, Any], level: str, uid: str) -> dict[str, float]:
    ru = report.get("rollups", {}).get(level, {}).get(uid)
    if not ru:
        return {}
    out: dict[str, float] = {}
    if ru["self"]["mean"] is not None:
        out[SELF_LABEL] = ru["self"]["mean"]
    for r, f in ru["roles"].items():
        if f["mean"] is not None:
            out[r] = f["mean"]
    return out


def _indicator_means(report: dict[str, Any]) -> dict[tuple[str, str], tuple[str, float]]:
    out: dict[tuple[str, str], tuple[str, float]] = {}
    for ind in report.get("indicators", []):
        s = self_score(ind)
        if s is not None:
            out[(ind["key"], SELF_LABEL)] = (ind["id"], s)
        for r, g in ind["roles"].items():
            if g["mean"] is not None:
                out[(ind["key"], r)] = (ind["id"], g["mean"])
    return out


def comparison_rows(
    report_now: dict[str, Any],
    report_before: dict[str, Any],
    limit: int = 12,
    *,
    tx: Texts = ENGLISH,
) -> tuple[list[tuple[str, str, float, float]], list[tuple[str, str, float, float]]]:
    """(label, series, before, now) per dimension, and the indicator figures that moved most.

    The series is SELF_LABEL or a role (show it with `series_name`); the label is shown."""
    dims: list[tuple[str, str, float, float]] = []
    for d in dimensions_of(report_now):
        now = _series_means(report_now, "dimensions", d)
        before = _series_means(report_before, "dimensions", d)
        label = tx.gettext("Dimension %(dim)s", dim=d)
        for series in [s for s in now if s in before]:
            dims.append((label, series, before[series], now[series]))
    now_i, before_i = _indicator_means(report_now), _indicator_means(report_before)
    moved = [
        (now_i[k][0], k[1], before_i[k][1], now_i[k][1])
        for k in now_i
        if k in before_i and abs(now_i[k][1] - before_i[k][1]) > 1e-9
    ]
    moved.sort(key=lambda row: (-abs(row[3] - row[2]), row[0], row[1]))
    # Self ratings are whole points and move in big steps: keep room for the groups.
    selfs = [m for m in moved if m[1] == SELF_LABEL][: max(1, limit // 2)]
    groups = [m for m in moved if m[1] != SELF_LABEL][: limit - len(selfs)]
    picked = {id(m) for m in selfs + groups}
    return dims, [m for m in moved if id(m) in picked][:limit]
