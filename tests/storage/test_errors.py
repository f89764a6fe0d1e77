"""Transient infrastructure failures (503, Telegram retries) versus our own bugs (200)."""

from __future__ import annotations

import socket
import sqlite3

import asyncpg
import pytest
import redis.asyncio as aioredis
import redis.exceptions as rexc
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from storage.db import create_engine
from storage.errors import is_transient
from storage.sessions import LockTimeout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _op_error(orig: BaseException) -> sa_exc.OperationalError:
    return sa_exc.OperationalError("SELECT 1", {}, orig)


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(),
        ConnectionResetError(),
        TimeoutError(),
        OSError("network unreachable"),
        LockTimeout("busy"),
        _op_error(sqlite3.OperationalError("database is locked")),
        _op_error(_PgError("08006")),
        _op_error(_PgError("40001")),
        _op_error(ConnectionRefusedError()),
        sa_exc.InterfaceError("SELECT 1", {}, Exception("connection closed")),
        sa_exc.DisconnectionError("gone"),
        sa_exc.TimeoutError("QueuePool limit reached"),
        sa_exc.DBAPIError("SELECT 1", {}, Exception("x"), connection_invalidated=True),
        asyncpg.exceptions.ConnectionDoesNotExistError("closed"),
        asyncpg.exceptions.CannotConnectNowError("starting up"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock"),
        asyncpg.exceptions.InterfaceError("connection is closed"),
        asyncpg.exceptions.InternalClientError("cannot switch to state 11"),
        rexc.ConnectionError("refused"),
        rexc.TimeoutError("slow"),
        rexc.BusyLoadingError("loading"),
        rexc.ReadOnlyError("replica"),
    ],
    ids=repr,
)
def test_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad"),
        KeyError("q1"),
        TypeError(),
        RuntimeError(),
        FileNotFoundError("template.html"),
        PermissionError(),
        sa_exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed")),
        sa_exc.IntegrityError("INSERT", {}, _PgError("23505")),
        _op_error(sqlite3.OperationalError("no such table: answer")),
        sa_exc.ProgrammingError("SELECT", {}, _PgError("42P01")),
        sa_exc.NoResultFound(),
        asyncpg.exceptions.UniqueViolationError("dup"),
        asyncpg.exceptions.DataError("invalid input for query argument $3"),
        rexc.ResponseError("WRONGTYPE"),
        rexc.LockError("not owned"),
    ],
    ids=repr,
)
def test_not_transient(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_follows_cause_but_not_context() -> None:
    try:
        raise RuntimeError("wrapped") from ConnectionResetError()
    except RuntimeError as e:
        assert is_transient(e)
    try:
        try:
            raise ConnectionResetError()
        except ConnectionResetError:
            raise KeyError("bug in the handler") from None
    except KeyError as e:
        assert not is_transient(e)
    group = ExceptionGroup("g", [ConnectionResetError(), TimeoutError()])
    assert is_transient(group)
    assert not is_transient(ExceptionGroup("g", [ConnectionResetError(), ValueError()]))


async def test_real_failures() -> None:
    port = _free_port()
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/x", pool_size=1)
    with pytest.raises(Exception) as pg_info:
        async with engine.connect():
            pass
    await engine.dispose()
    assert is_transient(pg_info.value)

    client = aioredis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.5)
    with pytest.raises(rexc.ConnectionError) as r_info:
        await client.ping()
    await client.aclose()
    assert is_transient(r_info.value)

    engine = create_engine("sqlite+aiosqlite://")
    async with engine.connect() as conn:
        with pytest.raises(sa_exc.OperationalError) as missing:
            await conn.execute(text("SELECT * FROM nowhere"))
        await conn.execute(text("CREATE TABLE t (x INTEGER UNIQUE)"))
        await conn.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(sa_exc.IntegrityError) as dup:
            await conn.execute(text("INSERT INTO t VALUES (1)"))
    await engine.dispose()
    assert not is_transient(missing.value)
    assert not is_transient(dup.value)
    assert is_transient(TimeoutError())
