"""The web chat in Armenian and Ukrainian, without JavaScript (form posts, POST -> 303 -> GET).

A respondent of a school offering en/hy/uk picks the language on the language card and
takes a whole learner and a whole graduate survey: every page after the choice is in that
language (catalog texts, no English), the notices after bad input too; the footer's
language button mid-way keeps the position; the answers land once with
response.language. SQLite and PostgreSQL (the `db_engine` fixture).
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from backend.web import keys, webchat
from conversations import engine as E
from conversations.banks import question_range
from conversations.i18n import Translator, format_number, language_name
from conversations.scales import get_scale
from storage.models import Invite, Response
from tests.apptools import answers_and_comments, db_url_of, make_settings, running_app, seed_school
from tests.langcheck import assert_not_english, language_names, values
from tests.webtools import WebUser, web_user

SCHOOL = "Polytech 42"
TYPED = {"hy": "Ավելի շատ այցեր ձեռնարկություններ։", "uk": "Більше екскурсій на підприємства."}
LANGS = ("en", "hy", "uk")


def norm(text: str) -> str:
    return " ".join(html.unescape(text).split())


@pytest.fixture
async def client(db_engine) -> AsyncIterator[TestClient]:
    async with running_app(make_settings(db_url_of(db_engine))) as c:
        yield c


class Page:
    """What the person sees on the current page, checked against one language."""

    def __init__(self, user: WebUser, lang: str) -> None:
        self.user, self.lang, self.t = user, lang, Translator(lang)

    def check(self) -> str:
        """The page is in the language: html lang, no English, every button a catalog text."""
        user = self.user
        assert user.status == 200
        assert f'<html lang="{self.lang}">' in user.html
        assert_not_english([user.text()], allowed=[SCHOOL, "cookie"])  # kept as the word
        catalog = values(self.lang) | language_names()
        for f in user.forms():
            for _, _, label in f.buttons:
                assert norm(label) in {norm(v) for v in catalog}, label
        return norm(user.text())

    def has(self, text: str) -> bool:
        return norm(webchat.web_text(text, self.t)) in norm(self.user.text())


async def _state(client: TestClient, user: WebUser) -> dict:
    runner = client.app[keys.SURVEY]
    return await runner.load_state(runner.subject("web", user.cookie))


async def _switch_and_back(client, user: WebUser, lang: str, qid: str, role: str) -> None:
    other = "uk" if lang == "hy" else "hy"
    await user.tap("language", name="action")  # the footer's language button
    page = Page(user, lang)
    page.check()
    assert page.has(page.t("language.prompt"))
    assert user.choices() == ["lang:" + x for x in LANGS]
    await user.tap("lang:" + other)
    page = Page(user, other)
    page.check()
    assert user.question_id() == qid and page.has(page.t(f"bank.{role}.{qid}"))
    await user.tap("language", name="action")
    await user.tap("lang:" + lang)
    page = Page(user, lang)
    page.check()
    assert user.question_id() == qid and page.has(page.t(f"bank.{role}.{qid}"))
    assert (await _state(client, user))["lang"] == lang


async def _take_survey(client, code: str, lang: str, role: str) -> list[str]:
    t = Translator(lang)
    engine = client.app[keys.SURVEY_ENGINE]
    answered: list[str] = []
    async with web_user(client) as user:
        await user.get(f"/s/{code}")
        assert user.choices() == ["lang:" + x for x in LANGS]
        labels = [b[2] for f in user.forms() for b in f.buttons if b[0] == "choice"]
        assert labels == [language_name(x) for x in LANGS]
        await user.tap("lang:" + lang)
        page = Page(user, lang)
        page.check()
        assert page.has(t("start.welcome", school=SCHOOL))
        assert page.has(t("consent.yes")) and page.has(t("consent.no"))
        await user.tap(E.YES)
        notices = {"tap": False, "text": False}
        for _ in range(100):
            state = await _state(client, user)
            if state["stage"] == "done":
                break
            assert state["stage"] == "question" and state["lang"] == lang
            page.check()
            bank = engine.bank_for(state)
            q = bank.question(state["pos"])
            assert user.question_id() == q.id
            visible = engine.visible(bank, state["ans"])
            index = [v.id for v in visible].index(q.id) + 1
            low, high = question_range(bank, state["ans"])
            if low == high:
                assert page.has(t("question.progress", index=index, total=low))
            else:
                assert page.has(t("question.progress_range", index=index, low=low, high=high))
            assert page.has(t(f"bank.{role}.{q.id}"))
            if q.kind == "scale":
                for p in get_scale(q.scale).points:
                    assert page.has(t(f"scale.{q.scale.value}.{p.value}"))
            elif q.kind == "choice":
                for o in q.options:
                    assert page.has(t(f"bank.{role}.{q.id}.{o.id}"))
            if index == 3:
                await _switch_and_back(client, user, lang, q.id, role)
            if q.kind == "scale" and not notices["tap"]:
                form = user.form_with("choice", "4")
                await user.post({**form.hidden, "choice": "9"})  # not on the scale
                page.check()
                assert page.has(t("question.tap_button")) and user.question_id() == q.id
                await user.post({**form.hidden, "text": "12345"})  # typed where a tap is due
                page.check()
                assert page.has(t("question.tap_button")) and user.question_id() == q.id
                notices["tap"] = True
            if q.kind == "scale":
                await user.tap(str(get_scale(q.scale).points[0].value))
            elif q.kind == "choice":
                await user.tap("c:working" if q.id == "now" else "c:" + q.options[0].id)
            elif q.kind == "text":
                await user.type("   ")
                page.check()
                assert page.has(t("text.empty")) and user.question_id() == q.id
                await user.type("я" * (q.max_length + 1))
                page.check()
                length = format_number(lang, q.max_length + 1)
                assert page.has(
                    t("text.too_long", length=length, max=format_number(lang, q.max_length))
                )
                await user.type(TYPED[lang])
                notices["text"] = True
            else:  # no shipped bank asks for a number
                await user.type(format_number(lang, q.number.min))
            answered.append(q.id)
        else:
            raise AssertionError("the survey did not end")
        page.check()
        assert page.has(t("done.text"))
        assert "/delete" not in user.html  # the web page names its button instead
        assert notices["tap"] and notices["text"]
    return answered


@pytest.mark.parametrize("lang", ["hy", "uk"])
async def test_whole_learner_and_graduate_surveys_in_the_language(client, lang):
    sm = client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm, slug="lang-school", name=SCHOOL, languages=list(LANGS))
    for role in ("learner", "graduate"):
        answered = await _take_survey(client, seeded.invites[role], lang, role)
        async with sm() as s:
            response = (await s.execute(select(Response).where(Response.role == role))).scalar_one()
            answers, comments = await answers_and_comments(s, response.id)
        assert response.status == "completed" and response.language == lang
        given = [a.question_id for a in answers] + [c.question_id for c in comments]
        assert sorted(given) == sorted(answered) and len(set(given)) == len(given)
        assert [c.text for c in comments] == [TYPED[lang]]
        if role == "graduate":
            assert {"now", "g09", "g10"} <= set(given) and "g11" not in given


@pytest.mark.parametrize("lang", ["hy", "uk"])
async def test_a_refused_link_and_an_empty_page_speak_the_browsers_language(client, lang):
    """Nobody's language is known before a survey starts: a link that is unknown, expired
    or withdrawn, and the page with no survey, are in the browser's (Accept-Language)."""
    sm = client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm, slug="lang-school", name=SCHOOL, languages=list(LANGS))
    async with sm.begin() as s:
        await s.execute(
            update(Invite)
            .where(Invite.code == seeded.invites["parent"])
            .values(revoked_at=datetime.now(UTC))
        )
    async with web_user(client) as user:
        user.headers = {"Accept-Language": f"{lang},en;q=0.5"}
        page = Page(user, lang)
        await user.get("/s/no-such-code")
        page.check()
        assert page.has(page.t("invite.unknown"))
        await user.get(f"/s/{seeded.invites['parent']}")
        page.check()
        assert page.has(page.t("invite.revoked"))
        await user.get("/chat")
        page.check()
        assert page.has(page.t("web.no_survey"))
        await user.get("/chat/forget")
        page.check()
        # A valid link still starts with the choice of language.
        await user.get(f"/s/{seeded.invites['learner']}")
        assert user.choices() == [E.LANG_PREFIX + code for code in LANGS]


