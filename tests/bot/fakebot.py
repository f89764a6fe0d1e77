"""A fake Telegram Bot API (aiohttp on 127.0.0.1) and a "Telegram" driver.

One fake serves the tests and the benchmark. In the tests it runs in-process
(`async with FakeBotAPI() as fake`, or `start()` and `close()`); the bench runs it as its own process
(`python -m bench.fake_bot_api`, a thin `main()` around `FakeBotAPI.app()`).

FakeBotAPI records every call (method, params; `record=False` keeps counts only), keeps
what each chat shows (messages, their text and buttons, edits applied) and can be told to
fail: 429 with retry_after, 400 (e.g. "message is not modified"), 403 blocked, 5xx, or slow
answers. With `rate`, message calls (sendMessage, editMessageText) beyond `rate` in any
sliding second are refused with 429 and `retry_after`, as Telegram does. Beside the Bot API
it answers, for a load generator in another process:
    GET /_bench/wait?chat=ID&after=V&timeout=S  -> {"version", "message_id", "data", "text"}
        (long poll: returns once the chat's card version is above V, or at the timeout)
    GET /_bench/stats                           -> counts by method and status, 429s, times
    POST /_bench/reset                          -> forget everything

Telegram builds real Telegram-shaped updates and POSTs them to our webhook with the
secret header, like Telegram does: retrying non-200 answers, duplicates, bursts; a
method call in the webhook's answer (answerCallbackQuery) is executed against FakeBotAPI.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.apptools import TOKEN, WEBHOOK_SECRET


def bot_user(token: str, username: str) -> dict[str, Any]:
    """What getMe answers: the bot whose id starts the token."""
    return {
        "id": int(token.split(":")[0]),
        "is_bot": True,
        "first_name": "Guidance Survey",
        "username": username,
        "can_join_groups": False,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
    }


BOT_USER = bot_user(TOKEN, "guidance_test_bot")
# The calls `rate` limits (the bench runs with `--rate 30`, like Telegram's flood limit).
MESSAGE_METHODS = ("sendMessage", "editMessageText")
_JSON_PARAMS = {"reply_markup", "allowed_updates", "commands"}
_INT_PARAMS = {"chat_id", "message_id", "offset", "timeout", "max_connections", "limit"}
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and "
    "reply markup are exactly the same as a current content and reply markup "
    "of the message"
)


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float
    status: int = 200


@dataclass
class Fault:
    method: str
    status: int | None  # None: answer normally (after `delay`)
    description: str = ""
    retry_after: int | None = None
    times: int = 1
    chat_id: int | None = None
    delay: float = 0.0


@dataclass
class Shown:
    """A message as the person sees it."""

    message_id: int
    text: str
    reply_markup: dict[str, Any] | None = None
    edits: int = 0

    def buttons(self) -> list[dict[str, Any]]:
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [b for row in rows for b in row]

    def callback_data(self) -> list[str]:
        return [b["callback_data"] for b in self.buttons() if "callback_data" in b]


@dataclass
class Card:
    """What a person taps in a chat, for a load generator: the newest message with buttons,
    and a version that grows with every send or edit (an info message below the card counts
    too: the flow moved on)."""

    version: int = 0
    message_id: int = 0
    data: list[str] = field(default_factory=list)
    text: str = ""
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class FakeBotAPI:
    token: str = TOKEN
    rate: float | None = None  # message calls per sliding second; beyond: 429, retry_after 1
    record: bool = True  # keep every call in `calls` (the bench counts only)
    me: dict[str, Any] = field(default_factory=lambda: dict(BOT_USER))
    calls: list[Call] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    chats: dict[int, dict[int, Shown]] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)  # for getUpdates
    webhook: dict[str, Any] = field(default_factory=dict)
    url: str = ""
    counts: Counter[str] = field(default_factory=Counter)  # "sendMessage 200" -> calls
    limited: int = 0  # message calls refused by `rate`
    chat_calls: Counter[Any] = field(default_factory=Counter)  # message calls answered 200
    cards: dict[int, Card] = field(default_factory=dict)
    first_message_at: float | None = None  # the first and the last message call answered 200
    last_message_at: float | None = None
    _window: deque[float] = field(default_factory=deque)
    _runner: web.AppRunner | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _new_update: asyncio.Event = field(default_factory=asyncio.Event)

    # -- server ----------------------------------------------------------------------

    def app(self) -> web.Application:
        """The Bot API under /bot<token>/<method>, and the load generator's /_bench/ routes."""
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/_bench/wait", self._wait)
        app.router.add_get("/_bench/stats", self._stats)
        app.router.add_post("/_bench/reset", self._reset)
        return app

    async def start(self) -> FakeBotAPI:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeBotAPI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def reset(self) -> None:
        """Forget every call, chat, card, count and planned fault."""
        self.calls.clear()
        self.faults.clear()
        self.chats.clear()
        self.cards.clear()
        self.counts.clear()
        self.chat_calls.clear()
        self._window.clear()
        self.limited = 0
        self.first_message_at = self.last_message_at = None
        self._ids = itertools.count(1)

    # -- programming faults -----------------------------------------------------------

    def fail(
        self,
        method: str,
        status: int | None,
        description: str = "",
        *,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | None = None,
        delay: float = 0.0,
    ) -> None:
        self.faults.append(Fault(method, status, description, retry_after, times, chat_id, delay))

    def slow(self, method: str, delay: float, times: int = 1) -> None:
        self.fail(method, None, times=times, delay=delay)

    # -- what was called / what a chat shows -----------------------------------------------

    def called(
        self, method: str, chat_id: int | None = None, status: int | None = 200
    ) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method == method
            and (chat_id is None or c.params.get("chat_id") == chat_id)
            and (status is None or c.status == status)
        ]

    def messages(self, chat_id: int) -> list[Shown]:
        return list(self.chats.get(chat_id, {}).values())

    def card(self, chat_id: int) -> Shown | None:
        """The newest message with buttons: what a person would tap."""
        for shown in reversed(self.messages(chat_id)):
            if shown.callback_data():
                return shown
        return None

    def last(self, chat_id: int) -> Shown | None:
        msgs = self.messages(chat_id)
        return msgs[-1] if msgs else None

    def push_update(self, update: dict[str, Any]) -> None:
        self.updates.append(update)
        self._new_update.set()

    def stats(self) -> dict[str, Any]:
        span = None
        if self.first_message_at is not None and self.last_message_at is not None:
            span = self.last_message_at - self.first_message_at
        return {
            "counts": dict(self.counts),
            "limited_429": self.limited,
            "message_calls_ok": sum(self.counts[f"{m} 200"] for m in MESSAGE_METHODS),
            "message_span_s": span,
            "busiest_chat_calls": max(self.chat_calls.values(), default=0),
            "chats": len(self.cards),
            "rate": self.rate,
        }

    # -- the API ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        params = await _params(request)
        call = Call(method, params, time.monotonic())
        if self.record:
            self.calls.append(call)
        response = await self._answer(call)
        self.counts[f"{method} {call.status}"] += 1
        if method in MESSAGE_METHODS and call.status == 200:
            now = time.monotonic()
            self.first_message_at = self.first_message_at or now
            self.last_message_at = now
            chat = params.get("chat_id")
            if chat is not None:
                self.chat_calls[chat] += 1
        return response

    async def _answer(self, call: Call) -> web.Response:
        method, params = call.method, call.params
        fault = self._fault_for(method, params)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                call.status = fault.status
                extra = {"retry_after": fault.retry_after} if fault.retry_after else None
                return _error(fault.status, fault.description or "Error", extra)
        if self._over_rate(method):
            self.limited += 1
            call.status = 429
            return _error(429, "Too Many Requests: retry after 1", {"retry_after": 1})
        handler = getattr(self, "api_" + method, None)
        if handler is None:
            call.status = 404
            return _error(404, "Not Found: method not found")
        result = handler(params) if method != "getUpdates" else await handler(params)
        if isinstance(result, web.Response):
            call.status = result.status
            return result
        return web.json_response({"ok": True, "result": result})

    def _fault_for(self, method: str, params: dict[str, Any]) -> Fault | None:
        for fault in self.faults:
            if fault.method == method and (
                fault.chat_id is None or params.get("chat_id") == fault.chat_id
            ):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _over_rate(self, method: str) -> bool:
        """A message call beyond `rate` in the last second (a sliding window)."""
        if not self.rate or method not in MESSAGE_METHODS:
            return False
        now = time.monotonic()
        while self._window and now - self._window[0] >= 1.0:
            self._window.popleft()
        if len(self._window) >= self.rate:
            return True
        self._window.append(now)
        return False

    def _message(self, chat_id: int, mid: int, text: str, markup: Any) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": mid,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "from": self.me,
            "text": text,
        }
        if markup:
            msg["reply_markup"] = markup
        return msg

    def api_getMe(self, p: dict[str, Any]) -> Any:
        return self.me

    def api_setWebhook(self, p: dict[str, Any]) -> Any:
        self.webhook = dict(p)
        return True

    def api_deleteWebhook(self, p: dict[str, Any]) -> Any:
        self.webhook = {}
        return True

    def api_setMyCommands(self, p: dict[str, Any]) -> Any:
        return True

    def api_answerCallbackQuery(self, p: dict[str, Any]) -> Any:
        return True

    def api_sendMessage(self, p: dict[str, Any]) -> Any:
        chat_id = p["chat_id"]
        mid = next(self._ids)
        self.chats.setdefault(chat_id, {})[mid] = Shown(mid, p["text"], p.get("reply_markup"))
        self._show(chat_id, mid, p["text"], p.get("reply_markup"))
        return self._message(chat_id, mid, p["text"], p.get("reply_markup"))

    def api_sendDocument(self, p: dict[str, Any]) -> Any:
        """A file comes as multipart: keep its name and bytes in the call's params."""
        document = p["document"]
        if isinstance(document, web.FileField):
            p["document"] = (document.filename, document.file.read())
        chat_id = p["chat_id"]
        mid = next(self._ids)
        return {
            "message_id": mid,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
        }

    def api_editMessageText(self, p: dict[str, Any]) -> Any:
        chat_id, mid = p["chat_id"], p["message_id"]
        shown = self.chats.get(chat_id, {}).get(mid)
        if shown is None:
            return _error(400, "Bad Request: message to edit not found")
        markup = p.get("reply_markup")
        if shown.text == p["text"] and shown.reply_markup == markup:
            return _error(400, _NOT_MODIFIED)
        shown.text, shown.reply_markup = p["text"], markup
        shown.edits += 1
        self._show(chat_id, mid, p["text"], markup)
        return self._message(chat_id, mid, p["text"], markup)

    def api_editMessageReplyMarkup(self, p: dict[str, Any]) -> Any:
        """No `reply_markup`: the buttons go, the text stays (as Telegram does)."""
        chat_id, mid = p["chat_id"], p["message_id"]
        shown = self.chats.get(chat_id, {}).get(mid)
        if shown is None:
            return _error(400, "Bad Request: message to edit not found")
        markup = p.get("reply_markup") or None
        if (shown.reply_markup or None) == markup:
            return _error(400, _NOT_MODIFIED)
        shown.reply_markup = markup
        shown.edits += 1
        return self._message(chat_id, mid, shown.text, markup)

    def api_deleteMessage(self, p: dict[str, Any]) -> Any:
        if self.chats.get(p["chat_id"], {}).pop(p["message_id"], None) is None:
            return _error(400, "Bad Request: message to delete not found")
        return True

    async def api_getUpdates(self, p: dict[str, Any]) -> Any:
        offset = p.get("offset") or 0
        deadline = time.monotonic() + min(float(p.get("timeout") or 0), 1.0)
        while True:
            ready = [u for u in self.updates if u["update_id"] >= offset]
            self.updates = ready  # confirmed ones are forgotten, like Telegram
            if ready or time.monotonic() >= deadline:
                return ready
            self._new_update.clear()
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await self._new_update.wait()
            except TimeoutError:
                pass

    # -- the card a person taps, for a load generator in another process ------------------

    def _show(self, chat_id: int, mid: int, text: str, markup: Any) -> None:
        data = [
            b["callback_data"]
            for row in (markup or {}).get("inline_keyboard", [])
            for b in row
            if "callback_data" in b
        ]
        card = self.cards.setdefault(chat_id, Card())
        if data or mid == card.message_id or not card.message_id:
            card.message_id, card.data, card.text = mid, data, text
        # else: an info message below the card; the card stays what the person taps.
        card.version += 1
        card.changed.set()
        card.changed = asyncio.Event()

    async def wait_card(self, chat_id: int, after: int, timeout: float) -> Card:  # noqa: ASYNC109
        """The chat's card once its version is above `after`, or as it is at the timeout."""
        card = self.cards.setdefault(chat_id, Card())
        deadline = time.monotonic() + timeout
        while card.version <= after:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                async with asyncio.timeout(left):
                    await card.changed.wait()
            except TimeoutError:
                break
        return card

    async def _wait(self, request: web.Request) -> web.Response:
        chat_id = int(request.query["chat"])
        after = int(request.query.get("after", "0"))
        timeout = min(float(request.query.get("timeout", "10")), 120.0)
        card = await self.wait_card(chat_id, after, timeout)
        return web.json_response(
            {
                "version": card.version,
                "message_id": card.message_id,
                "data": card.data,
                "text": card.text[:200],
            }
        )

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})


