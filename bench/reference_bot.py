"""The reference: the same learner survey written the way python-telegram-bot's examples do it.

    python -m bench.reference_bot --port 8083 --api http://127.0.0.1:8081 --data DIR

As in PTB's `conversationbot.py` and `persistentconversationbot.py`: a ConversationHandler
(entry `/start`, a consent state, a question state) keeping answers in `context.user_data`,
persisted by PicklePersistence; each answer is acknowledged (answerCallbackQuery) and the
next question sent as a new message (sendMessage). As in `customwebhookbot/`: an
Application with no Updater behind our own web server (aiohttp here), checking the secret
header.

One deliberate difference from `customwebhookbot`: that example puts the update on
`application.update_queue` and answers 200 at once, before anything is processed, so its
latency would measure an `asyncio.Queue.put`. Here the handler awaits
`application.process_update(update)`, like our webhook, so both answer 200 after the work
(ours: answer in PostgreSQL; the reference: answer in memory, pickled every 60 s and at
shutdown, PicklePersistence's default). The callback data uses our format so one load
generator drives both.
"""

from __future__ import annotations

import argparse
import json
import logging
import warnings
from pathlib import Path

from aiohttp import web
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    PicklePersistence,
)
from telegram.warnings import PTBUserWarning

from bench.common import SECRET, TOKEN

CONSENT, QUESTION = range(2)
warnings.filterwarnings("ignore", category=PTBUserWarning)


def _bank():
    from conversations.banks import load_banks
    from conversations.roles import Role

    return load_banks()[Role.LEARNER]


BANK = _bank()
TAG = BANK.tag
QUESTIONS = [q for q in BANK.questions if not q.when]
AGM = ["Strongly agree", "Agree", "Neither agree nor disagree", "Disagree", "Strongly disagree"]


def _data(target: str, choice: str) -> str:
    return f"1|{TAG}|{target}|{choice}"


def _question_markup(i: int) -> InlineKeyboardMarkup:
    q = QUESTIONS[i]
    rows = []
    if q.kind == "scale":
        rows = [
            [InlineKeyboardButton(lbl, callback_data=_data(q.id, str(4 - k)))]
            for k, lbl in enumerate(AGM)
        ]
    nav = [InlineKeyboardButton("Back", callback_data=_data(q.id, "back"))] if i else []
    if q.optional:
        nav.append(InlineKeyboardButton("Skip", callback_data=_data(q.id, "skip")))
    if nav:
        rows.append(nav)
    return InlineKeyboardMarkup(rows)


def _question_text(i: int) -> str:
    return f"Question {i + 1} of {len(QUESTIONS)}\n\n{QUESTIONS[i].text}"


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    context.user_data["invite"] = (context.args or [""])[0]
    context.user_data["answers"] = {}
    context.user_data["pos"] = 0
    markup = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Yes, start", callback_data=_data("!c", "yes")),
                InlineKeyboardButton("No", callback_data=_data("!c", "no")),
            ]
        ]
    )
    await update.message.reply_text(
        BANK.intro + "\n\nDo you agree to take part?", reply_markup=markup
    )
    return CONSENT


async def consent(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    query = update.callback_query
    await query.answer()
    if not query.data.endswith("|yes"):
        await context.bot.send_message(query.message.chat.id, "Thank you. Nothing was stored.")
        return ConversationHandler.END
    await context.bot.send_message(
        query.message.chat.id, _question_text(0), reply_markup=_question_markup(0)
    )
    return QUESTION


async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    query = update.callback_query
    await query.answer()
    _, _, qid, choice = query.data.split("|", 3)
    pos = context.user_data.get("pos", 0)
    if pos >= len(QUESTIONS) or QUESTIONS[pos].id != qid:
        await context.bot.send_message(
            query.message.chat.id, "That button belongs to another question."
        )
        return QUESTION
    if choice == "back":
        pos = max(0, pos - 1)
    else:
        context.user_data["answers"][qid] = choice
        pos += 1
    context.user_data["pos"] = pos
    if pos >= len(QUESTIONS):
        await context.bot.send_message(query.message.chat.id, "Thank you! Your answers are saved.")
        return ConversationHandler.END
    await context.bot.send_message(
        query.message.chat.id, _question_text(pos), reply_markup=_question_markup(pos)
    )
    return QUESTION


def build_application(api: str, data_dir: Path) -> Application:
    persistence = PicklePersistence(filepath=data_dir / "reference_bot.pickle")
    application = (
        Application.builder()
        .token(TOKEN)
        .base_url(api.rstrip("/") + "/bot")
        .updater(None)
        .persistence(persistence)
        .build()
    )
    application.add_handler(
        ConversationHandler(
            entry_points=[CommandHandler("start", start)],
            states={
                CONSENT: [CallbackQueryHandler(consent, pattern=r"^1\|[^|]+\|!c\|")],
                QUESTION: [CallbackQueryHandler(answer)],
            },
            fallbacks=[CommandHandler("start", start)],
            name="survey",
            persistent=True,
        )
    )
    return application


def make_app(application: Application) -> web.Application:
    async def webhook(request: web.Request) -> web.Response:
        if request.headers.get("X-Telegram-Bot-Api-Secret-Token") != SECRET:
            return web.Response(status=403)
        data = json.loads(await request.read())
        await application.process_update(Update.de_json(data, application.bot))
        return web.Response(text="ok")

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def lifecycle(app: web.Application):
        await application.initialize()
        await application.start()
        yield
        await application.stop()
        await application.shutdown()

    app = web.Application()
    app.router.add_post("/telegram/webhook", webhook)
    app.router.add_get("/healthz", healthz)
    app.cleanup_ctx.append(lifecycle)
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--api", required=True, help="Bot API root (the fake one)")
    ap.add_argument("--data", default="bench/results/tmp")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data_dir = Path(args.data)
    data_dir.mkdir(parents=True, exist_ok=True)
    application = build_application(args.api, data_dir)
    web.run_app(
        make_app(application), host="127.0.0.1", port=args.port, access_log=None, print=None
    )


if __name__ == "__main__":
    main()
