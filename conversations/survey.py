"""The use case: apply one respondent event, for every channel (Telegram chat, web chat,
Mini App).

    lock the respondent -> load the session (on a miss, rebuild it from the answers)
    -> engine.step(state, event) -> write the effects (answers first, one transaction)
    -> save the new state in the session store -> hand the prompts back to the channel

The answers are the truth: if writing the effects fails, nothing is saved to the session
store and the exception propagates (the webhook turns a transient one into 503, so
Telegram retries and the retried update completes once: answers are idempotent upserts).

No I/O library is imported here. The use case talks to its surroundings through the small
ports of `conversations.ports`, which `storage/` implements (`storage.survey.SqlSurveyStore`,
`storage.sessions`, `storage.admission`) and the web shell wires together.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from conversations import engine as E
from conversations.i18n import available_languages
from conversations.identity import subject_hash
from conversations.ports import (
    Admission,
    InviteFound,
    Metrics,
    Once,
    Redeemed,
    SessionKey,
    SessionStore,
    SurveyStore,
    Writes,
)

log = logging.getLogger(__name__)

# The ids of the open response and its respondent, kept in the state by the use case (the
# engine carries unknown keys along): an answer then needs no lookup of the response.
RESPONSE_ID, RESPONDENT_ID = "rid", "pid"
BUSY = "busy"  # InviteRejected reason: too many new respondents from one network, one code


class Refused(Exception):
    """A step that may not be written after all (its transaction is rolled back)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- what a channel gets ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebOrigin:
    """Where a web-chat respondent comes from, as the channel saw it. Never stored: the
    response keeps only its `origin` (invite | shared | dashboard)."""

    network: str  # the client's address (for the shared-code limit, hashed)
    dashboard: bool  # the browser is logged in to the dashboard (a coordinator trying it)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a channel needs after one event: the engine's step and who it was for."""

    step: E.Step
    subject: str
    also: dict[str, Any] | None = None  # the `also` key read with the state, if asked for


# -- the use case ------------------------------------------------------------------------


