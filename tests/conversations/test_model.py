"""The ETF excellence model as data: it loads, matches the seed, and the schema guards it."""

from __future__ import annotations

import copy
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from conversations.model import MODEL_FILE, ExcellenceModel, load_model, parse_model
from conversations.scales import SCALES, AnswerKind, ScaleId, get_scale

MODEL_DIR = Path(__file__).resolve().parents[2] / "conversations" / "data" / "model"
SEED = MODEL_DIR / "source-etf-excellence-model.txt"
ID_RE = re.compile(r"[A-Z]{2}-\d+(\.\d+)?")

EXPECTED_IDS = {
    # FL (15)
    "FL-1", "FL-2", "FL-3", "FL-3.1", "FL-4", "FL-4.1", "FL-4.2", "FL-5",
    "FL-6", "FL-7", "FL-8", "FL-9", "FL-10", "FL-11", "FL-12",
    # VL (17)
    "VL-1", "VL-2", "VL-3", "VL-4", "VL-5", "VL-6", "VL-7", "VL-8", "VL-9",
    "VL-10", "VL-11", "VL-12", "VL-13", "VL-13.1", "VL-14", "VL-15", "VL-16",
    # ME (5)
    "ME-1", "ME-2", "ME-3", "ME-4", "ME-5",
    # CC (10)
    "CC-1", "CC-2", "CC-3", "CC-4", "CC-5", "CC-5.1", "CC-6", "CC-6.1", "CC-7", "CC-8",
    # WS (10)
    "WS-1", "WS-2", "WS-3", "WS-4", "WS-5", "WS-6", "WS-7", "WS-7.1", "WS-8", "WS-9",
    # QS (9)
    "QS-1", "QS-2", "QS-3", "QS-4", "QS-5", "QS-6", "QS-7", "QS-8", "QS-9",
    # GN (2)
    "GN-1", "GN-2",
}  # fmt: skip

EXPECTED_COUNTS = {"FL": 15, "VL": 17, "ME": 5, "CC": 10, "WS": 10, "QS": 9, "GN": 2}

NUMBER_IDS = {
    "FL-3.1", "FL-4.1", "FL-4.2", "FL-5", "VL-9", "VL-10", "VL-11", "VL-12",
    "VL-13.1", "VL-15", "VL-16", "CC-5.1", "CC-6.1", "WS-7.1",
}  # fmt: skip

# Indicators the seed gives no means of verification for (beyond the NUMBER ones);
# each must say so in its note.
NO_VERIFICATION = {"FL-12", "VL-6"}

DUPLICATED = {"VL-14": "1.2.3", "CC-5": "2.1.2", "CC-6": "2.1.2"}

EXPECTED_THEMES = [
    "1.1.1", "1.1.2", "1.1.3", "1.2.1", "1.2.2", "1.2.3", "1.3.1", "1.4.1",
    "2.1.1", "2.1.2", "2.2.1", "2.2.2", "3.1.1", "3.1.2", "3.1.3",
]  # fmt: skip


def _raw() -> dict:
    return yaml.safe_load((MODEL_DIR / MODEL_FILE).read_text(encoding="utf-8"))


def _themes(m: ExcellenceModel):
    return {t.id: t for d in m.dimensions for c in d.criteria for t in c.themes}


# -- loading ---------------------------------------------------------------------------


def test_model_loads_and_validates():
    m = load_model()
    assert isinstance(m, ExcellenceModel)
    assert m.model_id == "etf-cg-vet"
    assert m.version == "1.0.0"
    assert "ISATCOVE" in m.source and "ENE" in m.source
    # The packaged file and the repository file are the same document.
    assert parse_model((MODEL_DIR / MODEL_FILE).read_text(encoding="utf-8")) == m


