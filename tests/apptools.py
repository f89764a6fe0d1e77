"""Helpers to run the real application in tests: settings, a seeded school, a test client.

Usage (in an async test):
    async with running_app(make_settings(db_url, ...)) as client:   # aiohttp TestClient
        seeded = await seed_school(client.app[keys.SESSIONMAKER])
        ...
Use the `db_engine` fixture (schema created, SQLite and PostgreSQL) and pass
`db_url_of(db_engine)` to `make_settings`.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio.connection import AbstractConnection
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.web import keys
from backend.web.app import create_app
from backend.web.settings import Settings
from conversations import engine as E
from conversations.banks import load_banks
from conversations.roles import Role
from storage import responses
from storage.models import Answer, Comment, Cycle, Invite, Response, School
from tests.conversations.support import number_bank

TOKEN = "123456:TEST-token_for-the-fake-bot-api"
WEBHOOK_SECRET = "test-webhook-secret_1"


def db_url_of(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=False)


def make_settings(db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "redis_url": "",
        "secret_key": "test-secret-key-" + "x" * 16,
        "telegram_bot_token": "",
        "telegram_webhook_secret": "",
        "public_url": "",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


async def create_schema(url: str) -> None:
    """The models' tables in a fresh database (no migrations: the tests of those run them)."""
    from storage.db import create_engine
    from storage.models import Base

    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()


@asynccontextmanager
async def running_app(settings: Settings, **overrides: Any) -> AsyncIterator[TestClient]:
    async with client_of(create_app(settings, **overrides)) as client:
        yield client


@asynccontextmanager
async def client_of(app: web.Application) -> AsyncIterator[TestClient]:
    """A test client of `app` (made and adjusted by the caller)."""
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@dataclass
class AppClient:
    """A test harness around an aiohttp test client of the whole app."""

    client: TestClient

    @property
    def app(self) -> web.Application:
        return self.client.app

    @property
    def sm(self) -> async_sessionmaker[AsyncSession]:
        return self.client.app[keys.SESSIONMAKER]


@dataclass
class Seeded:
    school_id: int
    school_slug: str
    cycle_id: int
    invites: dict[str, str] = field(default_factory=dict)  # role -> shared invite code


async def seed_school(
    sessionmaker: async_sessionmaker,
    *,
    slug: str = "test-school",
    name: str = "Test Vocational School",
    roles: Iterable[Role | str] = tuple(Role),
    max_uses: int | None = 1000,
    threshold: int = 5,
    free_text_threshold: int = 10,
    languages: list[str] | None = None,
) -> Seeded:
    """A school with one open cycle and one shared invite per role (ORM only, no repo)."""
    async with sessionmaker.begin() as s:
        school = School(
            slug=slug,
            name=name,
            languages=languages or ["en"],
            anonymity_threshold=threshold,
            free_text_threshold=free_text_threshold,
        )
        s.add(school)
        await s.flush()
        cycle = Cycle(
            school_id=school.id,
            name="2026/27",
            model_version="1.0.0",
            status="open",
            anonymity_threshold=threshold,
            free_text_threshold=free_text_threshold,
            opens_at=datetime.now(UTC),
        )
        s.add(cycle)
        await s.flush()
        seeded = Seeded(school.id, slug, cycle.id)
        for role in roles:
            code = secrets.token_urlsafe(12)
            s.add(
                Invite(
                    cycle_id=cycle.id,
                    code=code,
                    role=str(Role(role).value),
                    max_uses=max_uses,
                    expires_at=datetime.now(UTC) + timedelta(days=30),
                )
            )
            seeded.invites[str(Role(role).value)] = code
    return seeded


async def add_response(
    s: AsyncSession,
    cycle_id: int,
    role: str,
    tag: str,
    *,
    answers: dict[str, int] | None = None,
    comment: tuple[str, str] | None = None,
    completed: bool = True,
) -> Response:
    """One new respondent's response, stored as the use case would: its scale answers, an
    optional free text (question id, text), then completed."""
    person = await responses.get_or_create_respondent(s, secrets.token_hex(32))
    resp = await responses.get_or_create_response(
        s, person.id, cycle_id, role, tag, "1.0.0", "en", datetime.now(UTC)
    )
    for qid, value in (answers or {}).items():
        await responses.upsert_answer(s, resp.id, qid, value=value)
    if comment is not None:
        await responses.upsert_comment(s, resp.id, *comment)
    if completed:
        await responses.set_status(s, resp.id, "completed")
    return resp


async def answers_and_comments(
    s: AsyncSession, response_id: int
) -> tuple[list[Answer], list[Comment]]:
    """The rows a response's answers and free texts were stored in."""
    answers = await s.scalars(select(Answer).where(Answer.response_id == response_id))
    comments = await s.scalars(select(Comment).where(Comment.response_id == response_id))
    return list(answers), list(comments)


async def add_responses(
    sm: async_sessionmaker,
    cycle_id: int,
    role: str,
    tag: str,
    n: int,
    answers: dict[str, int],
    *,
    completed: bool = True,
) -> None:
    """n respondents of `role` giving the same answers."""
    async with sm.begin() as s:
        for _ in range(n):
            await add_response(s, cycle_id, role, tag, answers=answers, completed=completed)


def with_number_bank(app: web.Application) -> web.Application:
    """`app` with its employer bank swapped for `number_bank()` (a number question first)."""
    bank = number_bank()
    banks = [b for role, b in load_banks().items() if role != bank.role] + [bank]
    app[keys.SURVEY_ENGINE] = E.Engine.from_banks(banks, "1.0.0")
    return app


@contextmanager
def redis_commands(client: Any) -> Iterator[list[tuple[Any, ...]]]:
    """The commands sent to Redis meanwhile (each as its arguments, the name first): what a
    step pays in round trips. Counted on the connections themselves, so that the client's
    commands and the session store's lane (`storage.sessions.Lane`) are both seen;
    `client` is the one whose pool they come from (the test's process has no other)."""
    calls: list[tuple[Any, ...]] = []
    real = AbstractConnection.send_command
    assert client is not None

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return await real(self, *args, **kwargs)

    AbstractConnection.send_command = counted  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        AbstractConnection.send_command = real  # type: ignore[method-assign]