class Survey:
    def __init__(
        self,
        *,
        engine: E.Engine,
        store: SurveyStore,
        sessions: SessionStore,
        secret_key: str,
        ttl: int,
        metrics: Metrics | None = None,
        reminders: bool = False,
        admission: Admission | None = None,
    ) -> None:
        self.engine = engine
        self.answers = store
        self.store = sessions
        self.secret_key = secret_key
        self.ttl = ttl
        self.metrics = metrics
        # Ask for the reminder opt-in where the channel gives an address (Telegram's chat).
        self.reminders = reminders
        # New web respondents per (shared code, network): bounded (storage.admission).
        self.admission = admission

    def subject(self, channel: str, user_id: str | int) -> str:
        return subject_hash(self.secret_key, channel, user_id)

    @staticmethod
    def key(subject: str) -> SessionKey:
        # One position per person whatever the channel: a Telegram user can switch
        # between the chat and the Mini App mid-survey (both hash the Telegram id).
        return SessionKey("r", subject)

    # -- entry points ------------------------------------------------------------

    async def handle(
        self,
        subject: str,
        event: E.Event | Callable[[Mapping[str, Any]], E.Event],
        channel: str = "telegram",
        address: str | int | None = None,
        *,
        also: SessionKey | None = None,
        web: WebOrigin | None = None,
        once: Once | None = None,
    ) -> Outcome:
        """Apply one engine event for one respondent, under their lock.

        `event` may be a function of the state (a tap is read against where the person
        stands), called under the lock with the state loaded once. `address`: where the
        channel can reach this person later (a Telegram chat id), kept (encrypted) only if
        they opt in to reminders; never part of the state. `also`: another session-store
        key read in the same round trip as the state (`Outcome.also`). `web`: where a web
        respondent comes from (marks and bounds new responses; never stored). `once`: the
        channel's update, claimed and finished with the lock (Repeated if claimed before).
        """
        started = time.perf_counter()
        async with self.store.hold(self.key(subject), also, once=once) as held:
            state = held.state
            if state is None:
                state = await self._rebuild(subject)
            if callable(event):
                event = event(state)
            step = self.engine.step(state, event)
            step = await self._apply(subject, state, step, channel, address, web)
            if step.changed:
                held.save(step.state, self.ttl)
        if self.metrics is not None:
            seconds = time.perf_counter() - started
            self.metrics.observe_update(channel, seconds, step.answer is not None)
        return Outcome(step, subject, held.also)

    async def start(
        self,
        subject: str,
        code: str | None,
        channel: str = "telegram",
        address: str | int | None = None,
        *,
        lang: str | None = None,
        once: Once | None = None,
    ) -> Outcome:
        """A respondent opens an invite link (`/start <code>`), or `/start` alone.

        `lang`: the language the channel knows this person reads (a browser's
        Accept-Language), for a refusal (an unknown or withdrawn link) to someone whose
        state has no language yet; a valid link starts in the school's languages as ever."""
        async with self.store.hold(self.key(subject), once=once) as held:
            state = held.state
            if state is None:
                state = await self._rebuild(subject)
            event = await self._start_event(state, code)
            if isinstance(event, E.InviteRejected) and lang and not state.get("lang"):
                state = {**state, "lang": lang}  # for the refusal's text only: not saved
            if isinstance(event, E.Start) and self.reminders and address is not None:
                event = E.Start(dataclasses.replace(event.invite, can_remind=True))
            step = self.engine.step(state, event)
            step = await self._apply(subject, state, step, channel, address)
            if step.changed:
                held.save(step.state, self.ttl)
        return Outcome(step, subject)

    async def current(self, subject: str) -> Outcome:
        """The prompt for where the respondent stands (a page load, a Mini App open)."""
        state = await self.load_state(subject)
        return Outcome(self.engine.render(state), subject)

    async def load_state(self, subject: str) -> dict[str, Any]:
        state = await self.store.load(self.key(subject))
        if state is not None:
            return state
        return await self._rebuild(subject)

    async def set_reachable(self, subject: str, reachable: bool) -> None:
        """The channel cannot (or can again) reach this person: no reminder is sent."""
        await self.answers.set_reachable(subject, reachable)

    # -- internals ---------------------------------------------------------------

    async def _start_event(self, state: Mapping[str, Any], code: str | None) -> E.Event:
        code = (code or "").strip()
        if not code:
            if state.get("stage") in E.ACTIVE and state.get("bank"):
                return E.Resume()
            return E.InviteRejected("none")
        if state.get("inv", {}).get("code") == code and state.get("stage") in E.ACTIVE:
            return E.Resume()
        found = await self.answers.peek_invite(code, datetime.now(UTC))
        if isinstance(found, str):
            return E.InviteRejected(found)
        info = self._invite_info(code, found)
        if info is None:
            return E.InviteRejected("unknown")
        if state.get("opened") and state.get("cycle") == info.cycle_id:
            return E.Resume()
        return E.Start(info)

    def _invite_info(self, code: str, found: InviteFound) -> E.InviteInfo | None:
        bank = next((b for b in self.engine.banks.values() if b.role.value == found.role), None)
        if bank is None:
            return None
        shipped = set(available_languages())
        langs = tuple(lang for lang in _languages(found.school_languages) if lang in shipped)
        return E.InviteInfo(
            code=code,
            invite_id=found.invite_id,
            cycle_id=found.cycle_id,
            role=found.role,
            bank_tag=bank.tag,
            school_name=found.school_name,
            languages=langs or ("en",),
            threshold=found.threshold,
            free_text_threshold=found.free_text_threshold,
        )

    async def _apply(
        self,
        subject: str,
        before: Mapping[str, Any],
        step: E.Step,
        channel: str = "telegram",
        address: str | int | None = None,
        web: WebOrigin | None = None,
    ) -> E.Step:
        if not step.effects:
            return step
        ctx = _Context(subject, step.state, channel, address, web)
        try:
            # One effect: the store may take a shorter road (`SurveyStore.writes`). An
            # answer needs the ids at hand; a consent finds or makes them itself.
            only = step.effects[0] if len(step.effects) == 1 else None
            if not ctx.ids and not isinstance(only, E.OpenResponse):
                only = None
            async with self.answers.writes(only) as w:
                for effect in step.effects:
                    await self._apply_one(w, ctx, effect)
        except Refused as refused:
            # The invite was used up (or the network is over its limit) between the peek
            # and the consent: nothing is written; tell the respondent, state as it was.
            return self.engine.step(before, E.InviteRejected(refused.reason))
        return _with_ids(step, ctx)

    async def _apply_one(self, w: Writes, ctx: _Context, effect: E.Effect) -> None:
        if isinstance(effect, E.OpenResponse):
            found = await w.find_response(ctx.subject, effect.cycle_id)
            if found is not None:  # consented before (a restart): the consent's language
                response_id, respondent_id = found
                await w.respondent(ctx.subject, effect.lang)
            else:
                redeemed = await w.check_invite(effect.invite_code, datetime.now(UTC))
                if isinstance(redeemed, str):
                    raise Refused(redeemed)
                origin = await self._origin(redeemed, ctx.web)
                if origin is None:
                    raise Refused(BUSY)
                # Used up or revoked meanwhile: nothing is written (Refused).
                opened = await w.open_counted(ctx.subject, redeemed.invite_id, effect, origin)
                if isinstance(opened, str):
                    raise Refused(opened)
                response_id, respondent_id = opened
            if effect.cycle_id == ctx.cycle_id:
                ctx.ids = (response_id, respondent_id)
            return
        if isinstance(effect, E.Erase):
            await w.erase(ctx.subject)
            ctx.ids = None
            ctx.erased = True
            return
        if ctx.ids is None and ctx.cycle_id is not None and not ctx.erased:
            # A state saved before the ids were kept in it: one lookup.
            ctx.ids = await w.find_response(ctx.subject, ctx.cycle_id)
        if ctx.ids is None:
            log.warning("effect %s without an open response", type(effect).__name__)
            return
        response_id, respondent_id = ctx.ids
        if isinstance(effect, E.SaveAnswer):
            await w.save_answer(response_id, effect)
        elif isinstance(effect, E.DeleteAnswers):
            await w.delete_answers(response_id, effect.question_ids)
        elif isinstance(effect, E.SetStatus):
            await w.set_status(response_id, effect.status)
        elif isinstance(effect, E.SetLanguage):
            await w.set_language(response_id, respondent_id, effect.lang)
        elif isinstance(effect, E.SetOptIn):
            given = effect.given and self.reminders
            await w.set_opt_in(response_id, given, ctx.channel, ctx.address)

    async def _origin(self, redeemed: Redeemed, web: WebOrigin | None) -> str | None:
        """How a new response came (`Response.origin`); None: a web respondent over the
        shared code's limit for their network (the step is refused, nothing is stored)."""
        if web is not None and web.dashboard:
            return "dashboard"
        if not redeemed.shared:
            return "invite"
        if web is not None and self.admission is not None:
            key = hmac.new(
                self.secret_key.encode(),
                f"admit\x1f{redeemed.invite_id}\x1f{web.network}".encode(),
                hashlib.sha256,
            ).hexdigest()[:32]
            if not await self.admission.admit(key):
                log.info("shared code: a new respondent waits (network over the limit)")
                return None
        return "shared"

    async def _rebuild(self, subject: str) -> dict[str, Any]:
        """The position from the database: the newest response of this person, if any."""
        found = await self.answers.newest_response(subject)
        if found is None or found.bank_tag not in self.engine.banks:
            return {}
        state = self.engine.rebuild(
            bank_tag=found.bank_tag,
            cycle_id=found.cycle_id,
            lang=found.language,
            status=found.status,
            answers=found.answers,
            # No code: nothing links a response to the invite it came through.
            invite={
                "code": "",
                "school": found.school_name,
                "thr": found.threshold,
                "ftt": found.free_text_threshold,
                "langs": list(_languages(found.school_languages)),
            },
        )
        state[RESPONSE_ID], state[RESPONDENT_ID] = found.response_id, found.respondent_id
        return state


