"""The way of one answer, shared by every channel (Telegram chat, web chat, Mini App).

    lock the respondent -> load the session (Redis; on a miss, rebuild from the database)
    -> engine.step(state, event) -> apply the effects to the database FIRST
    -> save the new state in the session store -> hand the prompts back to the channel

The database is the truth: if applying effects fails, nothing is saved to the session
store and the exception propagates (the webhook turns a transient one into 503, so
Telegram retries and the retried update completes once: answers are idempotent upserts).
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

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.metrics import Metrics
from conversations import engine as E
from conversations.i18n import available_languages
from storage import repo
from storage.admission import AdmissionLimit
from storage.hashing import subject_hash
from storage.models import Cycle, Invite, Respondent, Response, School
from storage.sessions import SessionKey, SessionStore

log = logging.getLogger(__name__)

# The ids of the open response and its respondent, kept in the state by the runner (the
# engine carries unknown keys along): an answer then needs no lookup of the response.
RESPONSE_ID, RESPONDENT_ID = "rid", "pid"
BUSY = "busy"  # InviteRejected reason: too many new respondents from one network, one code


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


class SurveyRunner:
    def __init__(
        self,
        *,
        engine: E.Engine,
        sessionmaker: async_sessionmaker,
        store: SessionStore,
        secret_key: str,
        ttl: int,
        metrics: Metrics | None = None,
        reminders: bool = False,
        admission: AdmissionLimit | None = None,
    ) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker
        self.store = store
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
    ) -> Outcome:
        """Apply one engine event for one respondent, under their lock.

        `event` may be a function of the state (a tap is read against where the person
        stands), called under the lock with the state loaded once. `address`: where the
        channel can reach this person later (a Telegram chat id), kept (encrypted) only if
        they opt in to reminders; never part of the state. `also`: another session-store
        key read in the same round trip as the state (`Outcome.also`). `web`: where a web
        respondent comes from (marks and bounds new responses; never stored).
        """
        started = time.perf_counter()
        key = self.key(subject)
        extra = None
        async with self.store.lock(key):
            if also is None:
                state = await self.load_state(subject)
            else:
                state, extra = await self.store.load_many([key, also])
                if state is None:
                    state = await self._rebuild(subject)
            if callable(event):
                event = event(state)
            step = self.engine.step(state, event)
            step = await self._apply(subject, state, step, channel, address, web)
            if step.changed:
                await self.store.save(key, step.state, self.ttl)
        if self.metrics is not None:
            self.metrics.update_seconds.labels(channel).observe(time.perf_counter() - started)
            if step.answer is not None:
                self.metrics.answers.labels(channel).inc()
        return Outcome(step, subject, extra)

    async def start(
        self,
        subject: str,
        code: str | None,
        channel: str = "telegram",
        address: str | int | None = None,
    ) -> Outcome:
        """A respondent opens an invite link (`/start <code>`), or `/start` alone."""
        key = self.key(subject)
        async with self.store.lock(key):
            state = await self.load_state(subject)
            event = await self._start_event(state, code)
            if isinstance(event, E.Start) and self.reminders and address is not None:
                event = E.Start(dataclasses.replace(event.invite, can_remind=True))
            step = self.engine.step(state, event)
            step = await self._apply(subject, state, step, channel, address)
            if step.changed:
                await self.store.save(key, step.state, self.ttl)
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

    # -- internals ---------------------------------------------------------------

    async def _start_event(self, state: Mapping[str, Any], code: str | None) -> E.Event:
        code = (code or "").strip()
        if not code:
            if state.get("stage") in E.ACTIVE and state.get("bank"):
                return E.Resume()
            return E.InviteRejected("none")
        if state.get("inv", {}).get("code") == code and state.get("stage") in E.ACTIVE:
            return E.Resume()
        async with self.sessionmaker() as s:
            info_or_reason = await peek_invite(s, code, datetime.now(UTC), self.engine)
        if isinstance(info_or_reason, str):
            return E.InviteRejected(info_or_reason)
        if state.get("opened") and state.get("cycle") == info_or_reason.cycle_id:
            return E.Resume()
        return E.Start(info_or_reason)

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
        async with self.sessionmaker.begin() as s:
            ctx = _EffectContext(s, subject, step.state, channel, address, web)
            for effect in step.effects:
                refused = await self._apply_one(ctx, effect)
                if refused is not None:
                    # The invite was used up between the peek and the consent:
                    # roll back and tell the respondent, state as it was.
                    await s.rollback()
                    return self.engine.step(before, E.InviteRejected(refused))
        return _with_ids(step, ctx)

    async def _apply_one(self, ctx: _EffectContext, effect: E.Effect) -> str | None:
        s = ctx.session
        if isinstance(effect, E.OpenResponse):
            respondent = await repo.get_or_create_respondent(s, ctx.subject)
            existing = await repo.get_response(s, respondent.id, effect.cycle_id)
            if existing is None:
                result = await repo.redeem_invite(s, effect.invite_code, datetime.now(UTC))
                if not result.ok:
                    return result.status.value
                assert result.invite is not None
                origin = await self._origin(result.invite, ctx.web)
                if origin is None:
                    return BUSY
                existing = await repo.get_or_create_response(
                    s,
                    respondent_id=respondent.id,
                    cycle_id=effect.cycle_id,
                    origin=origin,
                    role=effect.role,
                    bank_tag=effect.bank_tag,
                    model_version=self.engine.model_version,
                    language=effect.lang,
                    consent_at=datetime.now(UTC),
                )
            await repo.set_language(s, respondent.id, effect.lang)
            if effect.cycle_id == ctx.cycle_id:
                ctx.ids = (existing.id, respondent.id)
            return None
        if isinstance(effect, E.Erase):
            await repo.erase_respondent(s, ctx.subject)
            ctx.ids = None
            ctx.erased = True
            return None
        ids = await ctx.response_ids()
        if ids is None:
            log.warning("effect %s without an open response", type(effect).__name__)
            return None
        response_id, respondent_id = ids
        if isinstance(effect, E.SaveAnswer):
            if effect.text is not None:
                # Free text lives only in `comment` (shown under its own, higher threshold).
                await repo.delete_answer(s, response_id, effect.question_id)
                await repo.upsert_comment(s, response_id, effect.question_id, effect.text)
            else:
                await repo.upsert_answer(
                    s,
                    response_id,
                    effect.question_id,
                    value=effect.value,
                    na=effect.na,
                    number=effect.number,
                    choice=effect.choice,
                    skipped=effect.skipped,
                )
                await repo.delete_comment(s, response_id, effect.question_id)
        elif isinstance(effect, E.DeleteAnswers):
            for qid in effect.question_ids:
                await repo.delete_answer(s, response_id, qid)
                await repo.delete_comment(s, response_id, qid)
        elif isinstance(effect, E.SetStatus):
            await repo.set_status(s, response_id, effect.status)
        elif isinstance(effect, E.SetLanguage):
            await s.execute(
                update(Response).where(Response.id == response_id).values(language=effect.lang)
            )
            await repo.set_language(s, respondent_id, effect.lang)
        elif isinstance(effect, E.SetOptIn):
            from storage.contacts import set_opt_in

            await set_opt_in(
                s,
                response_id,
                given=effect.given and self.reminders,
                channel=ctx.channel,
                address=ctx.address,
                secret_key=self.secret_key,
            )
        return None

    async def _origin(self, invite: Invite, web: WebOrigin | None) -> str | None:
        """How a new response came (`Response.origin`); None: a web respondent over the
        shared code's limit for their network (the step is refused, nothing is stored)."""
        if web is not None and web.dashboard:
            return "dashboard"
        if invite.max_uses == 1:
            return "invite"
        if web is not None and self.admission is not None:
            key = hmac.new(
                self.secret_key.encode(),
                f"admit\x1f{invite.id}\x1f{web.network}".encode(),
                hashlib.sha256,
            ).hexdigest()[:32]
            if not await self.admission.admit(key):
                log.info("shared code: a new respondent waits (network over the limit)")
                return None
        return "shared"

    async def _rebuild(self, subject: str) -> dict[str, Any]:
        """The position from the database: the newest response of this person, if any."""
        async with self.sessionmaker() as s:
            row = (
                await s.execute(
                    select(Response, Cycle, School)
                    .join(Respondent, Respondent.id == Response.respondent_id)
                    .join(Cycle, Cycle.id == Response.cycle_id)
                    .join(School, School.id == Cycle.school_id)
                    .where(Respondent.subject_hash == subject)
                    .order_by(Response.started_at.desc(), Response.id.desc())
                    .limit(1)
                )
            ).first()
            if row is None:
                return {}
            response, cycle, school = row
            if response.bank_tag not in self.engine.banks:
                return {}
            answers = await repo.load_answers(s, response.id)
            comments = await repo.load_comments(s, response.id)
        codes = {qid: "t" for qid in comments}
        codes |= {
            qid: E.answer_code(
                value=a.value, na=a.na, number=a.number, choice=a.choice, skipped=a.skipped
            )
            for qid, a in answers.items()
        }
        state = self.engine.rebuild(
            bank_tag=response.bank_tag,
            cycle_id=cycle.id,
            lang=response.language,
            status=response.status,
            answers=codes,
            # No code: nothing links a response to the invite it came through.
            invite=_invite_info(school, cycle, ""),
        )
        state[RESPONSE_ID], state[RESPONDENT_ID] = response.id, response.respondent_id
        return state


