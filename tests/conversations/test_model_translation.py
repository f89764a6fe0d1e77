"""The model's statements come from the catalogs: every text keyed, every language complete,
and the translated model keeps every id, key, kind and bound of the source."""

from __future__ import annotations

import pytest

from conversations.i18n import Translator, check_catalog, localized_model, source_messages
from conversations.model import load_model, model_messages, translate_model


def test_every_shown_text_of_the_model_has_a_key():
    model = load_model()
    msgs = model_messages(model)
    placed = model.placed()
    assert len([k for k in msgs if k.startswith("model.ind.") and k.count(".") == 2]) >= 60
    for p in placed:
        i = p.indicator
        assert msgs[f"model.ind.{i.key}"] == i.text
        if i.verification:
            assert msgs[f"model.ind.{i.key}.verification"] == i.verification
        if i.number:
            assert msgs[f"model.ind.{i.key}.unit"] == i.number.unit
    assert len([k for k in msgs if k.startswith("model.theme.") and k.count(".") == 4]) == 15
    assert {"model.dim.1", "model.dim.2", "model.dim.3", "model.title"} <= set(msgs)
    assert set(msgs) <= set(source_messages())


@pytest.mark.parametrize("lang", ["hy", "uk"])
def test_the_model_is_translated_completely(lang):
    problems = [p for p in check_catalog(lang) if ": model." in p]
    assert problems == []


@pytest.mark.parametrize("lang", ["hy", "uk"])
def test_a_translated_model_keeps_its_structure(lang):
    src, tr = load_model(), localized_model(lang)
    assert (tr.model_id, tr.version) == (src.model_id, src.version)
    pairs = list(zip(src.placed(), tr.placed(), strict=True))
    for a, b in pairs:
        assert (a.indicator.key, a.indicator.id, a.indicator.kind) == (
            b.indicator.key,
            b.indicator.id,
            b.indicator.kind,
        )
        assert (a.theme_id, a.criterion_id, a.dimension_id) == (
            b.theme_id,
            b.criterion_id,
            b.dimension_id,
        )
        assert (a.indicator.number is None) == (b.indicator.number is None)
        if a.indicator.number:
            assert (a.indicator.number.min, a.indicator.number.max) == (
                b.indicator.number.min,
                b.indicator.number.max,
            )
    changed = sum(a.indicator.text != b.indicator.text for a, b in pairs)
    assert changed == len(pairs), "every indicator statement is translated"
    script = {"hy": range(0x0530, 0x0590), "uk": range(0x0400, 0x0500)}[lang]
    fl1 = tr.indicator("FL-1").text
    assert any(ord(ch) in script for ch in fl1), fl1
    assert tr.dimensions[0].title != src.dimensions[0].title


def test_english_is_the_source_itself():
    assert localized_model("en") is load_model()


def test_an_untranslated_text_falls_back_to_english():
    class Partial:
        def __call__(self, key, default=None, **_kw):
            return "ПЕРЕКЛАД" if key == "model.ind.FL-1" else default

    out = translate_model(load_model(), Partial())
    assert out.indicator("FL-1").text == "ПЕРЕКЛАД"
    assert out.indicator("FL-2").text == load_model().indicator("FL-2").text


def test_the_checker_reports_a_missing_model_text():
    from conversations.i18n import load_catalog

    messages = dict(load_catalog("uk").messages)
    del messages["model.ind.VL-3"]
    assert "uk: model.ind.VL-3 is missing or empty" in check_catalog("uk", messages)


def test_the_translator_reads_model_keys():
    english = load_model().dimensions[0].title
    assert Translator("en")("model.dim.1", default=english) == english
    assert Translator("uk")("model.dim.1", default=english) != english
