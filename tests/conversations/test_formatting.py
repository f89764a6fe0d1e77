"""Numbers and dates in the respondent's language (Babel), and typed numbers read in it."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from conversations import engine as E
from conversations.i18n import Translator, format_date, format_number, parse_number
from tests.conversations.support import number_bank

NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("lang", "x", "shown"),
    [
        ("en", 12, "12"),
        ("en", 12.0, "12"),
        ("en", 1234.5, "1,234.5"),
        ("en", 0.125, "0.125"),
        ("en", -3, "-3"),
        ("hy", 2.5, "2,5"),
        ("hy", 1500, f"1{NBSP}500"),
        ("hy", 1234.5, f"1{NBSP}234,5"),
        ("uk", 2.5, "2,5"),
        ("uk", 12000, f"12{NBSP}000"),
        ("uk", 0.125, "0,125"),
        ("xx", 1234.5, "1,234.5"),  # an unknown language: English
    ],
)
def test_format_number(lang, x, shown):
    assert format_number(lang, x) == shown


@pytest.mark.parametrize(
    ("lang", "shown"),
    [
        ("en", "March 5, 2026"),
        ("hy", "2026 թ. մարտի 5"),  # CLDR 47 (Babel 2.19, pinned in constraints.txt)
        ("uk", "5 березня 2026\u202fр."),
    ],
)
def test_format_date(lang, shown):
    assert format_date(lang, date(2026, 3, 5)) == shown
    assert format_date(lang, datetime(2026, 3, 5, 23, 30)) == shown


@pytest.mark.parametrize("lang", ["en", "hy", "uk"])
@pytest.mark.parametrize(
    ("typed", "value"),
    [
        ("2,5", 2.5),
        ("2.5", 2.5),
        (" 7,0 ", 7.0),
        ("1 234,5", 1234.5),
        (f"1{NBSP}234,5", 1234.5),
        ("1\u202f234,5", 1234.5),
        ("1,234.5", 1234.5),
        ("1.234,5", 1234.5),
        ("1.234.567", 1234567.0),
        ("50%", 50.0),
        ("-1", -1.0),
        ("twelve", None),
        ("1.2.3", None),
        ("1,2.3,4", None),
        ("nan", None),
        ("1e400", None),
        ("", None),
        ("1" * 21, None),
    ],
)
def test_parse_number(lang, typed, value):
    assert parse_number(lang, typed) == value


def test_parse_number_reads_a_lone_comma_as_the_locale_does():
    assert parse_number("en", "1,234") == 1234.0  # English groups thousands with ","
    assert parse_number("uk", "1,234") == 1.234  # Ukrainian writes decimals with ","
    assert parse_number("hy", "1,234") == 1.234
    assert parse_number("uk", "1,5") == parse_number("en", "1.5") == 1.5


def test_every_formatted_number_reads_back():
    for lang in ("en", "hy", "uk"):
        for x in (0, 7, 2.5, 1500, 1234.5, 98765.125, -40):
            assert parse_number(lang, format_number(lang, x)) == x, (lang, x)


BANK = number_bank("How many hours a week?", "{min: 0, max: 1500, integer: false}")
INVITE = E.InviteInfo(
    code="c0de",
    invite_id=1,
    cycle_id=1,
    role="employer",
    bank_tag=BANK.tag,
    school_name="Ogre Tech",
    languages=("en", "hy", "uk"),
)


def _at_number(lang: str) -> tuple[E.Engine, dict]:
    eng = E.Engine.from_banks([BANK])
    st = eng.step({}, E.Start(INVITE)).state
    st = eng.step(st, E.ChooseLanguage("lang:" + lang)).state
    st = eng.step(st, E.Consent(True)).state
    assert st["pos"] == "n1"
    return eng, st


@pytest.mark.parametrize("lang", ["en", "hy", "uk"])
def test_engine_shows_bounds_and_echoes_numbers_in_the_respondents_language(lang):
    eng, st = _at_number(lang)
    t = Translator(lang)
    s = eng.step(st, E.Answer(None, "2000"))
    assert not s.changed
    high = {"en": "1,500", "hy": f"1{NBSP}500", "uk": f"1{NBSP}500"}[lang]
    assert s.prompts[0].notice == t("number.range", min="0", max=high)
    s = eng.step(st, E.Answer(None, "lots"))
    assert s.prompts[0].notice == t("number.invalid", example="1")
    typed = "2.5" if lang == "en" else "2,5"
    s = eng.step(st, E.Answer(None, typed))
    assert s.answer == E.SaveAnswer("n1", number=2.5)
    assert s.state["ans"]["n1"] == "n:2.5"  # the state keeps a language-free code
    back = eng.step(s.state, E.Back("e1")).state
    assert E.answer_label(eng, back, "n1") == ("2.5" if lang == "en" else "2,5")


def test_engine_accepts_the_other_decimal_separator_too():
    for lang in ("en", "uk"):
        eng, st = _at_number(lang)
        assert eng.step(st, E.Answer(None, "2,5")).answer == E.SaveAnswer("n1", number=2.5)
        assert eng.step(st, E.Answer(None, "2.5")).answer == E.SaveAnswer("n1", number=2.5)
