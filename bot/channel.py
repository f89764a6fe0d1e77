"""The Telegram channel: an Update in, engine events to the use case, prompts out as Bot API calls.

Dispatch is ours, not PTB's: `Application.process_update` catches every handler
exception and hands it to error handlers, so a transient database or Redis failure
would never reach the webhook view (which must answer 503 so that Telegram retries).
We read the update's few fields ourselves (`bot.updates.parse`: PTB's `Update.de_json`
builds the whole object tree, a millisecond of CPU a tap) and call `dispatch` directly;
PTB gives us the Bot (HTTP, errors) and the Application lifecycle. No
ConversationHandler: the flow lives in `conversations.engine`.

One update, read aloud: who is it (a keyed hash of the Telegram user id, never the id
itself) -> which engine event -> `survey.handle` (lock, state, database first, save)
-> answer the tap at once -> queue the card edit / new messages in the outbox.

The survey card's message id is channel-specific, so it is not in the engine state: it
lives in the session store under its own small key `SessionKey("tgcard", subject)` ->
`{"m": message_id, "h": hash of the shown text and buttons}` (and `"n": 1` when the
card shows no buttons), written by the outbox when the card was delivered. A tap on an
older message then does not fork the card, and a re-render that would change nothing
costs no Bot API call. When a typed message makes us send the card anew (a number, a
comment, a command), the old card's buttons are taken away first (editMessageReplyMarkup),
so only the newest card in the chat can be tapped; /stop takes them away too. Two typed
messages handled before either new card is out both strip the same old card; the outbox
then strips the card sent first once the second is delivered (`_remember_card`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from telegram.error import RetryAfter, TelegramError
from telegram.ext import Application

from bot import callback
from bot.outbox import BotMetrics, Outbox, Outgoing, retry_after_seconds
from bot.ratelimit import RateLimiter
from bot.render import card_hash, command_menu, markup_json, render
from bot.updates import CallbackQuery, Message, Update, parse
from conversations import engine as E
from conversations.i18n import DEFAULT_LANGUAGE, Translator, available_languages
from conversations.ports import Once, Repeated, SessionKey
from conversations.survey import Survey
from storage.dedup import PROCESSING_LEASE, UpdateDeduplicator
from storage.errors import is_transient

log = logging.getLogger(__name__)

CHANNEL = "telegram"
ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]
# Stages a typed command can lead to that show no card: the old card's buttons go.
COMMANDS: dict[str, type[E.Event]] = {
    "resume": E.Resume,
    "restart": E.Restart,
    "stop": E.Stop,
    "help": E.Help,
    "language": E.ShowLanguages,
    "privacy": E.Privacy,
    "delete": E.DeleteRequest,
}
# Messages queued for Telegram beyond which a question card also offers the Mini App:
# three seconds of the bot's 30 messages/s (a classroom tapping at once).
BUSY_QUEUE = 90

# A tap the engine must refuse with "that button belongs to another question" (an old
# card, another bank version, data we cannot read): an empty answer to no question.
STALE = E.Answer(question_id="\x00stale", value="")


# Set by the webhook view around one update: the reply to the tap goes into the HTTP
# answer as a method call (Telegram executes it), instead of an outbound request.
WEBHOOK_REPLY: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "webhook_reply", default=None
)


class UpdateInProgress(TimeoutError):
    """A duplicate of an update whose processing has not finished (transient: retry later)."""


class BotChannel:
    def __init__(
        self,
        application: Application,
        survey: Survey,
        dedup: UpdateDeduplicator,
        metrics: BotMetrics,
        *,
        public_url: str = "",
        limiter: RateLimiter | None = None,
        backoff: float = 0.5,
        poll_timeout: int = 30,
    ) -> None:
        self.application = application
        self.bot = application.bot
        self.survey = survey
        self.dedup = dedup
        self.metrics = metrics
        self.public_url = public_url.rstrip("/")
        self.poll_timeout = poll_timeout
        self.outbox = Outbox(
            self.bot,
            limiter or RateLimiter(),
            metrics,
            on_card=self._remember_card,
            on_blocked=self._mark_blocked,
            backoff=backoff,
        )
        self._polling: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------

    @property
    def web_app_url(self) -> str | None:
        return self.public_url + "/app" if self.public_url.startswith("https://") else None

    async def start(self, *, set_webhook: bool, polling: bool, secret: str) -> None:
        await self.application.initialize()  # getMe
        await self.application.start()
        # The menu in English for everyone, and in each catalog's language for people whose
        # Telegram is set to it (Telegram picks by the user's language_code).
        for lang in available_languages():
            await self._call(
                "setMyCommands",
                self.bot.set_my_commands(
                    command_menu(Translator(lang)),
                    language_code=None if lang == DEFAULT_LANGUAGE else lang,
                ),
            )
        if set_webhook:
            await self.bot.set_webhook(
                url=self.public_url + "/telegram/webhook",
                secret_token=secret,
                allowed_updates=ALLOWED_UPDATES,
                max_connections=40,
            )
            self.metrics.bot_calls.labels("setWebhook", "ok").inc()
        if polling:
            await self.bot.delete_webhook()
            self.metrics.bot_calls.labels("deleteWebhook", "ok").inc()
            self._polling = asyncio.create_task(self._poll(), name="telegram-polling")

    async def stop(self, drain_timeout: float = 10.0) -> None:
        if self._polling is not None:
            self._polling.cancel()
            await asyncio.gather(self._polling, return_exceptions=True)
            self._polling = None
        await self.outbox.close(drain_timeout)
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()

    # -- updates ---------------------------------------------------------------------

    async def process(self, update: Update) -> str:
        """Claim the update id, dispatch; a transient failure releases the claim and raises.

        The claim is a lease until the update is processed: a duplicate of an update that
        is still in progress (here, in another process, or in one that died) raises
        UpdateInProgress (transient: 503, Telegram retries) instead of being dropped. A
        respondent's step claims the update with their lock and finishes it as the lock is
        let go (`Once`: the same two Redis round trips); any other update claims first."""
        once = Once(self.dedup, update.update_id, PROCESSING_LEASE)
        try:
            outcome = await self.dispatch(update, once)
        except Repeated as seen:
            if seen.done:
                return "duplicate"
            raise UpdateInProgress(f"update {update.update_id} is being processed") from None
        except Exception as exc:
            if not is_transient(exc):
                await self._finish(update.update_id)  # answered 200: never again
            elif once.claimed:
                try:
                    await self.dedup.release(update.update_id)
                except Exception as exc2:
                    log.error("could not release update claim: %s", type(exc2).__name__)
            raise
        if not once.finished:
            await self._finish(update.update_id)
        return outcome

    async def _finish(self, update_id: int) -> None:
        try:
            await self.dedup.finish(update_id)
        except Exception as exc:  # the lease then expires; the update was processed
            log.warning("could not mark update %s done: %s", update_id, type(exc).__name__)

    async def dispatch(self, update: Update, once: Once) -> str:
        """The outcome (for metrics): message, tap, member, group, ignored ...

        `once` is claimed before the update's first effect (Repeated if it was before)."""
        if update.callback_query is not None:
            return await self._on_tap(update.callback_query, once)
        if update.message is not None:
            return await self._on_message(update.message, once)
        await once.claim()
        if update.my_chat_member is not None:
            return await self._on_member(update)
        return "ignored"  # edited messages, channel posts, polls, anything newer

    async def _on_message(self, msg: Message, once: Once) -> str:
        user = msg.from_user
        text = msg.text or ""
        if msg.chat.type != "private" or user is None or user.is_bot:
            await once.claim()
        if msg.chat.type != "private":
            if text.startswith("/") and msg.chat.type in ("group", "supergroup"):
                t = self.survey.engine.t({})
                self.outbox.submit([Outgoing(msg.chat.id, t("group.refused"))])
                return "group_refused"
            return "group_ignored"
        if user is None or user.is_bot:
            return "ignored"
        subject = self.survey.subject(CHANNEL, user.id)
        started = False
        if text.startswith("/"):
            command, _, arg = text[1:].partition(" ")
            command = command.split("@", 1)[0].lower()
            if command == "start":
                started = True
                outcome = await self.survey.start(
                    subject, arg.strip() or None, CHANNEL, address=msg.chat.id, once=once
                )
            else:
                event = COMMANDS.get(command, E.Help)()
                outcome = await self.survey.handle(
                    subject,
                    event,
                    CHANNEL,
                    address=msg.chat.id,
                    also=self.card_key(subject),
                    once=once,
                )
        else:
            outcome = await self.survey.handle(
                subject,
                E.Answer(None, text),
                CHANNEL,
                address=msg.chat.id,
                also=self.card_key(subject),
                once=once,
            )
        step = outcome.step
        await self._forget_card_if_erased(subject, step)
        items = self._messages(msg.chat.id, subject, step, edit=None)
        new_card = next((i for i, item in enumerate(items) if item.card), None)
        card_gone = step.changed and step.state.get("stage") in E.CARDLESS
        if new_card is not None or card_gone:
            card = outcome.also
            if started:  # runner.start reads no `also`; a /start is rare
                card = await self.survey.store.load(self.card_key(subject))
            old = card.get("m") if card and not card.get("n") else None
            if isinstance(old, int):
                strip = Outgoing.strip_keyboard(msg.chat.id, old, subject)
                if new_card is not None:
                    # The card is sent anew below the typed message: the old one, higher
                    # up, keeps its text but loses its buttons (queued before the new card).
                    items[new_card] = replace(items[new_card], replaces=old)
                    items.insert(new_card, strip)
                else:
                    # /stop (or declining by command): no card follows, the old one is
                    # left without buttons; /resume sends a new one.
                    items.insert(0, strip)
                    if not _leaves_nothing(step):
                        await self.survey.store.save(
                            self.card_key(subject), dict(card, n=1), self.survey.ttl
                        )
        self.outbox.submit(items)
        return "message"

    async def _on_tap(self, cq: CallbackQuery, once: Once) -> str:
        msg = cq.message
        if msg is None or msg.chat.type != "private":
            await once.claim()
            await self._answer(cq, None)
            return "tap_ignored"
        subject = self.survey.subject(CHANNEL, cq.from_user.id)
        tap = callback.decode(cq.data)
        # The tap is read against the state loaded under the lock; the card id comes in
        # the same round trip.
        outcome = await self.survey.handle(
            subject,
            lambda state: self._tap_event(tap, state),
            CHANNEL,
            address=msg.chat.id,
            also=self.card_key(subject),
            once=once,
        )
        step = outcome.step
        card = outcome.also
        await self._forget_card_if_erased(subject, step)
        tapped_card = card is None or card.get("m") == msg.message_id
        first = step.prompts[0] if step.prompts else None
        toast = first.notice if first is not None else None
        if toast is None and not step.changed and not tapped_card:
            toast = self.survey.engine.t(step.state)("question.stale")
        await self._answer(cq, toast)
        if not step.changed and not tapped_card:
            return "tap_stale"  # the toast says it; the live card is further down
        editable = msg.accessible  # not an InaccessibleMessage (too old)
        target = msg.message_id if tapped_card and editable else (card or {}).get("m")
        items = self._messages(msg.chat.id, subject, step, edit=target)
        if (
            items
            and items[0].edit_message_id is not None
            and card is not None
            and items[0].card_hash == card.get("h")
            and items[0].edit_message_id == card.get("m")
        ):
            items = items[1:]  # the card already shows exactly this
        self.outbox.submit(items)
        return "tap"

    async def _on_member(self, update: Update) -> str:
        member = update.my_chat_member
        assert member is not None
        if member.chat.type != "private":
            return "group_ignored"
        status = member.status
        subject = self.survey.subject(CHANNEL, member.from_user.id)
        if status in ("kicked", "member"):
            await self.survey.set_reachable(subject, status != "kicked")
        return "member"

    # -- events and messages ---------------------------------------------------------

    @staticmethod
    def _tap_event(tap: callback.Tap | None, state: Mapping[str, Any]) -> E.Event:
        if tap is None:
            return STALE
        if tap.bank != callback.NO_BANK and state.get("bank") and tap.bank != state["bank"]:
            return STALE
        if tap.target == callback.CONSENT:
            return E.Consent(tap.choice == E.YES) if tap.choice in (E.YES, E.NO) else STALE
        if tap.target == callback.CONFIRM:
            return E.DeleteConfirm(tap.choice == E.YES) if tap.choice in (E.YES, E.NO) else STALE
        if tap.target == callback.LANGUAGE:
            return E.ChooseLanguage(tap.choice)
        if tap.target == callback.OPTIN:
            return E.OptIn(tap.choice == E.YES) if tap.choice in (E.YES, E.NO) else STALE
        if tap.target == callback.REMIND:  # the buttons of a reminder message
            if tap.choice == callback.REMIND_GO:
                return E.Resume()
            return E.OptIn(False) if tap.choice == callback.REMIND_OFF else STALE
        if tap.target.startswith("!"):
            return STALE
        return E.Answer(tap.target, tap.choice)

    def _messages(
        self, chat_id: int, subject: str, step: E.Step, *, edit: int | None
    ) -> list[Outgoing]:
        """The step's prompts as outgoing messages; `edit`: the first one edits that card."""
        engine = self.survey.engine
        t = engine.t(step.state)
        erased = _leaves_nothing(step)
        bank = step.state.get("bank")
        busy = self.outbox.depth >= BUSY_QUEUE
        items: list[Outgoing] = []
        for i, prompt in enumerate(step.prompts):
            label = None
            if prompt.question_id is not None and prompt.current is not None:
                label = E.answer_label(engine, step.state, prompt.question_id)
            r = render(
                prompt,
                t,
                bank=bank,
                current_label=label,
                notice=not (i == 0 and edit is not None),  # a tap's notice is the toast
                web_app_url=self.web_app_url,
                busy=busy,
            )
            target = edit if i == 0 else None
            keys = markup_json(r.markup)
            # A card stays the card; the message a tap edited into an info stops being it.
            items.append(
                Outgoing(
                    chat_id,
                    r.text,
                    keys,
                    edit_message_id=target,
                    subject=subject,
                    card=(r.card or target is not None) and not erased,
                    card_hash=card_hash(r.text, keys),
                )
            )
        return items

    # -- small Bot API helpers -------------------------------------------------------

    async def _answer(self, cq: CallbackQuery, text: str | None) -> None:
        """answerCallbackQuery at once (not behind the message queue); never raises.

        Under the webhook, it is the update's one reply in the HTTP answer (Telegram's
        "reply to the webhook with a method call"): no request of ours, no wait."""
        text = (text or None) and text[:200]
        reply = WEBHOOK_REPLY.get()
        if reply is not None and not reply:
            reply.update(method="answerCallbackQuery", callback_query_id=cq.id)
            if text:
                reply["text"] = text
            self.metrics.bot_calls.labels("answerCallbackQuery", "webhook_reply").inc()
            return
        for _ in range(2):
            try:
                await self.bot.answer_callback_query(cq.id, text=text)
                self.metrics.bot_calls.labels("answerCallbackQuery", "ok").inc()
                return
            except RetryAfter as exc:
                self.metrics.rate_limited.inc()
                self.metrics.bot_calls.labels("answerCallbackQuery", "rate_limited").inc()
                await asyncio.sleep(min(retry_after_seconds(exc), 2.0))
            except TelegramError as exc:  # too old, already answered, network: not fatal
                self.metrics.bot_calls.labels("answerCallbackQuery", "error").inc()
                log.info("answerCallbackQuery failed: %s", type(exc).__name__)
                return

    async def _call(self, method: str, coro: Any) -> Any:
        try:
            result = await coro
        except TelegramError as exc:
            self.metrics.bot_calls.labels(method, "error").inc()
            log.warning("%s failed: %s", method, type(exc).__name__)
            return None
        self.metrics.bot_calls.labels(method, "ok").inc()
        return result

    # -- the card id and the blocked flag ----------------------------------------------

    @staticmethod
    def card_key(subject: str) -> SessionKey:
        return SessionKey("tgcard", subject)

    async def _forget_card_if_erased(self, subject: str, step: E.Step) -> None:
        if _leaves_nothing(step):
            await self.survey.store.delete(self.card_key(subject))

    async def _remember_card(self, item: Outgoing, message_id: int) -> None:
        """The outbox delivered a card: it is the one a tap or the next strip refers to.

        A card sent anew normally replaces the card stripped just before it. When another
        card with buttons was remembered meanwhile (two typed messages at once: both were
        handled before either card went out, so both stripped the same old card), that
        one is stripped now, so that only the newest card in the chat has buttons. Edits
        (taps) skip this check: they keep the same message."""
        assert item.subject is not None
        key = self.card_key(item.subject)
        if item.edit_message_id is None:
            prev = await self.survey.store.load(key)
            other = prev.get("m") if prev and not prev.get("n") else None
            if isinstance(other, int) and other not in (message_id, item.replaces):
                self.outbox.submit([Outgoing.strip_keyboard(item.chat_id, other, item.subject)])
        card: dict[str, Any] = {"m": message_id, "h": item.card_hash}
        if item.markup is None:
            card["n"] = 1  # nothing to strip when a typed answer sends the next card
        await self.survey.store.save(key, card, self.survey.ttl)

    async def _mark_blocked(self, subject: str) -> None:
        await self.survey.set_reachable(subject, False)

    # -- polling (local development) ----------------------------------------------------

    async def _poll(self) -> None:
        """getUpdates in a loop, fed to the same `process` as the webhook."""
        offset: int | None = None
        delay = 1.0
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=offset, timeout=self.poll_timeout, allowed_updates=ALLOWED_UPDATES
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("getUpdates failed: %s; again in %.0fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 1.0
            for update in updates:
                try:
                    outcome = await self.process(parse(update.to_dict()))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if is_transient(exc):
                        self.metrics.updates.labels("transient").inc()
                        log.warning("transient failure (%s): fetch again", type(exc).__name__)
                        await asyncio.sleep(1.0)
                        break  # offset not advanced: getUpdates returns it again
                    outcome = "error"
                    log.error("update failed: %s", type(exc).__name__)
                self.metrics.updates.labels(outcome).inc()
                offset = update.update_id + 1


def _leaves_nothing(step: E.Step) -> bool:
    """Erased or declined: keep no card id either (it is keyed by the person's hash)."""
    return step.state.get("stage") in E.GONE or any(isinstance(e, E.Erase) for e in step.effects)
