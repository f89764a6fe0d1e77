"""Certification and accreditation: agencies and their people, rounds, frozen submissions,
assessors' reviews, evidence requests, the board's decisions and the audit trail.

Each function takes an `AsyncSession` first; the caller owns the transaction. Nothing here
decides who may do what (`backend.certification` does); a missing row is None. The audit
trail is append-only: this module adds rows and reads them, and offers nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Agency,
    AgencyMember,
    Assignment,
    AuditEvent,
    CertRound,
    Decision,
    EvidenceRequest,
    ReviewRating,
    RoundSchool,
    School,
    Submission,
    User,
    utcnow,
)

MEMBER_ROLES = ("board", "assessor")
ROUND_KINDS = ("certification", "accreditation")
OUTCOMES = ("certified", "conditions", "not_yet")


# --- agencies and their people -----------------------------------------------------------


async def create_agency(s: AsyncSession, name: str) -> Agency:
    agency = Agency(name=name)
    s.add(agency)
    await s.flush()
    return agency


async def list_agencies(s: AsyncSession) -> list[Agency]:
    return list(await s.scalars(select(Agency).order_by(Agency.name)))


async def get_agency(s: AsyncSession, agency_id: int) -> Agency | None:
    return await s.get(Agency, agency_id)


async def agency_by_name(s: AsyncSession, name: str) -> Agency | None:
    return await s.scalar(select(Agency).where(Agency.name == name))


async def add_member(
    s: AsyncSession, agency_id: int, user_id: int, role: str, home_school_id: int | None
) -> AgencyMember:
    if role not in MEMBER_ROLES:
        raise ValueError(f"unknown agency role {role!r}")
    member = AgencyMember(
        agency_id=agency_id, user_id=user_id, role=role, home_school_id=home_school_id
    )
    s.add(member)
    await s.flush()
    return member


async def membership(s: AsyncSession, user_id: int) -> AgencyMember | None:
    """The user's place in an agency (a user belongs to at most one)."""
    return await s.scalar(select(AgencyMember).where(AgencyMember.user_id == user_id))


async def list_members(s: AsyncSession, agency_id: int) -> list[tuple[AgencyMember, User]]:
    rows = await s.execute(
        select(AgencyMember, User)
        .join(User, User.id == AgencyMember.user_id)
        .where(AgencyMember.agency_id == agency_id)
        .order_by(AgencyMember.role, User.email)
    )
    return [(m, u) for m, u in rows]


# --- rounds ------------------------------------------------------------------------------


async def create_round(
    s: AsyncSession,
    agency_id: int,
    name: str,
    kind: str,
    deadline: date,
    exclude_cluster: bool,
    school_ids: Sequence[int] = (),
) -> CertRound:
    if kind not in ROUND_KINDS:
        raise ValueError(f"unknown round kind {kind!r}")
    rnd = CertRound(
        agency_id=agency_id,
        name=name,
        kind=kind,
        deadline=deadline,
        exclude_cluster=exclude_cluster,
        status="open",
    )
    s.add(rnd)
    await s.flush()
    for sid in dict.fromkeys(school_ids):
        s.add(RoundSchool(round_id=rnd.id, school_id=sid))
    await s.flush()
    return rnd


async def get_round(s: AsyncSession, round_id: int) -> CertRound | None:
    return await s.get(CertRound, round_id)


async def round_by_name(s: AsyncSession, agency_id: int, name: str) -> CertRound | None:
    return await s.scalar(
        select(CertRound).where(CertRound.agency_id == agency_id, CertRound.name == name)
    )


async def list_rounds(s: AsyncSession, agency_id: int | None = None) -> list[CertRound]:
    q = select(CertRound).order_by(CertRound.deadline.desc(), CertRound.id.desc())
    if agency_id is not None:
        q = q.where(CertRound.agency_id == agency_id)
    return list(await s.scalars(q))


async def set_round_status(s: AsyncSession, round_id: int, status: str) -> None:
    rnd = await s.get(CertRound, round_id)
    if rnd is not None:
        rnd.status = status


async def listed_school_ids(s: AsyncSession, round_id: int) -> list[int]:
    """An accreditation round's list of schools."""
    return list(
        await s.scalars(
            select(RoundSchool.school_id)
            .where(RoundSchool.round_id == round_id)
            .order_by(RoundSchool.school_id)
        )
    )


async def open_rounds_for_school(s: AsyncSession, school_id: int) -> list[CertRound]:
    """The open rounds a school may submit to: every certification round, and the
    accreditation rounds that list it."""
    listed = select(RoundSchool.round_id).where(RoundSchool.school_id == school_id)
    q = (
        select(CertRound)
        .where(
            CertRound.status == "open",
            (CertRound.kind == "certification") | CertRound.id.in_(listed),
        )
        .order_by(CertRound.deadline, CertRound.id)
    )
    return list(await s.scalars(q))


