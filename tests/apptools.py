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
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from backend.web.app import create_app
from backend.web.settings import Settings
from conversations.roles import Role
from storage.models import Cycle, Invite, School

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
    app = create_app(settings, **overrides)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


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


# No shipped bank asks for a number: tests of number questions swap the employer bank for this.
NUMBER_BANK_YAML = """
role: employer
version: 9
model_version: "1.0.0"
title: "Numbers"
intro: "A test bank."
minutes: 1
questions:
  - id: n1
    kind: number
    text: "How many learners did you take on as interns this year?"
    number: {min: 0, max: 500}
  - id: e1
    text: "The school keeps in touch with us."
    scale: AGM
    indicators: [CC-2]
"""
