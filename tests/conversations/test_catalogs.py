"""The shipped translations: complete, with the English placeholders, and checked by a checker that bites."""

from __future__ import annotations

import string
from collections.abc import Mapping

import pytest

from conversations import i18n
from conversations.banks import load_banks
from conversations.i18n import (
    REVIEW_NOTE,
    Catalog,
    Translator,
    available_languages,
    check_catalog,
    load_catalog,
    plural_categories,
    source_messages,
)
from conversations.roles import Role

SOURCE = source_messages()
LANGS = [lang for lang in available_languages() if lang != "en"]


def fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}


def forms(value: object) -> list[str]:
    return [str(v) for v in value.values()] if isinstance(value, Mapping) else [str(value)]


def test_the_pilot_languages_are_shipped():
    assert {"hy", "uk"} <= set(LANGS)


def test_source_messages_cover_en_yaml_banks_and_scales():
    en = load_catalog("en").messages
    assert set(en) - {"_meta"} <= set(SOURCE)
    assert "_meta" not in SOURCE
    learner = load_banks()[Role.LEARNER]
    assert SOURCE["bank.learner.title"] == learner.title
    assert SOURCE["bank.learner.intro"] == learner.intro
    assert SOURCE["bank.learner.l01"] == learner.question("l01").text
    assert SOURCE["bank.learner.l22.help"] == learner.question("l22").help
    assert SOURCE["bank.graduate.now.working"] == "Working"
    assert SOURCE["scale.AGM.4"] == "Strongly agree"
    assert SOURCE["scale.TIME.0"] == "Never"
    assert SOURCE["nav.na"] == "Not applicable"
    assert len([k for k in SOURCE if k.startswith("scale.")]) == 20


def test_english_is_complete():
    assert check_catalog("en") == []


@pytest.mark.parametrize("lang", LANGS)
def test_every_key_is_present_and_non_empty(lang):
    messages = load_catalog(lang).messages
    missing = [k for k in SOURCE if k not in messages]
    empty = [k for k in SOURCE if k in messages and not all(t.strip() for t in forms(messages[k]))]
    assert missing == []
    assert empty == []


@pytest.mark.parametrize("lang", LANGS)
def test_no_unknown_keys(lang):
    assert set(load_catalog(lang).messages) - set(SOURCE) - {"_meta"} == set()


@pytest.mark.parametrize("lang", LANGS)
def test_placeholders_match_english(lang):
    messages = load_catalog(lang).messages
    wrong = []
    for key, en in SOURCE.items():
        want = set().union(*(fields(t) for t in forms(en)))
        for text in forms(messages.get(key, "")):
            if fields(text) != want:
                wrong.append((key, sorted(want), sorted(fields(text))))
    assert wrong == []


@pytest.mark.parametrize("lang", LANGS)
def test_plural_mappings_have_the_languages_categories(lang):
    messages = load_catalog(lang).messages
    for key, en in SOURCE.items():
        if isinstance(en, Mapping):
            assert isinstance(messages[key], Mapping), key
            assert set(messages[key]) == plural_categories(lang), key
        else:
            assert not isinstance(messages[key], Mapping), key
    assert plural_categories("uk") == {"one", "few", "many", "other"}
    assert plural_categories("hy") == {"one", "other"}


@pytest.mark.parametrize("lang", LANGS)
def test_meta_asks_for_native_review(lang):
    meta = load_catalog(lang).meta
    assert meta["review"] == REVIEW_NOTE == "for review by a native speaker"
    assert meta["translated_from"] == "en"
    assert meta["native_name"]
    assert meta["source_keys"] == len(SOURCE)


@pytest.mark.parametrize("lang", LANGS)
def test_the_checker_passes_the_shipped_catalog(lang):
    assert check_catalog(lang) == []


@pytest.mark.parametrize("lang", LANGS)
def test_every_text_formats_with_its_parameters(lang):
    t = Translator(lang)
    assert t.lang == lang
    for key, en in SOURCE.items():
        params = {name: 7 for text in forms(en) for name in fields(text)}
        out = t(key, **params) if params else t(key)
        assert out.strip(), key
        assert "{" not in out or "{" in "".join(forms(en)), key


