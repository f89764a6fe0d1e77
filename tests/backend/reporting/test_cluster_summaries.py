"""The cluster view's stored summaries: built once, kept while the releases are unchanged,
built again after any change a report would show (a release, a self-rating, the cycle), on
SQLite and PostgreSQL.

Every summary returned is checked against `summarize(build_report(...))` computed afresh:
a stored summary that is out of date fails the test whatever the fingerprint says.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

from sqlalchemy import select, update

from backend.reporting import releases, summaries
from backend.reporting.report import build_report
from backend.reporting.summaries import (
    cycle_summaries,
    default_cycles,
    fingerprints,
    refresh,
    summarize,
)
from backend.web import keys
from conversations.banks import load_banks
from conversations.model import load_model
from storage import responses, schools
from storage.clusters import add_cluster_member, create_cluster
from storage.models import Cycle, ReportSummary, Response
from tests.apptools import db_url_of, make_settings, running_app, seed_school
from tests.backend.dashboard.support import cluster_row, four_schools, login
from tests.backend.reporting.support import learners_answer, mapped_key

MODEL = load_model()


async def _revision(sm, response_id: int) -> int:
    async with sm() as s:
        return await s.scalar(select(Response.revision).where(Response.id == response_id))


async def test_a_response_revision_counts_real_changes_only(sessionmaker):
    sm = sessionmaker
    seeded = await seed_school(sm, roles=["learner"])
    qid, _key = await mapped_key(sm)
    tag = load_banks()["learner"].tag
    async with sm.begin() as s:
        person = await responses.get_or_create_respondent(s, secrets.token_hex(32))
        resp = await responses.get_or_create_response(
            s, person.id, seeded.cycle_id, "learner", tag, "1.0.0", "en", datetime.now(UTC)
        )
    rid = resp.id
    assert await _revision(sm, rid) == 0
    steps = [
        (lambda s: responses.upsert_answer(s, rid, qid, value=3), 1),  # new
        (lambda s: responses.upsert_answer(s, rid, qid, value=3), 0),  # the same again
        (lambda s: responses.upsert_answer(s, rid, qid, value=1), 1),  # changed
        (lambda s: responses.upsert_answer(s, rid, qid, na=True), 1),  # to "not applicable"
        (lambda s: responses.upsert_answer(s, rid, qid, skipped=True), 1),  # to skipped
        (lambda s: responses.delete_answer(s, rid, qid), 1),  # deleted
        (lambda s: responses.delete_answer(s, rid, qid), 0),  # nothing left to delete
        (lambda s: responses.set_status(s, rid, "completed"), 1),
        (lambda s: responses.upsert_comment(s, rid, qid, "free text"), 1),  # free text is released
        (lambda s: responses.delete_comment(s, rid, qid), 1),
        (lambda s: responses.delete_comment(s, rid, qid), 0),
    ]
    expected = 0
    for i, (step, bump) in enumerate(steps):
        async with sm.begin() as s:
            await step(s)
        expected += bump
        assert await _revision(sm, rid) == expected, f"step {i}"


async def _summaries(sm, cycles: dict[int, int]) -> tuple[dict[int, dict], int]:
    """cycle_summaries for {school: cycle id} after a release (as the cluster view does),
    each checked against a fresh report."""
    await releases.refresh(sm, cycles.values())
    async with sm.begin() as s:
        rows = {sid: await s.get(Cycle, cid) for sid, cid in cycles.items()}
        got, built = await cycle_summaries(s, rows, MODEL)
    async with sm() as s:
        for sid, cid in cycles.items():
            assert got[sid] == summarize(await build_report(s, cid, MODEL)), sid
    return got, built


def _mean(summary: dict, key: str, role: str = "learner") -> float | None:
    ind = next(i for i in summary["indicators"] if i["key"] == key)
    return (ind["roles"].get(role) or {}).get("mean")


async def test_summaries_are_kept_until_the_releases_change(sessionmaker):
    sm = sessionmaker
    a = await seed_school(sm, slug="alpha", roles=["learner"])
    b = await seed_school(sm, slug="beta", roles=["learner"])
    qid, key = await mapped_key(sm)
    await learners_answer(sm, a.cycle_id, qid, [4, 4, 3, 3, 2, 2])
    await learners_answer(sm, b.cycle_id, qid, [1, 1, 2, 2, 2])
    cycles = {a.school_id: a.cycle_id, b.school_id: b.cycle_id}

    got, built = await _summaries(sm, cycles)
    assert built == 2
    assert _mean(got[a.school_id], key) == 3.0 and _mean(got[b.school_id], key) == 1.6
    assert (await _summaries(sm, cycles))[1] == 0  # nothing changed: nothing built

    # One more learner answers at beta: nothing is released (one new answer), nothing built.
    await learners_answer(sm, b.cycle_id, qid, [4])
    got, built = await _summaries(sm, cycles)
    assert built == 0 and _mean(got[b.school_id], key) == 1.6
    # Four more: five new answers, a release, beta's summary built again.
    await learners_answer(sm, b.cycle_id, qid, [4, 4, 4, 4])
    got, built = await _summaries(sm, cycles)
    assert built == 1 and _mean(got[b.school_id], key) == 2.8

    # An answer changed in place (same person, same question) is released only with five
    # new answers: the summary stays as it is.
    async with sm() as s:
        rid = await s.scalar(
            select(Response.id).where(Response.cycle_id == a.cycle_id).order_by(Response.id)
        )
    async with sm.begin() as s:
        await responses.upsert_answer(s, rid, qid, value=0)
    got, built = await _summaries(sm, cycles)
    assert built == 0 and _mean(got[a.school_id], key) == 3.0
    await learners_answer(sm, a.cycle_id, qid, [3, 3, 3, 3, 3])
    got, built = await _summaries(sm, cycles)
    assert built == 1 and _mean(got[a.school_id], key) == round((18 - 4 + 15) / 11, 2)

    # The school's own rating, then its status.
    async with sm.begin() as s:
        await schools.upsert_self_rating(s, a.cycle_id, key, value=2)
    got, built = await _summaries(sm, cycles)
    assert built == 1
    assert next(i for i in got[a.school_id]["indicators"] if i["key"] == key)["self"] == 2
    async with sm.begin() as s:
        await schools.upsert_self_rating(s, a.cycle_id, key, value=2, status="submitted")
    assert (await _summaries(sm, cycles))[1] == 1

    # The cycle itself (closed; a threshold raised by hand): built again.
    async with sm.begin() as s:
        await s.execute(update(Cycle).where(Cycle.id == b.cycle_id).values(status="closed"))
    assert (await _summaries(sm, cycles))[1] == 1
    async with sm.begin() as s:
        await s.execute(update(Cycle).where(Cycle.id == b.cycle_id).values(anonymity_threshold=11))
    got, built = await _summaries(sm, cycles)
    assert built == 1 and _mean(got[b.school_id], key) is None  # 10 learners < 11: suppressed


async def test_erasure_leaves_the_figures_until_the_next_release(sessionmaker):
    """An erased answer stays in the released figure (so the erasure cannot be read off by
    comparison) and leaves it with the next release, which holds five new answers."""
    sm = sessionmaker
    a = await seed_school(sm, slug="alpha", roles=["learner"])
    qid, key = await mapped_key(sm)
    await learners_answer(sm, a.cycle_id, qid, [4, 4, 3, 3, 2])
    tag = load_banks()["learner"].tag
    subject = secrets.token_hex(32)
    async with sm.begin() as s:
        person = await responses.get_or_create_respondent(s, subject)
        resp = await responses.get_or_create_response(
            s, person.id, a.cycle_id, "learner", tag, "1.0.0", "en", datetime.now(UTC)
        )
        await responses.upsert_answer(s, resp.id, qid, value=0)
        await responses.set_status(s, resp.id, "completed")
    cycles = {a.school_id: a.cycle_id}
    got, _ = await _summaries(sm, cycles)
    assert _mean(got[a.school_id], key) == 2.67

    async with sm.begin() as s:
        assert await responses.erase_respondent(s, subject) == 1
    got, built = await _summaries(sm, cycles)
    assert built == 0 and _mean(got[a.school_id], key) == 2.67  # the same figure
    await learners_answer(sm, a.cycle_id, qid, [1, 1, 1, 1, 1])
    got, built = await _summaries(sm, cycles)
    assert built == 1 and _mean(got[a.school_id], key) == round((16 + 5) / 10, 2)


async def test_fingerprints_follow_the_model_and_the_code(sessionmaker, monkeypatch):
    sm = sessionmaker
    a = await seed_school(sm, roles=["learner"])
    async with sm() as s:
        cycle = await s.get(Cycle, a.cycle_id)
        first = await fingerprints(s, [cycle], MODEL)
        again = await fingerprints(s, [cycle], MODEL)
        other = await fingerprints(s, [cycle], MODEL.model_copy(update={"version": "9.9.9"}))
        # A release that changes how figures are counted (or gated): every summary is old.
        assert len(summaries.code_digest()) == 64
        monkeypatch.setattr(summaries, "code_digest", lambda: "another release")
        released = await fingerprints(s, [cycle], MODEL)
    assert first == again and first != other and released != first


async def test_the_cluster_page_shows_new_answers_after_a_first_view(db_engine, tmp_path):
    settings = make_settings(db_url_of(db_engine), data_dir=tmp_path / "data")
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        seeded, cluster = await four_schools(client)
        qid, key = await mapped_key(sm)
        for slug, values in (("north", [4, 4, 4, 3, 3]), ("south", [1, 1, 2, 2, 2])):
            await learners_answer(sm, seeded[slug].cycle_id, qid, values)
        ind_id = MODEL.index()[key].indicator.id
        url = f"/dashboard/clusters/{cluster.id}?series=learner"
        assert (await login(client, "admin@example.org")).status == 303
        page = await (await client.get(url)).text()
        assert cluster_row(page, ind_id)[:3] == ["3.60", "1.60", "—"]
        async with sm() as s:
            assert len(list(await s.scalars(select(ReportSummary.cycle_id)))) == 3
        # East's learners reach the threshold: the next view shows them, and the median.
        await learners_answer(sm, seeded["east"].cycle_id, qid, [2, 2, 3, 3, 3])
        page = await (await client.get(url)).text()
        assert cluster_row(page, ind_id)[:4] == ["3.60", "1.60", "2.60", "2.60"]


# --- kept fresh in the background ----------------------------------------------------------


async def _clustered(sm, n: int = 3):
    """n schools in one cluster (plus one outside it), learners answered at each."""
    qid, key = await mapped_key(sm)
    seeded = [await seed_school(sm, slug=f"s{i}", roles=["learner"]) for i in range(n + 1)]
    async with sm.begin() as s:
        cluster = await create_cluster(s, "Riverside")
        for sd in seeded[:n]:
            await add_cluster_member(s, cluster.id, sd.school_id)
    for i, sd in enumerate(seeded):
        await learners_answer(sm, sd.cycle_id, qid, [i % 5, 4, 3, 2, 1])
    return seeded, qid, key


async def _stored_cycles(sm) -> set[int]:
    async with sm() as s:
        return set(await s.scalars(select(ReportSummary.cycle_id)))


async def test_refresh_builds_what_the_cluster_views_will_show(sessionmaker):
    sm = sessionmaker
    seeded, qid, _key = await _clustered(sm)
    # Each clustered school's newest cycle; the school outside the cluster is left alone.
    async with sm.begin() as s:
        newer = await schools.create_cycle(s, seeded[0].school_id, "2027/28", MODEL.version)
    wanted = {newer.id, seeded[1].cycle_id, seeded[2].cycle_id}
    assert await refresh(sm, MODEL) == 3
    assert await _stored_cycles(sm) == wanted
    assert await refresh(sm, MODEL) == 0
    # A view now builds nothing; after an answer, the refresh builds that one again.
    async with sm() as s:
        assert (await default_cycles(s)).keys() == {sd.school_id for sd in seeded[:3]}
    await learners_answer(sm, seeded[2].cycle_id, qid, [0])
    assert await refresh(sm, MODEL) == 0  # one new answer: nothing released, nothing built
    await learners_answer(sm, seeded[2].cycle_id, qid, [0, 1, 2, 3])
    assert await refresh(sm, MODEL) == 1  # released (five new), built again
    async with sm.begin() as s:
        _, built = await cycle_summaries(s, await default_cycles(s), MODEL)
    assert built == 0


async def test_concurrent_refreshes_build_each_summary_once(sessionmaker):
    sm = sessionmaker
    await _clustered(sm, n=4)
    counts = await asyncio.gather(refresh(sm, MODEL), refresh(sm, MODEL))
    async with sm() as s:
        cycles = await default_cycles(s)
        prints = await fingerprints(s, list(cycles.values()), MODEL)
        stored = dict(
            (await s.execute(select(ReportSummary.cycle_id, ReportSummary.fingerprint))).all()
        )
    assert stored == {c.id: prints[c.id] for c in cycles.values()}
    if sm.kw["bind"].dialect.name == "postgresql":
        assert sum(counts) == 4  # the advisory lock and the second look: never twice
    else:
        assert sum(counts) >= 4  # one writer at a time: each look may build


async def test_the_app_refreshes_summaries_in_the_background(db_engine, tmp_path):
    settings = make_settings(
        db_url_of(db_engine), data_dir=tmp_path / "data", cluster_refresh_seconds=1
    )
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        seeded, _qid, _key = await _clustered(sm)
        for _ in range(100):
            if await _stored_cycles(sm) == {sd.cycle_id for sd in seeded[:3]}:
                break
            await asyncio.sleep(0.1)
        assert await _stored_cycles(sm) == {sd.cycle_id for sd in seeded[:3]}