def test_structure():
    m = load_model()
    assert [d.id for d in m.dimensions] == ["1", "2", "3"]
    assert m.dimensions[0].title == "Career guidance activities of the VET provider"
    criteria = {c.id: c for d in m.dimensions for c in d.criteria}
    assert {k: c.code for k, c in criteria.items()} == {
        "1.1": "FL",
        "1.2": "VL",
        "1.3": None,
        "1.4": "ME",
        "2.1": "CC",
        "2.2": "WS",
        "3.1": "QS",
    }
    assert criteria["1.1"].title == "Provides career guidance to potential future VET learners (FL)"
    themes = _themes(m)
    assert list(themes) == EXPECTED_THEMES
    assert themes["1.1.1"].title == (
        "Reaches out to potential future VET learners and their parents/guardians in primary "
        "and secondary schools including in rural/ remote areas"
    )
    assert {i.id for i in themes["3.1.3"].indicators} == {"GN-1", "GN-2"}
    # Every indicator sits under the criterion its prefix names (GN sits in 3.1).
    prefix_criterion = {"FL": "1.1", "VL": "1.2", "ME": "1.4", "CC": "2.1", "WS": "2.2"}
    prefix_criterion |= {"QS": "3.1", "GN": "3.1"}
    for p in m.placed():
        assert p.criterion_id == prefix_criterion[p.indicator.id[:2]], p.indicator.key


def test_closing_question():
    q = load_model().closing_question
    assert q.text == (
        "Give example(s) of recent inspiring practice in career guidance at your school or "
        "centre (during the last 12 months)"
    )
    assert q.help and "inspiring or innovative" in q.help


# -- ids against the expected set and the seed -------------------------------------------


def test_distinct_ids_are_the_expected_68():
    ids = {p.indicator.id for p in load_model().placed()}
    assert len(EXPECTED_IDS) == 68
    assert ids == EXPECTED_IDS
    assert Counter(i.split("-")[0] for i in ids) == EXPECTED_COUNTS


def test_ids_match_the_seed():
    """Every id the seed prints is in the model and vice versa.

    No filtering is applied: the raw regex over the whole seed yields exactly the 68 ids.
    OCR noise does not add false ids: "VII. C. Doouweentstien" (a garbled double of the
    "VL-6. Documentation (pictures/" line below it) has no "XX-n" shape, so it simply
    fails to match. Misprinted labels ("CC-2." beside CC-8's verification, "QS-8." beside
    QS-7's) and "FL-6/7 as above" repeat ids that exist anyway, so the set is unaffected.
    """
    seed = SEED.read_text(encoding="utf-8")
    found = {m.group(0) for m in ID_RE.finditer(seed)}
    model_ids = {p.indicator.id for p in load_model().placed()}
    assert found == model_ids == EXPECTED_IDS
    # Honesty checks on the regex: word boundaries change nothing (no id glued into a
    # longer token), and the known OCR noise is really there and really unmatched.
    bounded = {m.group(0) for m in re.finditer(r"\b[A-Z]{2}-\d+(?:\.\d+)?\b", seed)}
    assert bounded == found
    assert "VII. C." in seed
    assert not ID_RE.search("VII. C. Doouweentstien /mistures /")


def test_keys_unique_and_counts():
    placed = load_model().placed()
    keys = [p.indicator.key for p in placed]
    assert len(keys) == 71
    assert len(set(keys)) == 71


# -- kinds, reasons, verification ----------------------------------------------------------


def test_number_indicators_exactly():
    m = load_model()
    number = {p.indicator.id for p in m.placed() if p.indicator.kind == AnswerKind.NUMBER}
    assert number == NUMBER_IDS
    for p in m.placed():
        i = p.indicator
        if i.kind == AnswerKind.NUMBER:
            assert i.number is not None and i.number.unit.strip()
            assert i.number.min == 0 and i.number.max > 0
        else:
            assert i.number is None