class _EffectContext:
    """The database session of one step, with the respondent's response found once.

    The ids of the response and its respondent are in the state (`rid`, `pid`) from the
    consent on (OpenResponse, or a rebuild); a state saved before they were kept there
    falls back to one lookup by the person's hash and cycle.
    """

    def __init__(
        self,
        session: AsyncSession,
        subject: str,
        state: Mapping[str, Any],
        channel: str = "telegram",
        address: str | int | None = None,
        web: WebOrigin | None = None,
    ):
        self.session = session
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

    async def response_ids(self) -> tuple[int, int] | None:
        """(response id, respondent id) of this person's response in the state's cycle."""
        if self.ids is None and self.cycle_id is not None and not self.erased:
            row = (
                await self.session.execute(
                    select(Response.id, Response.respondent_id)
                    .join(Respondent, Respondent.id == Response.respondent_id)
                    .where(
                        Respondent.subject_hash == self.subject,
                        Response.cycle_id == self.cycle_id,
                    )
                )
            ).first()
            if row is not None:
                self.ids = (row[0], row[1])
        return self.ids


def _with_ids(step: E.Step, ctx: _EffectContext) -> E.Step:
    """Keep the response's ids in the state (after the commit), so the next step needs no lookup."""
    st = step.state
    if ctx.ids is None or ctx.erased or st.get("cycle") != ctx.cycle_id or not st.get("opened"):
        return step
    if st.get(RESPONSE_ID) == ctx.ids[0] and st.get(RESPONDENT_ID) == ctx.ids[1]:
        return step
    return dataclasses.replace(
        step, state={**st, RESPONSE_ID: ctx.ids[0], RESPONDENT_ID: ctx.ids[1]}
    )


