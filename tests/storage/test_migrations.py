"""The Alembic migrations build exactly the schema of `storage.models`, and undo it."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from storage import migrate
from storage.db import create_engine
from storage.models import Base


async def _table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def _diff(url: str) -> list:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await engine.dispose()


@pytest.fixture
async def empty_db_url(db_url: str):
    """`db_url` with no tables before and after (the PostgreSQL database is shared per run)."""
    await _drop_everything(db_url)
    yield db_url
    await _drop_everything(db_url)


async def _drop_everything(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        await engine.dispose()


async def test_upgrade_matches_models_and_downgrade_undoes_it(empty_db_url: str) -> None:
    url = empty_db_url
    assert await migrate.current(url) is None

    await migrate.upgrade(url)
    assert await migrate.current(url) == migrate.head() is not None
    assert await migrate.is_up_to_date(url)
    assert await _table_names(url) == set(Base.metadata.tables) | {"alembic_version"}
    assert await _diff(url) == []

    await migrate.downgrade(url, "base")
    assert await _table_names(url) <= {"alembic_version"}
    assert await migrate.current(url) is None

    await migrate.upgrade(url, "head")
    assert await _diff(url) == []


async def test_upgrade_is_idempotent(empty_db_url: str) -> None:
    await migrate.upgrade(empty_db_url)
    await migrate.upgrade(empty_db_url)
    assert await migrate.current(empty_db_url) == migrate.head()


def test_script_location_is_inside_the_package() -> None:
    cfg = migrate.alembic_config()
    assert (migrate.MIGRATIONS_DIR / "env.py").is_file()
    assert cfg.get_main_option("script_location") == str(migrate.MIGRATIONS_DIR)
    assert migrate.head() is not None
