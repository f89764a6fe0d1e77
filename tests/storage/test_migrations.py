"""The Alembic migrations build exactly the schema of `storage.models`, and undo it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, text

from storage import migrate
from storage.db import create_engine
from storage.models import Base
from tests.storage.support import diff, table_names


async def test_upgrade_matches_models_and_downgrade_undoes_it(empty_db_url: str) -> None:
    url = empty_db_url
    assert await migrate.current(url) is None

    await migrate.upgrade(url)
    assert await migrate.current(url) == migrate.head() is not None
    assert await migrate.is_up_to_date(url)
    assert await table_names(url) == set(Base.metadata.tables) | {"alembic_version"}
    assert await diff(url) == []

    await migrate.downgrade(url, "base")
    assert await table_names(url) <= {"alembic_version"}
    assert await migrate.current(url) is None

    await migrate.upgrade(url, "head")
    assert await diff(url) == []


async def test_upgrade_is_idempotent(empty_db_url: str) -> None:
    await migrate.upgrade(empty_db_url)
    await migrate.upgrade(empty_db_url)
    assert await migrate.current(empty_db_url) == migrate.head()


def test_script_location_is_inside_the_package() -> None:
    cfg = migrate.alembic_config()
    assert (migrate.MIGRATIONS_DIR / "env.py").is_file()
    assert cfg.get_main_option("script_location") == str(migrate.MIGRATIONS_DIR)
    assert migrate.head() is not None


async def test_0008_turns_invite_links_into_origins_and_drops_them(empty_db_url: str) -> None:
    """Responses that came through a single-use code, a shared code or none keep only how
    they came; nothing links them to an invite (its code, its label) any more."""
    url = empty_db_url
    await migrate.upgrade(url, "0007")
    engine = create_engine(url)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO school (id, slug, name, timezone, languages, "
                    "anonymity_threshold, free_text_threshold, created_at) "
                    "VALUES (1, 's', 'S', 'UTC', '[\"en\"]', 5, 10, :now)"
                ),
                {"now": now},
            )
            await conn.execute(
                text(
                    "INSERT INTO cycle (id, school_id, name, model_version, status, "
                    "anonymity_threshold, free_text_threshold, targets, created_at) "
                    "VALUES (1, 1, 'c', '1.0.0', 'open', 5, 10, '{}', :now)"
                ),
                {"now": now},
            )
            for iid, max_uses in ((1, 1), (2, None), (3, 40)):
                await conn.execute(
                    text(
                        "INSERT INTO invite (id, cycle_id, code, role, label, max_uses, uses, "
                        "created_at) VALUES (:id, 1, :code, 'parent', 'Class 3B', :m, 1, :now)"
                    ),
                    {"id": iid, "code": f"code{iid}", "m": max_uses, "now": now},
                )
            for rid, iid in ((1, 1), (2, 2), (3, 3), (4, None)):
                await conn.execute(
                    text(
                        "INSERT INTO respondent (id, subject_hash, created_at) "
                        "VALUES (:id, :h, :now)"
                    ),
                    {"id": rid, "h": f"h{rid}", "now": now},
                )
                await conn.execute(
                    text(
                        "INSERT INTO response (id, respondent_id, cycle_id, invite_id, role, "
                        "bank_tag, model_version, language, status, consent_at, started_at, "
                        "updated_at, revision) VALUES (:id, :id, 1, :iid, 'parent', "
                        "'parent@1', '1.0.0', 'en', 'completed', :now, :now, :now, 0)"
                    ),
                    {"id": rid, "iid": iid, "now": now},
                )
        await migrate.upgrade(url)
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT id, origin FROM response ORDER BY id"))).all()
            columns = await conn.run_sync(
                lambda c: [col["name"] for col in inspect(c).get_columns("response")]
            )
    finally:
        await engine.dispose()
    assert [tuple(r) for r in rows] == [(1, "invite"), (2, "shared"), (3, "shared"), (4, "invite")]
    assert "invite_id" not in columns
