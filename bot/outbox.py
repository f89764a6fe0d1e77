"""Outbound Bot API messages: one ordered queue per chat, sent in the background.

Why in the background: the answer is already in the database when a message is queued
(the design: database first); a slow or failing Bot API call must neither undo it nor
hold the webhook request (Telegram's connections to us are few). Per chat the order is
kept (a notice, then the card), across chats the rate limiter shares ~30/s fairly: the
chats with something to send wait in one line, and one dispatcher gives the first in line
its turn at the bot's pace, as a task of its own for that one message. A chat that has sent
as much as its own pace allows waits on a timer and comes back to the end of the line. So a
crowd's thousands of chats wait as entries in a queue, not as sleeping tasks.

Every failure is handled here, none is dropped silently:
- 429: wait `retry_after`, then try again (counted in `rate_limited`);
- 5xx, timeouts, network: retry with exponential backoff, then give up (log + metric);
- 403: the person blocked the bot: `on_blocked` marks them, their queue is dropped;
- 400 "message is not modified": the card already shows this, fine;
- 400 on an edit (message too old, deleted): send the card as a new message instead;
- 400 on a keyboard strip (not modified, not found, too old): nothing to strip, fine.
An edit of a card that a newer edit of it overtakes before it is sent is not sent at all
(`supersedes`, counted as `superseded`). `close()` drains what is pending at shutdown (with
a time limit).

The calls go through `Bot.do_api_request` with plain JSON parameters: PTB's request layer
and its errors (RetryAfter, Forbidden, BadRequest, NetworkError) as `bot.edit_message_text`
has them, without PTB objects for the keyboard or for Telegram's answer (a whole Message
parsed per edit, of which we need the id). Per card that was ~0.2 ms of CPU of the
~2 ms an answer costs (bench/README.md, "The third hot-path pass"). PTB warns that the
methods have wrappers of their own; for these three that is the point, so it is silenced.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol

from prometheus_client import Counter, Gauge
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.warnings import PTBDeprecationWarning, PTBUserWarning

from bot.ratelimit import RateLimiter

log = logging.getLogger(__name__)

# (pyproject.toml's pytest filterwarnings repeats it: pytest puts its own filters first)
warnings.filterwarnings(
    "ignore",
    message=r"Please use 'Bot\.(sendMessage|editMessageText|editMessageReplyMarkup)'",
    category=PTBUserWarning,
)


class BotMetrics(Protocol):
    """The counters the Telegram channel keeps (`backend.web.metrics.Metrics` has them)."""

    updates: Counter  # updates received, by outcome
    bot_calls: Counter  # Bot API calls, by method and outcome
    rate_limited: Counter  # 429 answers
    outbound_queue: Gauge  # calls waiting for the rate limiter
    errors: Counter  # errors by kind


MAX_RETRY_AFTER_ROUNDS = 10


@dataclass(frozen=True, slots=True)
class Outgoing:
    chat_id: int
    text: str
    markup: str | None = None  # the keyboard as JSON (`bot.render.markup_json`)
    edit_message_id: int | None = None  # edit this message instead of sending a new one
    subject: str | None = None  # the respondent (keyed hash), for card ids and blocking
    card: bool = False  # the survey card: remember its message id
    card_hash: str = ""
    strip: bool = False  # only remove the keyboard of `edit_message_id` (an old card)
    # A card sent anew: the old card whose buttons go with it (stripped before it, or the
    # card an edit could not reach). Another card remembered by then is stripped after it.
    replaces: int | None = None

    @classmethod
    def strip_keyboard(cls, chat_id: int, message_id: int, subject: str | None = None) -> Outgoing:
        """editMessageReplyMarkup without a markup: the old card's buttons go, its text stays."""
        return cls(chat_id, "", None, edit_message_id=message_id, subject=subject, strip=True)

    def params(self) -> dict[str, Any]:
        """The Bot API call's parameters (JSON values) for `method`."""
        params: dict[str, Any] = {"chat_id": self.chat_id}
        if self.edit_message_id is not None:
            params["message_id"] = self.edit_message_id
        if not self.strip:  # a strip sends no markup: the buttons go
            params["text"] = self.text
            if self.markup is not None:
                params["reply_markup"] = self.markup
        return params

    @property
    def method(self) -> str:
        if self.strip:
            return "editMessageReplyMarkup"
        return "editMessageText" if self.edit_message_id is not None else "sendMessage"


def supersedes(new: Outgoing, waiting: Outgoing) -> bool:
    """`new` makes `waiting` (not yet sent) pointless: both edit the same card message in
    place, text and buttons. A strip, a card sent anew and what it replaces stay."""
    return (
        new.card
        and waiting.card
        and not (new.strip or waiting.strip)
        and new.edit_message_id is not None
        and new.edit_message_id == waiting.edit_message_id
        and new.replaces is None
        and waiting.replaces is None
    )


def retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: Any = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def is_not_modified(exc: BadRequest) -> bool:
    return "not modified" in str(exc).lower()


# (the card delivered, its message id): `item.edit_message_id` is None when it was sent anew
CardCallback = Callable[["Outgoing", int], Awaitable[None]]
BlockedCallback = Callable[[str], Awaitable[None]]


class Outbox:
    def __init__(
        self,
        bot: Any,
        limiter: RateLimiter,
        metrics: BotMetrics,
        *,
        on_card: CardCallback | None = None,
        on_blocked: BlockedCallback | None = None,
        max_attempts: int = 5,
        backoff: float = 0.5,
    ) -> None:
        self.bot = bot
        self.limiter = limiter
        self.metrics = metrics
        self.on_card = on_card
        self.on_blocked = on_blocked
        self.max_attempts = max_attempts
        self.backoff = backoff
        self._queues: dict[int, deque[Outgoing]] = {}  # a chat is here while it has any
        self._ready: deque[int] = deque()  # chats whose first message waits for its turn
        self._sending: dict[int, asyncio.Task[None]] = {}  # chats with a message in flight
        self._later: dict[int, asyncio.TimerHandle] = {}  # chats waiting for their own pace
        self._dispatcher: asyncio.Task[None] | None = None
        self._settled: asyncio.Future[None] | None = None  # woken when a chat is done
        self._closed = False
        self.depth = 0  # messages queued, all chats (the gauge's value, read on the hot path)

    # -- public ------------------------------------------------------------------

    def submit(self, items: list[Outgoing]) -> None:
        """Queue messages (kept in order per chat); returns at once.

        An edit of a card that is still waiting behind the chat's first message is
        replaced by a newer edit of the same card (`supersedes`): the card is only worth
        showing as it is now. When the taps outrun Telegram's pace (about one message a
        second per chat, 30 a second in all), the person sees their current card next,
        not every card they have already answered, one a second; and a run of taps leaves
        one waiting edit of the card in the chat's queue, not one per tap."""
        if self._closed:
            for item in items:
                self._gave_up(item, "closed")
            return
        for item in items:
            queue = self._queues.get(item.chat_id)
            if queue is None:
                queue = self._queues[item.chat_id] = deque()
                self._ready.append(item.chat_id)
            elif len(queue) > 1 and supersedes(item, queue[-1]):  # queue[0] is on its way
                self.metrics.bot_calls.labels(queue[-1].method, "superseded").inc()
                queue[-1] = item
                continue
            queue.append(item)
            self._queued(1)
        self._wake()

    async def join(self, chat_id: int | None = None) -> None:
        """Wait until every queued message (of one chat) was delivered or given up."""
        while self._queues if chat_id is None else chat_id in self._queues:
            if self._settled is None:
                self._settled = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._settled)

    async def close(self, drain_seconds: float = 10.0) -> None:
        """Stop taking messages and drain the queues; what is left after `drain_seconds` is
        logged and given up."""
        self._closed = True
        try:
            async with asyncio.timeout(drain_seconds):
                await self.join()
        except TimeoutError:
            left = sum(len(q) for q in self._queues.values())
            log.error("shutdown: %d outbound message(s) not delivered in %ss", left, drain_seconds)
            for timer in self._later.values():
                timer.cancel()
            tasks = [*self._sending.values(), *([self._dispatcher] if self._dispatcher else [])]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for queue in self._queues.values():
                while queue:
                    self._gave_up(queue.popleft(), "cancelled")
                    self._queued(-1)
            self._queues.clear()
            self._ready.clear()
            self._later.clear()
            self._sending.clear()
            self._done()

    def _queued(self, change: int) -> None:
        self.depth += change
        self.metrics.outbound_queue.inc(change)

    # -- the pace: one dispatcher, a task per message in flight ------------------------

    def _wake(self) -> None:
        if self._ready and self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch())

    async def _dispatch(self) -> None:
        """Hand each ready chat's first message to a task of its own, at the bot's pace.

        One task waits for the pace of the whole bot, not one per chat: a crowd that starts
        at once leaves thousands of chats with something to send (bench/README.md, the
        eighth pass). A chat that has sent as much as its own pace allows waits on a timer
        and comes back to the end of the line."""
        limiter = self.limiter
        try:
            while self._ready:
                chat = self._ready.popleft()
                if chat not in self._queues or chat in self._sending or chat in self._later:
                    continue  # (nothing left, or on its way already)
                wait = limiter.chat_wait(chat)
                if wait > 0:
                    self._later[chat] = asyncio.get_running_loop().call_later(
                        wait, self._paced, chat
                    )
                    continue
                await limiter.global_bucket.acquire()
                limiter.take(chat)
                self._sending[chat] = asyncio.create_task(self._send_first(chat))
        finally:
            self._dispatcher = None

    def _paced(self, chat: int) -> None:
        del self._later[chat]
        self._ready.append(chat)
        self._wake()

    async def _send_first(self, chat: int) -> None:
        queue = self._queues[chat]
        item = queue[0]
        try:
            keep_going = await self._deliver(item, paced=True)
        except asyncio.CancelledError:
            raise  # `close` gives up what is left
        except Exception as exc:  # our bug: log, never lose the rest of the queue
            log.error("outbound %s failed: %s", item.method, type(exc).__name__)
            self._gave_up(item, "error")
            keep_going = True
        del self._sending[chat]
        queue.popleft()
        self._queued(-1)
        if not keep_going:
            while queue:
                self._gave_up(queue.popleft(), "blocked")
                self._queued(-1)
        if queue:
            self._ready.append(chat)
            self._wake()
        else:
            del self._queues[chat]
            self._done()

    def _done(self) -> None:
        """A chat has nothing more to send: wake whoever `join`s."""
        if self._settled is not None:
            if not self._settled.done():
                self._settled.set_result(None)
            self._settled = None

    def _gave_up(self, item: Outgoing, why: str) -> None:
        self.metrics.bot_calls.labels(item.method, "gave_up").inc()
        self.metrics.errors.labels(f"bot_send_{why}").inc()
        log.warning("outbound %s given up (%s)", item.method, why)

    async def _deliver(self, item: Outgoing, paced: bool = False) -> bool:
        """Send one message; False when the chat is blocked (drop the rest of its queue).
        `paced`: its first try already has its turn (the dispatcher's); a try again waits
        for one."""
        attempts = 0
        rounds_429 = 0
        while True:
            if not paced:
                await self.limiter.acquire(item.chat_id)
            paced = False
            method = item.method
            try:
                sent = await self.bot.do_api_request(method, api_kwargs=item.params())
                message_id = (
                    item.edit_message_id if item.edit_message_id is not None else sent["message_id"]
                )
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                self.metrics.rate_limited.inc()
                self.metrics.bot_calls.labels(method, "rate_limited").inc()
                rounds_429 += 1
                if rounds_429 > MAX_RETRY_AFTER_ROUNDS:
                    self._gave_up(item, "flood")
                    return True
                log.info("429 on %s: waiting %.1fs as asked", method, wait)
                await asyncio.sleep(wait)
                continue
            except Forbidden:
                self.metrics.bot_calls.labels(method, "forbidden").inc()
                log.info("403 on %s: the respondent blocked the bot", method)
                if item.subject and self.on_blocked is not None:
                    try:
                        await self.on_blocked(item.subject)
                    except Exception as exc:
                        log.error("could not mark a blocked respondent: %s", type(exc).__name__)
                return False
            except BadRequest as exc:
                if is_not_modified(exc):
                    self.metrics.bot_calls.labels(method, "not_modified").inc()
                    await self._card_shown(item, item.edit_message_id)
                    return True
                self.metrics.bot_calls.labels(method, "bad_request").inc()
                if item.strip:
                    # Deleted, too old, not ours: there are no buttons to take away there.
                    log.info("400 on %s (ignored): %s", method, _short(exc))
                    return True
                if item.edit_message_id is not None:
                    # The card cannot be edited (too old, deleted): send it anew.
                    item = replace(item, edit_message_id=None, replaces=item.edit_message_id)
                    continue
                log.error("400 on %s: %s", method, _short(exc))
                self._gave_up(item, "bad_request")
                return True
            except NetworkError as exc:  # 5xx, timeouts, connection errors
                attempts += 1
                self.metrics.bot_calls.labels(method, "retry").inc()
                if attempts >= self.max_attempts:
                    log.error("%s failed %d times (%s)", method, attempts, _short(exc))
                    self._gave_up(item, "network")
                    return True
                await asyncio.sleep(self.backoff * 2 ** (attempts - 1))
                continue
            except TelegramError as exc:  # InvalidToken, Conflict, ChatMigrated ...
                self.metrics.bot_calls.labels(method, "error").inc()
                log.error("%s failed: %s", method, type(exc).__name__)
                self._gave_up(item, "telegram_error")
                return True
            self.metrics.bot_calls.labels(method, "ok").inc()
            await self._card_shown(item, message_id)
            return True

    async def _card_shown(self, item: Outgoing, message_id: int | None) -> None:
        if item.card and item.subject and message_id is not None and self.on_card is not None:
            try:
                await self.on_card(item, message_id)
            except Exception as exc:  # only a hint for the next tap: never fail a send for it
                log.warning("could not remember the card: %s", type(exc).__name__)


def _short(exc: BaseException) -> str:
    """The error's class and Telegram's description, without any message text of ours."""
    return f"{type(exc).__name__}: {str(exc)[:120]}"
