"""Reads and small writes the dashboard needs beyond `storage.repo` (no web types here)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from conversations.roles import ROLE_LABELS, ROLES
from storage import repo
from storage.models import Cycle, Evidence, Invite, Response, School, User


@dataclass(frozen=True, slots=True)
class RoleRate:
    role: str
    label: str
    started: int
    completed: int
    target: int | None

    @property
    def percent(self) -> int | None:
        """Completed as a share of the target, capped at 100."""
        if not self.target:
            return None
        return min(100, round(100 * self.completed / self.target))

    def as_json(self) -> dict[str, object]:
        return {
            "role": self.role,
            "label": self.label,
            "started": self.started,
            "completed": self.completed,
            "target": self.target,
            "percent": self.percent,
        }


async def response_rates(s: AsyncSession, cycle: Cycle) -> list[RoleRate]:
    """Started (any status) and completed responses per role, beside the cycle's targets.

    Counts only, which the anonymity rules always allow to be shown.
    """
    rows = await s.execute(
        select(
            Response.role,
            func.count(Response.id),
            func.sum(case((Response.status == "completed", 1), else_=0)),
        )
        .where(Response.cycle_id == cycle.id)
        .group_by(Response.role)
    )
    counts = {role: (int(n), int(done or 0)) for role, n, done in rows}
    targets = cycle.targets or {}
    out = []
    for role in ROLES:
        started, done = counts.get(role.value, (0, 0))
        target = targets.get(role.value)
        out.append(
            RoleRate(role.value, ROLE_LABELS[role], started, done, int(target) if target else None)
        )
    return out


async def get_invite(s: AsyncSession, cycle_id: int, invite_id: int) -> Invite | None:
    return await s.scalar(select(Invite).where(Invite.id == invite_id, Invite.cycle_id == cycle_id))


async def get_evidence(s: AsyncSession, cycle_id: int, evidence_id: int) -> Evidence | None:
    return await s.scalar(
        select(Evidence).where(Evidence.id == evidence_id, Evidence.cycle_id == cycle_id)
    )


async def evidence_counts(s: AsyncSession, cycle_id: int) -> dict[str, int]:
    rows = await s.execute(
        select(Evidence.indicator_key, func.count(Evidence.id))
        .where(Evidence.cycle_id == cycle_id)
        .group_by(Evidence.indicator_key)
    )
    return {k: int(n) for k, n in rows}


async def list_users(s: AsyncSession) -> list[tuple[User, School | None]]:
    rows = await s.execute(
        select(User, School).outerjoin(School, School.id == User.school_id).order_by(User.email)
    )
    return [(u, sch) for u, sch in rows]


async def cycle_by_name(s: AsyncSession, school_id: int, name: str) -> Cycle | None:
    return await s.scalar(select(Cycle).where(Cycle.school_id == school_id, Cycle.name == name))


async def submit_self_ratings(s: AsyncSession, cycle_id: int, user_id: int | None) -> int:
    """Mark every rated indicator of the cycle submitted; returns how many."""
    done = 0
    for key, r in (await repo.list_self_ratings(s, cycle_id)).items():
        if r.value is None and r.number is None:
            continue
        if r.status != "submitted":
            await repo.upsert_self_rating(
                s, cycle_id, key, r.value, r.number, r.comment, "submitted", user_id
            )
        done += 1
    return done
