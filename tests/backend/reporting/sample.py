"""A realistic triangulation report built on SQLite by the real analytics code from ORM rows,
with some groups above and some below the anonymity threshold of 5, and the previous cycle's
and an empty school's beside it. Shared by the tests of the exports, the charts and the
action plan's PDF section.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backend.reporting import build_report
from backend.reporting.releases import release_cycle
from conversations.model import load_model
from conversations.scales import AnswerKind
from storage.models import Answer, Cycle, QuestionMap, Respondent, Response, School, SelfRating

ARMENIAN = "Երևանի պետական քոլեջ"
UKRAINIAN = "Київський коледж"
NOW = datetime(2026, 3, 1, tzinfo=UTC)
BEFORE = datetime(2025, 3, 1, tzinfo=UTC)
SUPPRESSED_MEAN = 1.25  # the 4 graduates' mean (0, 1, 1, 3): must appear in no export

# role -> respondents (every fifth still in progress: not released while the cycle is open).
# The 6 graduates' answers are released (6 respondents) but hold only 4 scored answers (two
# said "not applicable"): shown as a count, suppressed; the board's 2 are never released.
ROLE_SIZES = {"learner": 14, "parent": 7, "teacher": 7, "employer": 7, "graduate": 6, "board": 2}
GRADUATE_ANSWERS = (0, 1, 1, 3, "na", "na")

_seq = itertools.count(1)


def _questions(model) -> dict[str, list[list[str]]]:
    """Per role a few statements, each mapped to one or two scale indicators of the model."""
    scale_keys = [p.indicator.key for p in model.placed() if p.indicator.kind != AnswerKind.NUMBER]
    rng = random.Random(7)
    out: dict[str, list[list[str]]] = {}
    for role in ROLE_SIZES:
        picked = rng.sample(scale_keys, 16)
        out[role] = [picked[i : i + 2] if i % 4 == 0 else [picked[i]] for i in range(0, 16, 2)]
    return out


async def _fill_cycle(s, school: School, name: str, seed: int, *, with_answers: bool) -> Cycle:
    model = load_model()
    cycle = Cycle(
        school_id=school.id,
        name=name,
        model_version=model.version,
        anonymity_threshold=5,
        free_text_threshold=10,
    )
    s.add(cycle)
    await s.flush()
    rng = random.Random(seed)
    if not with_answers:
        return cycle
    for p in model.placed():
        ind = p.indicator
        if rng.random() < 0.08:
            continue  # not rated yet
        if ind.kind == AnswerKind.NUMBER:
            s.add(SelfRating(cycle_id=cycle.id, indicator_key=ind.key, number=rng.randint(1, 40)))
        else:
            status = "submitted" if rng.random() < 0.8 else "draft"
            value = rng.choice((1, 2, 3, 3, 4, 4))
            s.add(SelfRating(cycle_id=cycle.id, indicator_key=ind.key, value=value, status=status))
    for role, size in ROLE_SIZES.items():
        bank = f"{role}@1"
        statements = _questions(model)[role]
        for person in range(size):
            resp = Response(
                respondent_id=(await _person(s)).id,
                cycle_id=cycle.id,
                role=role,
                bank_tag=bank,
                model_version=model.version,
                language="hy",
                status="completed" if person % 5 or role == "graduate" else "in_progress",
                consent_at=NOW,
            )
            s.add(resp)
            await s.flush()
            for qno, _keys in enumerate(statements):
                qid = f"q{qno}"
                if role == "graduate":
                    value: int | str = GRADUATE_ANSWERS[person]
                elif role == "learner" and qno == 7 and person >= 3:
                    continue  # a branch question only 3 learners saw: suppressed cell
                elif rng.random() < 0.06:
                    value = "na"
                else:
                    value = min(4, max(0, round(rng.gauss(2.6 if role != "employer" else 1.6, 1))))
                if value == "na":
                    s.add(Answer(response_id=resp.id, question_id=qid, na=True))
                else:
                    s.add(Answer(response_id=resp.id, question_id=qid, value=int(value)))
            await s.flush()
    return cycle


async def _person(s) -> Respondent:
    person = Respondent(subject_hash=f"x{next(_seq):062d}")
    s.add(person)
    await s.flush()
    return person


async def _build(db: Path) -> dict[str, dict[str, Any]]:
    from storage.db import create_engine, make_sessionmaker
    from storage.models import Base

    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        model = load_model()
        async with make_sessionmaker(engine).begin() as s:
            for role, statements in _questions(model).items():
                for qno, keys in enumerate(statements):
                    for key in keys:
                        s.add(
                            QuestionMap(
                                bank_tag=f"{role}@1",
                                question_id=f"q{qno}",
                                indicator_key=key,
                                scale="AGM",
                            )
                        )
            school = School(slug="yerevan", name=ARMENIAN)
            empty_school = School(slug="kyiv", name=UKRAINIAN)
            s.add_all([school, empty_school])
            await s.flush()
            before = await _fill_cycle(s, school, "2024/25", 11, with_answers=True)
            now = await _fill_cycle(s, school, "2025/26", 3, with_answers=True)
            empty = await _fill_cycle(s, empty_school, "2025/26", 5, with_answers=False)
            for cycle in (before, now, empty):  # what the release rule allows, released
                await release_cycle(s, cycle.id)
            return {
                "now": await build_report(s, now.id, model, now=NOW),
                "before": await build_report(s, before.id, model, now=BEFORE),
                "empty": await build_report(s, empty.id, model, now=NOW),
            }
    finally:
        await engine.dispose()


def build_sample_reports(tmp_dir: Path) -> dict[str, dict[str, Any]]:
    """A realistic report ("now"), the previous cycle's ("before") and an empty one."""
    return asyncio.run(_build(tmp_dir / "reports.db"))


def suppressed_graduate_keys(report: dict[str, Any]) -> list[str]:
    return [
        i["key"]
        for i in report["indicators"]
        if i["roles"]["graduate"]["suppressed"] and i["roles"]["graduate"]["n"] == 4
    ]
