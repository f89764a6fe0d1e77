"""Making releases: whenever a cycle's responses changed, release what the rule allows.

The rule is `anonymity.may_release`; the statements are `storage.releases`. A release is
worked out in a transaction of its own, under the cycle's lock, and committed before any
reader can show it: a reader only ever sees states that are recorded as released, so the
next release is always measured against everything a reader may have seen.

Who calls `refresh`: every reader of figures before it reads (the dashboard's result
pages, the API, exports, comparison, the cluster view, the `report` command), and every
server process in the background (every RELEASE_REFRESH_SECONDS), so that figures move on even when
nobody looks. While a cycle's responses are unchanged (the fingerprint of
`storage.releases.fingerprints`), a refresh costs one query.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.reporting.anonymity import Thresholds, may_release
from storage import releases as store

log = logging.getLogger(__name__)


async def release_cycle(s: AsyncSession, cycle_id: int, now: datetime | None = None) -> int:
    """Release what the rule allows of one cycle, in the caller's transaction (which must
    commit before anything it released is shown); how many question states were released."""
    cycle = await store.lock_cycle(s, cycle_id)
    if cycle is None:
        return 0
    fingerprint = (await store.fingerprints(s, [cycle]))[cycle.id]
    if (await store.checked(s, [cycle.id])).get(cycle.id) == fingerprint:
        return 0  # released meanwhile by someone else, or nothing changed
    thresholds = Thresholds.for_cycle(cycle)
    now = now or datetime.now(UTC)
    released = 0
    for candidate in await store.candidates(s, cycle):
        if may_release(candidate, thresholds):
            await store.release(s, cycle, candidate, now)
            released += 1
    await store.save_check(s, cycle.id, fingerprint)
    return released


async def refresh(sm: async_sessionmaker, cycle_ids: Iterable[int] | None = None) -> int:
    """Bring the releases of these cycles and of their schools' other cycles (a report may
    show an earlier cycle beside) up to date; every cycle's with None. Each changed cycle
    in a transaction of its own; returns how many question states were released."""
    ids = None if cycle_ids is None else sorted({int(c) for c in cycle_ids})
    if ids == []:
        return 0
    async with sm() as s:
        cycles = await store.cycles_of_schools(s, ids)
        prints = await store.fingerprints(s, cycles)
        seen = await store.checked(s, list(prints))
    changed = [cid for cid, fp in prints.items() if seen.get(cid) != fp]
    released = 0
    for cycle_id in changed:
        async with sm.begin() as s:
            released += await release_cycle(s, cycle_id)
        await asyncio.sleep(0)  # requests go first between two cycles
    return released
