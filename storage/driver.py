"""Statements written once, run by asyncpg itself on PostgreSQL and by SQLAlchemy elsewhere.

The hot path's statements (the invite's lookup at /start and at consent, the position's
rebuild, the consent's writes, a scored answer) are few and always the same. Through an ORM
session each costs more CPU in SQLAlchemy (building the statement, the unit of work, loading
objects, processing the result) than asyncpg spends sending it and reading the answer. A
`Query` is one Core statement with named parameters, built once per dialect; a `Run` executes
queries on one connection:

- `Driver`: asyncpg runs the SQL compiled once for PostgreSQL (asyncpg prepares it once per
  connection and keeps it), the values bound by name: no SQLAlchemy on the way.
- `Alchemy`: SQLAlchemy runs the statement on a connection (SQLite, the embedded default, and
  any caller that holds a session on PostgreSQL).

The statement is the same either way: one rule, two engines. `connect` lends a pooled
PostgreSQL connection to a `Driver`, in a transaction or in autocommit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.sql import Executable
from sqlalchemy.util import greenlet_spawn

from storage.errors import is_transient

_PG = pg_asyncpg.dialect()
_REQUIRED = object()


class Query:
    """One statement with named parameters (`bindparam`), built once per dialect by `build`
    (which receives the dialect's name: an upsert's INSERT is the dialect's own)."""

    __slots__ = ("_build", "_pg", "_stmts")

    def __init__(self, build: Callable[[str], Executable]) -> None:
        self._build = build
        self._stmts: dict[str, Executable] = {}
        self._pg: tuple[str, tuple[tuple[str, Any], ...]] | None = None

    def statement(self, dialect: str) -> Executable:
        stmt = self._stmts.get(dialect)
        if stmt is None:
            stmt = self._stmts[dialect] = self._build(dialect)
        return stmt

    def driver_sql(self) -> tuple[str, tuple[tuple[str, Any], ...]]:
        """The PostgreSQL SQL (`$1`, `$2` ...) and, for each position, its parameter's name
        and its fixed value (`_REQUIRED`: the caller gives it)."""
        if self._pg is None:
            compiled = self.statement("postgresql").compile(dialect=_PG)
            if compiled.insert_prefetch or compiled.update_prefetch:
                # A column default is computed by SQLAlchemy's execution, which asyncpg skips.
                names = [c.name for c in (*compiled.insert_prefetch, *compiled.update_prefetch)]
                raise ValueError(f"give these columns a value in the statement: {names}")
            slots = []
            for name in compiled.positiontup or ():
                bind = compiled.binds[name]
                # A `text()` parameter has no value and is not marked required: the caller's.
                given = bind.required or (bind.value is None and bind.callable is None)
                slots.append((name, _REQUIRED if given else bind.effective_value))
            self._pg = (str(compiled), tuple(slots))
        return self._pg


class Run(Protocol):
    """Queries on one connection (within its transaction, if it has one)."""

    async def row(self, query: Query, **params: Any) -> Sequence[Any] | None: ...
    async def rows(self, query: Query, **params: Any) -> Sequence[Sequence[Any]]: ...
    async def scalar(self, query: Query, **params: Any) -> Any: ...
    async def execute(self, query: Query, **params: Any) -> None: ...


class Driver:
    """`Run` on an asyncpg connection: the compiled SQL, values in their positions."""

    __slots__ = ("conn",)

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @staticmethod
    def _args(query: Query, params: dict[str, Any]) -> tuple[str, list[Any]]:
        sql, slots = query.driver_sql()
        return sql, [params[name] if fixed is _REQUIRED else fixed for name, fixed in slots]

    async def row(self, query: Query, **params: Any) -> Sequence[Any] | None:
        sql, args = self._args(query, params)
        return await self.conn.fetchrow(sql, *args)

    async def rows(self, query: Query, **params: Any) -> Sequence[Sequence[Any]]:
        sql, args = self._args(query, params)
        return await self.conn.fetch(sql, *args)

    async def scalar(self, query: Query, **params: Any) -> Any:
        sql, args = self._args(query, params)
        return await self.conn.fetchval(sql, *args)

    async def execute(self, query: Query, **params: Any) -> None:
        sql, args = self._args(query, params)
        await self.conn.execute(sql, *args)


class Alchemy:
    """`Run` on a SQLAlchemy connection (its transaction is the caller's)."""

    __slots__ = ("conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    def _stmt(self, query: Query) -> Executable:
        return query.statement(self.conn.dialect.name)

    async def row(self, query: Query, **params: Any) -> Sequence[Any] | None:
        return (await self.conn.execute(self._stmt(query), params)).first()

    async def rows(self, query: Query, **params: Any) -> Sequence[Sequence[Any]]:
        return (await self.conn.execute(self._stmt(query), params)).all()

    async def scalar(self, query: Query, **params: Any) -> Any:
        return (await self.conn.execute(self._stmt(query), params)).scalar()

    async def execute(self, query: Query, **params: Any) -> None:
        await self.conn.execute(self._stmt(query), params)


async def run_of(db: AsyncSession | Run) -> Run:
    """A `Run` for a caller that holds a session (its connection and transaction) or one."""
    if isinstance(db, AsyncSession):
        return Alchemy(await db.connection())
    return db


@asynccontextmanager
async def connect(engine: AsyncEngine, *, transaction: bool) -> AsyncIterator[Driver]:
    """A pooled PostgreSQL connection, lent to a `Driver`: in one transaction (committed when
    the block ends, rolled back if it raises) or in autocommit (asyncpg's own mode outside a
    transaction).

    The connection comes from the pool as it is (`raw_connection`), without a SQLAlchemy
    `Connection` around it: nothing here uses that wrapper, and its set-up (with the events
    that set and reset an isolation level) cost more CPU than the pool's checkout itself
    (bench/README.md, "seventh hot-path pass"). The pool's return and a replacement run under
    `greenlet_spawn`, as SQLAlchemy's own async connection does them: closing a connection
    (an invalidated one, or one the pool does not keep) is I/O.

    A connection that failed (closed, cancelled mid-statement, left in a transaction, an
    infrastructure error) is invalidated: the pool replaces it, as SQLAlchemy does on a
    disconnect. A refusal raised by the caller's own code only rolls back."""
    pooled = await engine.raw_connection()
    raw = pooled.driver_connection
    try:
        if transaction:
            async with raw.transaction():
                yield Driver(raw)
        else:
            yield Driver(raw)
    except BaseException as exc:
        broken = (
            raw.is_closed()
            or raw.is_in_transaction()
            or not isinstance(exc, Exception)  # cancelled mid-statement, among others
            or is_transient(exc)
        )
        if broken:
            await greenlet_spawn(pooled.invalidate, exc)
        raise
    finally:
        await greenlet_spawn(pooled.close)
