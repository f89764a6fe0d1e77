"""What one stored answer costs on PostgreSQL, with and without the response's revision bump.

    python -m bench.answer_cost [--people 100] [--questions 20] [--rounds 6]

In a fresh database (migrated; dropped at the end): `--people` learner responses answer
`--questions` scale questions, one transaction each (`responses.upsert_answer` + commit), as the
runner stores a tap. Rounds alternate between the product's `upsert_answer` (the answer and
`response.revision + 1` in one statement) and the statement it replaced (the answer only),
so that both see the same machine. Prints the median milliseconds per answer transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from bench.common import create_database, drop_database


async def _answer_only(s: Any, response_id: int, question_id: str, value: int) -> None:
    """The upsert before the revision: the answer alone (same conflict rule)."""
    from sqlalchemy import or_

    from storage import db
    from storage.models import Answer

    table = Answer.__table__
    stmt = db.insert_for(s, table).values(
        response_id=response_id,
        question_id=question_id,
        value=value,
        na=False,
        number=None,
        choice=None,
        skipped=False,
        answered_at=datetime.now(UTC),
    )
    new = stmt.excluded
    changed = or_(
        *(
            table.c[n].is_distinct_from(new[n])
            for n in ("value", "na", "number", "choice", "skipped")
        )
    )
    await s.execute(
        stmt.on_conflict_do_update(
            index_elements=["response_id", "question_id"],
            set_={"value": new.value, "answered_at": new.answered_at},
            where=changed,
        )
    )


async def main_async(args: argparse.Namespace) -> dict[str, list[float]]:
    from conversations.banks import load_banks
    from storage import migrate, responses
    from storage.db import create_engine, make_sessionmaker
    from tests.apptools import seed_school

    name, url = await create_database("bench_answer")
    results: dict[str, list[float]] = {"answer + revision": [], "answer only": []}
    try:
        await migrate.upgrade(url)
        engine = create_engine(url)
        sm = make_sessionmaker(engine)
        seeded = await seed_school(sm, roles=["learner"])
        bank = load_banks()["learner"]
        async with sm.begin() as s:
            await responses.sync_question_map(s, load_banks().values())
        qids = [q.id for q in bank.questions if str(q.kind) == "scale"][: args.questions]
        for rnd in range(args.rounds):
            label = "answer + revision" if rnd % 2 == 0 else "answer only"
            store = (
                (lambda s, rid, q: responses.upsert_answer(s, rid, q, value=3))
                if rnd % 2 == 0
                else (lambda s, rid, q: _answer_only(s, rid, q, 3))
            )
            rids = []
            async with sm.begin() as s:
                for _ in range(args.people):
                    person = await responses.get_or_create_respondent(s, secrets.token_hex(32))
                    resp = await responses.get_or_create_response(
                        s,
                        person.id,
                        seeded.cycle_id,
                        "learner",
                        bank.tag,
                        "1.0.0",
                        "en",
                        datetime.now(UTC),
                    )
                    rids.append(resp.id)
            t = time.perf_counter()
            for q in qids:
                for rid in rids:
                    async with sm.begin() as s:
                        await store(s, rid, q)
            results[label].append((time.perf_counter() - t) / (len(qids) * len(rids)) * 1000)
        await engine.dispose()
    finally:
        await drop_database(name)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--people", type=int, default=100)
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    results = asyncio.run(main_async(args))
    n = args.people * args.questions
    for label, runs in results.items():
        print(
            f"{label}: {statistics.median(runs):.2f} ms per answer transaction (median of "
            f"{len(runs)} rounds of {n}: {', '.join(f'{x:.2f}' for x in runs)})"
        )


if __name__ == "__main__":
    main()
