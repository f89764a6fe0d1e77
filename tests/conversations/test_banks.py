"""The role question banks: they load, fit the model, cover it, and fit a phone."""

from __future__ import annotations

import re

import pytest

from conversations.banks import (
    QUESTION_ID,
    Bank,
    count_text,
    load_banks,
    parse_bank,
    question_range,
    visible_questions,
)
from conversations.coverage import OBSERVABLE_EXEMPT, REQUIRED_DIMENSIONS, ROLE_ABBR, coverage
from conversations.model import load_model
from conversations.roles import ROLES, Role
from conversations.scales import AnswerKind, ScaleId

RICH = {
    Role.LEARNER,
    Role.PROSPECTIVE_LEARNER,
    Role.PARENT,
    Role.GRADUATE,
    Role.EMPLOYER,
    Role.EMPLOYER_SME,
}
SCHOOL_STAFF = {Role.TEACHER, Role.STAFF}
PARTNERS = set(ROLES) - RICH - SCHOOL_STAFF
MAX_TEXT = 200
CALLBACK_BYTES = 64


@pytest.fixture(scope="module")
def banks() -> dict[Role, Bank]:
    return load_banks()


@pytest.fixture(scope="module")
def model():
    return load_model()


def _texts(bank: Bank):
    yield "title", bank.title
    yield "intro", bank.intro
    for q in bank.questions:
        yield q.id, q.text
        if q.help:
            yield f"{q.id}.help", q.help
        for o in q.options:
            yield f"{q.id}.{o.id}", o.label


# -- loading and the model ------------------------------------------------------


def test_all_fifteen_banks_load_and_check_against_the_model(banks, model):
    assert set(banks) == set(ROLES)
    assert len(banks) == 15
    for role, bank in banks.items():
        assert bank.role == role
        assert bank.version >= 1
        assert bank.model_version == model.version
        bank.check_against(model)


def test_every_scale_statement_maps_to_real_qualitative_indicators(banks, model):
    index = model.index()
    for bank in banks.values():
        for q in bank.questions:
            if q.kind in ("choice", "number"):
                assert not q.indicators, f"{bank.role}/{q.id}: only statements are scored"
                continue
            if q.kind == "scale":
                assert q.scale in (ScaleId.AGM, ScaleId.EXTENT)
            # A free-text question names what its answers are evidence of (never scored).
            assert q.indicators, f"{bank.role}/{q.id}: evidence of no indicator"
            assert len(set(q.indicators)) == len(q.indicators)
            for key in q.indicators:
                assert key in index, f"{bank.role}/{q.id}: {key}"
                # A counts indicator takes a number from the school's records, not an opinion.
                assert index[key].indicator.kind != AnswerKind.NUMBER, f"{bank.role}/{q.id}"


def test_extent_statements_offer_no_not_applicable(banks):
    # The EXTENT scale has no "Not applicable"; "don't know" is the Skip button.
    for bank in banks.values():
        for q in bank.questions:
            if q.kind == "scale" and q.scale == ScaleId.EXTENT:
                assert q.allow_na is False, f"{bank.role}/{q.id}"


# -- size and wording -----------------------------------------------------------


def test_bank_sizes(banks):
    assert 12 <= len(banks[Role.LEARNER].questions) <= 25
    assert 16 <= len(banks[Role.LEARNER].questions) <= 22
    for role in RICH:
        assert 12 <= len(banks[role].questions) <= 22, role
    for role in SCHOOL_STAFF:
        assert 10 <= len(banks[role].questions) <= 17, role
    for role in PARTNERS:
        statements = [q for q in banks[role].questions if q.kind == "scale"]
        assert 6 <= len(statements) <= 10, role


def test_minutes_are_an_honest_estimate(banks):
    for bank in banks.values():
        # About 15-20 seconds a statement on a phone, rounded up.
        assert bank.minutes * 60 >= len(bank.questions) * 15, bank.role
        assert bank.minutes <= 10