async def rounds_of_school(s: AsyncSession, school_id: int) -> list[CertRound]:
    """Every round the school is listed in or has submitted to (newest first)."""
    listed = select(RoundSchool.round_id).where(RoundSchool.school_id == school_id)
    sent = select(Submission.round_id).where(Submission.school_id == school_id)
    q = (
        select(CertRound)
        .where(CertRound.id.in_(listed) | CertRound.id.in_(sent))
        .order_by(CertRound.deadline.desc(), CertRound.id.desc())
    )
    return list(await s.scalars(q))


async def round_school_ids(s: AsyncSession, round_id: int) -> list[int]:
    """The schools of a round: those listed, and those that submitted."""
    listed = set(await listed_school_ids(s, round_id))
    sent = set(await s.scalars(select(Submission.school_id).where(Submission.round_id == round_id)))
    return sorted(listed | sent)


async def schools_by_id(s: AsyncSession, ids: Sequence[int]) -> dict[int, School]:
    if not ids:
        return {}
    return {sch.id: sch for sch in await s.scalars(select(School).where(School.id.in_(ids)))}


# --- submissions -------------------------------------------------------------------------


async def add_submission(
    s: AsyncSession,
    round_id: int,
    school_id: int,
    cycle_id: int,
    snapshot: str,
    content_hash: str,
    user_id: int | None,
) -> Submission:
    """A new version of the school's submission (1, 2, ...); the older ones stay.

    Two submissions at once both read the same latest version and the second insert hits
    the unique constraint (round, school, version): the caller's transaction fails, nothing
    is half written."""
    latest = await s.scalar(
        select(func.max(Submission.version)).where(
            Submission.round_id == round_id, Submission.school_id == school_id
        )
    )
    sub = Submission(
        round_id=round_id,
        school_id=school_id,
        cycle_id=cycle_id,
        version=(latest or 0) + 1,
        snapshot=snapshot,
        content_hash=content_hash,
        submitted_by=user_id,
    )
    s.add(sub)
    await s.flush()
    return sub


async def list_submissions(s: AsyncSession, round_id: int, school_id: int) -> list[Submission]:
    """Every version, newest first."""
    return list(
        await s.scalars(
            select(Submission)
            .where(Submission.round_id == round_id, Submission.school_id == school_id)
            .order_by(Submission.version.desc())
        )
    )


async def latest_submissions(s: AsyncSession, round_id: int) -> dict[int, Submission]:
    """school id -> its newest submission to the round."""
    newest = (
        select(Submission.school_id, func.max(Submission.version).label("v"))
        .where(Submission.round_id == round_id)
        .group_by(Submission.school_id)
        .subquery()
    )
    rows = await s.scalars(
        select(Submission)
        .join(
            newest,
            (Submission.school_id == newest.c.school_id) & (Submission.version == newest.c.v),
        )
        .where(Submission.round_id == round_id)
    )
    return {sub.school_id: sub for sub in rows}


# --- assignments and reviews -------------------------------------------------------------


async def assign(s: AsyncSession, round_id: int, school_id: int, assessor_id: int) -> bool:
    """False if the assessor is assigned to the school already."""
    found = await s.scalar(
        select(Assignment.id).where(
            Assignment.round_id == round_id,
            Assignment.school_id == school_id,
            Assignment.assessor_id == assessor_id,
        )
    )
    if found is not None:
        return False
    s.add(Assignment(round_id=round_id, school_id=school_id, assessor_id=assessor_id))
    await s.flush()
    return True


async def list_assignments(
    s: AsyncSession,
    round_id: int,
    school_id: int | None = None,
    assessor_id: int | None = None,
) -> list[tuple[Assignment, User]]:
    q = (
        select(Assignment, User)
        .join(User, User.id == Assignment.assessor_id)
        .where(Assignment.round_id == round_id)
        .order_by(Assignment.school_id, Assignment.id)
    )
    if school_id is not None:
        q = q.where(Assignment.school_id == school_id)
    if assessor_id is not None:
        q = q.where(Assignment.assessor_id == assessor_id)
    return [(a, u) for a, u in await s.execute(q)]


async def assessor_round_ids(s: AsyncSession, assessor_id: int) -> list[int]:
    return list(
        await s.scalars(
            select(Assignment.round_id).where(Assignment.assessor_id == assessor_id).distinct()
        )
    )


