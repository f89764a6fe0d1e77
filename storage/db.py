"""Engine and session factory for PostgreSQL (asyncpg) and SQLite (aiosqlite).

A statement's parameters are respondents' answers and words: the engine never puts them
into an error's text or its own log lines (`hide_parameters`), and aiosqlite's DEBUG
lines (which print every call with its parameters) stay off.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# aiosqlite logs "executing functools.partial(<execute>, sql, parameters)" at DEBUG.
logging.getLogger("aiosqlite").setLevel(logging.INFO)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # No ping before each checkout (a round trip per transaction on the hot path): a dropped
    # connection fails its statement as a disconnect, SQLAlchemy then discards the pool, and
    # the update is answered 503 and retried (tests/faults/test_postgres_outage.py).
    kwargs.setdefault("pool_pre_ping", False)
    # 30 connections kept, none beyond: a connection opened for a peak and closed when it came
    # back to a full pool (SQLAlchemy's "overflow") costs a connect, an SSL attempt and the
    # statements' preparation again. With 20 kept and 10 overflow, pg_stat_activity read every
    # 0.1 s during `BENCH_QUICK=1 BENCH_ONLY=ours` showed 486 different backends; with 30
    # kept, 62 (the bench's own included). A process holds 30 at most either way; the 31st
    # update at once waits for one.
    kwargs.setdefault("pool_size", 30)
    kwargs.setdefault("max_overflow", 0)
    return create_async_engine(url, **kwargs)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def insert_for(s: AsyncSession, table: Table) -> Any:
    """The dialect's INSERT, which offers ON CONFLICT on PostgreSQL and SQLite alike."""
    return insert_of(s.get_bind().dialect.name, table)


def insert_of(name: str, table: Table) -> Any:
    """`insert_for` by the dialect's name (a statement built once per dialect)."""
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for dialect {name}")


async def ping(engine: AsyncEngine) -> None:
    """Raises unless the database answers a trivial query."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
