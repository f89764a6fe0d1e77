"""Pure parts of the channel: callback data, rendering, the rate limiter, URL handling."""

from __future__ import annotations

import asyncio
import time

import pytest

from backend.web.webhook import api_base_urls
from bot import callback
from bot.ratelimit import RateLimiter, TokenBucket
from bot.render import render
from conversations.banks import load_banks
from conversations.engine import Engine, answer_label
from conversations.i18n import Translator


def test_callback_data_of_every_button_of_every_bank_fits_64_bytes():
    engine = Engine.from_banks(load_banks().values())
    t = Translator("en")
    checked = 0
    for bank in engine.banks.values():
        for q in bank.questions:
            # Make the question visible: answer its routing question as it needs.
            answers = {q.when.question: "c:" + sorted(q.when.in_)[0]} if q.when else {}
            state = {
                "bank": bank.tag,
                "stage": "question",
                "pos": q.id,
                "ans": answers,
                "lang": "en",
                "inv": {},
            }
            prompt = engine.render(state).prompts[0]
            r = render(prompt, t, bank=bank.tag)
            for row in r.markup["inline_keyboard"] if r.markup else ():
                for b in row:
                    assert len(b["callback_data"].encode()) <= 64
                    tap = callback.decode(b["callback_data"])
                    assert tap is not None and tap.bank == bank.tag and tap.target == q.id
                    checked += 1
    assert checked > 500


def test_callback_decode_refuses_what_is_not_ours():
    assert callback.decode("1|learner@1|l01|4") == callback.Tap("learner@1", "l01", "4")
    for bad in (None, "", "x", "2|learner@1|l01|4", "1|learner@1|l01", "1||l01|4", "1|" + "a" * 70):
        assert callback.decode(bad) is None
    with pytest.raises(ValueError):
        callback.encode("learner@1", "l01", "x" * 60)


def test_a_question_card_shows_progress_current_answer_and_nav():
    engine = Engine.from_banks(load_banks().values())
    bank = engine.banks["learner@1"]
    q1, q2 = bank.questions[0], bank.questions[1]
    state = {
        "bank": bank.tag,
        "stage": "question",
        "pos": q2.id,
        "ans": {q1.id: "4", q2.id: "3"},
        "lang": "en",
        "inv": {},
    }
    prompt = engine.render(state).prompts[0]
    r = render(
        prompt, Translator("en"), bank=bank.tag, current_label=answer_label(engine, state, q2.id)
    )
    assert r.card and r.text.startswith("Question 2 of")
    assert "Your answer: " in r.text
    rows = r.markup["inline_keyboard"]
    assert all(len(row) == 1 for row in rows[:-1])  # scale labels one per row
    assert "Back" in rows[-1][0]["text"]


def test_api_base_url_with_or_without_bot():
    for given in (
        "https://api.telegram.org",
        "https://api.telegram.org/",
        "https://api.telegram.org/bot",
        "https://api.telegram.org/bot/",
        "",
    ):
        assert api_base_urls(given) == (
            "https://api.telegram.org/bot",
            "https://api.telegram.org/file/bot",
        )


def test_token_bucket_with_a_clock():
    now = [0.0]
    bucket = TokenBucket(rate=2, capacity=2, clock=lambda: now[0])
    assert [bucket.reserve() for _ in range(4)] == [0, 0, 0.5, 1.0]
    now[0] = 10
    assert bucket.reserve() == 0


def test_no_second_holds_more_than_thirty_message_calls():
    """A whole class at once (600 calls asked for at the same moment): no sliding one-second
    window of the times they go holds more than Telegram's 30, so no 429 stops every chat."""
    limiter = RateLimiter(clock=lambda: 0.0)
    times = sorted(limiter.global_bucket.reserve() for _ in range(600))
    worst = max(sum(1 for t in times if t0 <= t < t0 + 1.0) for t0 in times)
    assert worst <= 30
    assert times[-1] == pytest.approx(599 / 29)  # and the rate is used: 29 a second after


async def test_limiter_spaces_one_chat_and_shares_the_total():
    limiter = RateLimiter(global_rate=1000, chat_rate=20, chat_burst=1)
    started = time.monotonic()
    await asyncio.gather(*(limiter.acquire("a") for _ in range(5)), limiter.acquire("b"))
    assert time.monotonic() - started >= 4 / 20 * 0.9  # chat a: one every 50 ms
    limiter = RateLimiter(global_rate=50, chat_rate=1000, chat_burst=100)
    started = time.monotonic()
    await asyncio.gather(*(limiter.acquire(n) for n in range(20)))
    assert time.monotonic() - started >= (20 - 8) / 50 * 0.9  # 20 chats, 50/s in all
