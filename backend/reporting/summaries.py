"""The cluster view's per-cycle summaries, kept in `report_summary` while the data is unchanged.

The cluster view compares many schools. Building each school's report (`build_report`)
costs about 0.1 s per school of 20,000 answers, so a cluster of 100 such schools took
10-20 s at every view (bench/README.md). A summary keeps just what the view reads, per
indicator: key, id, dimension, kind, the school's own rating and each group's shown mean,
taken from `build_report` (so after the anonymity gate; no free text). It is stored
with a fingerprint of everything that report depends on:

- the cycle row: status, model version, thresholds;
- its releases (`storage.releases.state_prints`): how many question states, and the sum
  of their release counters. A report shows released figures only, so nothing else of
  the responses matters: a new answer changes the summary when it is released;
- its self-ratings, row by row (a few dozen per cycle);
- the question map (which questions evidence which indicators), the model's version, and
  the source of the code that computes a report (this module, aggregate, anonymity,
  report, triangulation): a release that changes how figures are counted or gated never
  serves a summary computed the old way.

The fingerprints of all the cycles of a cluster take three queries over those small tables,
never the answers. A stored summary whose fingerprint differs is built again and replaced,
by the view that finds it so, or before that by `refresh`, which every server process runs
every CLUSTER_REFRESH_SECONDS for the cycles the cluster views show by default.
The fingerprint is read BEFORE the report is built: a change committed in between then
makes the stored fingerprint old, so the next view builds again; the other order could keep
a report older than its fingerprint.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.reporting import aggregate, anonymity, releases, report, triangulation
from backend.reporting.report import build_report
from conversations.model import ExcellenceModel
from storage import releases as release_sql
from storage import reporting as stored
from storage.models import Cycle

log = logging.getLogger(__name__)


@cache
def code_digest() -> str:
    """A digest of the source of every module a summary's figures come from."""

    h = hashlib.sha256()
    modules = (aggregate, anonymity, releases, release_sql, report, triangulation)
    for module in (*modules, sys.modules[__name__]):
        h.update(Path(module.__file__ or "").read_bytes())
    return h.hexdigest()


def summarize(report: Mapping[str, Any]) -> dict[str, Any]:
    """What the cluster view reads of a report: per indicator, the own rating and the
    shown means (a suppressed group has none and is left out)."""
    return {
        "indicators": [
            {
                "key": ind["key"],
                "id": ind["id"],
                "dimension": ind.get("dimension"),
                "kind": ind.get("kind"),
                "self": ind.get("self"),
                "roles": {
                    role: {"mean": g["mean"]}
                    for role, g in (ind.get("roles") or {}).items()
                    if g and g.get("mean") is not None
                },
            }
            for ind in report.get("indicators", [])
        ]
    }


def _digest(parts: Any) -> str:
    raw = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


async def fingerprints(
    s: AsyncSession, cycles: Sequence[Cycle], model: ExcellenceModel
) -> dict[int, str]:
    """cycle id -> a digest that changes whenever that cycle's report could."""
    ids = [c.id for c in cycles]
    if not ids:
        return {}
    released = await release_sql.state_prints(s, ids)
    selfs = await stored.self_rating_rows(s, ids)
    question_map = _digest(await stored.question_map_rows(s))
    return {
        c.id: _digest(
            [
                code_digest(),
                model.version,
                question_map,
                [c.status, c.model_version, c.anonymity_threshold, c.free_text_threshold],
                released.get(c.id),
                selfs.get(c.id),
            ]
        )
        for c in cycles
    }


async def cycle_summaries(
    s: AsyncSession, cycles: Mapping[int, Cycle], model: ExcellenceModel
) -> tuple[dict[int, dict[str, Any]], int]:
    """`cycles`: school id -> the cycle to show. Returns (school id -> summary, how many
    summaries had to be built now). Run it in a transaction (`sessionmaker.begin()`): the
    summaries it builds are stored when that commits."""
    prints = await fingerprints(s, list(cycles.values()), model)
    kept = await stored.stored_summaries(s, list(prints))
    out: dict[int, dict[str, Any]] = {}
    built = 0
    for school_id, cycle in cycles.items():
        fingerprint, summary = kept.get(cycle.id, (None, None))
        if fingerprint == prints[cycle.id]:
            out[school_id] = summary
            continue
        out[school_id] = summarize(await build_report(s, cycle.id, model))
        await stored.save_report_summary(s, cycle.id, prints[cycle.id], out[school_id])
        built += 1
    return out, built


# -- kept fresh in the background ---------------------------------------------------------


async def default_cycles(s: AsyncSession) -> dict[int, Cycle]:
    """school id -> the cycle a cluster view shows by default, for every clustered school."""
    return await stored.clustered_cycles(s)


async def refresh(sm: async_sessionmaker, model: ExcellenceModel) -> int:
    """Build the out-of-date summaries of the cycles the cluster views show by default,
    each in a transaction of its own; returns how many were built. With several server
    processes each summary is built by one of them (advisory lock, then a second look at
    the fingerprint inside the lock)."""
    async with sm() as s:
        cycle_ids = [c.id for c in (await default_cycles(s)).values()]
    await releases.refresh(sm, cycle_ids)  # the summaries show what is released by now
    async with sm() as s:
        cycles = list((await default_cycles(s)).values())
        prints = await fingerprints(s, cycles, model)
        kept = await stored.stored_summaries(s, list(prints))
    stale = [c.id for c in cycles if kept.get(c.id, (None,))[0] != prints[c.id]]
    built = 0
    for cycle_id in stale:
        async with sm.begin() as s:
            cycle = (
                await stored.load_cycle(s, cycle_id)
                if await stored.claim_summary(s, cycle_id)
                else None
            )
            if cycle is not None:  # looks again inside the lock: built meanwhile, or not
                built += (await cycle_summaries(s, {cycle.school_id: cycle}, model))[1]
        await asyncio.sleep(0)  # requests go first between two reports
    return built
