"""Fault tests: run only by `make test-faults` (`pytest -m faults tests/faults`).

They start servers of their own (redis-server, `guidance-survey serve` subprocesses, a TCP
proxy in front of PostgreSQL) and take minutes, so `make test` does not collect them:
this directory is left out of collection unless the marker expression names `faults`.
All of them run on PostgreSQL (the production shape).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apptools import db_url_of
from tests.bot.fakebot import FakeBotAPI
from tests.faults.support import RedisServer, ServeProcess

HERE = Path(__file__).parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if HERE in collection_path.parents and "faults" not in (config.option.markexpr or ""):
        return True
    return None


@pytest.fixture
def db_url(pg_url: str) -> str:
    """PostgreSQL only (overrides the sqlite/postgres parametrisation)."""
    return pg_url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI() as fake:
        yield fake


@pytest.fixture
def storage(db_engine: Any, redis_url: str, redis_prefix: str) -> dict[str, Any]:
    return {
        "database_url": db_url_of(db_engine),
        "redis_url": redis_url,
        "redis_prefix": redis_prefix,
    }


@pytest.fixture
async def serve_factory(
    tmp_path: Path, storage: dict[str, Any], fake_api: FakeBotAPI
) -> AsyncIterator[Callable[[], ServeProcess]]:
    """Makes `guidance-survey serve` processes on the test's database, Redis and fake Bot API
    (started by the test); each is stopped at the end."""
    made: list[ServeProcess] = []

    def make() -> ServeProcess:
        p = ServeProcess(tmp_path, **storage, api_url=fake_api.url)
        made.append(p)
        return p

    try:
        yield make
    finally:
        for p in made:
            p.stop()
