"""PTB's Bot API calls on aiohttp (`bot.request.AiohttpRequest`), against the fake Bot API:
the same calls as through httpx, and PTB's own errors for timeouts, refusals and 429s."""

from __future__ import annotations

import socket

import pytest
from telegram import Bot
from telegram.error import NetworkError, RetryAfter, TimedOut

from bot.request import AiohttpRequest
from tests.bot.fakebot import TOKEN, FakeBotAPI


def bot_on(url: str, request: AiohttpRequest) -> Bot:
    return Bot(TOKEN, base_url=f"{url}/bot", request=request, get_updates_request=request)


async def test_calls_reach_the_bot_api_as_ptb_builds_them(fake_api: FakeBotAPI):
    async with bot_on(fake_api.url, AiohttpRequest()) as bot:
        me = await bot.get_me()
        assert me.is_bot and me.username
        sent = await bot.send_message(chat_id=42, text="Hello — Բարև", reply_markup=None)
        assert sent.text == "Hello — Բարև"
        await bot.edit_message_text("Edited", chat_id=42, message_id=sent.message_id)
    (call,) = fake_api.called("sendMessage", 42)
    assert call.params["text"] == "Hello — Բարև"
    assert fake_api.last(42).text == "Edited"


async def test_a_file_goes_as_multipart(fake_api: FakeBotAPI):
    async with bot_on(fake_api.url, AiohttpRequest()) as bot:
        await bot.send_document(chat_id=42, document=b"%PDF-1.4 x", filename="report.pdf")
    (call,) = fake_api.called("sendDocument", 42)
    assert call.params["document"] == ("report.pdf", b"%PDF-1.4 x")


async def test_429_is_ptbs_retry_after(fake_api: FakeBotAPI):
    fake_api.fail("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    async with bot_on(fake_api.url, AiohttpRequest()) as bot:
        with pytest.raises(RetryAfter) as err:
            await bot.send_message(chat_id=42, text="x")
    assert err.value.retry_after.total_seconds() == 7


async def test_a_slow_answer_is_timed_out_and_a_closed_port_a_network_error(
    fake_api: FakeBotAPI,
):
    fake_api.slow("sendMessage", 1.0)
    async with bot_on(fake_api.url, AiohttpRequest(read_timeout=0.2)) as bot:
        with pytest.raises(TimedOut):
            await bot.send_message(chat_id=42, text="x")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    request = AiohttpRequest(connect_timeout=1.0)
    await request.initialize()
    try:
        bot = bot_on(f"http://127.0.0.1:{port}", request)
        with pytest.raises(NetworkError):
            await bot.get_me()
    finally:
        await request.shutdown()


async def test_unused_it_refuses(fake_api: FakeBotAPI):
    with pytest.raises(RuntimeError, match="not initialized"):
        await AiohttpRequest().do_request(f"{fake_api.url}/bot{TOKEN}/getMe", "POST")
