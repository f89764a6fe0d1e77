"""Triangulation at scale: seed many schools' answers fast, then time the analytics.

    python -m bench.seed --schools 100 --respondents 1000 --answers 20 [--keep] [--out F]

Creates a fresh PostgreSQL database (bench_seed_<random>; dropped at the end unless --keep),
applies the real migrations (`storage.migrate.upgrade`), syncs the question map, and loads
schools, cycles, respondents, responses, answers and self-ratings with PostgreSQL COPY
(asyncpg `copy_records_to_table`). Respondents are 70% learners, 10% each parents,
graduates and teachers; each answers the first `--answers` scale questions of their bank
(all of them where the bank has fewer); each school gets respondents until it holds exactly
`--respondents x --answers` answers (so a little over `--respondents` people).

Then, on this data:
- one school's `build_report` (the product function; the dashboard/API/exports path);
- the cluster view: every school's per-indicator mean in ONE SQL query, with its
  EXPLAIN (ANALYZE, BUFFERS) plan saved to bench/results/;
- the same figures computed by loading the answer rows into Python;
- both again with a candidate index created in this database only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import RESULTS, asyncpg_url, create_database, drop_database

WORK_MEM = "128MB"
ROLE_MIX = (("learner", 0.7), ("parent", 0.1), ("graduate", 0.1), ("teacher", 0.1))
CANDIDATE_INDEX = (
    "CREATE INDEX bench_ix_answer_response_scored ON answer (response_id, question_id) "
    "INCLUDE (value, na, skipped)"
)
# The answers that count (a value, not N/A, not skipped, of a completed or started response),
# with their response and cycle; `{mapped}` joins the question map where a query needs it.
_SCORED = """
FROM answer a
JOIN response r ON r.id = a.response_id
JOIN cycle c ON c.id = r.cycle_id
{mapped}
WHERE a.value IS NOT NULL AND NOT a.na AND NOT a.skipped
  AND r.status IN ('completed', 'in_progress')
