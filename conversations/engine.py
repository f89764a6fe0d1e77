"""The survey flow engine: `step(state, event) -> Step(state', prompts, effects)`. No I/O.

Rules of the table below (read with h11's `_state.py` in mind):
- The state is a plain JSON-serialisable dict of a few hundred bytes; a fresh one is `{}`.
- Stages (`Stage`, with named sets such as AWAITING and ACTIVE): (none) -> language? ->
  consent -> question* -> done; `stopped`, `declined`, `erased` are rests; `confirm_delete`
  and `language` remember the stage to return to.
- Bad input (a number out of bounds, a tap on another question's button, text where a
  button is due) never advances the flow: the state is returned unchanged and the prompt
  is repeated with a `notice` saying what is wanted.
- The engine never writes anywhere; it returns `effects` (save this answer, open the
  response, erase ...) that the channel applies to storage, database first.
- Answers are kept in the state as short codes so that the position can be rebuilt
  from the database at any time (`rebuild`): "0".."4" scale value, "na", "s" skipped,
  "c:<option>" routing choice, "n:<number>", "t" free text given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from conversations.banks import Bank, Question, count_text, question_range, visible_questions
from conversations.i18n import (
    Translator,
    available_languages,
    format_number,
    language_name,
    parse_number,
)
from conversations.scales import NA, get_scale

STATE_VERSION = 1


class Stage(StrEnum):
    """Where a respondent stands (`state["stage"]`; no stage: nothing started)."""

    LANGUAGE = "language"  # choosing a language (remembers the stage to return to)
    CONSENT = "consent"
    OPTIN = "optin"  # reminders: yes or no, asked once after consent
    QUESTION = "question"
    CONFIRM_DELETE = "confirm_delete"  # "erase everything?" (remembers where it was asked)
    DONE = "done"
    STOPPED = "stopped"  # /stop: a rest, /resume goes on
    DECLINED = "declined"  # no consent: a rest, nothing kept
    ERASED = "erased"  # everything erased: a rest, nothing kept


# Named sets of stages, for the engine, the use case and the channels alike.
AWAITING = frozenset(  # a card waits for the respondent's answer
    {Stage.QUESTION, Stage.CONSENT, Stage.OPTIN, Stage.LANGUAGE, Stage.CONFIRM_DELETE}
)
BEFORE_CONSENT = frozenset({Stage.CONSENT, Stage.LANGUAGE})
GONE = frozenset({Stage.DECLINED, Stage.ERASED})  # nothing of the person is kept
ACTIVE = AWAITING | {
    Stage.STOPPED,
    Stage.DONE,
}  # a survey in hand: /start without a code resumes it
CARDLESS = GONE | {Stage.STOPPED}  # no card with buttons stays on screen

# Choice ids (stable: they travel in callback data and form posts).
BACK = "back"
SKIP = "skip"
YES = "yes"
NO = "no"
LANG_PREFIX = "lang:"
SCALE_VALUES = ("4", "3", "2", "1", "0")


# -- events --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InviteInfo:
    """What the channel learned about a valid invite code (without using it up yet)."""

    code: str
    invite_id: int
    cycle_id: int
    role: str
    bank_tag: str
    school_name: str
    languages: tuple[str, ...] = ("en",)
    threshold: int = 5
    free_text_threshold: int = 10
    can_remind: bool = False  # the channel can send reminders: ask for the opt-in after consent


@dataclass(frozen=True, slots=True)
class Start:
    invite: InviteInfo


@dataclass(frozen=True, slots=True)
class InviteRejected:
    reason: str  # unknown | expired | revoked | used_up | not_open | cycle_closed | busy | none


@dataclass(frozen=True, slots=True)
class ChooseLanguage:
    lang: str


@dataclass(frozen=True, slots=True)
class Consent:
    given: bool


@dataclass(frozen=True, slots=True)
class OptIn:
    """Reminders and one announcement: yes / no (after consent), or no more (any time)."""

    given: bool


@dataclass(frozen=True, slots=True)
class Answer:
    """A tap (choice id) or typed text. `question_id` None: the current question."""

    question_id: str | None
    value: str


@dataclass(frozen=True, slots=True)
class Back:
    question_id: str | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    question_id: str | None = None


@dataclass(frozen=True, slots=True)
class Resume:
    pass


@dataclass(frozen=True, slots=True)
class Restart:
    pass


@dataclass(frozen=True, slots=True)
class Stop:
    pass


@dataclass(frozen=True, slots=True)
class Help:
    pass


@dataclass(frozen=True, slots=True)
class Privacy:
    pass


@dataclass(frozen=True, slots=True)
class ShowLanguages:
    pass


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    pass


@dataclass(frozen=True, slots=True)
class DeleteConfirm:
    confirmed: bool


Event = (
    Start
    | InviteRejected
    | ChooseLanguage
    | Consent
    | Answer
    | Back
    | Skip
    | Resume
    | Restart
    | Stop
    | Help
    | Privacy
    | ShowLanguages
    | DeleteRequest
    | DeleteConfirm
    | OptIn
)


# -- prompts and effects -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Choice:
    id: str
    label: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """What to show; the channel decides how (a Telegram card, an HTML form)."""

    kind: str  # question | consent | optin | language | confirm | info | done
    text: str
    choices: tuple[Choice, ...] = ()
    nav: tuple[Choice, ...] = ()  # Back / Skip / Not applicable row
    expects: str | None = None  # "number" | "text": typed input is due
    question_id: str | None = None
    progress: tuple[int, int] | None = None  # (index, total; the fewest if routing is open)
    progress_upto: int | None = None  # the most questions the open routes could make
    notice: str | None = None  # why the same prompt is shown again, or a short note
    current: str | None = None  # the answer code already given to this question
    final: bool = False  # nothing more is expected from the respondent


@dataclass(frozen=True, slots=True)
class OpenResponse:
    """Consent given: use up the invite and open the response (respondent + response rows),
    answered against the engine's model version."""

    invite_code: str
    cycle_id: int
    role: str
    bank_tag: str
    lang: str
    model_version: str


