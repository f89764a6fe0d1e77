"""The survey engine, with plain sync tests (h11 style) and a small bank of our own
(tests/conversations/support.py)."""

from __future__ import annotations

import json

import pytest

from conversations import engine as E
from conversations.banks import parse_bank
from tests.conversations.support import BANK, BANK_YAML

INVITE = E.InviteInfo(
    code="abc123XYZ",
    invite_id=7,
    cycle_id=3,
    role="graduate",
    bank_tag="graduate@1",
    school_name="Ogre Tech",
)


@pytest.fixture
def eng() -> E.Engine:
    return E.Engine.from_banks([BANK])


def consented(eng: E.Engine) -> dict:
    s1 = eng.step({}, E.Start(INVITE))
    return eng.step(s1.state, E.Consent(True)).state


def test_start_shows_consent_with_thresholds_and_stores_nothing(eng):
    step = eng.step({}, E.Start(INVITE))
    assert step.effects == ()
    p = step.prompts[0]
    assert p.kind == "consent"
    assert "5 or more" in p.text and "10 or more" in p.text and "Ogre Tech" in p.text
    assert [c.id for c in p.choices] == ["yes", "no"]


def test_decline_stores_nothing_and_forgets_invite(eng):
    s1 = eng.step({}, E.Start(INVITE))
    s2 = eng.step(s1.state, E.Consent(False))
    assert s2.effects == ()
    assert s2.state["stage"] == "declined"
    assert s2.state["inv"] == {"school": "Ogre Tech"}  # the code is forgotten, the header kept


def test_consent_opens_response_and_shows_first_question(eng):
    s1 = eng.step({}, E.Start(INVITE))
    s2 = eng.step(s1.state, E.Answer(None, "yes"))
    assert s2.effects == (E.OpenResponse("abc123XYZ", 3, "graduate", "graduate@1", "en", "1.0.0"),)
    p = s2.prompts[0]
    assert p.kind == "question" and p.question_id == "g01"
    # Routing still to come: 4 to 6 questions (other: 4, study: 5, work: 6).
    assert p.progress == (1, 4) and p.progress_upto == 6
    assert E.progress_label(E.Translator("en"), p) == "Question 1 of 4–6"
    assert [c.label for c in p.choices] == [
        "Strongly agree",
        "Agree",
        "Neither agree nor disagree",
        "Disagree",
        "Strongly disagree",
    ]
    assert [c.id for c in p.nav] == ["na", "skip"]  # no Back on the first question


def test_happy_path_with_branch_to_completion(eng):
    st = consented(eng)
    s = eng.step(st, E.Answer("g01", "4"))
    assert s.answer == E.SaveAnswer("g01", value=4)
    s = eng.step(s.state, E.Answer("g02", "2"))
    assert s.prompts[0].question_id == "now"
    assert [c.id for c in s.prompts[0].nav] == ["back"]  # not optional, no N/A
    s = eng.step(s.state, E.Answer("now", "c:work"))
    assert s.answer == E.SaveAnswer("now", choice="work")
    assert s.prompts[0].question_id == "g03"
    assert s.prompts[0].progress == (4, 6) and s.prompts[0].progress_upto is None  # settled
    assert E.progress_label(E.Translator("en"), s.prompts[0]) == "Question 4 of 6"
    s = eng.step(s.state, E.Answer("g03", "na"))
    assert s.answer == E.SaveAnswer("g03", na=True)
    s = eng.step(s.state, E.Answer(None, "12"))
    assert s.answer == E.SaveAnswer("g04", number=12.0)
    assert s.prompts[0].expects == "text"
    s = eng.step(s.state, E.Answer(None, "  more   mentors "))
    assert s.answer == E.SaveAnswer("free", text="more mentors", free_text=True)
    assert E.SetStatus("completed") in s.effects
    assert s.state["stage"] == "done"
    assert s.prompts[0].final
    assert s.state["ans"] == {
        "g01": "4",
        "g02": "2",
        "now": "c:work",
        "g03": "na",
        "g04": "n:12",
        "free": "t",
    }
    assert len(json.dumps(s.state)) < 600  # a few hundred bytes in Redis


def test_other_branch_skips_both_conditional_questions(eng):
    st = consented(eng)
    for qid, v in (("g01", "3"), ("g02", "3"), ("now", "c:other")):
        st = eng.step(st, E.Answer(qid, v)).state
    assert st["pos"] == "free"


