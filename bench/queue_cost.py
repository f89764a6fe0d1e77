"""What messages waiting in the outbox hold in memory: their keyboards, and the outbox.

    python -m bench.queue_cost [--chats 5000]

A crowd that starts in Telegram at once leaves two cards per person waiting (the /start
card and the consent's edit into the first question), sent at Telegram's 30 a second. This
builds that many `bot.outbox.Outgoing` cards of a five-point question (seven buttons in
three rows), two ways: the keyboard as a tree of lists and dicts (how a message waited
until the eighth hot-path pass of bench/README.md) and as its JSON text
(`bot.render.markup_json`, how it waits now). Prints, for each way, the objects the garbage
collector tracks (a full collection walks every one of them) and the bytes allocated
(tracemalloc), in all and per message.

Then it submits that crowd's cards (the keyboard as JSON) to a real `bot.outbox.Outbox`
with the product's rate limiter and a Bot API that never answers, lets it run for 0.2 s,
and prints what the outbox itself holds beyond the messages: tracked objects, bytes and
asyncio tasks (until the eighth pass, a task per chat with something to send; now one
dispatcher and a task per message in flight).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from backend.web.metrics import Metrics
from bot import callback
from bot.outbox import Outbox, Outgoing
from bot.ratelimit import RateLimiter
from bot.render import button, card_hash, keyboard, markup_json


def _keyboard(question: str) -> Any:
    tag = "learner@1"
    scale = [button(f"{v}", callback.encode(tag, question, str(v))) for v in range(1, 6)]
    return keyboard(
        [
            scale[:3],
            scale[3:],
            [
                button("Don't know", callback.encode(tag, question, "na")),
                button("Back", callback.encode(tag, question, "back")),
            ],
        ]
    )


def _cards(chats: int, as_json: bool) -> list[Outgoing]:
    waiting: list[Outgoing] = []
    for chat in range(chats):
        for n in range(2):  # the /start card, then the consent's edit into question 1
            tree = _keyboard(f"l{n + 1:02d}")
            keys = markup_json(tree)
            text = f"Question {n + 1} of 22\n\n" + "How well does the school explain ... " * 4
            waiting.append(
                Outgoing(
                    chat,
                    text,
                    keys if as_json else tree,  # type: ignore[arg-type]
                    edit_message_id=1000 + n if n else None,
                    subject=f"{chat:064x}",
                    card=True,
                    card_hash=card_hash(text, keys),
                )
            )
    return waiting


@contextmanager
def _footprint() -> Iterator[dict[str, int]]:
    """What the block leaves allocated (tracemalloc) and tracked by the garbage collector,
    in the dict it yields, filled when the block ends."""
    out: dict[str, int] = {}
    gc.collect()
    before = len(gc.get_objects())
    tracemalloc.start()
    try:
        yield out
    finally:
        out["bytes"], _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        gc.collect()
        out["tracked_objects"] = len(gc.get_objects()) - before


def _measure(chats: int, as_json: bool) -> dict[str, float]:
    with _footprint() as held:
        waiting = _cards(chats, as_json)
    messages = len(waiting)
    del waiting
    return {
        "messages": messages,
        "tracked_objects": held["tracked_objects"],
        "tracked_per_message": round(held["tracked_objects"] / messages, 2),
        "bytes": held["bytes"],
        "bytes_per_message": round(held["bytes"] / messages),
    }


class _SilentBot:
    """A Bot API that never answers: every message stays waiting or in flight."""

    async def do_api_request(self, method: str, api_kwargs: dict[str, Any]) -> Any:
        await asyncio.sleep(3600)


async def _outbox_holds(chats: int) -> dict[str, float]:
    waiting = _cards(chats, as_json=True)
    outbox = Outbox(_SilentBot(), RateLimiter(), Metrics())
    with _footprint() as held:
        outbox.submit(waiting)
        await asyncio.sleep(0.2)  # the sends start at the bot's pace
    tasks = len(asyncio.all_tasks()) - 1
    logging.disable(logging.CRITICAL)  # the shutdown's "given up" lines
    await outbox.close(drain_seconds=0)
    return {
        "messages": len(waiting),
        "tracked_objects": held["tracked_objects"],
        "tracked_per_chat": round(held["tracked_objects"] / chats, 2),
        "bytes": held["bytes"],
        "bytes_per_chat": round(held["bytes"] / chats),
        "tasks": tasks,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chats", type=int, default=5000)
    args = ap.parse_args()
    out = {
        "keyboard as a tree": _measure(args.chats, as_json=False),
        "keyboard as JSON": _measure(args.chats, as_json=True),
        "the outbox, beyond the messages": asyncio.run(_outbox_holds(args.chats)),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