@dataclass(frozen=True, slots=True)
class SaveAnswer:
    question_id: str
    value: int | None = None
    na: bool = False
    number: float | None = None
    choice: str | None = None
    skipped: bool = False
    text: str | None = None
    free_text: bool = False  # a free-text question (answered with `text`, or skipped)


@dataclass(frozen=True, slots=True)
class DeleteAnswers:
    """Answers to drop: questions a changed routing answer has hidden, or all on restart."""

    question_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SetStatus:
    status: str  # in_progress | completed | stopped


@dataclass(frozen=True, slots=True)
class SetLanguage:
    lang: str


@dataclass(frozen=True, slots=True)
class Erase:
    """Erase everything this respondent gave (all cycles)."""


@dataclass(frozen=True, slots=True)
class SetOptIn:
    """Keep (True) or forget (False) the channel address for reminders of this response."""

    given: bool


Effect = OpenResponse | SaveAnswer | DeleteAnswers | SetStatus | SetLanguage | Erase | SetOptIn


@dataclass(frozen=True, slots=True)
class Step:
    state: dict[str, Any]
    prompts: tuple[Prompt, ...] = ()
    effects: tuple[Effect, ...] = ()
    changed: bool = True

    @property
    def answer(self) -> SaveAnswer | None:
        for e in self.effects:
            if isinstance(e, SaveAnswer):
                return e
        return None


class EngineError(ValueError):
    """A state the engine cannot work with (unknown bank, corrupt state)."""


# -- the engine ----------------------------------------------------------------


