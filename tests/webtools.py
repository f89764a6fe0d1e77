"""A respondent's browser without JavaScript, for the web-chat tests: forms, taps, typing.

Shared by the tests of the web chat, its languages, privacy and the comparison attacks.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser

import aiohttp
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from backend.web import keys, webchat
from conversations.i18n import Translator
from tests.apptools import Seeded, seed_school

T = Translator()


@dataclass
class Form:
    action: str
    hidden: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str, str]] = field(default_factory=list)  # name, value, label
    typed: str | None = None  # name of the text input / textarea


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._button: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", "")))
        elif tag == "input" and self.forms:
            if a.get("type") == "hidden":
                self.forms[-1].hidden[a["name"]] = a.get("value", "")
            elif a.get("name"):
                self.forms[-1].typed = a["name"]
        elif tag == "textarea" and self.forms:
            self.forms[-1].typed = a["name"]
        elif tag == "button" and self.forms:
            self._button = [a.get("name", ""), a.get("value", ""), ""]

    def handle_data(self, data):
        if self._button is not None:
            self._button[2] += data

    def handle_endtag(self, tag):
        if tag == "button" and self._button is not None and self.forms:
            name, value, label = self._button
            self.forms[-1].buttons.append((name, value, label.strip()))
            self._button = None


def forms_of(html: str) -> list[Form]:
    p = _Forms()
    p.feed(html)
    return p.forms


class WebUser:
    """One respondent's browser without JavaScript: its own cookie jar."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.html = ""
        self.status = 0
        self.headers: dict[str, str] = {}  # sent with every request (e.g. a test client IP)

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str) -> str:
        async with self.session.get(self.client.make_url(path), headers=self.headers) as r:
            self.status = r.status
            self.html = await r.text()
        return self.html

    async def post(self, data: dict[str, str], **kw) -> str:
        headers = {**self.headers, **kw.pop("headers", {})}
        url = self.client.make_url("/chat")
        async with self.session.post(url, data=data, headers=headers, **kw) as r:
            self.status = r.status
            self.html = await r.text()
        return self.html

    @property
    def cookie(self) -> str:
        for c in self.session.cookie_jar:
            if c.key == webchat.COOKIE:
                return c.value
        raise AssertionError("no respondent cookie")

    def forms(self) -> list[Form]:
        return forms_of(self.html)

    def form_with(self, name: str, value: str) -> Form:
        for f in self.forms():
            if any(b[0] == name and b[1] == value for b in f.buttons):
                return f
        raise AssertionError(f"no button {name}={value} on the page:\n{self.html}")

    async def consent_form(self, code: str) -> Form:
        """Open the invite link `code`: the consent card's form, not posted yet."""
        await self.get(f"/s/{code}")
        return self.form_with("choice", "yes")

    async def start(self, code: str) -> None:
        """Open the invite link `code` and consent."""
        form = await self.consent_form(code)
        await self.post({**form.hidden, "choice": "yes"})

    async def tap(self, value: str, name: str = "choice") -> str:
        f = self.form_with(name, value)
        return await self.post({**f.hidden, name: value})

    async def type(self, text: str) -> str:
        f = next(f for f in self.forms() if f.typed)
        return await self.post({**f.hidden, f.typed: text})

    def choices(self) -> list[str]:
        return [b[1] for f in self.forms() for b in f.buttons if b[0] == "choice"]

    def question_id(self) -> str | None:
        for f in self.forms():
            if f.hidden.get("question_id"):
                return f.hidden["question_id"]
        return None

    def has_typed_input(self) -> bool:
        return any(f.typed for f in self.forms())

    def text(self) -> str:
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", self.html)).replace("&#39;", "'")


@asynccontextmanager
async def web_user(client: TestClient) -> AsyncIterator[WebUser]:
    user = WebUser(client)
    try:
        yield user
    finally:
        await user.close()


@asynccontextmanager
async def consented(client: TestClient, role: str) -> AsyncIterator[tuple[WebUser, Seeded]]:
    """A school with an invite for `role`, and a web respondent who opened it and consented."""
    seeded = await seed_school(client.app[keys.SESSIONMAKER], roles=[role])
    async with web_user(client) as user:
        await user.start(seeded.invites[role])
        yield user, seeded


async def only(sessionmaker, what):
    """The one row (or column value) of `what` stored; fails unless there is exactly one."""
    async with sessionmaker() as s:
        return (await s.execute(select(what))).scalar_one()


async def count(sessionmaker, model, *where) -> int:
    async with sessionmaker() as s:
        q = select(func.count()).select_from(model)
        for w in where:
            q = q.where(w)
        return (await s.execute(q)).scalar_one()


async def answer_all(
    user: WebUser, pick: Callable[[str, list[str]], str], *, text: str = "Fine"
) -> list[str]:
    """Answer every question until the survey ends: `pick(question id, the choices on the
    card)` says which; text questions get `text`. The questions seen."""
    seen: list[str] = []
    for _ in range(60):
        if T("done.text").split("\n")[0] in user.html.replace("&#39;", "'"):
            return seen
        qid = user.question_id()
        assert qid, user.html
        seen.append(qid)
        if user.has_typed_input():
            await user.type(text)
        else:
            await user.tap(pick(qid, user.choices()))
        assert user.status == 200
    raise AssertionError("the survey did not end")


async def answer_everything(user: WebUser, *, text: str = "More company visits") -> list[str]:
    """Answer every question with the first choice (typed text for text questions)."""

    def first(_qid: str, _choices: list[str]) -> str:
        return user.form_with("choice", first_choice(user)).buttons[0][1]

    return await answer_all(user, first, text=text)


def first_choice(user: WebUser) -> str:
    for f in user.forms():
        if f.buttons and f.buttons[0][0] == "choice" and "question_id" in f.hidden:
            return f.buttons[0][1]
    raise AssertionError(user.html)


async def take_survey(
    user: WebUser, code: str, pick: Callable[[str, list[str]], str], *, text: str = "Fine"
) -> list[str]:
    """Open an invite link, consent, and answer every question: `pick(question id, the
    choices on the card)` says which; text questions get `text`. The questions seen."""
    await user.start(code)
    return await answer_all(user, pick, text=text)