def test_every_text_is_short_enough_for_a_phone(banks):
    for bank in banks.values():
        for where, text in _texts(bank):
            assert len(text) < MAX_TEXT, f"{bank.role}/{where}: {len(text)} characters"
            assert text == text.strip()
    for bank in banks.values():
        for q in bank.questions:
            if q.kind == "scale":
                assert len(q.text) <= 140, f"{bank.role}/{q.id}: ideally under 140"


def test_no_question_asks_for_identifying_or_sensitive_data(banks):
    banned = re.compile(
        r"\b(your name|e-?mail|phone|address|contact|health|ethnic|disabilit|religio|"
        r"date of birth|how old)\b",
        re.IGNORECASE,
    )
    for bank in banks.values():
        for q in bank.questions:
            if q.kind in ("choice", "number", "text"):
                assert not banned.search(q.text), f"{bank.role}/{q.id}: {q.text}"
                for o in q.options:
                    assert not banned.search(o.label), f"{bank.role}/{q.id}.{o.id}"


def test_banks_end_with_an_optional_free_text_question(banks):
    for bank in banks.values():
        last = bank.questions[-1]
        assert last.kind == "text", bank.role
        assert last.optional
        assert last.max_length == 1000
        assert last.when is None
        assert [q for q in bank.questions if q.kind == "text"] == [last]


# -- ids, callback data, branching ---------------------------------------------


def test_question_ids_unique_and_fit_callback_data(banks):
    for bank in banks.values():
        ids = [q.id for q in bank.questions]
        assert len(ids) == len(set(ids)), bank.role
        for q in bank.questions:
            assert QUESTION_ID.match(q.id), f"{bank.role}/{q.id}"
            values = [o.id for o in q.options] or ["4", "na", "skip"]
            for value in values:
                # Room to spare for a prefix and a session token whatever the format.
                data = f"a:{bank.tag}:{q.id}:{value}"
                assert data.isascii()
                assert len(data.encode()) <= CALLBACK_BYTES - 16, data
            option_ids = [o.id for o in q.options]
            assert len(option_ids) == len(set(option_ids)), f"{bank.role}/{q.id}"


def test_branch_references_are_valid(banks):
    for bank in banks.values():
        seen: dict[str, object] = {}
        routing: set[str] = set()
        for q in bank.questions:
            if q.when is not None:
                src = seen.get(q.when.question)
                assert src is not None and src.kind == "choice", f"{bank.role}/{q.id}"
                assert set(q.when.in_) <= {o.id for o in src.options}
                routing.add(src.id)
            seen[q.id] = q
        for qid in routing:
            # Questions later on depend on it: the routing answer may not be skipped.
            assert bank.question(qid).optional is False, f"{bank.role}/{qid}"
        for q in bank.questions:
            if q.kind == "choice":
                assert q.id in routing, f"{bank.role}/{q.id}: a choice that routes nothing"


def test_graduate_bank_routes_on_what_they_do_now(banks):
    bank = banks[Role.GRADUATE]
    first = bank.questions[0]
    assert first.kind == "choice"
    assert first.optional is False
    assert {"working", "studying", "looking", "other"} <= {o.id for o in first.options}
    by_branch = {
        opt: [q.id for q in bank.questions if q.when and opt in q.when.in_]
        for opt in ("working", "studying")
    }
    assert by_branch["working"]
    assert by_branch["studying"]
    for q in bank.questions:
        if q.when is not None:
            assert q.when.question == first.id
            assert q.kind == "scale"


def test_parent_and_employer_banks_branch(banks):
    parent = banks[Role.PARENT]
    assert {o.id for o in parent.questions[0].options} == {"current", "future"}
    for role in (Role.EMPLOYER, Role.EMPLOYER_SME):
        hosted = banks[role].question("hosted")
        assert hosted.kind == "choice"
        assert {o.id for o in hosted.options} == {"yes", "no"}
        assert any(q.when and "yes" in q.when.in_ for q in banks[role].questions)


