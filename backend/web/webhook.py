"""`POST /telegram/webhook` and the bot's lifecycle (registered only with TELEGRAM_BOT_TOKEN).

The update is processed inside the request: a transient PostgreSQL/Redis failure answers
503 and Telegram retries (the update id's claim is released first); bad input answers
4xx; any other error in our code is logged without personal data and answered 200,
because a 5xx would make Telegram retry the same update and hold up that chat.
"""

from __future__ import annotations

import hmac
import json
import logging
import traceback
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from telegram.ext import Application

from backend.web import keys
from bot.channel import WEBHOOK_REPLY, BotChannel
from bot.ratelimit import RateLimiter
from bot.request import AiohttpRequest
from bot.updates import parse
from storage.errors import is_transient

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
WEBHOOK_PATH = "/telegram/webhook"


def api_base_urls(configured: str) -> tuple[str, str]:
    """(base_url, base_file_url) for PTB from TELEGRAM_API_BASE_URL, with or without /bot."""
    root = (configured or "https://api.telegram.org").rstrip("/")
    root = root.removesuffix("/bot")
    return root + "/bot", root + "/file/bot"


def setup(app: web.Application) -> None:
    """Register the webhook route and the bot's cleanup_ctx entry, if a token is set."""
    if not app[keys.SETTINGS].telegram_bot_token:
        return
    app.cleanup_ctx.append(_bot)
    app.router.add_post(WEBHOOK_PATH, telegram_webhook, name="telegram_webhook")


async def _bot(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    options = app[keys.OPTIONS]
    base_url, base_file_url = api_base_urls(settings.telegram_api_base_url)
    application = (
        Application.builder()
        .token(settings.telegram_bot_token)
        .base_url(base_url)
        .base_file_url(base_file_url)
        .request(AiohttpRequest())  # PTB's calls on aiohttp's client, not httpx (bot/request.py)
        .get_updates_request(AiohttpRequest(connections=1, read_timeout=options.poll_timeout + 5))
        .updater(None)
        .build()
    )
    rates = options.bot_rates
    channel = BotChannel(
        application,
        app[keys.SURVEY],
        app[keys.DEDUP],
        app[keys.METRICS],
        public_url=settings.public_url,
        limiter=RateLimiter(**rates),
        backoff=options.bot_backoff,
        poll_timeout=options.poll_timeout,
    )
    await channel.start(
        set_webhook=options.set_webhook,
        polling=options.polling,
        secret=settings.telegram_webhook_secret,
    )
    app[keys.BOT] = channel
    app[keys.BOT_USERNAME] = application.bot.username or ""
    try:
        yield
    finally:
        await channel.stop(options.drain_timeout)


async def telegram_webhook(request: web.Request) -> web.Response:
    app = request.app
    metrics = app[keys.METRICS]
    settings = app[keys.SETTINGS]
    channel = app[keys.BOT]

    if not secret_matches(request.headers.get(SECRET_HEADER, ""), settings.telegram_webhook_secret):
        metrics.updates.labels("forbidden").inc()
        return web.Response(status=403, text="forbidden")
    if request.content_type != "application/json":
        metrics.updates.labels("bad_request").inc()
        return web.Response(status=415, text="application/json expected")
    limit = settings.webhook_max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        metrics.updates.labels("too_large").inc()
        return web.Response(status=413, text="too large")
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body.extend(chunk)
        if len(body) > limit:
            metrics.updates.labels("too_large").inc()
            return web.Response(status=413, text="too large")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict) or type(data.get("update_id")) is not int:
        metrics.updates.labels("bad_request").inc()
        return web.Response(status=400, text="a Telegram update (JSON object) expected")
    if channel is None:
        return web.Response(status=503, text="starting")

    # The answer to a tap (answerCallbackQuery) goes back in this HTTP answer as a method
    # call, which Telegram executes: one request fewer, and no wait for the Bot API.
    reply: dict[str, Any] = {}
    token = WEBHOOK_REPLY.set(reply)
    try:
        outcome = await channel.process(parse(data))
    except Exception as exc:
        if is_transient(exc):
            metrics.updates.labels("transient").inc()
            log.warning("update %s: transient %s, answering 503", data["update_id"], _name(exc))
            return web.Response(status=503, text="try again")
        metrics.updates.labels("error").inc()
        metrics.errors.labels("update").inc()
        # The class and where, never the message: it may quote what the person typed.
        where = "".join(traceback.format_tb(exc.__traceback__, limit=-3)).strip()
        log.error("update %s failed: %s\n%s", data["update_id"], _name(exc), where)
        return _ok(reply)
    finally:
        WEBHOOK_REPLY.reset(token)
    metrics.updates.labels(outcome).inc()
    return _ok(reply)


def secret_matches(given: str, expected: str) -> bool:
    """Constant-time comparison of the header with the secret, as bytes: a header may hold
    any character (bytes that are no UTF-8 arrive as surrogates), and a str with
    non-ASCII characters makes `compare_digest` raise instead of answering False."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def _ok(reply: dict[str, Any]) -> web.Response:
    """200, with the update's one Bot API method call as the body if there is one."""
    if reply:
        return web.Response(
            status=200,
            body=json.dumps(reply, separators=(",", ":"), ensure_ascii=False).encode(),
            content_type="application/json",
        )
    return web.Response(status=200, text="ok")


def _name(exc: BaseException) -> str:
    return type(exc).__name__
