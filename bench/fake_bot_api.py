"""The fake Telegram Bot API as its own process, for the benchmark: the tests' fake
(`tests.bot.fakebot.FakeBotAPI`) served on a port, fast and optionally rate-limited.

    python -m bench.fake_bot_api --port 8081 [--rate 30] [--token T]

It answers getMe, setMyCommands, setWebhook, deleteWebhook, answerCallbackQuery,
sendMessage, editMessageText, editMessageReplyMarkup and deleteMessage at once. With
`--rate R`, message calls (sendMessage, editMessageText) beyond R in any sliding second are
refused with 429 and `retry_after` (as Telegram does). It counts calls instead of keeping
them (`record=False`).

For the load generator it keeps, per chat, what the person sees: the newest message with
buttons (the card) and a version that grows with every send or edit of it.
    GET /_bench/wait?chat=ID&after=V&timeout=S  -> {"version", "message_id", "data", "text"}
        (long poll: returns once the chat's card version is above V, or at the timeout)
    GET /_bench/stats                           -> counts by method and status, 429s, times
    POST /_bench/reset                          -> forget everything
"""

from __future__ import annotations

import argparse

from aiohttp import web

from bench.common import TOKEN
from tests.bot.fakebot import FakeBotAPI, bot_user


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, default=0.0, help="message calls per second (0: none)")
    ap.add_argument("--token", default=TOKEN)
    args = ap.parse_args()
    fake = FakeBotAPI(
        token=args.token,
        rate=args.rate or None,
        record=False,
        me=bot_user(args.token, "guidance_bench_bot"),
    )
    web.run_app(fake.app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