# -- coverage -------------------------------------------------------------------


def test_every_observable_indicator_of_dimensions_1_and_2_is_covered(banks, model):
    table = coverage(model, banks)
    assert table.uncovered() == []
    for placed in model.placed():
        ind = placed.indicator
        if placed.dimension_id in REQUIRED_DIMENSIONS and ind.kind != AnswerKind.NUMBER:
            assert table.roles_for(ind.key) or ind.key in OBSERVABLE_EXEMPT, ind.key


def test_observable_exemptions_are_few_real_and_reasoned(model):
    index = model.index()
    assert len(OBSERVABLE_EXEMPT) <= 5
    for key, reason in OBSERVABLE_EXEMPT.items():
        assert key in index
        assert index[key].dimension_id in REQUIRED_DIMENSIONS
        assert index[key].indicator.kind != AnswerKind.NUMBER
        assert len(reason.strip()) > 10


def test_number_indicators_are_exempt_and_not_asked(banks, model):
    table = coverage(model, banks)
    numbers = [p.indicator.key for p in model.placed() if p.indicator.kind == AnswerKind.NUMBER]
    assert len(numbers) == 14
    for key in numbers:
        assert table.roles_for(key) == ()
        assert key in table.exempt()


def test_coverage_records_roles_and_question_ids(banks, model):
    table = coverage(model, banks)
    assert Role.TEACHER in table.roles_for("WS-1")
    assert "t01" in table.questions_for("WS-1")[Role.TEACHER]
    assert Role.LEARNER in table.roles_for("VL-14@1.2.3")
    # Dimension 3 is reached where a group can see it, never required.
    assert Role.TEACHER in table.roles_for("QS-8")
    assert [r.key for r in table.rows] == [p.indicator.key for p in model.placed()]


def test_uncovered_reports_a_gap(banks, model):
    # Drop the only statements on WS-6 (volunteers' micro-credentials).
    holders = [r for r in coverage(model, banks).roles_for("WS-6")]
    assert holders
    thinned = dict(banks)
    for role in holders:
        b = banks[role]
        thinned[role] = b.model_copy(
            update={"questions": [q for q in b.questions if "WS-6" not in q.indicators]}
        )
    assert coverage(model, thinned).uncovered() == ["WS-6"]
    assert "UNCOVERED: WS-6" in coverage(model, thinned).format_table()


def test_coverage_table_lists_every_covered_key_and_role(banks, model):
    table = coverage(model, banks)
    text = table.format_table()
    lines = text.splitlines()
    for key in table.covered():
        assert any(line.split()[:1] == [key] for line in lines), key
    for abbr in ROLE_ABBR.values():
        assert abbr in lines[1].split()
    row = next(line for line in lines if line.startswith("WS-1 "))
    assert row.split()[1 + ROLES.index(Role.TEACHER)] == str(
        len(table.questions_for("WS-1")[Role.TEACHER])
    )
    assert "0 uncovered" in text


def test_coverage_defaults_to_shipped_model_and_banks():
    assert coverage().uncovered() == []


# -- schema rejection -----------------------------------------------------------

BASE = """
role: learner
version: 1
model_version: "1.0.0"
title: T
intro: I
minutes: 3
questions:
"""


def _bank(questions: str) -> str:
    return BASE + questions


def test_a_minimal_bank_parses():
    bank = parse_bank(
        _bank("""
  - {id: q1, kind: choice, text: C, optional: false, options: [{id: a, label: A}, {id: b, label: B}]}
  - {id: q2, text: S, scale: AGM, indicators: [VL-1], when: {question: q1, in: [a]}}
""")
    )
    assert bank.question("q2").when.in_ == ["a"]


