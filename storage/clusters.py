"""Clusters of schools that review each other, and the peers' feedback. Each function takes
an `AsyncSession` first; the caller owns the transaction."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Cluster, ClusterMember, PeerFeedback, School, User


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


async def get_cluster(s: AsyncSession, cluster_id: int) -> Cluster | None:
    return await s.get(Cluster, cluster_id)


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