async def set_review_rating(
    s: AsyncSession,
    assignment_id: int,
    indicator_key: str,
    agrees: bool,
    value: int | None,
    reason: str | None,
) -> ReviewRating:
    found = await s.scalar(
        select(ReviewRating).where(
            ReviewRating.assignment_id == assignment_id,
            ReviewRating.indicator_key == indicator_key,
        )
    )
    if found is None:
        found = ReviewRating(assignment_id=assignment_id, indicator_key=indicator_key, agrees=True)
        s.add(found)
    found.agrees = agrees
    found.value = value
    found.reason = reason
    found.updated_at = utcnow()
    await s.flush()
    return found


async def review_ratings(
    s: AsyncSession, assignment_ids: Sequence[int]
) -> dict[int, dict[str, ReviewRating]]:
    """assignment id -> indicator key -> its rating."""
    out: dict[int, dict[str, ReviewRating]] = {a: {} for a in assignment_ids}
    if not assignment_ids:
        return out
    rows = await s.scalars(
        select(ReviewRating).where(ReviewRating.assignment_id.in_(assignment_ids))
    )
    for r in rows:
        out[r.assignment_id][r.indicator_key] = r
    return out


# --- evidence requests -------------------------------------------------------------------


async def ask_evidence(
    s: AsyncSession, round_id: int, school_id: int, indicator_key: str, question: str, by: int
) -> EvidenceRequest:
    req = EvidenceRequest(
        round_id=round_id,
        school_id=school_id,
        indicator_key=indicator_key,
        question=question,
        asked_by=by,
    )
    s.add(req)
    await s.flush()
    return req


async def list_requests(
    s: AsyncSession, round_id: int | None = None, school_id: int | None = None
) -> list[EvidenceRequest]:
    q = select(EvidenceRequest).order_by(EvidenceRequest.id)
    if round_id is not None:
        q = q.where(EvidenceRequest.round_id == round_id)
    if school_id is not None:
        q = q.where(EvidenceRequest.school_id == school_id)
    return list(await s.scalars(q))


async def get_request(s: AsyncSession, request_id: int) -> EvidenceRequest | None:
    return await s.get(EvidenceRequest, request_id)


async def answer_request(
    s: AsyncSession, request_id: int, answer: str, by: int, now: datetime | None = None
) -> bool:
    """False if it was answered already (an answer is kept as given)."""
    req = await s.get(EvidenceRequest, request_id, with_for_update=True)
    if req is None or req.answer is not None:
        return False
    req.answer = answer
    req.answered_by = by
    req.answered_at = now or utcnow()
    await s.flush()
    return True


# --- decisions -----------------------------------------------------------------------------


async def add_decision(
    s: AsyncSession,
    round_id: int,
    school_id: int,
    outcome: str,
    conditions: str | None,
    valid_from: date | None,
    valid_until: date | None,
    token: str,
    by: int,
) -> Decision:
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    decision = Decision(
        round_id=round_id,
        school_id=school_id,
        outcome=outcome,
        conditions=conditions,
        valid_from=valid_from,
        valid_until=valid_until,
        token=token,
        decided_by=by,
    )
    s.add(decision)
    await s.flush()
    return decision


async def latest_decisions(s: AsyncSession, round_id: int) -> dict[int, Decision]:
    """school id -> the newest decision on it in the round."""
    rows = await s.scalars(
        select(Decision).where(Decision.round_id == round_id).order_by(Decision.id)
    )
    return {d.school_id: d for d in rows}


async def decisions_of_school(s: AsyncSession, school_id: int) -> list[Decision]:
    """Newest first."""
    return list(
        await s.scalars(
            select(Decision).where(Decision.school_id == school_id).order_by(Decision.id.desc())
        )
    )


async def decision_by_token(s: AsyncSession, token: str) -> Decision | None:
    return await s.scalar(select(Decision).where(Decision.token == token))


async def revoke_decision(s: AsyncSession, decision_id: int, now: datetime | None = None) -> bool:
    d = await s.get(Decision, decision_id)
    if d is None or d.revoked_at is not None:
        return False
    d.revoked_at = now or utcnow()
    await s.flush()
    return True


# --- the audit trail (append-only) -----------------------------------------------------------


async def audit(
    s: AsyncSession,
    agency_id: int,
    actor: User | None,
    action: str,
    *,
    round_id: int | None = None,
    school_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    s.add(
        AuditEvent(
            agency_id=agency_id,
            round_id=round_id,
            school_id=school_id,
            actor_id=actor.id if actor else None,
            actor=actor.email if actor else "system",
            action=action,
            detail=detail or {},
        )
    )
    await s.flush()


async def audit_events(
    s: AsyncSession, agency_id: int, round_id: int | None = None
) -> list[AuditEvent]:
    q = select(AuditEvent).where(AuditEvent.agency_id == agency_id).order_by(AuditEvent.id)
    if round_id is not None:
        q = q.where(AuditEvent.round_id == round_id)
    return list(await s.scalars(q))
