"""A prompt of the engine as a Telegram message: text and inline keyboard. Pure.

The survey is one message card (question, progress, buttons) that each tap edits.
Info prompts (help, privacy, errors) are separate messages without buttons.

The keyboard is the Bot API's JSON (`{"inline_keyboard": [[{"text", "callback_data"}]]}`),
not PTB's `InlineKeyboardMarkup`: it goes out as it is (`bot.outbox`), and building
PTB's frozen objects, then turning them back into JSON, cost ~0.1 ms of CPU per card.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from telegram import BotCommand

from bot import callback
from conversations.engine import Prompt, progress_label
from conversations.i18n import Translator

MAX_TEXT = 4096
CARD_KINDS = ("question", "consent", "optin", "language", "confirm", "done")
# The command menu, in this order; descriptions are the catalogs' `cmd.<name>`.
MENU_COMMANDS = ("start", "resume", "restart", "stop", "help", "language", "privacy", "delete")


# A Bot API InlineKeyboardMarkup as JSON: {"inline_keyboard": rows of buttons}.
Markup = dict[str, list[list[dict[str, Any]]]]


def button(label: str, data: str) -> dict[str, Any]:
    """An inline button that sends `data` back as a callback query."""
    return {"text": label, "callback_data": data}


def web_app_button(label: str, url: str) -> dict[str, Any]:
    """An inline button that opens the Mini App at `url`."""
    return {"text": label, "web_app": {"url": url}}


def keyboard(rows: list[list[dict[str, Any]]]) -> Markup:
    return {"inline_keyboard": rows}


def markup_json(markup: Markup | None) -> str | None:
    """The keyboard as the Bot API's JSON text: how a message waits in the outbox and goes
    out (PTB sends a string as it is), and what the card's hash reads. One string per
    waiting message, which the garbage collector does not walk, instead of a tree of lists
    and dicts that it does (a crowd leaves thousands of messages waiting)."""
    return json.dumps(markup, separators=(",", ":")) if markup else None


def card_hash(text: str, markup: str | None) -> str:
    """What a card shows (text and buttons; `markup` as `markup_json` gives it), in 16 hex
    digits: an edit to the same is skipped."""
    raw = text + "\x00" + (markup or "")
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    markup: Markup | None
    card: bool  # the survey card (edited by taps), not an info message


def render(
    prompt: Prompt,
    t: Translator,
    *,
    bank: str | None,
    current_label: str | None = None,
    notice: bool = True,
    web_app_url: str | None = None,
    busy: bool = False,
) -> Rendered:
    """`notice`: put the prompt's notice above the text (typed input; a tap shows it as a toast).

    `web_app_url`: the consent card offers the Mini App; so does a question card when
    `busy` (the bot's outbound queue holds seconds of Telegram's 30 messages/s: in a
    crowd, the Mini App answers at once instead of waiting for the chat's turn)."""
    parts: list[str] = []
    if notice and prompt.notice:
        parts.append(f"⚠️ {prompt.notice}")
    if prompt.progress:
        parts.append(progress_label(t, prompt))
    parts.append(prompt.text)
    if current_label:
        parts.append(t("question.current", answer=current_label))
    text = "\n\n".join(p for p in parts if p)
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 1] + "…"

    rows: list[list[dict[str, Any]]] = []
    target = callback.target_for(prompt.kind, prompt.question_id)
    if target is not None:
        buttons = [button(c.label, callback.encode(bank, target, c.id)) for c in prompt.choices]
        if prompt.kind in ("consent", "confirm", "optin"):
            rows.append(buttons)
        else:
            rows.extend([b] for b in buttons)
        nav = [button(c.label, callback.encode(bank, target, c.id)) for c in prompt.nav]
        if nav:
            rows.append(nav)
    if web_app_url and (prompt.kind == "consent" or (busy and prompt.kind == "question")):
        label = t("miniapp.button" if prompt.kind == "consent" else "miniapp.busy")
        rows.append([web_app_button(label, web_app_url)])
    markup = keyboard(rows) if rows else None
    return Rendered(text, markup, prompt.kind in CARD_KINDS)


def command_menu(t: Translator) -> list[BotCommand]:
    """The bot's command menu (setMyCommands) in `t`'s language."""
    return [BotCommand(name, t(f"cmd.{name}")[:256]) for name in MENU_COMMANDS]
