"""The respondent side in Armenian and Ukrainian through Telegram (fake Bot API, real app).

Every text a person sees after choosing the language comes from that language's
catalog; the answers land once, with the language on the response; /language mid-way
keeps the position. SQLite and PostgreSQL (the `storage` fixture).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot import callback
from conversations import engine as E
from conversations.banks import question_range
from conversations.i18n import Translator, format_number, language_name
from conversations.scales import get_scale
from storage.models import Answer, Comment, Respondent, Response
from tests.apptools import answers_and_comments, seed_school
from tests.bot.conftest import open_bench
from tests.bot.walker import button
from tests.langcheck import assert_not_english, language_names, values

COMMANDS = ["start", "resume", "restart", "stop", "help", "language", "privacy", "delete"]


async def test_command_menu_in_every_language(storage, fake_api):
    async with open_bench(storage, fake_api):
        calls = fake_api.called("setMyCommands")
    by_lang = {c.params.get("language_code"): c.params["commands"] for c in calls}
    assert list(by_lang) == [None, "hy", "uk"]  # the default (English) first
    assert calls[0].params.get("scope") is None  # the default scope
    for code, commands in by_lang.items():
        t = Translator(code or "en")
        assert [c["command"] for c in commands] == COMMANDS
        assert [c["description"] for c in commands] == [t(f"cmd.{c}") for c in COMMANDS]
    assert by_lang[None][0]["description"] == "Start (or continue) the survey"
    english = {c["description"] for c in by_lang[None]}
    for code in ("hy", "uk"):
        assert not english & {c["description"] for c in by_lang[code]}


# -- a whole survey in Armenian / Ukrainian ----------------------------------------------

SCHOOL = "Polytech 42"
TYPED = {"hy": "Ավելի շատ այցեր ձեռնարկություններ։", "uk": "Більше екскурсій на підприємства."}


def _shown_since(fake, user, mark: int) -> list[str]:
    """Every text the person saw from call `mark` on: messages, edits, buttons, toasts."""
    out: list[str] = []
    for c in fake.calls[mark:]:
        if c.status != 200:
            continue
        if c.method in ("sendMessage", "editMessageText") and c.params.get("chat_id") == user.id:
            out.append(c.params["text"])
            rows = (c.params.get("reply_markup") or {}).get("inline_keyboard", [])
            out.extend(b["text"] for row in rows for b in row)
        elif c.method == "answerCallbackQuery" and c.params.get("text"):
            out.append(c.params["text"])
    return out


def _labels(card) -> list[str]:
    return [b["text"] for b in card.buttons()]


async def _choose_language(bench, user, lang: str) -> None:
    card = bench.fake.card(user.id)
    assert await bench.tg.tap(user, card, button(card, callback.LANGUAGE, "lang:" + lang)) == [200]
    await bench.tg.settle(user)


async def _switch_and_back(bench, user, lang: str, qid: str, role: str) -> None:
    """/language mid-survey: the other pilot language, then back; the position is kept."""
    tg, fake = bench.tg, bench.fake
    other = "uk" if lang == "hy" else "hy"
    assert await tg.send(user, "/language") == [200]
    await tg.settle(user)
    card = fake.card(user.id)
    assert card.text == Translator(lang)("language.prompt")
    assert _labels(card) == [language_name(x) for x in ("en", "hy", "uk")]
    await _choose_language(bench, user, other)
    card = fake.card(user.id)
    assert Translator(other)(f"bank.{role}.{qid}") in card.text
    assert (await bench.survey.load_state(bench.subject(user)))["pos"] == qid
    assert await tg.send(user, "/language") == [200]
    await tg.settle(user)
    assert fake.card(user.id).text == Translator(other)("language.prompt")
    await _choose_language(bench, user, lang)
    card = fake.card(user.id)
    assert Translator(lang)(f"bank.{role}.{qid}") in card.text
    state = await bench.survey.load_state(bench.subject(user))
    assert state["pos"] == qid and state["lang"] == lang


async def _take_survey(bench, seeded, user, lang: str, role: str) -> list[str]:
    tg, fake = bench.tg, bench.fake
    t = Translator(lang)
    engine = bench.survey.engine
    subject = bench.subject(user)
    assert await tg.send(user, f"/start {seeded.invites[role]}") == [200]
    await tg.settle(user)
    card = fake.card(user.id)
    assert _labels(card) == [language_name(x) for x in ("en", "hy", "uk")]
    mark = len(fake.calls)
    await _choose_language(bench, user, lang)
    card = fake.card(user.id)
    assert t("start.welcome", school=SCHOOL) in card.text
    assert _labels(card) == [t("consent.yes"), t("consent.no")]
    assert await tg.tap(user, card, button(card, callback.CONSENT, E.YES)) == [200]
    answered: list[str] = []
    notices = {"tap": False, "typed": False, "text": False}
    for n in range(100):
        await tg.settle(user)
        state = await bench.survey.load_state(subject)
        if state["stage"] == "optin":
            card = fake.card(user.id)
            assert _labels(card) == [t("reminders.optin_yes"), t("reminders.optin_no")]
            assert await tg.tap(user, card, button(card, callback.OPTIN, E.NO)) == [200]
            continue
        if state["stage"] == "done":
            break
        assert state["stage"] == "question" and state["lang"] == lang
        bank = engine.bank_for(state)
        q = bank.question(state["pos"])
        visible = engine.visible(bank, state["ans"])
        index = [v.id for v in visible].index(q.id) + 1
        card = fake.card(user.id) if q.kind != "text" else fake.last(user.id)
        low, high = question_range(bank, state["ans"])
        if low == high:
            assert t("question.progress", index=index, total=low) in card.text
        else:
            assert t("question.progress_range", index=index, low=low, high=high) in card.text
        assert t(f"bank.{role}.{q.id}") in card.text
        labels = _labels(card)
        nav = {t("nav.back"), t("nav.skip"), t("nav.na")}
        if q.kind == "scale":
            want = [t(f"scale.{q.scale.value}.{p.value}") for p in get_scale(q.scale).points]
            assert labels[: len(want)] == want and set(labels[len(want) :]) <= nav
        elif q.kind == "choice":
            want = [t(f"bank.{role}.{q.id}.{o.id}") for o in q.options]
            assert labels[: len(want)] == want and set(labels[len(want) :]) <= nav
        if index == 3:
            await _switch_and_back(bench, user, lang, q.id, role)
            card = fake.card(user.id) if q.kind != "text" else fake.last(user.id)
        if q.kind == "scale" and not notices["tap"]:
            # A tap on a value the scale does not have: the toast says what is wanted.
            bad = callback.encode(state["bank"], q.id, "9")
            assert await tg.tap(user, card, bad) == [200]
            toast = fake.called("answerCallbackQuery")[-1].params
            assert toast.get("text") == t("question.tap_button")
            # Typed text where a tap is due: a new message with the notice.
            assert await tg.send(user, "12345") == [200]
            await tg.settle(user)
            assert fake.last(user.id).text.startswith("⚠️ " + t("question.tap_button"))
            assert (await bench.survey.load_state(subject))["pos"] == q.id
            notices["tap"] = True
            card = fake.last(user.id)
        if q.kind in ("scale", "choice"):
            choices = [
                tap.choice
                for tap in map(callback.decode, card.callback_data())
                if tap and tap.target == q.id and tap.choice not in (E.BACK, E.SKIP)
            ]
            choice = "c:working" if q.id == "now" else choices[n % len(choices)]
            assert await tg.tap(user, card, button(card, q.id, choice)) == [200]
        elif q.kind == "text":
            too_long = "я" * (q.max_length + 1)
            assert await tg.send(user, too_long) == [200]
            await tg.settle(user)
            notice = t(
                "text.too_long",
                length=format_number(lang, q.max_length + 1),
                max=format_number(lang, q.max_length),
            )
            assert fake.last(user.id).text.startswith("⚠️ " + notice)
            assert await tg.send(user, TYPED[lang]) == [200]
            notices["text"] = True
        else:  # no shipped bank asks for a number
            assert await tg.send(user, format_number(lang, q.number.min)) == [200]
        answered.append(q.id)
    else:
        raise AssertionError("the survey did not end")
    assert fake.last(user.id).text == t("done.text")
    assert notices["tap"] and notices["text"]
    assert_not_english(_shown_since(fake, user, mark), allowed=[SCHOOL])
    # Every button the person saw after the choice is a text of the catalog (of the other
    # pilot language while switched to it).
    catalogs = values("hy") | values("uk") | language_names()
    for c in fake.calls[mark:]:
        if c.method in ("sendMessage", "editMessageText"):
            rows = (c.params.get("reply_markup") or {}).get("inline_keyboard", [])
            for b in (b for row in rows for b in row):
                assert b["text"] in catalogs, b["text"]
    return answered


async def _stored(bench, user) -> tuple[Response, list[Answer], list[Comment]]:
    async with bench.sm() as s:
        response = (
            await s.execute(
                select(Response)
                .join(Respondent, Respondent.id == Response.respondent_id)
                .where(Respondent.subject_hash == bench.subject(user))
            )
        ).scalar_one()
        answers, comments = await answers_and_comments(s, response.id)
    return response, answers, comments


@pytest.mark.parametrize("lang", ["hy", "uk"])
async def test_whole_learner_and_graduate_surveys_in_the_language(storage, fake_api, lang):
    async with open_bench(storage, fake_api) as bench:
        seeded = await seed_school(
            bench.sm, slug="lang-school", name=SCHOOL, languages=["en", "hy", "uk"]
        )
        for role in ("learner", "graduate"):
            user = bench.tg.user()
            answered = await _take_survey(bench, seeded, user, lang, role)
            response, answers, comments = await _stored(bench, user)
            assert response.status == "completed" and response.role == role
            assert response.language == lang
            given = [a.question_id for a in answers] + [c.question_id for c in comments]
            assert sorted(given) == sorted(answered) and len(set(given)) == len(given)
            assert [c.text for c in comments] == [TYPED[lang]]
            if role == "graduate":
                assert {"now", "g09", "g10"} <= set(given) and "g11" not in given
                assert next(a for a in answers if a.question_id == "now").choice == "working"
        assert not [c for c in fake_api.calls if c.status not in (200,)]
