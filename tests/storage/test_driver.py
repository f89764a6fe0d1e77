"""`storage.driver`: one statement, run by asyncpg itself or by SQLAlchemy, same answers."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, select

from storage import driver
from storage.db import insert_of
from storage.models import Respondent, Response


def test_a_column_default_that_asyncpg_would_skip_is_refused_at_compile_time():
    """SQLAlchemy computes Python-side column defaults when it executes; asyncpg does not: a
    statement that leaves one out would store NULL or fail, so it is refused up front."""
    q = driver.Query(
        lambda d: insert_of(d, Response.__table__).values(respondent_id=bindparam("r"))
    )
    with pytest.raises(ValueError, match="revision"):
        q.driver_sql()


def test_fixed_values_take_their_positions_and_given_ones_come_by_name():
    q = driver.Query(
        lambda _d: select(Respondent.id).where(
            Respondent.subject_hash == bindparam("subject"), Respondent.language == "hy"
        )
    )
    sql, slots = q.driver_sql()
    assert "$1" in sql and "$2" in sql
    assert [name for name, _ in slots] == ["subject", slots[1][0]]
    assert driver.Driver._args(q, {"subject": "x"})[1] == ["x", "hy"]
    with pytest.raises(KeyError):
        driver.Driver._args(q, {})


async def test_both_runs_give_the_same_rows(sessionmaker):
    """The same query through SQLAlchemy (a session's connection) and, on PostgreSQL,
    through asyncpg on a pooled connection: the same rows."""
    from storage import responses

    async with sessionmaker.begin() as s:
        ids = [await responses.respondent_id(s, f"{i:064x}", "uk") for i in range(3)]
    q = driver.Query(
        lambda _d: select(Respondent.id, Respondent.language, Respondent.created_at).order_by(
            Respondent.id
        )
    )
    async with sessionmaker() as s:
        via_alchemy = [tuple(r) for r in await driver.Alchemy(await s.connection()).rows(q)]
    assert [r[0] for r in via_alchemy] == ids and {r[1] for r in via_alchemy} == {"uk"}
    engine = sessionmaker.kw["bind"]
    if engine.dialect.name != "postgresql":
        return
    async with driver.connect(engine, transaction=False) as run:
        via_driver = [tuple(r) for r in await run.rows(q)]
    assert via_driver == via_alchemy  # timestamps too: aware, UTC