@pytest.mark.parametrize("lang", ["hy", "uk"])
def test_consent_text_formats_with_the_real_parameters(lang):
    t = Translator(lang)
    bank = load_banks()[Role.LEARNER]
    title = t("bank.learner.title", default=bank.title)
    text = t(
        "consent.text",
        title=title,
        intro=t("bank.learner.intro", default=bank.intro),
        minutes=bank.minutes,
        count=len(bank.questions),
        threshold=5,
        free_text_threshold=10,
    )
    assert text.startswith(title)
    assert title != bank.title
    assert str(bank.minutes) in text and str(len(bank.questions)) in text
    assert "10" in text and "5" in text
    assert "/delete" in text
    assert "{" not in text


def test_a_missing_key_falls_back_to_english():
    t = Translator("hy")
    t.catalog = Catalog("hy", {"_meta": {"review": REVIEW_NOTE}, "nav.skip": "Բաց թողնել"})
    assert t("nav.skip") == "Բաց թողնել"
    assert t("nav.back") == Translator("en")("nav.back") == "◀ Back"
    assert t("question.progress", index=2, total=9) == "Question 2 of 9"
    assert t("bank.learner.l01", default="source text") == "source text"
    assert not t.has("nav.back")


def test_the_checker_reports_a_broken_catalog():
    broken = dict(load_catalog("uk").messages)
    del broken["nav.back"]  # a missing string
    broken["nav.skip"] = "  "  # an empty one
    broken["question.progress"] = "Питання {index}"  # lost {total}
    broken["number.range"] = "Від {min} до {maximum}"  # renamed placeholder
    broken["web.chars"] = "{count} з {max"  # unbalanced brace
    broken["bank.learner.l99"] = "Зайве"  # unknown key
    broken["_meta"] = {"language": "Ukrainian", "review": "done"}
    problems = check_catalog("uk", broken)
    text = "\n".join(problems)
    assert "nav.back is missing" in text
    assert "nav.skip is missing or empty" in text
    assert "question.progress placeholders differ (missing ['total']" in text
    assert "number.range placeholders differ (missing ['max'], extra ['maximum'])" in text
    assert "web.chars:" in text
    assert "unknown key bank.learner.l99" in text
    assert "_meta.review" in text
    assert len(problems) == 7


def test_the_checker_reports_wrong_plural_forms(monkeypatch):
    source = {"items": {"one": "{count} item", "other": "{count} items"}, "plain": "Hi"}
    monkeypatch.setattr(i18n, "source_messages", lambda: source)
    meta = {"review": REVIEW_NOTE}
    good_uk = {
        "_meta": meta,
        "items": {"one": "{count} ф", "few": "{count} ф", "many": "{count} ф", "other": "{count}"},
        "plain": "Привіт",
    }
    assert check_catalog("uk", good_uk) == []
    assert check_catalog("hy", {"_meta": meta, "items": good_uk["items"], "plain": "Բարև"}) == [
        "hy: items has plural forms ['few', 'many', 'one', 'other'], needs ['one', 'other']"
    ]
    short = dict(good_uk, items={"one": "{count} ф", "other": "{count} ф"})
    assert "needs ['few', 'many', 'one', 'other']" in check_catalog("uk", short)[0]
    flat = dict(good_uk, items="{count} ф")
    assert check_catalog("uk", flat) == ["uk: items should be a plural mapping"]
    mapped = dict(good_uk, plain={"one": "a", "few": "b", "many": "c", "other": "d"})
    assert check_catalog("uk", mapped) == ["uk: plain should be a plain text, not a mapping"]
    lost = dict(
        good_uk, items={"one": "одна", "few": "{count}", "many": "{count}", "other": "{count}"}
    )
    assert check_catalog("uk", lost) == [
        "uk: items[one] placeholders differ (missing ['count'], extra [])"
    ]


def test_ukrainian_plural_categories():
    cat = i18n._plural_category
    assert [cat("uk", n) for n in (1, 2, 5, 11, 21, 22, 25, 111)] == [
        "one",
        "few",
        "many",
        "many",
        "one",
        "few",
        "many",
        "many",
    ]
    assert [cat("hy", n) for n in (0, 1, 2, 7)] == ["one", "one", "other", "other"]