def test_number_specs():
    m = load_model()
    fl31 = m.indicator("FL-3.1").number
    assert fl31 is not None
    assert fl31.breakdown == ["primary", "secondary"]
    assert fl31.unit == "school visits per year"
    assert fl31.kind == "count" and fl31.integer
    ws71 = m.indicator("WS-7.1").number
    assert ws71 is not None
    assert (ws71.kind, ws71.unit, ws71.min, ws71.max, ws71.integer) == ("rate", "%", 0, 100, False)
    for key in NUMBER_IDS - {"WS-7.1"}:
        spec = m.indicator(key).number
        assert spec is not None and spec.kind == "count" and spec.integer, key
    assert [k for k in NUMBER_IDS if m.indicator(k).number.breakdown] == ["FL-3.1"]


def test_every_indicator_has_a_reason_and_a_verification_or_a_note():
    for p in load_model().placed():
        i = p.indicator
        assert i.kind_reason.strip(), i.key
        if i.verification is None:
            assert i.kind == AnswerKind.NUMBER or i.key in NO_VERIFICATION, i.key
            assert i.note and "no means of verification" in i.note, i.key
        else:
            assert i.verification.strip(), i.key
    # Only the expected non-NUMBER indicators lack a verification.
    m = load_model()
    missing = {
        p.indicator.key
        for p in m.placed()
        if p.indicator.verification is None and p.indicator.kind != AnswerKind.NUMBER
    }
    assert missing == NO_VERIFICATION


def test_scale_choices_follow_the_rules():
    m = load_model()
    time = {p.indicator.key for p in m.placed() if p.indicator.kind == AnswerKind.TIME}
    assert time == {"WS-1", "WS-9", "QS-6", "QS-8", "QS-9"}
    for key in time:
        assert re.search(r"at least|bi-annually", m.indicator(key).text), key
    yn = {p.indicator.key for p in m.placed() if p.indicator.kind == AnswerKind.YN}
    assert {"CC-1", "VL-7", "VL-14"} <= yn  # advisory board, physical space, online space


# -- the duplicated ids and the includes ---------------------------------------------------


def test_duplicated_ids_have_two_noted_occurrences():
    m = load_model()
    by_id: dict[str, list] = {}
    for p in m.placed():
        by_id.setdefault(p.indicator.id, []).append(p)
    assert {i for i, ps in by_id.items() if len(ps) > 1} == set(DUPLICATED)
    for pid, second_theme in DUPLICATED.items():
        first, second = by_id[pid]
        assert first.indicator.key == pid
        assert second.indicator.key == f"{pid}@{second_theme}"
        assert second.theme_id == second_theme
        assert first.indicator.text != second.indicator.text
        for occ, other in ((first, second), (second, first)):
            note = occ.indicator.note
            assert note and pid in note, occ.indicator.key
            assert occ.theme_id in note and other.indicator.key in note, occ.indicator.key
        assert "first" in first.indicator.note and "second" in second.indicator.note
    themes = _themes(m)
    assert [i.key for i in themes["2.1.2"].indicators][:4] == [
        "CC-5@2.1.2",
        "CC-5.1",
        "CC-6@2.1.2",
        "CC-6.1",
    ]
    assert "online space" in m.indicator("VL-14").text
    assert "volunteering, internships" in m.indicator("VL-14@1.2.3").text


def test_includes_resolve():
    m = load_model()
    keys = set(m.index())
    for t in _themes(m).values():
        assert set(t.includes) <= keys, t.id
    assert m.theme_members("1.2.3") == ["VL-14@1.2.3", "VL-15", "VL-16", "FL-6", "FL-7"]
    alumni = _themes(m)["1.3.1"]
    assert alumni.indicators == []
    assert alumni.includes == ["FL-6", "FL-7", "VL-14@1.2.3", "VL-15", "VL-16"]
    assert alumni.note and "maintain access rights" in alumni.note
    # FL-6 and FL-7 are defined once, in 1.1.3.
    assert m.index()["FL-6"].theme_id == m.index()["FL-7"].theme_id == "1.1.3"


def test_fl6_text_is_complete():
    text = load_model().indicator("FL-6").text
    assert text == (
        "Comprehensively and systematically uses labour market and skills intelligence "
        "to inform career guidance work"
    )
    assert not text.endswith("career")


