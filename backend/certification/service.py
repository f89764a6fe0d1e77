"""The certification use case: who may do what in a round, and each step with its audit.

Every step takes the session (the caller owns the transaction) and the acting user, checks
the rules, writes, and adds one row to the audit trail in the same transaction: a step
is recorded exactly when it happened. A refused step raises `Refused` and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from backend.certification.kappa import weighted_kappa
from backend.i18n import N_
from backend.reporting.extras import actions_for_export
from backend.reporting.report import build_report
from conversations.model import ExcellenceModel
from storage import certification as store
from storage import clusters, evidence_files, schools
from storage.models import (
    AgencyMember,
    Assignment,
    CertRound,
    Cycle,
    Decision,
    EvidenceRequest,
    Submission,
    User,
)

# 2: a file of the evidence portfolio is frozen with the submission (`sha256`, `size`,
# `filename`, `content_type` in its entry; the bytes in `storage.evidence_files`).
SNAPSHOT_FORMAT = 2
MAX_TEXT = 4000
STATUSES = ("not_started", "overdue", "submitted", "under_review", "decided")
MIN_PAIRS = 5  # a kappa over fewer indicators rated by both says nothing


class SchoolMail(Protocol):
    """Where a decision's mail to the school's coordinators is queued, in the step's own
    transaction (`backend.certification.notices.Notifier`; sent after the commit)."""

    async def queue_decision(
        self, s: AsyncSession, round_id: int, school_id: int, decision_id: int, kind: str = ...
    ) -> None: ...


class Refused(Exception):
    """A step the rules do not allow. `kind`: not_found | forbidden | invalid (what was given
    does not do: `field` names it) | conflict (what was given is fine, but the round's or
    the school's state does not allow the step now); `message`: an English text marked for
    translation (the view translates it). A page shows invalid and conflict as a message;
    the API answers 404, 403, 422 and 409."""

    def __init__(self, kind: str, message: str, *, field: str = "", **params: Any) -> None:
        super().__init__(message % params if params else message)
        self.kind = kind
        self.message = message
        self.field = field
        self.params = params

    @property
    def shown(self) -> bool:
        """A refusal the page shows as a message (not a 404 or 403)."""
        return self.kind in ("invalid", "conflict")


# --- who may do what ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reader:
    """A user with their place in an agency (if any): THE decision of what they reach in
    certification. admin: everything. board: their agency's rounds, every school in them.
    assessor: their agency's rounds, only the schools they are assigned to, only the
    submitted snapshot. coordinator: their own school's submissions, requests, decisions."""

    user: User
    member: AgencyMember | None

    @property
    def is_admin(self) -> bool:
        return self.user.role == "admin"

    def boards(self, agency_id: int) -> bool:
        return self.is_admin or (
            self.user.role == "board"
            and self.member is not None
            and self.member.role == "board"
            and self.member.agency_id == agency_id
        )

    def assesses_for(self, agency_id: int) -> bool:
        return (
            self.user.role == "assessor"
            and self.member is not None
            and self.member.role == "assessor"
            and self.member.agency_id == agency_id
        )

    def coordinates(self, school_id: int) -> bool:
        return self.is_admin or (
            self.user.role == "coordinator" and self.user.school_id == school_id
        )


async def reader(s: AsyncSession, user: User) -> Reader:
    return Reader(user, await store.membership(s, user.id))


async def rounds_for(s: AsyncSession, who: Reader) -> list[CertRound]:
    """Every round the reader reaches: admin all; board its agency's; assessor those with a
    school assigned to it; a school's user those its school is listed in, submitted to, or
    may submit to."""
    if who.is_admin:
        return await store.list_rounds(s)
    if who.member is not None and who.member.role == "board" and who.user.role == "board":
        return await store.list_rounds(s, who.member.agency_id)
    if who.assesses_for(who.member.agency_id if who.member else -1):
        mine = set(await store.assessor_round_ids(s, who.user.id))
        return [r for r in await store.list_rounds(s, who.member.agency_id) if r.id in mine]
    if who.user.school_id is None or who.user.role not in ("coordinator", "peer"):
        return []
    found = await store.rounds_of_school(s, who.user.school_id)
    known = {r.id for r in found}
    return found + [
        r for r in await store.open_rounds_for_school(s, who.user.school_id) if r.id not in known
    ]


async def round_for(s: AsyncSession, who: Reader, round_id: int) -> CertRound:
    """The round if the reader is its agency's board or assessor; else not found."""
    rnd = await store.get_round(s, round_id)
    if rnd is None or not (who.boards(rnd.agency_id) or who.assesses_for(rnd.agency_id)):
        raise Refused("not_found", N_("Not found"))
    return rnd


async def reviewable(s: AsyncSession, who: Reader, rnd: CertRound, school_id: int) -> bool:
    """Whether the reader may read this school's submission in the round."""
    if who.boards(rnd.agency_id):
        return school_id in await store.round_school_ids(s, rnd.id)
    if who.assesses_for(rnd.agency_id):
        mine = await store.list_assignments(s, rnd.id, school_id, who.user.id)
        return bool(mine)
    return False


async def reads_submission(s: AsyncSession, who: Reader, rnd: CertRound, school_id: int) -> bool:
    """Whether the reader may read what the school submitted to the round (its snapshot and
    the evidence files frozen with it): the school's own coordinator, the round agency's
    board, an assessor assigned to the school in the round."""
    return who.coordinates(school_id) or await reviewable(s, who, rnd, school_id)


def require_board(who: Reader, rnd: CertRound) -> None:
    if not who.boards(rnd.agency_id):
        raise Refused("forbidden", N_("Only the agency's board may do this."))


# --- the snapshot ------------------------------------------------------------------------


def canonical(data: Mapping[str, Any]) -> str:
    """The JSON text that is stored and hashed (sorted keys, no spaces, UTF-8 as is)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _frozen_entry(e: Any, data_dir: Path | None) -> dict[str, Any]:
    """A file of the portfolio as the snapshot keeps it: frozen (its bytes copied aside and
    named by their SHA-256, which the submission's hash then covers)."""
    if e.kind != "file" or not e.stored_name:
        return {}
    if data_dir is None:
        raise ValueError("a submission with evidence files needs the data directory")
    frozen = evidence_files.freeze(data_dir, e.stored_name)
    return {
        "filename": e.filename,
        "content_type": e.content_type,
        "sha256": frozen[0] if frozen else None,  # None: the upload was not on disk
        "size": frozen[1] if frozen else None,
    }


async def snapshot_of(
    s: AsyncSession,
    cycle: Cycle,
    rnd: CertRound,
    model: ExcellenceModel,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """What the assessors may see of a cycle: the report as the anonymity gate lets it
    through (`build_report`), without any respondent's free text; the school's ratings
    without its private notes; the evidence portfolio (titles, links, notes, and each file
    frozen under `data_dir` with its SHA-256); the action plan. Never an answer."""
    report = dict(await build_report(s, cycle.id, model))
    report.pop("comments", None)  # free text stays with the school, whatever its size
    school = await schools.get_school(s, cycle.school_id)
    return {
        "format": SNAPSHOT_FORMAT,
        "round": {"id": rnd.id, "name": rnd.name, "kind": rnd.kind},
        "school": {
            "id": cycle.school_id,
            "slug": school.slug if school else None,
            "name": school.name if school else None,
            "languages": list(school.languages) if school else ["en"],
        },
        "cycle": {"id": cycle.id, "name": cycle.name, "model_version": cycle.model_version},
        "report": report,
        "evidence": [
            {
                "id": e.id,
                "indicator_key": e.indicator_key,
                "kind": e.kind,
                "title": e.filename or e.url,
                "url": e.url,
                "note": e.note,
                "created_at": e.created_at.isoformat(),
                **_frozen_entry(e, data_dir),
            }
            for e in await schools.list_evidence(s, cycle.id)
        ],
        "actions": actions_for_export(await schools.list_actions(s, cycle.id)),
    }


def load_snapshot(sub: Submission) -> dict[str, Any]:
    return json.loads(sub.snapshot)


def frozen_file(versions: Sequence[Submission], evidence_id: int) -> dict[str, Any] | None:
    """The evidence file `evidence_id` as frozen with the newest version that holds it
    (an item's file never changes: a new file is a new item), if it was frozen."""
    for sub in versions:
        for e in load_snapshot(sub).get("evidence", []):
            if e.get("id") == evidence_id and e.get("kind") == "file" and e.get("sha256"):
                return e
    return None


def rateable(snapshot: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The snapshot's indicators an assessor rates (those on a 0-4 scale)."""
    return [i for i in snapshot["report"]["indicators"] if i["kind"] != "NUMBER"]


# --- the steps ---------------------------------------------------------------------------


async def _audit(
    s: AsyncSession,
    who: Reader,
    rnd: CertRound,
    school_id: int,
    action: str,
    **detail: Any,
) -> None:
    """The round's audit trail: `who` did `action` about the school, with its details."""
    await store.audit(
        s, rnd.agency_id, who.user, action, round_id=rnd.id, school_id=school_id, detail=detail
    )


async def may_submit_to(s: AsyncSession, rnd: CertRound, school_id: int) -> bool:
    return rnd.status == "open" and (
        rnd.kind == "certification" or school_id in await store.listed_school_ids(s, rnd.id)
    )


async def submit(
    s: AsyncSession,
    who: Reader,
    rnd: CertRound,
    cycle: Cycle,
    model: ExcellenceModel,
    data_dir: Path | None = None,
) -> Submission:
    """Freeze the cycle as a new version of the school's submission to the round, its
    evidence files with it (under `data_dir`, needed when the portfolio holds a file): the
    content hash covers the snapshot, which holds each file's SHA-256."""
    if not who.coordinates(cycle.school_id):
        raise Refused("forbidden", N_("Only the school's coordinator may submit its cycle."))
    if not await may_submit_to(s, rnd, cycle.school_id):
        raise Refused("conflict", N_("This round does not take a submission from this school."))
    snap = await snapshot_of(s, cycle, rnd, model, data_dir)
    text = canonical(snap)
    digest = content_hash(text)
    sub = await store.add_submission(
        s, rnd.id, cycle.school_id, cycle.id, text, digest, who.user.id
    )
    await _audit(
        s,
        who,
        rnd,
        cycle.school_id,
        "submission",
        version=sub.version,
        cycle=cycle.name,
        sha256=digest,
    )
    return sub


async def conflict(s: AsyncSession, rnd: CertRound, school_id: int, member: AgencyMember) -> str:
    """Why this assessor may not review the school ('' if they may)."""
    home = member.home_school_id
    if home is None:
        return ""
    if home == school_id:
        return N_("The assessor works at this school.")
    if rnd.exclude_cluster and home in await clusters.peer_school_ids(s, school_id):
        return N_("The assessor works at a school of this school's cluster.")
    return ""


async def assign(
    s: AsyncSession, who: Reader, rnd: CertRound, school_id: int, assessor_id: int
) -> bool:
    require_board(who, rnd)
    if school_id not in await store.round_school_ids(s, rnd.id):
        raise Refused("invalid", N_("This school is not in the round."), field="school_id")
    member = await store.membership(s, assessor_id)
    if member is None or member.role != "assessor" or member.agency_id != rnd.agency_id:
        raise Refused("invalid", N_("Choose one of the agency's assessors."), field="assessor_id")
    why = await conflict(s, rnd, school_id, member)
    if why:
        raise Refused("conflict", why)
    added = await store.assign(s, rnd.id, school_id, assessor_id)
    if added:
        assessor = await schools.get_user(s, assessor_id)
        await _audit(
            s,
            who,
            rnd,
            school_id,
            "assignment",
            assessor=assessor.email if assessor else assessor_id,
        )
    return added


async def my_assignment(s: AsyncSession, who: Reader, rnd: CertRound, school_id: int) -> Assignment:
    found = await store.list_assignments(s, rnd.id, school_id, who.user.id)
    if not found or not who.assesses_for(rnd.agency_id):
        raise Refused("forbidden", N_("Only an assessor assigned to this school may do this."))
    return found[0][0]


async def rate(
    s: AsyncSession,
    who: Reader,
    rnd: CertRound,
    school_id: int,
    snapshot: Mapping[str, Any],
    key: str,
    agrees: bool,
    value: int | None,
    reason: str,
) -> None:
    """An assessor agrees with the school's rating of an indicator, or proposes another
    with a reason."""
    assignment = await my_assignment(s, who, rnd, school_id)
    if rnd.status != "open":
        raise Refused("conflict", N_("The round is closed."))
    ind = next((i for i in rateable(snapshot) if i["key"] == key), None)
    if ind is None:
        raise Refused("not_found", N_("Not found"))
    reason = reason.strip()
    if len(reason) > MAX_TEXT:
        raise Refused("invalid", N_("A reason may have at most 4000 characters."), field="reason")
    if agrees:
        if ind["self"] is None:
            raise Refused(
                "conflict", N_("The school did not rate this indicator: propose a rating.")
            )
        value = None
    else:
        if value is None or not 0 <= value <= 4:
            raise Refused("invalid", N_("Choose the rating you propose."), field="value")
        if not reason:
            raise Refused(
                "invalid", N_("Give a reason for the rating you propose."), field="reason"
            )
    await store.set_review_rating(s, assignment.id, key, agrees, value, reason or None)
    await _audit(
        s,
        who,
        rnd,
        school_id,
        "rating",
        indicator=key,
        agrees=agrees,
        value=value,
        reason=reason or None,
    )


async def ask(
    s: AsyncSession, who: Reader, rnd: CertRound, school_id: int, key: str, question: str
) -> EvidenceRequest:
    await my_assignment(s, who, rnd, school_id)
    question = question.strip()
    if not question or len(question) > MAX_TEXT:
        raise Refused(
            "invalid",
            N_("Write what evidence you need (up to 4000 characters)."),
            field="question",
        )
    req = await store.ask_evidence(s, rnd.id, school_id, key, question, who.user.id)
    await _audit(
        s, who, rnd, school_id, "evidence_request", request=req.id, indicator=key, question=question
    )
    return req


async def answer(s: AsyncSession, who: Reader, req: EvidenceRequest, text: str) -> None:
    if not who.coordinates(req.school_id):
        raise Refused("forbidden", N_("Only the school's coordinator may answer."))
    text = text.strip()
    if not text or len(text) > MAX_TEXT:
        raise Refused("invalid", N_("Write your answer (up to 4000 characters)."), field="answer")
    if not await store.answer_request(s, req.id, text, who.user.id):
        raise Refused("conflict", N_("This request has been answered already."))
    rnd = await store.get_round(s, req.round_id)
    await store.audit(
        s,
        rnd.agency_id if rnd else 0,
        who.user,
        "evidence_answer",
        round_id=req.round_id,
        school_id=req.school_id,
        detail={"request": req.id, "indicator": req.indicator_key, "answer": text},
    )


async def decide(
    s: AsyncSession,
    who: Reader,
    rnd: CertRound,
    school_id: int,
    outcome: str,
    conditions: str,
    valid_from: date | None,
    valid_until: date | None,
    *,
    mail: SchoolMail,
) -> Decision:
    """The board's decision on a school (a new one replaces the last); the school's
    coordinators are told by mail, queued in this transaction (`mail`)."""
    require_board(who, rnd)
    if school_id not in (await store.latest_submissions(s, rnd.id)):
        raise Refused("conflict", N_("The school has not submitted to this round."))
    if outcome not in store.OUTCOMES:
        raise Refused("invalid", N_("Choose a decision."), field="outcome")
    conditions = conditions.strip()
    if outcome == "conditions" and not conditions:
        raise Refused("invalid", N_("Write the conditions."), field="conditions")
    if len(conditions) > MAX_TEXT:
        raise Refused(
            "invalid", N_("Conditions may have at most 4000 characters."), field="conditions"
        )
    if outcome == "not_yet":
        valid_from = valid_until = None
    elif valid_from is None or valid_until is None or valid_until <= valid_from:
        raise Refused(
            "invalid", N_("Give a validity period that ends after it starts."), field="valid_until"
        )
    decision = await store.add_decision(
        s,
        rnd.id,
        school_id,
        outcome,
        conditions or None,
        valid_from,
        valid_until,
        secrets.token_urlsafe(24),
        who.user.id,
    )
    await _audit(
        s,
        who,
        rnd,
        school_id,
        "decision",
        outcome=outcome,
        conditions=conditions or None,
        valid_from=valid_from.isoformat() if valid_from else None,
        valid_until=valid_until.isoformat() if valid_until else None,
    )
    await mail.queue_decision(s, rnd.id, school_id, decision.id)
    return decision


async def revoke(
    s: AsyncSession, who: Reader, rnd: CertRound, school_id: int, *, mail: SchoolMail
) -> Decision:
    """The board withdraws the school's certificate: its verification page says so, and the
    school's coordinators are told by mail (queued in this transaction)."""
    require_board(who, rnd)
    decision = (await store.latest_decisions(s, rnd.id)).get(school_id)
    if decision is None or decision.outcome == "not_yet":
        raise Refused("conflict", N_("There is no certificate to revoke."))
    if not await store.revoke_decision(s, decision.id):
        raise Refused("conflict", N_("This certificate is revoked already."))
    await _audit(s, who, rnd, school_id, "revocation", outcome=decision.outcome)
    await mail.queue_decision(s, rnd.id, school_id, decision.id, "revocation")
    return decision


# --- what the board reads ----------------------------------------------------------------


def school_status(
    *,
    submitted: bool,
    assigned: bool,
    decided: bool,
    deadline: date,
    today: date,
) -> str:
    """not_started, overdue (nothing submitted after the deadline), submitted, under_review
    (assessors assigned), decided."""
    if decided:
        return "decided"
    if submitted:
        return "under_review" if assigned else "submitted"
    return "overdue" if today > deadline else "not_started"


def held_rating(ind: Mapping[str, Any], rating: Any) -> int | None:
    """The rating an assessor holds for an indicator: the school's when agreeing."""
    if rating is None:
        return None
    if rating.agrees:
        return ind["self"] if isinstance(ind["self"], int) else None
    return rating.value


def progress(snapshot: Mapping[str, Any], ratings: Mapping[str, Any]) -> tuple[int, int]:
    """(indicators reviewed, indicators to review)."""
    keys = [i["key"] for i in rateable(snapshot)]
    return sum(1 for k in keys if k in ratings), len(keys)


def side_by_side(
    snapshot: Mapping[str, Any], first: Mapping[str, Any], second: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], float | None, int]:
    """The indicators either assessor rated, each with the school's rating and both held
    ratings; the quadratic weighted kappa over the indicators both rated (None below
    MIN_PAIRS of them), and how many those are."""
    rows, a, b = [], [], []
    for ind in rateable(snapshot):
        x = held_rating(ind, first.get(ind["key"]))
        y = held_rating(ind, second.get(ind["key"]))
        if x is None and y is None:
            continue
        rows.append({"key": ind["key"], "id": ind["id"], "self": ind["self"], "a": x, "b": y})
        if x is not None and y is not None:
            a.append(x)
            b.append(y)
    kappa = weighted_kappa(a, b) if len(a) >= MIN_PAIRS else None
    return rows, kappa, len(a)


def certificate_state(decision: Decision | None, today: date | None = None) -> str:
    """valid, expired, revoked, or not_certified (a 'not yet' decision)."""
    if decision is None or decision.outcome == "not_yet":
        return "not_certified"
    if decision.revoked_at is not None:
        return "revoked"
    today = today or datetime.now(UTC).date()
    if decision.valid_until is not None and today > decision.valid_until:
        return "expired"
    return "valid"


def snapshot_indicators(snapshot: Mapping[str, Any]) -> Sequence[dict[str, Any]]:
    return snapshot["report"]["indicators"]