@dataclass
class Engine:
    banks: Mapping[str, Bank]  # by tag, e.g. "learner@1"
    model_version: str = "1.0.0"
    _t_cache: dict[str, Translator] = field(default_factory=dict, repr=False)

    @classmethod
    def from_banks(cls, banks: Iterable[Bank], model_version: str = "1.0.0") -> Engine:
        return cls({b.tag: b for b in banks}, model_version)

    # public ------------------------------------------------------------------

    def step(self, state: Mapping[str, Any], event: Event) -> Step:
        st = dict(state)
        handler = _HANDLERS.get(type(event))
        if handler is None:
            raise EngineError(f"unknown event {event!r}")
        return handler(self, st, event)

    def render(self, state: Mapping[str, Any], notice: str | None = None) -> Step:
        """The prompt for where the respondent stands now (no change)."""
        return Step(dict(state), (self._prompt_for(dict(state), notice),), changed=False)

    def rebuild(
        self,
        *,
        bank_tag: str,
        cycle_id: int,
        lang: str,
        status: str,
        answers: Mapping[str, str],
        invite: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The state for a response found in the database (Redis lost it, or never had it)."""
        bank = self._bank(bank_tag)
        st: dict[str, Any] = {
            "v": STATE_VERSION,
            "bank": bank_tag,
            "role": bank.role.value,
            "cycle": cycle_id,
            "lang": lang,
            "ans": {k: v for k, v in answers.items() if _has_question(bank, k)},
            "inv": dict(invite or {}),
            "opened": True,
        }
        if status == "completed":
            st["stage"] = Stage.DONE
        elif status == "stopped":
            st["stage"] = Stage.STOPPED
            st["pos"] = self._first_open(bank, st["ans"])
        else:
            pos = self._first_open(bank, st["ans"])
            st["stage"] = Stage.QUESTION if pos else Stage.DONE
            if pos:
                st["pos"] = pos
        return st

    def bank_for(self, state: Mapping[str, Any]) -> Bank | None:
        tag = state.get("bank")
        return self._bank(tag) if tag else None

    # helpers -------------------------------------------------------------------

    def t(self, state: Mapping[str, Any]) -> Translator:
        lang = state.get("lang") or "en"
        tr = self._t_cache.get(lang)
        if tr is None:
            tr = self._t_cache[lang] = Translator(lang)
        return tr

    def _bank(self, tag: str) -> Bank:
        try:
            return self.banks[tag]
        except KeyError:
            raise EngineError(f"unknown question bank {tag!r}") from None

    def visible(self, bank: Bank, answers: Mapping[str, str]) -> list[Question]:
        return visible_questions(bank, answers)

    def _first_open(self, bank: Bank, answers: Mapping[str, str]) -> str | None:
        for q in self.visible(bank, answers):
            if q.id not in answers:
                return q.id
        return None

    # prompts -------------------------------------------------------------------

    def _prompt_for(self, st: dict[str, Any], notice: str | None = None) -> Prompt:
        t = self.t(st)
        stage = st.get("stage")
        if stage == Stage.LANGUAGE:
            return self._language_prompt(st, notice)
        if stage == Stage.CONSENT:
            return self._consent_prompt(st, notice)
        if stage == Stage.OPTIN:
            return Prompt(
                "optin",
                t("reminders.optin"),
                choices=(
                    Choice(YES, t("reminders.optin_yes")),
                    Choice(NO, t("reminders.optin_no")),
                ),
                notice=notice,
            )
        if stage == Stage.QUESTION:
            return self._question_prompt(st, notice)
        if stage == Stage.CONFIRM_DELETE:
            return Prompt(
                "confirm",
                t("delete.confirm"),
                choices=(Choice(YES, t("delete.yes")), Choice(NO, t("delete.no"))),
                notice=notice,
            )
        if stage == Stage.DONE:
            return Prompt("done", t("done.already"), notice=notice, final=True)
        if stage == Stage.STOPPED:
            return Prompt("info", t("stop.text"), notice=notice, final=True)
        if stage == Stage.DECLINED:
            return Prompt("info", t("consent.declined"), notice=notice, final=True)
        if stage == Stage.ERASED:
            return Prompt("info", t("delete.done"), notice=notice, final=True)
        return Prompt("info", t("start.no_code"), notice=notice, final=True)

    def _language_prompt(self, st: dict[str, Any], notice: str | None = None) -> Prompt:
        langs = st.get("inv", {}).get("langs") or list(available_languages())
        return Prompt(
            "language",
            self.t(st)("language.prompt"),
            choices=tuple(Choice(LANG_PREFIX + lang, language_name(lang)) for lang in langs),
            notice=notice,
        )

    def _consent_prompt(self, st: dict[str, Any], notice: str | None = None) -> Prompt:
        t = self.t(st)
        bank = self._bank(st["bank"])
        inv = st.get("inv", {})
        role = bank.role.value
        text = t(
            "consent.text",
            title=t(f"bank.{role}.title", default=bank.title),
            intro=t(f"bank.{role}.intro", default=bank.intro),
            minutes=bank.minutes,
            count=count_text(*question_range(bank)),
            threshold=inv.get("thr", 5),
            free_text_threshold=inv.get("ftt", 10),
        )
        if inv.get("school"):
            text = t("start.welcome", school=inv["school"]) + "\n\n" + text
        return Prompt(
            "consent",
            text,
            choices=(Choice(YES, t("consent.yes")), Choice(NO, t("consent.no"))),
            notice=notice,
        )

    def _question_prompt(self, st: dict[str, Any], notice: str | None = None) -> Prompt:
        t = self.t(st)
        bank = self._bank(st["bank"])
        q = bank.question(st["pos"])
        visible = self.visible(bank, st["ans"])
        index = next(i for i, v in enumerate(visible) if v.id == q.id) + 1
        # Of how many: a range while a routing answer still to come changes the length.
        fewest, most = question_range(bank, st["ans"])
        text = t(f"bank.{bank.role.value}.{q.id}", default=q.text)
        help_text = q.help and t(f"bank.{bank.role.value}.{q.id}.help", default=q.help)
        if help_text:
            text = f"{text}\n\n{help_text}"
        choices: tuple[Choice, ...] = ()
        expects = None
        if q.kind == "scale":
            scale = get_scale(q.scale)  # type: ignore[arg-type]
            choices = tuple(
                Choice(str(p.value), t(f"scale.{scale.id}.{p.value}", default=p.label))
                for p in scale.points
            )
        elif q.kind == "choice":
            choices = tuple(
                Choice("c:" + o.id, t(f"bank.{bank.role.value}.{q.id}.{o.id}", default=o.label))
                for o in q.options
            )
        else:
            expects = q.kind
        nav: list[Choice] = []
        if index > 1:
            nav.append(Choice(BACK, t("nav.back")))
        if q.kind == "scale" and q.allow_na and get_scale(q.scale).has_na:  # type: ignore[arg-type]
            nav.append(Choice(NA, t("nav.na")))
        if q.optional:
            nav.append(Choice(SKIP, t("nav.skip")))
        return Prompt(
            "question",
            text,
            choices=choices,
            nav=tuple(nav),
            expects=expects,
            question_id=q.id,
            progress=(index, fewest),
            progress_upto=most if most != fewest else None,
            notice=notice,
            current=st["ans"].get(q.id),
        )

    def _info(self, st: dict[str, Any], key: str, **params: Any) -> Prompt:
        return Prompt("info", self.t(st)(key, **params))

    # transitions ----------------------------------------------------------------

    def _unchanged(self, st: dict[str, Any], notice_key: str, **params: Any) -> Step:
        return Step(st, (self._prompt_for(st, self.t(st)(notice_key, **params)),), changed=False)

    def _on_start(self, st: dict[str, Any], ev: Start) -> Step:
        inv = ev.invite
        if st.get("opened") and st.get("cycle") == inv.cycle_id:
            # The same person opens the link again: carry on where they are.
            return self._on_resume(st, Resume())
        bank = self._bank(inv.bank_tag)
        new: dict[str, Any] = {
            "v": STATE_VERSION,
            "bank": bank.tag,
            "role": bank.role.value,
            "cycle": inv.cycle_id,
            "lang": st.get("lang") if st.get("lang") in inv.languages else inv.languages[0],
            "ans": {},
            "inv": {
                "code": inv.code,
                "school": inv.school_name,
                "thr": inv.threshold,
                "ftt": inv.free_text_threshold,
                "langs": list(inv.languages),
            },
            "opened": False,
        }
        if inv.can_remind:
            new["inv"]["remind"] = True
        if len(inv.languages) > 1 and st.get("lang") not in inv.languages:
            new["stage"] = Stage.LANGUAGE
            new["after"] = Stage.CONSENT
        else:
            new["stage"] = Stage.CONSENT
        return Step(new, (self._prompt_for(new),))

    def _on_invite_rejected(self, st: dict[str, Any], ev: InviteRejected) -> Step:
        key = "start.no_code" if ev.reason == "none" else f"invite.{ev.reason}"
        t = self.t(st)
        text = t(key, default=t("invite.unknown"))
        if st.get("stage") == Stage.QUESTION:
            # Someone mid-survey opened a bad link: tell them, then show where they are.
            return Step(st, (Prompt("info", text), self._prompt_for(st)), changed=False)
        return Step(st, (Prompt("info", text, final=True),), changed=False)

    def _on_choose_language(self, st: dict[str, Any], ev: ChooseLanguage) -> Step:
        langs = st.get("inv", {}).get("langs") or list(available_languages())
        lang = ev.lang.removeprefix(LANG_PREFIX)
        if lang not in langs:
            if st.get("stage") == Stage.LANGUAGE:
                return self._unchanged(st, "question.tap_button")
            return Step(st, (self._prompt_for(st),), changed=False)
        new = dict(st, lang=lang)
        effects: tuple[Effect, ...] = (SetLanguage(lang),) if st.get("opened") else ()
        if st.get("stage") == Stage.LANGUAGE:
            new["stage"] = new.pop("after", None) or (
                Stage.QUESTION if new.get("pos") else Stage.CONSENT
            )
        return Step(new, (self._prompt_for(new),), effects)

    def _on_show_languages(self, st: dict[str, Any], ev: ShowLanguages) -> Step:
        if st.get("stage") is None or st.get("stage") in GONE:
            return Step(st, (self._language_prompt(st),), changed=False)
        if st.get("stage") == Stage.LANGUAGE:
            return self.render(st)
        new = dict(st, stage=Stage.LANGUAGE, after=st.get("stage"))
        return Step(new, (self._prompt_for(new),))

    def _on_consent(self, st: dict[str, Any], ev: Consent) -> Step:
        if st.get("stage") != Stage.CONSENT:
            return Step(st, (self._prompt_for(st),), changed=False)
        if not ev.given:
            new = _rest(st, Stage.DECLINED)
            return Step(new, (self._prompt_for(new),))
        bank = self._bank(st["bank"])
        new = dict(st, opened=True)
        pos = self._first_open(bank, new["ans"])
        new["stage"] = Stage.QUESTION if pos else Stage.DONE
        if pos:
            new["pos"] = pos
            if st.get("inv", {}).get("remind"):
                new["stage"] = Stage.OPTIN  # asked once, right after consent
        effects = (
            OpenResponse(
                st["inv"]["code"],
                st["cycle"],
                st["role"],
                st["bank"],
                st["lang"],
                self.model_version,
            ),
        )
        return Step(new, (self._prompt_for(new),), effects)

    def _check_target(self, st: dict[str, Any], qid: str | None) -> Step | None:
        if st.get("stage") != Stage.QUESTION:
            if st.get("stage") in (Stage.CONSENT, Stage.OPTIN):
                return self._unchanged(st, "question.tap_button")
            return Step(st, (self._prompt_for(st),), changed=False)
        if qid is not None and qid != st["pos"]:
            return self._unchanged(st, "question.stale")
        return None

    def _on_answer(self, st: dict[str, Any], ev: Answer) -> Step:
        if st.get("stage") == Stage.CONSENT and ev.value in (YES, NO):
            return self._on_consent(st, Consent(ev.value == YES))
        if st.get("stage") == Stage.OPTIN and ev.value in (YES, NO):
            return self._on_opt_in(st, OptIn(ev.value == YES))
        if st.get("stage") == Stage.CONFIRM_DELETE and ev.value in (YES, NO):
            return self._on_delete_confirm(st, DeleteConfirm(ev.value == YES))
        if st.get("stage") == Stage.LANGUAGE and ev.value.startswith(LANG_PREFIX):
            return self._on_choose_language(st, ChooseLanguage(ev.value))
        if ev.value == BACK:
            return self._on_back(st, Back(ev.question_id))
        if ev.value == SKIP:
            return self._on_skip(st, Skip(ev.question_id))
        refused = self._check_target(st, ev.question_id)
        if refused:
            return refused
        bank = self._bank(st["bank"])
        q = bank.question(st["pos"])
        # No text keeps a NUL (invisible; PostgreSQL cannot store it): a chat delivers
        # what was typed, so it is dropped here, whatever the channel.
        value = ev.value.replace("\x00", "").strip()
        if q.kind == "scale":
            if value == NA and q.allow_na and get_scale(q.scale).has_na:  # type: ignore[arg-type]
                return self._advance(st, q, "na", SaveAnswer(q.id, na=True))
            if value in SCALE_VALUES:
                return self._advance(st, q, value, SaveAnswer(q.id, value=int(value)))
            return self._unchanged(st, "question.tap_button")
        if q.kind == "choice":
            opt = value.removeprefix("c:")
            if opt in {o.id for o in q.options}:
                return self._advance(st, q, "c:" + opt, SaveAnswer(q.id, choice=opt))
            return self._unchanged(st, "question.tap_button")
        if q.kind == "number":
            bounds = q.number
            assert bounds is not None
            lang = self.t(st).lang
            parsed = parse_number(lang, value)
            if parsed is None:
                example = format_number(lang, bounds.min + 1)
                return self._unchanged(st, "number.invalid", example=example)
            if bounds.integer and parsed != int(parsed):
                return self._unchanged(st, "number.integer")
            if not bounds.min <= parsed <= bounds.max:
                low, high = format_number(lang, bounds.min), format_number(lang, bounds.max)
                return self._unchanged(st, "number.range", min=low, max=high)
            number = float(int(parsed)) if bounds.integer else parsed
            return self._advance(st, q, f"n:{_fmt(number)}", SaveAnswer(q.id, number=number))
        # free text
        text = " ".join(value.split()) if "\n" not in value else value.strip()
        if not text:
            return self._unchanged(st, "text.empty")
        if len(text) > q.max_length:
            lang = self.t(st).lang
            return self._unchanged(
                st,
                "text.too_long",
                length=format_number(lang, len(text)),
                max=format_number(lang, q.max_length),
            )
        return self._advance(st, q, "t", SaveAnswer(q.id, text=text, free_text=True))

    def _advance(self, st: dict[str, Any], q: Question, code: str, save: SaveAnswer) -> Step:
        bank = self._bank(st["bank"])
        before = {x.id for x in self.visible(bank, st["ans"])}
        answers = dict(st["ans"])
        answers[q.id] = code
        after = {x.id for x in self.visible(bank, answers)}
        hidden = tuple(sorted(k for k in answers if k in before - after))
        for k in hidden:
            del answers[k]
        new = dict(st, ans=answers)
        effects: list[Effect] = [save]
        if hidden:
            effects.append(DeleteAnswers(hidden))
        nxt = self._next_after(bank, answers, q.id)
        if nxt is None:
            new["stage"] = Stage.DONE
            new.pop("pos", None)
            effects.append(SetStatus("completed"))
            done = Prompt("done", self.t(new)("done.text"), final=True)
            return Step(new, (done,), tuple(effects))
        new["pos"] = nxt
        return Step(new, (self._prompt_for(new),), tuple(effects))

    def _next_after(self, bank: Bank, answers: Mapping[str, str], qid: str) -> str | None:
        """The next question: the first unanswered visible one after `qid`, else before it."""
        visible = self.visible(bank, answers)
        ids = [q.id for q in visible]
        start = ids.index(qid) + 1 if qid in ids else 0
        for q in visible[start:]:
            if q.id not in answers:
                return q.id
        for q in visible[:start]:
            if q.id not in answers:
                return q.id
        return None

    def _on_skip(self, st: dict[str, Any], ev: Skip) -> Step:
        refused = self._check_target(st, ev.question_id)
        if refused:
            return refused
        q = self._bank(st["bank"]).question(st["pos"])
        if not q.optional:
            return self._unchanged(st, "question.not_optional")
        skipped = SaveAnswer(q.id, skipped=True, free_text=q.kind == "text")
        return self._advance(st, q, "s", skipped)

    def _on_back(self, st: dict[str, Any], ev: Back) -> Step:
        if st.get("stage") == Stage.DONE and st.get("opened"):
            bank = self._bank(st["bank"])
            visible = self.visible(bank, st["ans"])
            new = dict(st, stage=Stage.QUESTION, pos=visible[-1].id)
            return Step(new, (self._prompt_for(new),), (SetStatus("in_progress"),))
        refused = self._check_target(st, ev.question_id)
        if refused:
            return refused
        bank = self._bank(st["bank"])
        ids = [q.id for q in self.visible(bank, st["ans"])]
        i = ids.index(st["pos"])
        if i == 0:
            return self._unchanged(st, "question.first")
        new = dict(st, pos=ids[i - 1])
        return Step(new, (self._prompt_for(new),))

    def _on_resume(self, st: dict[str, Any], ev: Resume) -> Step:
        stage = st.get("stage")
        if stage == Stage.STOPPED:
            bank = self._bank(st["bank"])
            pos = st.get("pos") or self._first_open(bank, st["ans"])
            new = dict(st, stage=Stage.QUESTION if pos else Stage.DONE)
            if pos:
                new["pos"] = pos
            return Step(new, (self._prompt_for(new),), (SetStatus("in_progress"),))
        if stage in AWAITING or stage == Stage.DONE:
            return self.render(st)
        return Step(st, (self._info(st, "resume.nothing"),), changed=False)

    def _on_restart(self, st: dict[str, Any], ev: Restart) -> Step:
        if not st.get("opened"):
            if st.get("stage") in BEFORE_CONSENT:
                return self.render(st)
            return Step(st, (self._info(st, "resume.nothing"),), changed=False)
        bank = self._bank(st["bank"])
        first = bank.questions[0].id
        new = dict(st, ans={}, stage=Stage.QUESTION, pos=first)
        effects: list[Effect] = []
        if st["ans"]:
            effects.append(DeleteAnswers(tuple(sorted(st["ans"]))))
        effects.append(SetStatus("in_progress"))
        return Step(
            new,
            (self._info(new, "restart.text"), self._prompt_for(new)),
            tuple(effects),
        )

    def _on_stop(self, st: dict[str, Any], ev: Stop) -> Step:
        if st.get("stage") not in (Stage.QUESTION, Stage.OPTIN) or not st.get("opened"):
            if st.get("stage") in BEFORE_CONSENT:
                new = _rest(st, Stage.DECLINED)
                return Step(new, (self._prompt_for(new),))
            return Step(st, (self._info(st, "resume.nothing"),), changed=False)
        new = dict(st, stage=Stage.STOPPED)
        return Step(new, (self._prompt_for(new),), (SetStatus("stopped"),))

    def _on_help(self, st: dict[str, Any], ev: Help) -> Step:
        prompts = [self._info(st, "help.text")]
        if st.get("stage") in AWAITING:
            prompts.append(self._prompt_for(st))
        return Step(st, tuple(prompts), changed=False)

    def _on_privacy(self, st: dict[str, Any], ev: Privacy) -> Step:
        inv = st.get("inv") or {}
        if "thr" in inv:
            p = self._info(st, "privacy.text", threshold=inv["thr"], free_text_threshold=inv["ftt"])
        else:
            p = self._info(st, "privacy.generic")
        prompts = [p]
        if st.get("stage") in AWAITING:
            prompts.append(self._prompt_for(st))
        return Step(st, tuple(prompts), changed=False)

    def _on_opt_in(self, st: dict[str, Any], ev: OptIn) -> Step:
        if st.get("stage") == Stage.OPTIN:
            new = dict(st, stage=Stage.QUESTION)
            return Step(new, (self._prompt_for(new),), (SetOptIn(ev.given),))
        if ev.given or not st.get("opened"):
            return self.render(st)
        # "No more reminders" (a reminder's button): forget the address, stay where you are.
        prompts = [self._info(st, "reminders.off")]
        if st.get("stage") in AWAITING - {Stage.OPTIN}:
            prompts.append(self._prompt_for(st))
        return Step(st, tuple(prompts), (SetOptIn(False),), changed=False)

    def _on_delete_request(self, st: dict[str, Any], ev: DeleteRequest) -> Step:
        if st.get("stage") == Stage.CONFIRM_DELETE:
            return self.render(st)
        new = dict(st, stage=Stage.CONFIRM_DELETE, after=st.get("stage"))
        return Step(new, (self._prompt_for(new),))

    def _on_delete_confirm(self, st: dict[str, Any], ev: DeleteConfirm) -> Step:
        if st.get("stage") != Stage.CONFIRM_DELETE:
            return Step(st, (self._prompt_for(st),), changed=False)
        if ev.confirmed:
            new = _rest(st, Stage.ERASED)
            return Step(new, (Prompt("info", self.t(new)("delete.done"), final=True),), (Erase(),))
        new = dict(st)
        back = new.pop("after", None)
        if back:
            new["stage"] = back
        else:
            new.pop("stage", None)
        notice = self.t(st)("delete.cancelled")
        if back is None or back in GONE:
            return Step(new, (Prompt("info", notice, final=True),))
        return Step(new, (self._prompt_for(new, notice),))


_HANDLERS = {
    Start: Engine._on_start,
    InviteRejected: Engine._on_invite_rejected,
    ChooseLanguage: Engine._on_choose_language,
    ShowLanguages: Engine._on_show_languages,
    Consent: Engine._on_consent,
    Answer: Engine._on_answer,
    Back: Engine._on_back,
    Skip: Engine._on_skip,
    Resume: Engine._on_resume,
    Restart: Engine._on_restart,
    Stop: Engine._on_stop,
    Help: Engine._on_help,
    Privacy: Engine._on_privacy,
    DeleteRequest: Engine._on_delete_request,
    DeleteConfirm: Engine._on_delete_confirm,
    OptIn: Engine._on_opt_in,
}


# -- small pure helpers ----------------------------------------------------------


def _rest(st: Mapping[str, Any], stage: Stage) -> dict[str, Any]:
    """A state that keeps nothing of the person (declined, erased): the stage, the language
    they read, and the name of the school whose survey it was (its pages keep their header)."""
    new: dict[str, Any] = {"v": STATE_VERSION, "stage": stage, "lang": st.get("lang", "en")}
    school = (st.get("inv") or {}).get("school")
    if school:
        new["inv"] = {"school": school}
    return new


def _has_question(bank: Bank, qid: str) -> bool:
    return any(q.id == qid for q in bank.questions)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def answer_code(
    *,
    value: int | None,
    na: bool,
    number: float | None,
    choice: str | None,
    skipped: bool,
) -> str:
    """The state's short code for a stored answer (the inverse of SaveAnswer)."""
    if skipped:
        return "s"
    if na:
        return "na"
    if value is not None:
        return str(value)
    if choice is not None:
        return "c:" + choice
    if number is not None:
        return f"n:{_fmt(number)}"
    return "t"


def progress_label(t: Translator, prompt: Prompt) -> str:
    """ "Question 2 of 15", or "Question 1 of 14–15" while routing may still change it."""
    if not prompt.progress:
        return ""
    index, total = prompt.progress
    if prompt.progress_upto and prompt.progress_upto != total:
        return t("question.progress_range", index=index, low=total, high=prompt.progress_upto)
    return t("question.progress", index=index, total=total)


def answer_label(engine: Engine, state: Mapping[str, Any], qid: str) -> str | None:
    """A readable form of the answer already given to a question, for "Your answer: ..."."""
    code = state.get("ans", {}).get(qid)
    bank = engine.bank_for(state)
    if code is None or bank is None:
        return None
    t = engine.t(state)
    q = bank.question(qid)
    if code == "s":
        return t("answer.skipped")
    if code == "na":
        return t("nav.na")
    if code == "t":
        return t("answer.text_given")
    if code.startswith("n:"):
        return format_number(t.lang, float(code[2:]))
    if code.startswith("c:"):
        for o in q.options:
            if o.id == code[2:]:
                return t(f"bank.{bank.role.value}.{q.id}.{o.id}", default=o.label)
        return None
    if q.scale is not None:
        scale = get_scale(q.scale)
        return t(f"scale.{scale.id}.{code}", default=scale.label(int(code)))
    return code