@pytest.mark.parametrize("lang", ["hy", "uk"])
async def test_pause_says_the_pages_buttons_and_erasing_keeps_the_schools_name(client, lang):
    """The web chat's pause names its own button ("Continue"), not Telegram's /resume; the
    page after erasing (or declining) keeps the school's name in its header."""
    sm = client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm, slug="lang-school", name=SCHOOL, languages=list(LANGS))
    t = Translator(lang)
    async with web_user(client) as user:
        page = Page(user, lang)
        await user.get(f"/s/{seeded.invites['learner']}")
        await user.tap(E.LANG_PREFIX + lang)
        await user.tap(E.YES)
        await user.tap("4")
        await user.tap("stop", name="action")
        text = page.check()
        assert norm(t("web.stop_text")) in text and "/resume" not in user.html
        assert norm(t("web.resume")) in text and norm(t("web.erase")) in text
        await user.get("/chat")  # and so after a reload
        assert norm(t("web.stop_text")) in page.check()
        await user.tap("delete", name="action")
        await user.tap(E.YES)
        assert norm(t("delete.done")) in page.check()
        assert f'<p class="brand">{SCHOOL}</p>' in user.html
        await user.get("/chat")
        assert f'<p class="brand">{SCHOOL}</p>' in user.html
    async with web_user(client) as user:
        await user.get(f"/s/{seeded.invites['learner']}")
        await user.tap(E.LANG_PREFIX + lang)
        await user.tap(E.NO)
        assert norm(t("consent.declined")) in Page(user, lang).check()
        assert f'<p class="brand">{SCHOOL}</p>' in user.html
