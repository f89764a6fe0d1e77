"""Shared fixtures: real PostgreSQL and Redis of this machine, isolated per test run.

Each pytest run creates its own PostgreSQL database (dropped at the end) and uses
its own Redis key prefix, so parallel runs never see each other's data.
With REQUIRE_SERVICES=1 (CI), an unreachable service fails the test instead of skipping it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import pytest

PG_ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE = os.environ.get("REQUIRE_SERVICES") == "1"
RUN_ID = uuid.uuid4().hex[:10]


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 1
        ):
            return True
    except OSError:
        return False


def unavailable(what: str, why: str = "is not reachable") -> None:
    """Skip locally, fail in CI (REQUIRE_SERVICES=1): a missing service or tool is no pass."""
    msg = f"{what} {why}"
    if REQUIRE:
        pytest.fail(msg + " (REQUIRE_SERVICES=1: `make test` installs tools; see README)")
    pytest.skip(msg)


_unavailable = unavailable


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """An asyncpg URL of a fresh PostgreSQL database for this test run."""
    if not _reachable(PG_ADMIN_URL, 5432):
        _unavailable("PostgreSQL")
    import asyncpg

    name = f"gs_test_{RUN_ID}"
    admin = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _reachable(REDIS_URL, 6379):
        _unavailable("Redis")
    return REDIS_URL


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix unique to one test (and run), for isolation on the shared Redis."""
    return f"gstest:{RUN_ID}:{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def redis_client(redis_url: str, redis_prefix: str) -> AsyncIterator[object]:
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    try:
        yield client
    finally:
        keys = [k async for k in client.scan_iter(match=redis_prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """The same storage test runs on SQLite (aiosqlite) and PostgreSQL (asyncpg)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
async def db_engine(db_url: str) -> AsyncIterator[object]:
    """An async engine with the schema of `storage.models`, emptied after the test."""
    from storage.db import create_engine
    from storage.models import Base

    engine = create_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield engine
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
        await engine.dispose()


@pytest.fixture
async def empty_db_url(db_url: str) -> AsyncIterator[str]:
    """`db_url` with no tables before and after (the PostgreSQL database is shared per run):
    for the tests of the migrations."""
    from tests.storage.support import drop_everything

    await drop_everything(db_url)
    yield db_url
    await drop_everything(db_url)


@pytest.fixture
def sessionmaker(db_engine):
    from storage.db import make_sessionmaker

    return make_sessionmaker(db_engine)


@pytest.fixture
def fake_ip(monkeypatch):
    """The client's IP from a test header (the app itself uses the socket's peer only)."""
    from backend.dashboard import auth

    monkeypatch.setattr(auth, "client_ip", lambda r: r.headers.get("X-Test-Ip", "127.0.0.1"))
