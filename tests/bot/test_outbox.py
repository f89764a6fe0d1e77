"""The outbox's queue per chat: order kept, and a card edit overtaken before it is sent is
never sent (`bot.outbox.supersedes`)."""

from __future__ import annotations

import asyncio
from typing import Any

from backend.web.metrics import Metrics
from bot.outbox import Outbox, Outgoing
from bot.ratelimit import RateLimiter
from bot.render import button, keyboard, markup_json

CHAT = 7
CARD = 500  # the card's message id


class HeldBot:
    """A Bot API that records each call and holds every call until `gate` is set."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.gate = asyncio.Event()
        self.arrived = asyncio.Event()

    async def do_api_request(self, method: str, api_kwargs: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((method, api_kwargs))
        self.arrived.set()
        await self.gate.wait()
        return {"message_id": api_kwargs.get("message_id", 900 + len(self.calls))}

    def texts(self) -> list[str]:
        return [kw.get("text", "<strip>") for _, kw in self.calls]


def edit(text: str, **kw: Any) -> Outgoing:
    keys = markup_json(keyboard([[button("1", "x")]]))
    return Outgoing(CHAT, text, keys, CARD, "s", True, **kw)


def counted(metrics: Metrics, outcome: str) -> float:
    return (
        metrics.registry.get_sample_value(
            "gs_bot_api_calls_total", {"method": "editMessageText", "outcome": outcome}
        )
        or 0.0
    )


def _outbox() -> tuple[Outbox, HeldBot, Metrics]:
    bot, metrics = HeldBot(), Metrics()
    limiter = RateLimiter(global_rate=1000, chat_rate=1000, chat_burst=100)
    return Outbox(bot, limiter, metrics), bot, metrics


async def test_only_the_newest_waiting_edit_of_a_card_is_sent_and_order_is_kept() -> None:
    outbox, bot, metrics = _outbox()
    outbox.submit([edit("q1")])
    await bot.arrived.wait()  # q1 is in flight: it is never replaced
    outbox.submit([edit("q2"), edit("q3")])  # q3 overtakes q2, which waited
    notice = Outgoing(CHAT, "a notice")  # a message of its own: kept, and in its place
    outbox.submit([notice, edit("q4"), edit("q5"), edit("q6")])
    assert outbox.depth == 4  # q1, q3, the notice, q6
    bot.gate.set()
    await outbox.join(CHAT)
    assert bot.texts() == ["q1", "q3", "a notice", "q6"]
    assert counted(metrics, "superseded") == 3  # q2, q4, q5
    assert outbox.depth == 0


async def test_a_strip_and_a_card_sent_anew_are_never_superseded() -> None:
    outbox, bot, metrics = _outbox()
    outbox.submit([edit("q1")])
    await bot.arrived.wait()
    strip = Outgoing.strip_keyboard(CHAT, CARD, "s")
    anew = edit("q3", replaces=CARD)
    outbox.submit([strip, edit("q2"), anew, edit("q4")])
    bot.gate.set()
    await outbox.join(CHAT)
    assert bot.texts() == ["q1", "<strip>", "q2", "q3", "q4"]
    assert counted(metrics, "superseded") == 0


async def test_edits_of_another_card_or_chat_are_not_merged() -> None:
    outbox, bot, _ = _outbox()
    outbox.submit([edit("q1")])
    await bot.arrived.wait()
    other_card = Outgoing(CHAT, "old card", None, CARD - 1, "s", True)
    other_chat = Outgoing(CHAT + 1, "elsewhere", None, CARD, "s", True)
    outbox.submit([edit("q2"), other_card, edit("q3"), other_chat])
    bot.gate.set()
    await outbox.join()
    assert sorted(bot.texts()) == sorted(["q1", "q2", "old card", "q3", "elsewhere"])
    assert [kw["text"] for _, kw in bot.calls if kw["chat_id"] == CHAT] == [
        "q1",
        "q2",
        "old card",
        "q3",
    ]
