"""The bot's test bench: the real app (webhook) on real storage, a fake Bot API, a Telegram.

`storage` runs each test twice: the embedded default (SQLite + in-memory sessions) and
the production shape (PostgreSQL + Redis of this machine).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from backend.web import keys
from conversations.survey import Survey
from tests.apptools import (
    TOKEN,
    WEBHOOK_SECRET,
    AppClient,
    Seeded,
    db_url_of,
    make_settings,
    running_app,
    seed_school,
)
from tests.bot.fakebot import FakeBotAPI, Telegram

# Tests do not wait a second per chat (one test checks the real default limits).
FAST_RATES = {"global_rate": 10_000.0, "chat_rate": 10_000.0, "chat_burst": 100}


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI() as fake:
        yield fake


@pytest.fixture
def storage(request: pytest.FixtureRequest, db_engine: Any, db_url: str) -> dict[str, Any]:
    """Settings for the database under test; Redis alongside PostgreSQL."""
    values: dict[str, Any] = {"database_url": db_url_of(db_engine)}
    if db_url.startswith("postgresql"):
        values["redis_url"] = request.getfixturevalue("redis_url")
        values["redis_prefix"] = request.getfixturevalue("redis_prefix")
    return values


@dataclass
class Bench(AppClient):
    fake: FakeBotAPI
    tg: Telegram
    seeded: Seeded

    @property
    def survey(self) -> Survey:
        return self.app[keys.SURVEY]

    @property
    def channel(self) -> Any:
        return self.app[keys.BOT]

    def subject(self, user: Any) -> str:
        return self.survey.subject("telegram", user.id)


@asynccontextmanager
async def open_bench(
    storage: dict[str, Any],
    fake: FakeBotAPI,
    *,
    settings: dict[str, Any] | None = None,
    **overrides: Any,
) -> AsyncIterator[Bench]:
    values = dict(storage)
    values.update(
        telegram_bot_token=TOKEN,
        telegram_webhook_secret=WEBHOOK_SECRET,
        telegram_api_base_url=fake.url,
    )
    values.update(settings or {})
    db_url = values.pop("database_url")
    overrides.setdefault("bot_rates", FAST_RATES)
    overrides.setdefault("bot_backoff", 0.01)
    async with running_app(make_settings(db_url, **values), **overrides) as client:
        seeded = await seed_school(client.app[keys.SESSIONMAKER])
        yield Bench(client, fake, Telegram(client, fake), seeded)


@pytest.fixture
async def bench(storage: dict[str, Any], fake_api: FakeBotAPI) -> AsyncIterator[Bench]:
    async with open_bench(storage, fake_api) as b:
        yield b