def test_changing_a_routing_answer_drops_hidden_answers(eng):
    st = consented(eng)
    for qid, v in (("g01", "3"), ("g02", "3"), ("now", "c:work"), ("g03", "4")):
        st = eng.step(st, E.Answer(qid, v)).state
    assert st["pos"] == "g04"
    st = eng.step(st, E.Back("g04")).state
    st = eng.step(st, E.Back("g03")).state
    assert st["pos"] == "now"
    s = eng.step(st, E.Answer("now", "c:study"))
    assert E.DeleteAnswers(("g03",)) in s.effects
    assert "g03" not in s.state["ans"]
    assert s.state["pos"] == "g04"


@pytest.mark.parametrize(
    ("typed", "notice"),
    [
        ("twelve", "That is not a number"),
        ("3.5", "whole number"),
        ("51", "between 0 and 50"),
        ("-1", "between 0 and 50"),
        ("nan", "That is not a number"),
        ("1e400", "That is not a number"),
    ],
)
def test_bad_number_reprompts_and_leaves_state_unchanged(eng, typed, notice):
    st = consented(eng)
    for qid, v in (("g01", "3"), ("g02", "3"), ("now", "c:study")):
        st = eng.step(st, E.Answer(qid, v)).state
    before = json.dumps(st, sort_keys=True)
    s = eng.step(st, E.Answer(None, typed))
    assert not s.changed and s.effects == ()
    assert json.dumps(s.state, sort_keys=True) == before
    assert s.prompts[0].question_id == "g04"
    assert notice in s.prompts[0].notice


def test_number_accepts_decimal_comma_when_integer(eng):
    st = consented(eng)
    for qid, v in (("g01", "3"), ("g02", "3"), ("now", "c:study")):
        st = eng.step(st, E.Answer(qid, v)).state
    assert eng.step(st, E.Answer(None, "7,0")).answer == E.SaveAnswer("g04", number=7.0)


def test_text_limits(eng):
    st = consented(eng)
    for qid, v in (("g01", "3"), ("g02", "3"), ("now", "c:other")):
        st = eng.step(st, E.Answer(qid, v)).state
    s = eng.step(st, E.Answer(None, "x" * 21))
    assert not s.changed and "21 characters" in s.prompts[0].notice
    s = eng.step(st, E.Answer(None, "   "))
    assert not s.changed and "few words" in s.prompts[0].notice


def test_scale_question_refuses_typed_text_and_wrong_values(eng):
    st = consented(eng)
    for bad in ("hello", "5", "c:work", "na "):
        s = eng.step(st, E.Answer("g01", bad))
        if bad == "na ":  # stripped: a valid N/A
            assert s.changed
            continue
        assert not s.changed and s.effects == () and s.state == st
        assert s.prompts[0].notice == "Please tap one of the buttons below."


def test_na_refused_where_not_allowed(eng):
    st = eng.step(consented(eng), E.Answer("g01", "4")).state
    s = eng.step(st, E.Answer("g02", "na"))
    assert not s.changed


def test_button_from_an_old_message_is_handled_gracefully(eng):
    st = eng.step(consented(eng), E.Answer("g01", "4")).state
    s = eng.step(st, E.Answer("g01", "2"))  # tap on the old card
    assert not s.changed and s.effects == ()
    assert s.prompts[0].question_id == "g02"
    assert "another question" in s.prompts[0].notice
    s = eng.step(st, E.Answer("zzz", "2"))
    assert not s.changed


def test_back_and_skip(eng):
    st = consented(eng)
    s = eng.step(st, E.Back())
    assert not s.changed and s.prompts[0].notice == "This is the first question."
    s = eng.step(st, E.Skip("g01"))
    assert s.answer == E.SaveAnswer("g01", skipped=True)
    s = eng.step(s.state, E.Answer("g02", "back"))
    assert s.state["pos"] == "g01"
    assert s.prompts[0].current == "s"
    assert s.effects == ()


def test_routing_question_cannot_be_skipped(eng):
    st = consented(eng)
    for qid, v in (("g01", "3"), ("g02", "3")):
        st = eng.step(st, E.Answer(qid, v)).state
    s = eng.step(st, E.Skip())
    assert not s.changed and "can't be skipped" in s.prompts[0].notice


def test_stop_and_resume(eng):
    st = eng.step(consented(eng), E.Answer("g01", "4")).state
    s = eng.step(st, E.Stop())
    assert s.effects == (E.SetStatus("stopped"),)
    assert s.state["stage"] == "stopped"
    s = eng.step(s.state, E.Resume())
    assert s.effects == (E.SetStatus("in_progress"),)
    assert s.prompts[0].question_id == "g02"


def test_restart_clears_answers(eng):
    st = eng.step(consented(eng), E.Answer("g01", "4")).state
    s = eng.step(st, E.Restart())
    assert E.DeleteAnswers(("g01",)) in s.effects
    assert s.state["ans"] == {} and s.state["pos"] == "g01"