def test_texts_are_whole():
    for p in load_model().placed():
        t = p.indicator.text
        assert "  " not in t and "\n" not in t, p.indicator.key
        assert not t.endswith(("-", "/", ",", " to", " and", " of")), p.indicator.key


# -- pairing traps -------------------------------------------------------------------------


def test_row_1_2_2_verifications_shifted_by_one():
    m = load_model()
    # Printed "VL-6." beside VL-7: pictures and online sources of the physical space.
    assert m.indicator("VL-7").verification == (
        "Documentation (pictures/ links to online sources/ etc.) and examples"
    )
    # Printed "VL-7." beside VL-8: documentation of the welcoming session, not the
    # teachers' feedback on referrals (that is VL-9's, printed "VL-8.").
    vl8 = m.indicator("VL-8").verification
    assert vl8 == (
        "Annual work plan; Documentation (report/ pictures/ activity programme etc.) and examples"
    )
    assert "feedback" not in vl8.lower() and "referral" not in vl8.lower()
    assert "identifying learners for referral" in m.indicator("VL-9").verification
    assert m.indicator("VL-12").verification.startswith("Feedback of related services")
    assert "mentoring" in m.indicator("VL-13").verification
    assert m.indicator("VL-14").verification == "Link to online resources"
    assert m.indicator("VL-6").verification is None
    for key, label in {
        "VL-7": "VL-6.",
        "VL-8": "VL-7.",
        "VL-9": "VL-8.",
        "VL-14": "VL-13.",
    }.items():
        assert f'"{label}"' in m.indicator(key).note, key


def test_misprinted_labels():
    m = load_model()
    assert m.indicator("CC-8").verification == (
        "annual work plan, documentation (activity programmes, meeting minutes, pictures, etc.) "
        "and examples of cooperation"
    )
    assert '"CC-2."' in m.indicator("CC-8").note
    assert m.indicator("CC-2").verification.endswith("examples of engagement")
    assert (
        m.indicator("QS-7").verification == "Meeting agendas, written texts, annual activity plan"
    )
    assert '"QS-8."' in m.indicator("QS-7").note
    assert m.indicator("QS-8").verification.startswith("Training certificates")


# -- the schema rejects bad data -------------------------------------------------------------


def _tiny() -> dict:
    return {
        "model_id": "t",
        "version": "0",
        "title": "T",
        "source": "S",
        "dimensions": [
            {
                "id": "1",
                "title": "D",
                "criteria": [
                    {
                        "id": "1.1",
                        "code": "FL",
                        "title": "C",
                        "themes": [
                            {
                                "id": "1.1.1",
                                "title": "Th",
                                "indicators": [
                                    {
                                        "key": "FL-1",
                                        "id": "FL-1",
                                        "text": "Does it",
                                        "kind": "EXTENT",
                                        "kind_reason": "A matter of degree.",
                                    },
                                    {
                                        "key": "FL-2",
                                        "id": "FL-2",
                                        "text": "Nr. of things",
                                        "kind": "NUMBER",
                                        "kind_reason": "A count.",
                                        "number": {"unit": "things per year"},
                                    },
                                ],
                            }
                        ],
                    }
                ],
            }
        ],
        "closing_question": {"text": "Q"},
    }


def _indicators(d: dict) -> list[dict]:
    return d["dimensions"][0]["criteria"][0]["themes"][0]["indicators"]


def test_tiny_model_is_valid():
    m = ExcellenceModel.model_validate(_tiny())
    assert [p.indicator.key for p in m.placed()] == ["FL-1", "FL-2"]
    assert parse_model(yaml.safe_dump(_tiny())) == m


def test_rejects_number_without_spec():
    d = _tiny()
    del _indicators(d)[1]["number"]
    with pytest.raises(ValidationError, match="NUMBER"):
        ExcellenceModel.model_validate(d)


