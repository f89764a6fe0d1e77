"""A database's schema as it stands: its tables, its difference from `storage.models`, and
a way to empty it. For the tests of the migrations (storage's own and the clusters')."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from storage import migrate
from storage.db import create_engine
from storage.models import Base

T = TypeVar("T")


async def _on(url: str, work: Callable[[Connection], T], *, write: bool = False) -> T:
    """`work` run on a sync connection to a fresh engine of `url` (disposed after)."""
    engine = create_engine(url)
    try:
        async with engine.begin() if write else engine.connect() as conn:
            return await conn.run_sync(work)
    finally:
        await engine.dispose()


async def table_names(url: str) -> set[str]:
    return set(await _on(url, lambda c: inspect(c).get_table_names()))


async def diff(url: str) -> list:
    return await _on(
        url,
        lambda c: compare_metadata(
            MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata
        ),
    )


def _drop(c: Connection) -> None:
    Base.metadata.drop_all(c)
    c.execute(text("DROP TABLE IF EXISTS alembic_version"))


async def drop_everything(url: str) -> None:
    await _on(url, _drop, write=True)


async def migration_up_and_down(url: str, path_part: str, new_tables: set[str]) -> None:
    """The migration whose file name holds `path_part`: upgrading to head builds `new_tables`
    and exactly the models' schema; going back to the revision before it removes them;
    upgrading again rebuilds the same schema."""
    script = ScriptDirectory.from_config(migrate.alembic_config())
    ours = next(r for r in script.walk_revisions() if path_part in r.path)
    await migrate.upgrade(url)
    assert await table_names(url) >= new_tables
    assert await diff(url) == []
    await migrate.downgrade(url, ours.down_revision)
    assert not new_tables & await table_names(url)
    await migrate.upgrade(url)
    assert await table_names(url) >= new_tables
    assert await diff(url) == []
