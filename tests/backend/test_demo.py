"""The demo school: seeded once, idempotent, and it shows what the dashboard is for."""

from __future__ import annotations

import re
from pathlib import Path

from backend.cli import demo_banner_logins
from backend.demo import (
    ADMIN_EMAIL,
    ASSESSOR_EMAILS,
    BOARD_EMAIL,
    DEMO_AGENCY,
    DEMO_EMAIL,
    DEMO_NAME,
    DEMO_PASSWORD,
    DEMO_SLUG,
    PEER_EMAIL,
    demo_logins,
    prepare_demo,
)
from backend.reporting.report import build_report
from backend.web import keys
from conversations.model import load_model
from storage import certification, schools
from storage.clusters import cluster_schools, list_clusters
from storage.db import create_engine, make_sessionmaker
from tests.apptools import make_settings, running_app
from tests.backend.dashboard.support import cluster_row, login, post_form


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


async def test_demo_seeds_a_cluster_of_three_schools_and_a_peer_reviewer(tmp_path):
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}", data_dir=tmp_path / "data"
    )
    info = await prepare_demo(settings)
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        async with sm() as s:
            (cluster,) = await list_clusters(s)
            members = await cluster_schools(s, cluster.id)
        assert len(members) == 3 and DEMO_SLUG in {m.slug for m in members}
        # The coordinator sees the three schools side by side, with cluster medians.
        assert (await login(client, info["email"], info["password"])).status == 303
        page = await (await client.get(f"/dashboard/clusters/{cluster.id}")).text()
        assert "School A" in page and "School B" in page  # the others, anonymous to it
        cells = cluster_row(page, "FL-1")  # three schools' ratings, the median, the difference
        assert all(re.fullmatch(r"[0-9.,]+", c) for c in cells[:4]), cells
        await post_form(client, "/logout", {})
        # The peer reviewer (from a neighbour school) reads the demo school.
        assert (await login(client, info["peer_email"], info["password"])).status == 303
        page = await (await client.get("/dashboard/clusters")).text()
        assert DEMO_NAME in page
        await post_form(client, "/logout", {})
        # And the admin login works.
        assert (await login(client, info["admin_email"], info["password"])).status == 303
        await post_form(client, "/logout", {})
        # Certification: the board sees the open round with the demo school submitted and
        # under review; an assessor sees the school's submission to review.
        async with sm() as s:
            (agency,) = await certification.list_agencies(s)
            (rnd,) = await certification.list_rounds(s, agency.id)
            (sub,) = (await certification.latest_submissions(s, rnd.id)).values()
        assert agency.name == DEMO_AGENCY and rnd.status == "open" and rnd.exclude_cluster
        assert (await login(client, info["board_email"], info["password"])).status == 303
        resp = await client.get("/dashboard", allow_redirects=True)
        assert rnd.name in await resp.text()
        page = await (await client.get(f"/dashboard/rounds/{rnd.id}")).text()
        assert DEMO_NAME in page and "under review" in page
        await post_form(client, "/logout", {})
        assessor = info["assessor_emails"][0]
        assert (await login(client, assessor, info["password"])).status == 303
        page = await (
            await client.get(f"/dashboard/rounds/{rnd.id}/schools/{sub.school_id}")
        ).text()
        assert "I agree with the school's rating" in page


def test_demo_banner_prints_every_login():
    banner = demo_banner_logins("http://127.0.0.1:8080", demo_logins({}))
    for needle in (
        DEMO_EMAIL,
        ADMIN_EMAIL,
        PEER_EMAIL,
        BOARD_EMAIL,
        *ASSESSOR_EMAILS,
        DEMO_PASSWORD,
        "/login",
    ):
        assert needle in banner


def test_make_demo_installs_only_the_product():
    """`make demo` needs install-app (pip install -e .), not the test toolchain."""
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    rules = dict(re.findall(r"^([\w$()\-. ]+):([^\n=]*)$", makefile, re.M))
    assert rules["demo"].split() == ["install-app"]
    app_recipe = re.search(r"^\$\(APP_STAMP\):.*?\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "[test" not in app_recipe and "-e ." in app_recipe
