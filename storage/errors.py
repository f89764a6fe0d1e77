"""Which failures a retry may fix: the webhook answers 503 for these only.

Transient: the database or Redis could not be reached, dropped the connection, timed
out, or was busy (SQLite "database is locked", PostgreSQL serialization failures and
deadlocks). Not transient: our own bugs and bad data (IntegrityError, ValueError, a
missing table ...); Telegram retrying those would only block the chat.
"""

from __future__ import annotations

import sqlite3

import asyncpg
from redis import exceptions as r
from sqlalchemy import exc as sa_exc


class NotFound(LookupError):
    """A row the operation needs does not exist."""


# PostgreSQL SQLSTATE codes (or classes) worth a retry.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57P")  # connection, resources, shutdown
_TRANSIENT_SQLSTATES = {
    "40001",
    "40P01",
    "55P03",
    "57014",
}  # serialization, deadlock, lock, timeout
_SQLITE_TRANSIENT = ("database is locked", "database is busy", "disk i/o error", "unable to open")
# OSErrors that point at a path in our code or setup, not at the network.
_LOCAL_OS_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def is_transient(exc: BaseException) -> bool:
    """True if the failure is in infrastructure and a retry may succeed."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_transient(e) for e in exc.exceptions)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        verdict = _classify(current)
        if verdict is not None:
            return verdict
        # Follow wrapping only (`raise X from e`, SQLAlchemy's `.orig`), never
        # `__context__`: a bug raised while handling an outage is still a bug.
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False


def _classify(e: BaseException) -> bool | None:
    """True/False when this exception decides; None to look at what it wraps."""
    if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
        return True
    if isinstance(e, sa_exc.DisconnectionError | sa_exc.TimeoutError | sa_exc.InterfaceError):
        return True
    if isinstance(e, sa_exc.OperationalError):
        orig = e.orig
        if isinstance(orig, sqlite3.Error):
            return _sqlite_transient(orig)
        # asyncpg errors arrive adapted, with the SQLSTATE beside them.
        state = getattr(orig, "sqlstate", None)
        return _sqlstate_transient(state) if isinstance(state, str) else True
    if isinstance(e, sa_exc.DBAPIError):
        return None  # IntegrityError, ProgrammingError, ...: decided by what it wraps
    if isinstance(e, sa_exc.SQLAlchemyError):
        return False  # e.g. NoResultFound, InvalidRequestError: our code
    if isinstance(e, sqlite3.Error):
        return _sqlite_transient(e)
    if isinstance(e, asyncpg.InterfaceError) and not isinstance(e, asyncpg.DataError):
        return True  # "connection is closed" (asyncpg's own, on the one-statement write)
    if isinstance(e, asyncpg.InternalClientError):
        # A connection the server dropped while it sat in the pool can meet the next
        # statement in a state asyncpg does not expect ("cannot switch to state ...");
        # the connection is invalidated (`storage.driver.connect`): a retry
        # runs on a new one.
        return True
    state = getattr(e, "sqlstate", None)  # asyncpg.PostgresError and its SQLAlchemy adapter
    if isinstance(state, str) and state:
        return _sqlstate_transient(state)
    redis_verdict = _redis(e)
    if redis_verdict is not None:
        return redis_verdict
    if isinstance(e, _LOCAL_OS_ERRORS):
        return False
    if isinstance(e, OSError | TimeoutError):  # ConnectionError, socket errors, timeouts
        return True
    return None


def _sqlite_transient(e: sqlite3.Error) -> bool:
    msg = str(e).lower()
    return isinstance(e, sqlite3.OperationalError) and any(m in msg for m in _SQLITE_TRANSIENT)


def _sqlstate_transient(state: str) -> bool:
    return state in _TRANSIENT_SQLSTATES or state.startswith(_TRANSIENT_SQLSTATE_CLASSES)


def _redis(e: BaseException) -> bool | None:
    if isinstance(e, r.ConnectionError | r.TimeoutError | r.ReadOnlyError | r.TryAgainError):
        return True  # includes BusyLoadingError; ReadOnly: a replica during failover
    if isinstance(e, r.RedisError):
        return False
    return None