def test_delete_flow_confirm_and_cancel(eng):
    st = eng.step(consented(eng), E.Answer("g01", "4")).state
    s = eng.step(st, E.DeleteRequest())
    assert s.prompts[0].kind == "confirm"
    cancel = eng.step(s.state, E.Answer(None, "no"))
    assert cancel.effects == ()
    assert cancel.state["stage"] == "question" and cancel.state["pos"] == "g02"
    assert cancel.prompts[0].notice == "Nothing was erased."
    yes = eng.step(s.state, E.DeleteConfirm(True))
    assert yes.effects == (E.Erase(),)
    # Nothing of the person is kept; the school's name stays for the page's header.
    assert yes.state == {"v": 1, "stage": "erased", "lang": "en", "inv": {"school": "Ogre Tech"}}
    # a tapped button after /delete: nothing happens to storage
    after = eng.step(yes.state, E.Answer("g02", "3"))
    assert after.effects == () and not after.changed


def test_start_again_with_same_cycle_resumes(eng):
    st = eng.step(consented(eng), E.Answer("g01", "4")).state
    s = eng.step(st, E.Start(INVITE))
    assert s.effects == ()
    assert s.prompts[0].question_id == "g02"


def test_rebuild_from_database_matches_live_state(eng):
    st = consented(eng)
    for qid, v in (("g01", "3"), ("g02", "1"), ("now", "c:work")):
        st = eng.step(st, E.Answer(qid, v)).state
    rebuilt = eng.rebuild(
        bank_tag="graduate@1",
        cycle_id=3,
        lang="en",
        status="in_progress",
        answers={"g01": "3", "g02": "1", "now": "c:work", "gone": "4"},
    )
    assert rebuilt["pos"] == st["pos"] == "g03"
    assert rebuilt["ans"] == st["ans"]
    assert (
        eng.rebuild(bank_tag="graduate@1", cycle_id=3, lang="en", status="completed", answers={})[
            "stage"
        ]
        == "done"
    )


def test_answer_code_round_trip():
    assert E.answer_code(value=3, na=False, number=None, choice=None, skipped=False) == "3"
    assert E.answer_code(value=None, na=True, number=None, choice=None, skipped=False) == "na"
    assert E.answer_code(value=None, na=False, number=2.5, choice=None, skipped=False) == "n:2.5"
    assert E.answer_code(value=None, na=False, number=None, choice="w", skipped=False) == "c:w"
    assert E.answer_code(value=None, na=False, number=None, choice=None, skipped=True) == "s"
    assert E.answer_code(value=None, na=False, number=None, choice=None, skipped=False) == "t"


def test_language_choice_when_school_offers_several(eng, monkeypatch):
    import dataclasses

    inv = dataclasses.replace(INVITE, languages=("en", "de"))
    s = eng.step({}, E.Start(inv))
    assert s.prompts[0].kind == "language"
    assert [c.id for c in s.prompts[0].choices] == ["lang:en", "lang:de"]
    bad = eng.step(s.state, E.Answer(None, "lang:fr"))
    assert not bad.changed
    ok = eng.step(s.state, E.ChooseLanguage("lang:en"))
    assert ok.state["stage"] == "consent" and ok.effects == ()


def test_unknown_state_bank_raises(eng):
    with pytest.raises(E.EngineError):
        eng.step(
            {"stage": "question", "bank": "nope@9", "pos": "a", "ans": {}}, E.Answer(None, "1")
        )


def test_help_and_privacy_keep_state(eng):
    st = consented(eng)
    for ev in (E.Help(), E.Privacy()):
        s = eng.step(st, ev)
        assert not s.changed and s.state == st
        assert s.prompts[-1].question_id == "g01"
    assert "5 or more" in eng.step(st, E.Privacy()).prompts[0].text


def test_not_applicable_only_on_scales_that_have_it():
    bank = parse_bank(
        BANK_YAML.replace("allow_na: false}", "allow_na: true}")  # g02: EXTENT, has no N/A
    )
    eng = E.Engine.from_banks([bank])
    st = eng.step(consented(eng), E.Answer("g01", "4")).state
    assert [c.id for c in eng.render(st).prompts[0].nav] == ["back", "skip"]
    assert not eng.step(st, E.Answer("g02", "na")).changed


def test_the_consent_card_says_the_range_of_questions(eng):
    """Routing changes the length: the consent card says "4–6", not the 4 asked before the
    routing answer (the progress then counts within it)."""
    p = eng.step({}, E.Start(INVITE)).prompts[0]
    assert "About 3 minutes, 4–6 short questions." in p.text
