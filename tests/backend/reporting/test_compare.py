"""A cycle beside an earlier one: pure comparison of hand-built reports (arrows, deltas,
figures withheld on one side), the comparison page and chart, the model version carried
forward to a school's next cycle."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import update

from backend.reporting.compare import DOWN, SAME, UP, arrow, compare_reports
from backend.web import keys
from conversations.model import load_model
from storage import schools
from storage.models import Cycle
from tests.apptools import running_app, seed_school
from tests.backend.dashboard.support import add_user, login, other_than, post_form
from tests.backend.reporting.support import learners_answer, mapped_key

# --- pure ------------------------------------------------------------------------------


def _ind(key: str, self_: int | None, **means: tuple[int, float | None]) -> dict:
    return {
        "key": key,
        "id": key,
        "kind": "EXTENT",
        "dimension": "1",
        "self": self_,
        "roles": {
            r: {"n": n, "mean": m, "suppressed": m is None and n > 0} for r, (n, m) in means.items()
        },
    }


def _report(name: str, *inds: dict) -> dict:
    roles = {r: {} for i in inds for r in i["roles"]}
    return {"cycle": {"name": name}, "roles": roles, "indicators": list(inds)}


def test_arrows():
    assert (arrow(0.5), arrow(-0.25), arrow(0.0), arrow(0.004), arrow(None)) == (
        UP,
        DOWN,
        SAME,
        SAME,
        None,
    )


def test_compare_two_hand_built_cycles():
    before = _report(
        "2025/26",
        _ind("A", 2, learner=(6, 3.0), parent=(5, 2.0), employer=(7, 1.5)),
        _ind("B", 3, learner=(6, 2.5), parent=(2, None), employer=(0, None)),
        _ind("C", None, learner=(0, None), parent=(0, None), employer=(0, None)),
    )
    now = _report(
        "2026/27",
        _ind("A", 3, learner=(8, 2.5), parent=(5, 2.0), employer=(3, None)),
        _ind("B", 3, learner=(6, 3.25), parent=(6, 3.0), employer=(0, None)),
        _ind("C", None, learner=(0, None), parent=(0, None), employer=(0, None)),
        _ind("D", 1, learner=(5, 1.0), parent=(0, None), employer=(0, None)),  # new indicator
    )
    c = compare_reports(now, before)
    assert c["roles"] == ["learner", "parent", "employer"]
    rows = {r["key"]: r for r in c["indicators"]}
    a, b = rows["A"], rows["B"]
    assert a["self"] == {"now": 3.0, "before": 2.0, "delta": 1.0, "arrow": UP}
    assert a["roles"]["learner"] == {"now": 2.5, "before": 3.0, "delta": -0.5, "arrow": DOWN}
    assert a["roles"]["parent"] == {"now": 2.0, "before": 2.0, "delta": 0.0, "arrow": SAME}
    # Suppressed now (n=3): the earlier mean is shown, no change is claimed.
    assert a["roles"]["employer"] == {"now": None, "before": 1.5, "delta": None, "arrow": None}
    assert b["self"]["arrow"] == SAME and b["roles"]["learner"]["delta"] == 0.75
    # Suppressed before (n=2): nothing to compare with.
    assert b["roles"]["parent"] == {"now": 3.0, "before": None, "delta": None, "arrow": None}
    assert a["changed"] and b["changed"] and a["shown"]
    assert not rows["C"]["shown"] and not rows["C"]["changed"]
    assert rows["D"]["self"] == {"now": 1.0, "before": None, "delta": None, "arrow": None}
    assert not rows["D"]["changed"]


# --- the page --------------------------------------------------------------------------


async def test_comparison_page_and_chart(settings):
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        ours = await seed_school(sm, slug="ours", name="Our School", roles=["learner"])
        theirs = await seed_school(sm, slug="theirs", name="Their School", roles=["learner"])
        await add_user(client, "coord@ours.example", ours.school_id)
        assert (await login(client, "coord@ours.example")).status == 303
        # Only one cycle yet.
        page = await (await client.get(f"/dashboard/cycles/{ours.cycle_id}/compare")).text()
        assert "nothing to compare with yet" in page
        # The first cycle was "2025/26"; a second one follows.
        first = ours.cycle_id
        async with sm.begin() as s:
            await s.execute(
                update(Cycle)
                .where(Cycle.id == first)
                .values(name="2025/26", created_at=datetime(2025, 9, 1, tzinfo=UTC))
            )
            second = (await schools.create_cycle(s, ours.school_id, "2026/27", "1.0.0")).id
        qid, key = await mapped_key(sm)
        async with sm.begin() as s:
            await schools.upsert_self_rating(s, first, key, value=2)
            await schools.upsert_self_rating(s, second, key, value=3)
        await learners_answer(sm, first, qid, [4, 4, 3, 3, 3])  # 3.40
        await learners_answer(sm, second, qid, [2, 2, 3, 3, 3])  # 2.60
        overview = await (await client.get(f"/dashboard/cycles/{second}")).text()
        assert f"/dashboard/cycles/{second}/compare" in overview
        page = await (await client.get(f"/dashboard/cycles/{second}/compare")).text()
        assert "selected>2025/26" in page
        ind_id = load_model().index()[key].indicator.id
        row = re.search(rf">{re.escape(ind_id)}</a></th>(.*?)</tr>", page, re.S).group(1)
        cells = [
            re.sub(r"<[^>]+>", "", c).split() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        # Self 2 -> 3 (up 1), learners 3.40 -> 2.60 (down 0.80).
        assert cells[:3] == [["2"], ["3"], ["▲", "+1.00"]]
        assert cells[3:6] == [["3.40"], ["2.60"], ["▼", "-0.80"]]
        assert f"/dashboard/cycles/{second}/compare.svg?with={first}" in page
        chart = await client.get(f"/dashboard/cycles/{second}/compare.svg?with={first}")
        assert chart.status == 200 and chart.content_type == "image/svg+xml"
        assert b"<svg" in await chart.read()
        # Only changed indicators: the one that moved stays.
        assert (
            ind_id
            in await (await client.get(f"/dashboard/cycles/{second}/compare?changed=1")).text()
        )
        # The first cycle compares with the later one when asked.
        page = await (await client.get(f"/dashboard/cycles/{first}/compare?with={second}")).text()
        assert "▼" in page and "▲" in page
        # Another school's cycle is not ours to compare with, nor to read.
        paths = (
            f"/dashboard/cycles/{second}/compare?with={theirs.cycle_id}",
            f"/dashboard/cycles/{second}/compare.svg?with={theirs.cycle_id}",
            f"/dashboard/cycles/{theirs.cycle_id}/compare",
            f"/dashboard/cycles/{second}/compare?with=abc",
        )
        assert await other_than(client, paths, 404) == {}


async def test_a_new_cycle_carries_the_model_version_forward(settings):
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        ours = await seed_school(sm, slug="ours", name="Our School", roles=["learner"])
        await add_user(client, "coord@ours.example", ours.school_id)
        assert (await login(client, "coord@ours.example")).status == 303
        async with sm.begin() as s:
            await s.execute(
                update(Cycle).where(Cycle.id == ours.cycle_id).values(model_version="0.9.0")
            )
        current = load_model().version
        assert current != "0.9.0"
        school = "/dashboard/schools/ours"
        page = await (await client.get(school)).text()
        assert '<option value="0.9.0" selected>0.9.0 (as the previous cycle)' in page
        assert f'<option value="{current}"' in page
        resp = await post_form(client, f"{school}/cycles", {"name": "2027/28"}, csrf_page=school)
        assert resp.status == 303
        resp = await post_form(
            client,
            f"{school}/cycles",
            {"name": "2028/29", "model_version": current},
            csrf_page=school,
        )
        assert resp.status == 303
        resp = await post_form(
            client,
            f"{school}/cycles",
            {"name": "2029/30", "model_version": "7.7"},
            csrf_page=school,
        )
        async with sm.begin() as s:
            cycles = {c.name: c.model_version for c in await schools.list_cycles(s, ours.school_id)}
        assert cycles["2027/28"] == "0.9.0"
        assert cycles["2028/29"] == current
        assert "2029/30" not in cycles