def _invite_info(school: School, cycle: Cycle, code: str) -> dict[str, Any]:
    langs = [lang for lang in (school.languages or ["en"]) if lang] or ["en"]
    return {
        "code": code,
        "school": school.name,
        "thr": cycle.anonymity_threshold,
        "ftt": cycle.free_text_threshold,
        "langs": langs,
    }


async def peek_invite(
    s: AsyncSession, code: str, now: datetime, engine: E.Engine
) -> E.InviteInfo | str:
    """Check an invite code without using it up: an InviteInfo, or the reason it is refused."""
    if len(code) > 64 or not code.replace("-", "").replace("_", "").isalnum():
        return "unknown"
    row = (
        await s.execute(
            select(Invite, Cycle, School)
            .join(Cycle, Cycle.id == Invite.cycle_id)
            .join(School, School.id == Cycle.school_id)
            .where(Invite.code == code)
        )
    ).first()
    if row is None:
        return "unknown"
    invite, cycle, school = row
    if invite.revoked_at is not None:
        return "revoked"
    if invite.expires_at is not None and invite.expires_at <= now:
        return "expired"
    if cycle.status != "open" or (cycle.closes_at is not None and cycle.closes_at <= now):
        return "cycle_closed"
    if invite.max_uses is not None and invite.uses >= invite.max_uses:
        return "used_up"
    bank = next((b for b in engine.banks.values() if b.role.value == invite.role), None)
    if bank is None:
        return "unknown"
    info = _invite_info(school, cycle, code)
    shipped = set(available_languages())
    langs = tuple(lang for lang in info["langs"] if lang in shipped) or ("en",)
    return E.InviteInfo(
        code=code,
        invite_id=invite.id,
        cycle_id=cycle.id,
        role=invite.role,
        bank_tag=bank.tag,
        school_name=school.name,
        languages=langs,
        threshold=cycle.anonymity_threshold,
        free_text_threshold=cycle.free_text_threshold,
    )
