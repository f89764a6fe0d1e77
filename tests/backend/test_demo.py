"""The demo school: seeded once, idempotent, and it shows what the dashboard is for."""

from __future__ import annotations

from backend.demo import DEMO_SLUG, prepare_demo
from backend.reporting.report import build_report
from conversations.model import load_model
from storage import schools
from storage.db import create_engine, make_sessionmaker
from tests.apptools import make_settings


async def test_demo_is_seeded_once_and_shows_gaps_and_suppression(tmp_path):
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}")
    first = await prepare_demo(settings)
    again = await prepare_demo(settings)
    assert first == again  # idempotent: same invites, nothing seeded twice
    assert set(first["codes"]) >= {"learner", "parent", "graduate", "employer"}

    engine = create_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as s:
            school = await schools.get_school_by_slug(s, DEMO_SLUG)
            cycles = await schools.list_cycles(s, school.id)
            assert sorted(c.status for c in cycles) == ["closed", "open"]
            current = await schools.current_cycle(s, school.id)
            report = await build_report(s, current.id, load_model())
    finally:
        await engine.dispose()
    assert len(report["indicators"]) == 71
    flags = {f for i in report["indicators"] for f in i["flag"].values() if f}
    assert "blind_spot" in flags
    # The 3 from the unions: counted as they come, their answers never released.
    assert report["roles"]["union"]["started"] == 3
    assert all(i["roles"]["union"]["mean"] is None for i in report["indicators"])
    learners = [i["roles"]["learner"] for i in report["indicators"] if i["roles"]["learner"]["n"]]
    assert learners and all(g["mean"] is not None for g in learners)


async def test_demo_reset_starts_from_an_empty_database(tmp_path):
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}")
    first = await prepare_demo(settings)
    second = await prepare_demo(settings, reset=True)
    assert first["codes"] != second["codes"]