def _languages(school_languages: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(lang for lang in school_languages if lang) or ("en",)


class _Context:
    """One step's writes: who, through which channel, and the response's ids once known.

    The ids of the response and its respondent are in the state (`rid`, `pid`) from the
    consent on (OpenResponse, or a rebuild); a state saved before they were kept there
    falls back to one lookup by the person's hash and cycle.
    """

    def __init__(
        self,
        subject: str,
        state: Mapping[str, Any],
        channel: str,
        address: str | int | None,
        web: WebOrigin | None,
    ) -> None:
        self.subject = subject
        self.channel = channel
        self.address = address
        self.web = web
        self.cycle_id = state.get("cycle")
        rid, pid = state.get(RESPONSE_ID), state.get(RESPONDENT_ID)
        self.ids: tuple[int, int] | None = (
            (rid, pid) if type(rid) is int and type(pid) is int else None
        )
        self.erased = False


def _with_ids(step: E.Step, ctx: _Context) -> E.Step:
    """Keep the response's ids in the state (after the commit), so the next step needs no lookup."""
    st = step.state
    if ctx.ids is None or ctx.erased or st.get("cycle") != ctx.cycle_id or not st.get("opened"):
        return step
    if st.get(RESPONSE_ID) == ctx.ids[0] and st.get(RESPONDENT_ID) == ctx.ids[1]:
        return step
    return dataclasses.replace(
        step, state={**st, RESPONSE_ID: ctx.ids[0], RESPONDENT_ID: ctx.ids[1]}
    )
