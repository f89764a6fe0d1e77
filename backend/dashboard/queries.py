"""Reads and small writes the dashboard needs beyond `storage.repo` (no web types here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import case, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.i18n import LABELS, Texts
from conversations.roles import ROLE_LABELS, ROLES
from storage import repo
from storage.models import (
    ActionItem,
    Cluster,
    ClusterMember,
    Cycle,
    Evidence,
    Invite,
    PeerFeedback,
    Response,
    School,
    User,
)


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


async def response_rates(s: AsyncSession, cycle: Cycle, tx: Texts | None = None) -> list[RoleRate]:
    """Started (any status) and completed responses per role, beside the cycle's targets.

    Counts only, which the anonymity rules always allow to be shown. The labels are the
    model's group names, in the language of `tx` (English without: the JSON API).
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
        label = tx.role_name(role.value) if tx is not None else ROLE_LABELS[role]
        out.append(RoleRate(role.value, label, started, done, int(target) if target else None))
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


# --- the action plan -------------------------------------------------------------------


# The statuses of an action item, in order (their words: LABELS["action status"]).
ACTION_STATUSES: tuple[str, ...] = tuple(LABELS["action status"])


async def list_actions(
    s: AsyncSession, cycle_id: int, *, status: str | None = None, indicator_key: str | None = None
) -> list[ActionItem]:
    """The cycle's action items not done first, then by due date (none last), then as created."""
    q = select(ActionItem).where(ActionItem.cycle_id == cycle_id)
    if status is not None:
        q = q.where(ActionItem.status == status)
    if indicator_key is not None:
        q = q.where(ActionItem.indicator_key == indicator_key)
    items = list(await s.scalars(q.order_by(ActionItem.id)))
    items.sort(key=lambda a: (a.status == "done", a.due_date is None, a.due_date or date.max, a.id))
    return items


async def get_action(s: AsyncSession, cycle_id: int, action_id: int) -> ActionItem | None:
    return await s.scalar(
        select(ActionItem).where(ActionItem.id == action_id, ActionItem.cycle_id == cycle_id)
    )


async def add_action(
    s: AsyncSession,
    cycle_id: int,
    indicator_key: str,
    title: str,
    owner: str | None,
    due_date: date | None,
    status: str = "open",
) -> ActionItem:
    if status not in ACTION_STATUSES:
        raise ValueError(f"unknown status {status!r}")
    item = ActionItem(
        cycle_id=cycle_id,
        indicator_key=indicator_key,
        title=title,
        owner=owner,
        due_date=due_date,
        status=status,
    )
    s.add(item)
    await s.flush()
    return item


def actions_for_export(items: list[ActionItem]) -> list[dict[str, object]]:
    """Plain dicts for `report_pdf(actions=...)`."""
    return [
        {
            "indicator_key": a.indicator_key,
            "title": a.title,
            "owner": a.owner,
            "due_date": a.due_date,
            "status": a.status,
        }
        for a in items
    ]


async def pdf_extras(s: AsyncSession, cycle: Cycle) -> dict[str, object]:
    """What the PDF report carries beside the report: the evidence list, the report of the
    previous cycle (for the change) and the action plan, as `report_pdf`'s keywords."""
    from backend.analytics.report import build_report
    from conversations.model import load_model

    earlier = [c for c in await repo.list_cycles(s, cycle.school_id) if c.id < cycle.id]
    return {
        "evidence": [
            {
                "indicator_key": e.indicator_key,
                "title": e.filename or e.url,
                "kind": e.kind,
                "note": e.note,
                "created_at": e.created_at,
            }
            for e in await repo.list_evidence(s, cycle.id)
        ],
        "previous": await build_report(s, earlier[0].id, load_model()) if earlier else None,
        "actions": actions_for_export(await list_actions(s, cycle.id)),
    }


# --- clusters and peer feedback -----------------------------------------------------------


async def peer_school_ids(s: AsyncSession, school_id: int) -> set[int]:
    """The other schools of every cluster the school belongs to."""
    mine = select(ClusterMember.cluster_id).where(ClusterMember.school_id == school_id)
    rows = await s.scalars(
        select(ClusterMember.school_id).where(
            ClusterMember.cluster_id.in_(mine), ClusterMember.school_id != school_id
        )
    )
    return set(rows)


async def list_clusters(s: AsyncSession, school_id: int | None = None) -> list[Cluster]:
    """Every cluster, or those the school belongs to."""
    q = select(Cluster).order_by(Cluster.name)
    if school_id is not None:
        q = q.where(
            Cluster.id.in_(
                select(ClusterMember.cluster_id).where(ClusterMember.school_id == school_id)
            )
        )
    return list(await s.scalars(q))


async def cluster_schools(s: AsyncSession, cluster_id: int) -> list[School]:
    return list(
        await s.scalars(
            select(School)
            .join(ClusterMember, ClusterMember.school_id == School.id)
            .where(ClusterMember.cluster_id == cluster_id)
            .order_by(School.id)
        )
    )


async def create_cluster(s: AsyncSession, name: str) -> Cluster:
    cluster = Cluster(name=name)
    s.add(cluster)
    await s.flush()
    return cluster


async def add_cluster_member(s: AsyncSession, cluster_id: int, school_id: int) -> bool:
    """Adds the school; False if it is a member already."""
    exists = await s.scalar(
        select(ClusterMember.id).where(
            ClusterMember.cluster_id == cluster_id, ClusterMember.school_id == school_id
        )
    )
    if exists is not None:
        return False
    s.add(ClusterMember(cluster_id=cluster_id, school_id=school_id))
    await s.flush()
    return True


async def remove_cluster_member(s: AsyncSession, cluster_id: int, school_id: int) -> None:
    await s.execute(
        delete(ClusterMember).where(
            ClusterMember.cluster_id == cluster_id, ClusterMember.school_id == school_id
        )
    )


async def add_feedback(
    s: AsyncSession, cycle_id: int, indicator_key: str, author_id: int, text: str
) -> PeerFeedback:
    item = PeerFeedback(
        cycle_id=cycle_id, indicator_key=indicator_key, author_id=author_id, text=text
    )
    s.add(item)
    await s.flush()
    return item


async def list_feedback(
    s: AsyncSession, cycle_id: int, indicator_key: str
) -> list[tuple[PeerFeedback, str | None, str | None]]:
    """(feedback, author e-mail, author's school name), oldest first."""
    rows = await s.execute(
        select(PeerFeedback, User.email, School.name)
        .outerjoin(User, User.id == PeerFeedback.author_id)
        .outerjoin(School, School.id == User.school_id)
        .where(PeerFeedback.cycle_id == cycle_id, PeerFeedback.indicator_key == indicator_key)
        .order_by(PeerFeedback.created_at, PeerFeedback.id)
    )
    return [(f, email, school) for f, email, school in rows]