def test_rejects_spec_on_a_scale_indicator():
    d = _tiny()
    _indicators(d)[0]["number"] = {"unit": "x"}
    with pytest.raises(ValidationError):
        ExcellenceModel.model_validate(d)


def test_rejects_duplicate_key():
    d = _tiny()
    _indicators(d)[1] = copy.deepcopy(_indicators(d)[0])
    with pytest.raises(ValidationError, match="appears twice"):
        ExcellenceModel.model_validate(d)


def test_rejects_unknown_include():
    d = _tiny()
    d["dimensions"][0]["criteria"][0]["themes"][0]["includes"] = ["FL-9"]
    with pytest.raises(ValidationError, match="unknown indicator"):
        ExcellenceModel.model_validate(d)


@pytest.mark.parametrize("bad_id", ["FL1", "fl-1", "F-1", "FL-1a", "FL-1.", "VII. C."])
def test_rejects_bad_id(bad_id):
    d = _tiny()
    _indicators(d)[0]["id"] = bad_id
    _indicators(d)[0]["key"] = bad_id
    with pytest.raises(ValidationError):
        ExcellenceModel.model_validate(d)


def test_rejects_key_not_matching_id():
    d = _tiny()
    _indicators(d)[0]["key"] = "FL-3"
    with pytest.raises(ValidationError, match="must be its id"):
        ExcellenceModel.model_validate(d)


def test_rejects_unknown_field_and_bad_rate():
    d = _tiny()
    _indicators(d)[0]["scale"] = "EXTENT"
    with pytest.raises(ValidationError):
        ExcellenceModel.model_validate(d)
    d = _tiny()
    _indicators(d)[1]["number"] = {"unit": "%", "kind": "rate", "max": 150}
    with pytest.raises(ValidationError, match="rate"):
        ExcellenceModel.model_validate(d)


def test_shipped_file_mutated_is_rejected():
    d = _raw()
    d["dimensions"][0]["criteria"][1]["themes"][2]["includes"].append("VL-99")
    with pytest.raises(ValidationError):
        parse_model(yaml.safe_dump(d))


# -- scales ------------------------------------------------------------------------------------


SEED_SCALES = {
    ScaleId.EXTENT: [
        "To a large extent",
        "To some extent",
        "To a little extent",
        "Planned or in development",
        "Not at all",
    ],
    ScaleId.TIME: [
        "Every 1-2 years",
        "Between every 2 and 5 years",
        "More than every 5 years",
        "Planned or in development",
        "Never",
    ],
    ScaleId.YN: [
        "Fully achieved",
        "Mostly achieved",
        "Partially achieved",
        "Planned or in development",
        "Not achieved",
    ],
    ScaleId.AGM: [
        "Strongly agree",
        "Agree",
        "Neither agree nor disagree",
        "Disagree",
        "Strongly disagree",
    ],
}


def test_scales_as_printed_in_the_seed():
    assert set(SCALES) == set(SEED_SCALES)
    seed = SEED.read_text(encoding="utf-8")
    for sid, labels in SEED_SCALES.items():
        scale = get_scale(sid)
        assert [p.label for p in scale.points] == labels, sid
        assert scale.values == (4, 3, 2, 1, 0), sid
        for n, label in enumerate(labels, start=1):
            # The seed's row: "<n> <label>\t<value>".
            assert f"{n} {label}\t{4 - n + 1}" in seed, (sid, label)
        assert scale.label(4) == labels[0] and scale.label(0) == labels[-1]
        with pytest.raises(ValueError):
            scale.label(5)
    assert get_scale("AGM").has_na
    assert not any(get_scale(s).has_na for s in ("EXTENT", "TIME", "YN"))


def test_answer_kinds_used_by_the_model():
    kinds = {p.indicator.kind for p in load_model().placed()}
    assert kinds == {AnswerKind.EXTENT, AnswerKind.TIME, AnswerKind.YN, AnswerKind.NUMBER}
