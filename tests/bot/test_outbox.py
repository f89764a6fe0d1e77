"""The outbox's queue per chat: order kept, and a card edit overtaken before it is sent is
never sent (`bot.outbox.supersedes`); a crowd's chats wait on one dispatcher, each at its
own pace and the bot's."""

from __future__ import annotations

import asyncio
import itertools
import time
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


def edit(text: str, chat: int = CHAT, **kw: Any) -> Outgoing:
    keys = markup_json(keyboard([[button("1", "x")]]))
    return Outgoing(chat, text, keys, CARD, "s", True, **kw)


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


async def test_a_crowd_waits_on_one_dispatcher_not_on_a_task_per_chat() -> None:
    """300 chats with a card each, at 100 messages a second: while they wait there is one
    dispatcher and a task per message in flight, not 300 sleeping tasks; they go out in the
    order they came, every one of them."""
    bot, metrics = HeldBot(), Metrics()
    bot.gate.set()
    outbox = Outbox(bot, RateLimiter(global_rate=100, chat_rate=1, chat_burst=3), metrics)
    outbox.submit([edit("card", chat=1000 + n) for n in range(300)])
    await asyncio.sleep(0.3)
    others = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
    assert 1 <= len(others) <= 3, len(others)
    assert 20 <= len(bot.calls) <= 40  # about 100 a second
    await outbox.join()
    assert [kw["chat_id"] for _, kw in bot.calls] == [1000 + n for n in range(300)]
    assert outbox.depth == 0


async def test_a_chat_at_its_own_pace_waits_on_a_timer_and_others_go_first() -> None:
    """One chat with four messages at 10 a second for a chat (a burst of one), then another
    chat's message: the second chat does not wait behind the first one's pace, and the
    first one's messages keep their order and their spacing."""
    sent: list[tuple[int, str, float]] = []

    class Bot:
        async def do_api_request(self, method: str, api_kwargs: dict[str, Any]) -> Any:
            sent.append((api_kwargs["chat_id"], api_kwargs["text"], time.monotonic()))
            return {"message_id": 1}

    outbox = Outbox(Bot(), RateLimiter(global_rate=1000, chat_rate=10, chat_burst=1), Metrics())
    outbox.submit([Outgoing(CHAT, f"m{n}") for n in range(4)])
    outbox.submit([Outgoing(CHAT + 1, "other")])
    await outbox.join()
    assert [text for chat, text, _ in sent if chat == CHAT] == ["m0", "m1", "m2", "m3"]
    assert [text for _, text, _ in sent].index("other") <= 1
    times = [at for chat, _, at in sent if chat == CHAT]
    assert all(b - a >= 0.09 for a, b in itertools.pairwise(times))


async def test_close_gives_up_what_is_left_after_the_drain_and_leaves_no_task() -> None:
    """Shutdown with a Bot API that does not answer: after `drain_seconds` the message in
    flight and those waiting (in line, and on a chat's own pace) are given up and counted,
    no task is left behind, and a message submitted after is refused, counted too."""
    bot, metrics = HeldBot(), Metrics()
    outbox = Outbox(bot, RateLimiter(global_rate=1000, chat_rate=1, chat_burst=1), metrics)
    outbox.submit([Outgoing(CHAT, "a"), Outgoing(CHAT, "b"), Outgoing(CHAT + 1, "c")])
    await bot.arrived.wait()
    await outbox.close(drain_seconds=0.1)
    gave_up = metrics.registry.get_sample_value("gs_errors_total", {"kind": "bot_send_cancelled"})
    assert gave_up == 3
    assert outbox.depth == 0
    assert {t for t in asyncio.all_tasks() if t is not asyncio.current_task()} == set()
    outbox.submit([Outgoing(CHAT, "late")])
    closed = metrics.registry.get_sample_value("gs_errors_total", {"kind": "bot_send_closed"})
    assert closed == 1
    await outbox.join()
