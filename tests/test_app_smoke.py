from backend.web import keys
from tests.apptools import db_url_of, make_settings, running_app, seed_school


async def test_app_starts_and_reports_health(db_engine):
    async with running_app(make_settings(db_url_of(db_engine))) as client:
        assert (await client.get("/healthz")).status == 200
        ready = await client.get("/readyz")
        assert ready.status == 200
        assert (await ready.json())["checks"] == {"database": "ok"}
        metrics = await client.get("/metrics")
        assert "gs_updates_total" in await metrics.text()
        seeded = await seed_school(client.app[keys.SESSIONMAKER])
        assert set(seeded.invites) >= {"learner", "parent"}


async def test_root_leads_to_the_login(db_engine):
    async with running_app(make_settings(db_url_of(db_engine))) as client:
        r = await client.get("/")
        assert r.status == 200
        assert str(r.url.path) == "/login"
