"""Fault tests: run only by `make test-faults` (`pytest -m faults tests/faults`).

They start servers of their own (redis-server, `guidance-survey serve` subprocesses, a TCP
proxy in front of PostgreSQL) and take minutes, so `make test` does not collect them:
this directory is left out of collection unless the marker expression names `faults`.
All of them run on PostgreSQL (the production shape).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bot.fakebot import FakeBotAPI
from tests.faults.support import RedisServer

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
    from tests.apptools import db_url_of

    return {
        "database_url": db_url_of(db_engine),
        "redis_url": redis_url,
        "redis_prefix": redis_prefix,
    }
