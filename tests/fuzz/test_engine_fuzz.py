"""The engine under arbitrary event sequences, model-checked against a stand-in database.

From any reachable state, any event: no exception (EngineError only for a corrupt state or
bank), a refused event leaves the state as it was, the state stays JSON and under 1 KB,
and `rebuild` from the effects applied so far (SaveAnswer / DeleteAnswers ... applied to
a dict standing in for the database, as `conversations.survey` applies them) gives the live
answers and position.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conversations import engine as E
from conversations.banks import load_banks
from tests.conversations.support import BANK
from tests.fuzz.support import FUZZ

PARENT = load_banks()["parent"]
ENGINE = E.Engine.from_banks([BANK, PARENT])


def invite(bank_tag: str, cycle: int, langs: tuple[str, ...] = ("en",)) -> E.InviteInfo:
    bank = ENGINE.banks[bank_tag]
    return E.InviteInfo(
        code=f"code{cycle}",
        invite_id=cycle,
        cycle_id=cycle,
        role=bank.role.value,
        bank_tag=bank_tag,
        school_name="Fuzz School",
        languages=langs,
    )


INVITES = [invite("graduate@1", 1), invite(PARENT.tag, 2, ("en", "lv")), invite("graduate@1", 1)]
QIDS = sorted({q.id for b in ENGINE.banks.values() for q in b.questions})
VALUES = ["0", "1", "2", "3", "4", "5", "-1", "na", "back", "skip", "yes", "no"]
VALUES += ["c:work", "c:study", "c:other", "c:nope", "lang:en", "lang:lv", "lang:xx", "7", "1e9"]
VALUES += ["", " ", "nan", "inf", "3,5", "12%", "x" * 30, "\x00", "\ud800", "🙂" * 5]
TEXT = st.sampled_from(VALUES) | st.text(max_size=30)
QID = st.none() | st.sampled_from(QIDS) | st.text(max_size=8)

EVENTS = st.one_of(
    st.sampled_from(INVITES).map(E.Start),
    st.sampled_from(["unknown", "expired", "none", "used_up", "x"]).map(E.InviteRejected),
    TEXT.map(E.ChooseLanguage),
    st.booleans().map(E.Consent),
    st.builds(E.Answer, QID, TEXT),
    st.builds(E.Back, QID),
    st.builds(E.Skip, QID),
    st.sampled_from([E.Resume(), E.Restart(), E.Stop(), E.Help(), E.Privacy(), E.ShowLanguages()]),
    st.just(E.DeleteRequest()),
    st.booleans().map(E.DeleteConfirm),
)
# Walks that get somewhere: mostly the current question's own buttons, some noise.
SENSIBLE = st.one_of(
    st.just("start"), st.just("consent"), st.just("answer"), st.just("answer"), st.just("answer")
)


class FakeDB:
    """Responses by cycle, as `conversations.survey` writes them (effects, database first)."""

    def __init__(self) -> None:
        self.responses: dict[int, dict[str, Any]] = {}

    def apply(self, state: dict[str, Any], effects: tuple[E.Effect, ...]) -> None:
        for e in effects:
            if isinstance(e, E.OpenResponse):
                self.responses.setdefault(
                    e.cycle_id,
                    {"bank": e.bank_tag, "ans": {}, "status": "in_progress", "lang": e.lang},
                )["lang"] = e.lang
            elif isinstance(e, E.Erase):
                self.responses.clear()
                continue
            response = self.responses.get(state.get("cycle"))  # type: ignore[arg-type]
            if response is None:
                continue
            if isinstance(e, E.SaveAnswer):
                code = (
                    "t"
                    if e.text is not None
                    else E.answer_code(
                        value=e.value, na=e.na, number=e.number, choice=e.choice, skipped=e.skipped
                    )
                )
                response["ans"][e.question_id] = code
            elif isinstance(e, E.DeleteAnswers):
                for q in e.question_ids:
                    response["ans"].pop(q, None)
            elif isinstance(e, E.SetStatus):
                response["status"] = e.status
            elif isinstance(e, E.SetLanguage):
                response["lang"] = e.lang


def check_step(before: dict[str, Any], step: E.Step) -> None:
    raw = json.dumps(step.state, ensure_ascii=False)
    assert len(raw.encode("utf-8", "surrogatepass")) < 1024, len(raw)
    assert json.loads(raw) == step.state
    assert step.prompts, "every event gets an answer"
    if not step.changed:
        assert step.state == before, "a refused event changed the state"
        assert not step.effects, "a refused event wrote something"


def check_model(db: FakeDB, state: dict[str, Any]) -> None:
    if not state.get("opened") or state.get("stage") in ("erased", "declined"):
        return
    response = db.responses.get(state["cycle"])
    assert response is not None, "an opened state without a response row"
    assert response["ans"] == state["ans"], "live answers differ from the database"
    rebuilt = ENGINE.rebuild(
        bank_tag=response["bank"],
        cycle_id=state["cycle"],
        lang=response["lang"],
        status=response["status"],
        answers=response["ans"],
    )
    assert rebuilt["ans"] == state["ans"]
    stage = state.get("stage")
    if stage in ("language", "confirm_delete"):
        stage = state.get("after")
    if stage == "question" and state["pos"] not in state["ans"]:
        # (After Back the live position is an answered question: rebuild resumes at the
        # first open one instead, which loses no answer.)
        assert (rebuilt["stage"], rebuilt.get("pos")) == ("question", state["pos"])
    elif stage in ("done", "stopped"):
        assert rebuilt["stage"] == stage


def run(events: list[E.Event]) -> None:
    state: dict[str, Any] = {}
    db = FakeDB()
    for event in events:
        before = json.loads(json.dumps(state))
        step = ENGINE.step(state, event)
        check_step(before, step)
        db.apply(step.state, step.effects)
        state = step.state
        check_model(db, state)


@FUZZ
@given(st.lists(EVENTS, max_size=40))
def test_arbitrary_event_sequences(events: list[E.Event]) -> None:
    run(events)


@FUZZ
@given(st.lists(st.tuples(SENSIBLE, st.integers(0, 9), EVENTS), max_size=60))
def test_mostly_sensible_walks_with_noise(script: list[tuple[str, int, E.Event]]) -> None:
    """Deeper states: start, consent and real answers, with arbitrary events in between."""
    events: list[E.Event] = []
    state: dict[str, Any] = {}
    for kind, pick, noise in script:
        if pick == 0:
            event: E.Event = noise
        elif kind == "start" and not state.get("stage"):
            event = E.Start(INVITES[pick % 2])
        elif kind == "consent" or state.get("stage") == "consent":
            event = E.Consent(True)
        elif state.get("stage") == "question":
            prompt = ENGINE.render(state).prompts[0]
            ids = [c.id for c in prompt.choices + prompt.nav]
            if prompt.expects == "number":
                event = E.Answer(None, str(pick))
            elif prompt.expects == "text":
                event = E.Answer(None, f"text {pick}")
            else:
                event = E.Answer(prompt.question_id, ids[pick % len(ids)])
        else:
            event = noise
        events.append(event)
        state = ENGINE.step(state, event).state
    run(events)


@pytest.mark.parametrize(
    "state",
    [
        {"stage": "question", "bank": "nope", "pos": "x", "ans": {}},
        {"stage": "consent", "bank": "gone@9"},
        {"stage": "done", "bank": "???", "opened": True, "ans": {}},
    ],
)
def test_a_corrupt_state_raises_engine_error_only(state: dict[str, Any]) -> None:
    for event in (E.Answer(None, "1"), E.Consent(True), E.Back(), E.Resume(), E.Restart()):
        with contextlib.suppress(E.EngineError):
            ENGINE.step(state, event)


def test_rebuild_of_an_unknown_bank_is_an_engine_error() -> None:
    with pytest.raises(E.EngineError):
        ENGINE.rebuild(bank_tag="nope", cycle_id=1, lang="en", status="in_progress", answers={})


def test_parent_bank_is_walkable_to_the_end() -> None:
    state: dict[str, Any] = {}
    for event in (E.Start(INVITES[1]), E.ChooseLanguage("lang:en"), E.Consent(True)):
        state = ENGINE.step(state, event).state
    for _ in range(len(PARENT.questions) + 1):
        if state.get("stage") == "done":
            break
        prompt = ENGINE.render(state).prompts[0]
        value = prompt.choices[0].id if prompt.choices else "words"
        state = ENGINE.step(state, E.Answer(prompt.question_id, value)).state
    assert state["stage"] == "done"