def test_when_naming_a_later_question_is_rejected():
    with pytest.raises(ValueError, match="earlier choice"):
        parse_bank(
            _bank("""
  - {id: q2, text: S, scale: AGM, indicators: [VL-1], when: {question: q1, in: [a]}}
  - {id: q1, kind: choice, text: C, options: [{id: a, label: A}, {id: b, label: B}]}
""")
        )


def test_when_naming_a_non_choice_question_is_rejected():
    with pytest.raises(ValueError, match="earlier choice"):
        parse_bank(
            _bank("""
  - {id: q1, text: S, scale: AGM, indicators: [VL-1]}
  - {id: q2, text: S, scale: AGM, indicators: [VL-2], when: {question: q1, in: [a]}}
""")
        )


def test_when_naming_an_unknown_option_is_rejected():
    with pytest.raises(ValueError, match="unknown options"):
        parse_bank(
            _bank("""
  - {id: q1, kind: choice, text: C, options: [{id: a, label: A}, {id: b, label: B}]}
  - {id: q2, text: S, scale: AGM, indicators: [VL-1], when: {question: q1, in: [z]}}
""")
        )


def test_scale_question_without_indicators_is_rejected():
    with pytest.raises(ValueError, match="at least one indicator"):
        parse_bank(_bank("  - {id: q1, text: S, scale: AGM}\n"))


def test_duplicate_question_id_is_rejected():
    with pytest.raises(ValueError, match="appears twice"):
        parse_bank(
            _bank("""
  - {id: q1, text: S, scale: AGM, indicators: [VL-1]}
  - {id: q1, text: S, scale: AGM, indicators: [VL-2]}
""")
        )


def test_unknown_indicator_key_is_rejected_against_the_model(model):
    bank = parse_bank(_bank("  - {id: q1, text: S, scale: AGM, indicators: [VL-99]}\n"))
    with pytest.raises(ValueError, match="unknown indicator VL-99"):
        bank.check_against(model)
    # An id the document prints twice needs its key: the bare theme-less form of
    # the second occurrence is not a key.
    bank = parse_bank(_bank("  - {id: q1, text: S, scale: AGM, indicators: [VL-14@1.2.2]}\n"))
    with pytest.raises(ValueError, match="unknown indicator"):
        bank.check_against(model)


def test_question_range_counts_every_route_of_the_shipped_banks():
    """The length a group is told: fewest..most over the routes (each routing answer taken
    every way, skipped too where it may be); one number where routing changes nothing."""
    banks = {role.value: bank for role, bank in load_banks().items()}
    assert question_range(banks["learner"]) == (22, 22)
    assert question_range(banks["parent"]) == (14, 15)  # current: 15, future: 14
    assert question_range(banks["graduate"]) == (12, 14)  # other: 12, the rest: 14
    # Once the routing answer is given, the length is settled.
    assert question_range(banks["parent"], {"child": "c:current"}) == (15, 15)
    assert question_range(banks["parent"], {"child": "c:future"}) == (14, 14)
    for bank in banks.values():
        low, high = question_range(bank)
        assert len(visible_questions(bank, {})) <= low <= high <= len(bank.questions)
    assert count_text(14, 15) == "14–15" and count_text(22, 22) == "22"


def test_an_optional_routing_question_may_be_skipped_the_shortest_route():
    bank = parse_bank(
        """
role: graduate
version: 1
model_version: "1.0.0"
title: T
intro: I
minutes: 2
questions:
  - {id: a, text: A., scale: AGM, indicators: [VL-16]}
  - id: now
    kind: choice
    text: Now?
    options: [{id: x, label: X}, {id: y, label: Y}]
  - {id: b, text: B., scale: AGM, indicators: [VL-3], when: {question: now, in: [x]}}
  - {id: c, text: C., scale: AGM, indicators: [VL-3], when: {question: now, in: [x, y]}}
"""
    )
    assert question_range(bank) == (2, 4)  # skipped: a, now; x: a, now, b, c
    assert question_range(bank, {"now": "s"}) == (2, 2)
    assert question_range(bank, {"now": "c:y"}) == (3, 3)