"""
_MAPPED = "JOIN question_map qm ON qm.bank_tag = r.bank_tag AND qm.question_id = a.question_id"
CLUSTER_SQL = f"""
SELECT p.school_id, p.indicator_key, avg(p.pmean) AS mean, count(*) AS n
FROM (
    SELECT c.school_id, qm.indicator_key, a.response_id, avg(a.value)::float AS pmean
    {_SCORED.format(mapped=_MAPPED)}
    GROUP BY c.school_id, qm.indicator_key, a.response_id
) p
GROUP BY p.school_id, p.indicator_key
"""  # noqa: S608 - composed of constants only
# (as the product counts: one figure per person and indicator, the mean of their answers)
# The simpler reading of "per-indicator means": one answer, one figure.
CLUSTER_SQL_FLAT = f"""
SELECT c.school_id, qm.indicator_key, avg(a.value)::float AS mean, count(*) AS n
{_SCORED.format(mapped=_MAPPED)}
GROUP BY c.school_id, qm.indicator_key
"""
ROWS_SQL = f"""
SELECT c.school_id, r.bank_tag, a.question_id, a.value
{_SCORED.format(mapped="")}
"""


async def seed(url: str, schools: int, respondents: int, answers: int, rng: random.Random) -> dict:
    import asyncpg

    from conversations.banks import load_banks
    from conversations.model import load_model
    from storage import responses
    from storage import schools as school_store
    from storage.db import create_engine, make_sessionmaker
    from storage.migrate import upgrade

    t0 = time.perf_counter()
    await upgrade(url)
    banks = {b.role.value: b for b in load_banks().values()}
    model = load_model()
    engine = create_engine(url)
    sm = make_sessionmaker(engine)
    cycle_ids: list[int] = []
    now = datetime.now(UTC)
    async with sm.begin() as s:
        await responses.sync_question_map(s, banks.values())
        for i in range(schools):
            school = await school_store.create_school(
                s, f"school-{i:03d}", f"Vocational School {i:03d}"
            )
            cycle = await school_store.create_cycle(
                s, school.id, "2026/27", model.version, opens_at=now - timedelta(days=30)
            )
            cycle_ids.append(cycle.id)
    await engine.dispose()
    t_schema = time.perf_counter() - t0

    roles = [r for r, _ in ROLE_MIX]
    weights = [w for _, w in ROLE_MIX]
    questions = {
        r: [q.id for q in banks[r].questions if q.kind == "scale" and not q.when][:answers]
        for r in roles
    }
    indicators = [p.indicator.key for p in model.placed()]
    resp_rows: list[tuple] = []
    resp_rows_r: list[tuple] = []
    answer_rows: list[tuple] = []
    self_rows: list[tuple] = []
    rid = 0
    t1 = time.perf_counter()
    for ci, cycle_id in enumerate(cycle_ids):
        quality = rng.uniform(1.0, 3.5)
        for ind in indicators:
            self_rows.append((cycle_id, ind, rng.randint(0, 4), None, None, "submitted", None, now))
        budget = respondents * answers  # this school's answers: exactly the nominal total
        while budget > 0:
            rid += 1
            role = rng.choices(roles, weights)[0]
            status = "completed" if rng.random() < 0.9 else "in_progress"
            resp_rows_r.append((rid, f"bench{ci:03d}{rid:012d}".ljust(64, "0"), "en", None, now))
            resp_rows.append(
                (
                    rid,
                    rid,
                    cycle_id,
                    "invite",
                    role,
                    banks[role].tag,
                    model.version,
                    "en",
                    status,
                    now,
                    now,
                    now if status == "completed" else None,
                    now,
                )
            )
            bias = rng.uniform(-1.0, 1.0)
            for qid in questions[role][:budget]:
                v = min(4, max(0, round(quality + bias + rng.gauss(0, 0.8))))
                answer_rows.append((rid, qid, v, False, None, None, False, now))
            budget -= min(budget, len(questions[role]))
    t_gen = time.perf_counter() - t1

    t2 = time.perf_counter()
    conn = await asyncpg.connect(asyncpg_url(url))
    try:
        await conn.copy_records_to_table(
            "respondent",
            records=resp_rows_r,
            columns=["id", "subject_hash", "language", "blocked_at", "created_at"],
        )
        await conn.copy_records_to_table(
            "response",
            records=resp_rows,
            columns=[
                "id",
                "respondent_id",
                "cycle_id",
                "origin",
                "role",
                "bank_tag",
                "model_version",
                "language",
                "status",
                "consent_at",
                "started_at",
                "completed_at",
                "updated_at",
            ],
        )
        await conn.copy_records_to_table(
            "answer",
            records=answer_rows,
            columns=[
                "response_id",
                "question_id",
                "value",
                "na",
                "number",
                "choice",
                "skipped",
                "answered_at",
            ],
        )
        await conn.copy_records_to_table(
            "self_rating",
            records=self_rows,
            columns=[
                "cycle_id",
                "indicator_key",
                "value",
                "number",
                "comment",
                "status",
                "updated_by",
                "updated_at",
            ],
        )
        for table in ("respondent", "response"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"  # noqa: S608
            )
        t_copy = time.perf_counter() - t2
        t3 = time.perf_counter()
        await conn.execute("VACUUM ANALYZE")
        t_analyze = time.perf_counter() - t3
        n_answers = await conn.fetchval("SELECT count(*) FROM answer")
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('answer'))")
    finally:
        await conn.close()
    return {
        "schools": schools,
        "respondents_per_school": respondents,
        "answers_per_respondent_max": answers,
        "answers": n_answers,
        "respondents": rid,
        "answer_table_size": size,
        "seconds": {
            "schema_and_schools": round(t_schema, 2),
            "generate_rows": round(t_gen, 2),
            "copy": round(t_copy, 2),
            "vacuum_analyze": round(t_analyze, 2),
        },
        "answers_per_s_copy": round(n_answers / t_copy),
        "cycle_ids": cycle_ids,
    }


async def _timed(fn, repeat: int) -> dict[str, float]:
    await fn()  # warm (plans, caches)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t)
    return {
        "median_ms": round(statistics.median(times) * 1000, 1),
        "min_ms": round(min(times) * 1000, 1),
        "max_ms": round(max(times) * 1000, 1),
        "runs": repeat,
    }


async def measure(url: str, cycle_id: int, repeat: int, tag: str) -> dict[str, Any]:
    import asyncpg
    from sqlalchemy import select

    from backend.reporting import releases
    from backend.reporting.report import build_report
    from conversations.model import load_model
    from storage import responses
    from storage.db import create_engine, make_sessionmaker
    from storage.models import Response

    model = load_model()
    engine = create_engine(url)
    sm = make_sessionmaker(engine)
    out: dict[str, Any] = {}
    report: dict[str, Any] = {}

    async def one_report() -> None:
        nonlocal report
        async with sm() as s:
            report = await build_report(s, cycle_id, model)

    # The anonymity gate's cost: releasing a school's answers the first time (every question
    # of every group released), looking again with nothing changed (one query), and after new
    # answers that release nothing yet (the look at every question's fresh answers).
    t = time.perf_counter()
    released = await releases.refresh(sm, [cycle_id])
    out["release_first_ms"] = round((time.perf_counter() - t) * 1000, 1)
    out["release_first_states"] = released
    out["release_unchanged"] = await _timed(lambda: releases.refresh(sm, [cycle_id]), repeat)

    async def after_a_change() -> None:
        async with sm.begin() as s:  # an answer changed: not fresh, so nothing is released
            rid = await s.scalar(select(Response.id).where(Response.cycle_id == cycle_id).limit(1))
            await responses.touch_response(s, rid)
        await releases.refresh(sm, [cycle_id])

    out["release_after_change"] = await _timed(after_a_change, repeat)
    out["build_report_one_school"] = await _timed(one_report, repeat)
    shown = sum(
        1 for ind in report["indicators"] for g in ind["roles"].values() if g["mean"] is not None
    )
    out["build_report_groups_shown"] = shown
    await engine.dispose()

    conn = await asyncpg.connect(asyncpg_url(url))
    try:
        rows: list = []

        async def cluster() -> None:
            nonlocal rows
            rows = await conn.fetch(CLUSTER_SQL)

        async def cluster_flat() -> None:
            await conn.fetch(CLUSTER_SQL_FLAT)

        out["cluster_sql"] = await _timed(cluster, repeat)
        out["cluster_sql_rows"] = len(rows)
        out["cluster_sql_flat"] = await _timed(cluster_flat, repeat)

        qmap: dict[tuple[str, str], list[str]] = {}
        for r in await conn.fetch("SELECT bank_tag, question_id, indicator_key FROM question_map"):
            qmap.setdefault((r[0], r[1]), []).append(r[2])

        async def in_python() -> None:
            sums: dict[tuple[int, str], list[float]] = {}
            async with conn.transaction():
                cur = conn.cursor(ROWS_SQL, prefetch=20000)
                async for school, bank_tag, qid, value in cur:
                    for ind in qmap.get((bank_tag, qid), ()):
                        acc = sums.get((school, ind))
                        if acc is None:
                            acc = sums[(school, ind)] = [0.0, 0]
                        acc[0] += value
                        acc[1] += 1
            {k: s / n for k, (s, n) in sums.items()}

        out["cluster_python"] = await _timed(in_python, max(1, repeat // 3))
        out["python_over_sql"] = round(
            out["cluster_python"]["median_ms"] / out["cluster_sql_flat"]["median_ms"], 1
        )
        plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + CLUSTER_SQL)
        (RESULTS / f"cluster_plan_{tag}.txt").write_text("\n".join(r[0] for r in plan) + "\n")
        # The same query with enough sort/hash memory (a per-query SET LOCAL in the product).
        await conn.execute(f"SET work_mem = '{WORK_MEM}'")
        out["cluster_sql_work_mem"] = await _timed(cluster, repeat)
        out["work_mem"] = WORK_MEM
        plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + CLUSTER_SQL)
        (RESULTS / f"cluster_plan_{tag}_work_mem.txt").write_text(
            "\n".join(r[0] for r in plan) + "\n"
        )
        await conn.execute("RESET work_mem")
    finally:
        await conn.close()
    return out


async def measure_cluster_page(url: str, cycle_ids: list[int], repeat: int) -> dict[str, Any]:
    """The cluster view as the dashboard builds it (`cycle_summaries`: every school's report
    through the anonymity gate, stored while its data is unchanged): with nothing stored
    (every summary built), with everything stored, and after one new answer at one school."""
    from sqlalchemy import delete, select

    from backend.reporting import releases
    from backend.reporting.summaries import cycle_summaries
    from conversations.model import load_model
    from storage import responses
    from storage.db import create_engine, make_sessionmaker
    from storage.models import Answer, Cycle, ReportSummary, Response

    model = load_model()
    engine = create_engine(url)
    sm = make_sessionmaker(engine)
    built: list[int] = []

    async def view() -> None:  # as the dashboard's cluster view: release, then summaries
        await releases.refresh(sm, cycle_ids)
        async with sm.begin() as s:
            cycles = {c.school_id: c for c in await s.scalars(select(Cycle))}
            built.append((await cycle_summaries(s, cycles, model))[1])

    async def cold() -> None:
        async with sm.begin() as s:
            await s.execute(delete(ReportSummary))
        t = time.perf_counter()
        await view()
        times.append(time.perf_counter() - t)

    out: dict[str, Any] = {"schools": len(cycle_ids)}
    # Releasing every school's answers the first time happens once in a cycle's life (after
    # that a release adds only new answers): timed apart from the views.
    t = time.perf_counter()
    out["first_release_states"] = await releases.refresh(sm, cycle_ids)
    out["first_release_ms"] = round((time.perf_counter() - t) * 1000, 1)
    times: list[float] = []
    for _ in range(max(1, repeat // 3)):
        await cold()
    out["nothing_stored_ms"] = round(statistics.median(times) * 1000, 1)
    out["nothing_stored_built"] = built[-1]
    out["all_stored"] = await _timed(view, repeat)
    out["all_stored_built"] = built[-1]
    times = []
    for i in range(repeat):
        async with sm.begin() as s:  # one more answer at one school
            rid, qid = (
                await s.execute(
                    select(Answer.response_id, Answer.question_id)
                    .join(Response, Response.id == Answer.response_id)
                    .where(Response.cycle_id == cycle_ids[i % len(cycle_ids)])
                    .limit(1)
                )
            ).one()
            value = await s.scalar(
                select(Answer.value).where(Answer.response_id == rid, Answer.question_id == qid)
            )
            await responses.upsert_answer(s, rid, qid, value=(value + 1) % 5)
        t = time.perf_counter()
        await view()
        times.append(time.perf_counter() - t)
    out["one_school_changed_ms"] = round(statistics.median(times) * 1000, 1)
    out["one_school_changed_built"] = built[-1]
    await engine.dispose()
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    name, url = await create_database("bench_seed")
    result: dict[str, Any] = {"database": name}
    try:
        info = await seed(url, args.schools, args.respondents, args.answers, rng)
        cycle_ids = info.pop("cycle_ids")
        result["seed"] = info
        cycle = cycle_ids[len(cycle_ids) // 2]
        result["without_index"] = await measure(url, cycle, args.repeat, "without_index")
        result["cluster_page"] = await measure_cluster_page(url, cycle_ids, args.repeat)
        import asyncpg

        conn = await asyncpg.connect(asyncpg_url(url))
        try:
            t = time.perf_counter()
            await conn.execute(CANDIDATE_INDEX)
            await conn.execute("VACUUM ANALYZE answer")
            result["candidate_index"] = {
                "sql": CANDIDATE_INDEX,
                "build_s": round(time.perf_counter() - t, 2),
            }
        finally:
            await conn.close()
        result["with_index"] = await measure(url, cycle, args.repeat, "with_index")
    finally:
        if not args.keep:
            await drop_database(name)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schools", type=int, default=100)
    ap.add_argument("--respondents", type=int, default=1000, help="per school")
    ap.add_argument("--answers", type=int, default=20, help="per respondent (at most)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--keep", action="store_true", help="keep the database")
    ap.add_argument("--out", default=str(RESULTS / "seed.json"))
    args = ap.parse_args()
    result = asyncio.run(main_async(args))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
