"""A fake Telegram Bot API as its own process (aiohttp), fast and optionally rate-limited.

    python -m bench.fake_bot_api --port 8081 [--rate 30] [--token T]

Answers getMe, setMyCommands, setWebhook, deleteWebhook, answerCallbackQuery, sendMessage,
editMessageText at once. With `--rate R`, message calls (sendMessage, editMessageText)
beyond R in any sliding second are refused with 429 and `retry_after` (as Telegram does).

For the load generator it keeps, per chat, what the person sees: the newest message with
buttons (the card) and a version that grows with every send or edit of it.
    GET /_bench/wait?chat=ID&after=V&timeout=S  -> {"version", "message_id", "data", "text"}
        (long poll: returns once the chat's card version is above V, or at the timeout)
    GET /_bench/stats                           -> counts by method and status, 429s, times
    POST /_bench/reset                          -> forget everything
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections import Counter, deque
from typing import Any

from aiohttp import web

from bench.common import TOKEN

# One definition of the Bot API's wire format: the tests' fake API (same bot id).
from tests.bot.fakebot import _error, _message, _params

MESSAGE_METHODS = ("sendMessage", "editMessageText")
_JSON_PARAMS = {"reply_markup", "allowed_updates", "commands"}
_INT_PARAMS = {"chat_id", "message_id"}


class Card:
    __slots__ = ("data", "event", "message_id", "text", "version")

    def __init__(self) -> None:
        self.version = 0
        self.message_id = 0
        self.data: list[str] = []
        self.text = ""
        self.event = asyncio.Event()


class FakeAPI:
    def __init__(self, token: str, rate: float | None) -> None:
        self.token = token
        self.rate = rate
        self.reset()

    def reset(self) -> None:
        self.ids = itertools.count(1)
        self.counts: Counter[str] = Counter()
        self.window: deque[float] = deque()
        self.messages: dict[tuple[int, int], str] = {}  # (chat, message id) -> content key
        self.cards: dict[int, Card] = {}
        self.first_message_at: float | None = None
        self.last_message_at: float | None = None
        self.limited = 0

    def card(self, chat: int) -> Card:
        c = self.cards.get(chat)
        if c is None:
            c = self.cards[chat] = Card()
        return c

    # -- the Bot API ----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        p = await _params(request)
        if method in MESSAGE_METHODS and self.rate:
            now = time.monotonic()
            while self.window and now - self.window[0] >= 1.0:
                self.window.popleft()
            if len(self.window) >= self.rate:
                self.limited += 1
                self.counts[f"{method} 429"] += 1
                return _error(429, "Too Many Requests: retry after 1", {"retry_after": 1})
            self.window.append(now)
        result = self.dispatch(method, p)
        status = result.status if isinstance(result, web.Response) else 200
        self.counts[f"{method} {status}"] += 1
        if method in MESSAGE_METHODS and status == 200:
            now = time.monotonic()
            self.first_message_at = self.first_message_at or now
            self.last_message_at = now
        if isinstance(result, web.Response):
            return result
        return web.json_response({"ok": True, "result": result})

    def dispatch(self, method: str, p: dict[str, Any]) -> Any:
        if method == "getMe":
            return BOT_USER
        if method in ("setMyCommands", "setWebhook", "deleteWebhook", "answerCallbackQuery"):
            return True
        if method == "sendMessage":
            chat, mid = int(p["chat_id"]), next(self.ids)
            markup = p.get("reply_markup")
            self.messages[(chat, mid)] = _content(p.get("text", ""), markup)
            self._show(chat, mid, p.get("text", ""), markup)
            return _message(chat, mid, p.get("text", ""), markup)
        if method == "editMessageText":
            chat, mid = int(p["chat_id"]), int(p["message_id"])
            old = self.messages.get((chat, mid))
            if old is None:
                return _error(400, "Bad Request: message to edit not found")
            markup = p.get("reply_markup")
            new = _content(p.get("text", ""), markup)
            if new == old:
                return _error(400, "Bad Request: message is not modified")
            self.messages[(chat, mid)] = new
            self._show(chat, mid, p.get("text", ""), markup)
            return _message(chat, mid, p.get("text", ""), markup)
        if method == "editMessageReplyMarkup":  # a typed answer strips the old card
            chat, mid = int(p["chat_id"]), int(p["message_id"])
            if (chat, mid) not in self.messages:
                return _error(400, "Bad Request: message to edit not found")
            return True
        if method == "deleteMessage":
            return True
        return _error(404, "Not Found: method not found")

    def _show(self, chat: int, mid: int, text: str, markup: Any) -> None:
        data = [
            b["callback_data"]
            for row in (markup or {}).get("inline_keyboard", [])
            for b in row
            if "callback_data" in b
        ]
        card = self.card(chat)
        if not data and mid != card.message_id and card.message_id:
            # An info message below the card: the card stays what the person taps,
            # but the change still counts (the flow moved on).
            card.version += 1
        else:
            card.message_id, card.data, card.text = mid, data, text
            card.version += 1
        card.event.set()
        card.event = asyncio.Event()

    # -- for the load generator ---------------------------------------------------------------

    async def wait(self, request: web.Request) -> web.Response:
        chat = int(request.query["chat"])
        after = int(request.query.get("after", "0"))
        timeout = min(float(request.query.get("timeout", "10")), 120.0)
        card = self.card(chat)
        deadline = time.monotonic() + timeout
        while card.version <= after:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                async with asyncio.timeout(left):
                    await card.event.wait()
            except TimeoutError:
                break
        return web.json_response(
            {
                "version": card.version,
                "message_id": card.message_id,
                "data": card.data,
                "text": card.text[:200],
            }
        )

    async def stats(self, request: web.Request) -> web.Response:
        span = None
        if self.first_message_at is not None and self.last_message_at is not None:
            span = self.last_message_at - self.first_message_at
        return web.json_response(
            {
                "counts": dict(self.counts),
                "limited_429": self.limited,
                "message_calls_ok": sum(self.counts[f"{m} 200"] for m in MESSAGE_METHODS),
                "message_span_s": span,
                "chats": len(self.cards),
                "rate": self.rate,
            }
        )

    async def do_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})


BOT_USER = {
    "id": int(TOKEN.split(":")[0]),
    "is_bot": True,
    "first_name": "Guidance Survey",
    "username": "guidance_bench_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


def _content(text: str, markup: Any) -> str:
    return text + "\x00" + json.dumps(markup, sort_keys=True)


def make_app(token: str, rate: float | None) -> web.Application:
    api = FakeAPI(token, rate)
    app = web.Application()
    app.router.add_route("*", "/bot{token}/{method}", api.handle)
    app.router.add_get("/_bench/wait", api.wait)
    app.router.add_get("/_bench/stats", api.stats)
    app.router.add_post("/_bench/reset", api.do_reset)
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, default=0.0, help="message calls per second (0: none)")
    ap.add_argument("--token", default=TOKEN)
    args = ap.parse_args()
    web.run_app(
        make_app(args.token, args.rate or None),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