async def _params(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        raw: dict[str, Any] = await request.json()
    else:
        raw = dict(await request.post())
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if isinstance(v, str) and k in _JSON_PARAMS:
            v = json.loads(v)
        elif isinstance(v, str) and k in _INT_PARAMS:
            v = int(v) if v.lstrip("-").isdigit() else v
        out[k] = v
    return out


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


# -- the Telegram side: people and their updates -------------------------------------------


@dataclass(frozen=True)
class User:
    id: int
    username: str
    first_name: str = "Ada"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "is_bot": False,
            "first_name": self.first_name,
            "username": self.username,
            "language_code": "en",
        }


class Telegram:
    """Builds updates and delivers them to the webhook, retrying like Telegram."""

    def __init__(self, client: TestClient, fake: FakeBotAPI, secret: str = WEBHOOK_SECRET):
        self.client = client
        self.fake = fake
        self.secret = secret
        self._update_ids = itertools.count(100_000)
        self._users = itertools.count(1)
        self._msg_ids = itertools.count(1_000_000)

    def user(self) -> User:
        n = next(self._users)
        # Real-looking ids (10 digits) and usernames, easy to search for in the database.
        return User(7_300_000_000 + n * 7919, f"tguser_{n:04d}_zq")

    # -- updates ---------------------------------------------------------------------------

    def _update(self, **body: Any) -> dict[str, Any]:
        return {"update_id": next(self._update_ids), **body}

    def message(
        self, user: User, text: str, *, chat: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        chat = chat or {
            "id": user.id,
            "type": "private",
            "first_name": user.first_name,
            "username": user.username,
        }
        msg: dict[str, Any] = {
            "message_id": next(self._msg_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": user.as_dict(),
            "text": text,
        }
        if text.startswith("/"):
            length = len(text.split(" ", 1)[0])
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        return self._update(message=msg)

    def group_message(
        self, user: User, text: str, group_id: int = -1001234567890
    ) -> dict[str, Any]:
        return self.message(
            user, text, chat={"id": group_id, "type": "supergroup", "title": "Class 3B"}
        )

    def edited_message(self, user: User, text: str) -> dict[str, Any]:
        update = self.message(user, text)
        msg = update.pop("message")
        msg["edit_date"] = int(time.time())
        update["edited_message"] = msg
        return update

    def tap_update(self, user: User, message: Shown | int, data: str) -> dict[str, Any]:
        mid = message if isinstance(message, int) else message.message_id
        text = "" if isinstance(message, int) else message.text
        return self._update(
            callback_query={
                "id": str(next(self._msg_ids)),
                "from": user.as_dict(),
                "chat_instance": "-4242",
                "data": data,
                "message": {
                    "message_id": mid,
                    "date": int(time.time()),
                    "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
                    "from": BOT_USER,
                    "text": text or "…",
                },
            }
        )

    def unknown(self, kind: str = "poll") -> dict[str, Any]:
        bodies: dict[str, Any] = {
            "poll": {
                "id": "1",
                "question": "Q?",
                "options": [],
                "total_voter_count": 0,
                "is_closed": False,
                "is_anonymous": True,
                "type": "regular",
                "allows_multiple_answers": False,
            },
            "some_future_update": {"x": 1},
            "channel_post": {
                "message_id": 5,
                "date": int(time.time()),
                "chat": {"id": -100777, "type": "channel", "title": "News"},
                "text": "hello",
            },
        }
        return self._update(**{kind: bodies.get(kind, {"x": 1})})

    # -- delivery ---------------------------------------------------------------------------

    async def post(
        self,
        update: Any,
        *,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> int:
        hdrs = {"Content-Type": "application/json"}
        if secret is None:
            secret = self.secret
        if secret:
            hdrs["X-Telegram-Bot-Api-Secret-Token"] = secret
        hdrs.update(headers or {})
        body = data if data is not None else json.dumps(update).encode()
        async with self.client.post("/telegram/webhook", data=body, headers=hdrs) as resp:
            raw = await resp.read()
            status, ctype = resp.status, resp.content_type
        if status == 200 and ctype == "application/json":
            await self._execute_reply(raw)
        return status

    async def _execute_reply(self, raw: bytes) -> None:
        """A webhook answer may carry one Bot API method call: Telegram executes it, so here
        the fake Bot API receives it like any other call (and records it)."""
        import aiohttp

        reply = json.loads(raw)
        assert isinstance(reply, dict) and isinstance(reply.get("method"), str), reply
        method = reply.pop("method")
        url = f"{self.fake.url}/bot{self.fake.token}/{method}"
        async with aiohttp.ClientSession() as http, http.post(url, json=reply) as resp:
            await resp.read()

    async def deliver(self, update: dict[str, Any], retries: int = 5) -> list[int]:
        """POST until 200, as Telegram does; the statuses seen."""
        statuses = []
        for _ in range(retries):
            status = await self.post(update)
            statuses.append(status)
            if status == 200:
                break
            await asyncio.sleep(0.01)
        return statuses

    async def send(self, user: User, text: str) -> list[int]:
        return await self.deliver(self.message(user, text))

    async def tap(self, user: User, message: Shown | int, data: str) -> list[int]:
        return await self.deliver(self.tap_update(user, message, data))

    async def settle(self, user: User | None = None) -> None:
        """Wait until our outbox has delivered everything queued (for one person)."""
        from backend.web import keys

        await self.client.app[keys.BOT].outbox.join(user.id if user else None)
