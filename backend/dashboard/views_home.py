"""The school's home: where the open cycle stands and the one thing to do next.

Response rates against the targets per group (counts, which the anonymity rules always
allow), what is missing (groups whose results are not shown yet, indicators without
evidence, the self-assessment not submitted) and one call to action. Whether a group's
results are shown is read from the report (`build_report`, through the anonymity gate):
nothing here decides it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from backend.certification import notices
from backend.dashboard.auth import may_write
from backend.dashboard.rates import RoleRate, response_rates
from backend.dashboard.web import (
    R_SCHOOL,
    _,
    redirect,
    render,
    sessionmaker,
    texts_of,
    user_of,
)
from backend.reporting import releases
from backend.reporting.charts.reading import shown_roles
from backend.reporting.report import build_report
from backend.web import keys
from conversations.model import load_model
from storage import certification as cert_store
from storage import responses, schools
from storage.models import Cycle


@dataclass(frozen=True, slots=True)
class GroupState:
    rate: RoleRate
    state: str  # shown | hidden (answers, none of its figures shown yet) | none (no answers)


@dataclass(frozen=True, slots=True)
class NextStep:
    text: str
    why: str
    route: str
    parts: dict[str, Any] = field(default_factory=dict)
    anchor: str = ""


@dataclass(frozen=True, slots=True)
class CycleStatus:
    """What the home shows of the open cycle."""

    groups: list[GroupState]
    missing_groups: list[GroupState]  # a target or answers, and no results shown yet
    no_evidence: int  # indicators without any evidence
    indicators: int
    submitted: int  # indicators whose self rating is submitted
    drafts: int  # rated but not submitted
    active_invites: int


def cycle_status(
    rates: list[RoleRate],
    report: dict[str, Any],
    ratings: dict[str, Any],
    evidence: dict[str, int],
    keys: list[str],
    active_invites: int,
) -> CycleStatus:
    """The open cycle's state, from its rates, its report and its self-assessment."""
    shown = set(shown_roles(report))
    groups = []
    for r in rates:
        if not (r.started or r.target):
            continue
        # Shown: the report (through the anonymity gate) shows some of its figures.
        state = "shown" if r.role in shown else "hidden" if r.started else "none"
        groups.append(GroupState(r, state))
    rated = {
        k
        for k, v in ratings.items()
        if v.value is not None or getattr(v, "number", None) is not None
    }
    submitted = {k for k in rated if ratings[k].status == "submitted"}
    return CycleStatus(
        groups=groups,
        missing_groups=[g for g in groups if g.state != "shown"],
        no_evidence=sum(1 for k in keys if not evidence.get(k)),
        indicators=len(keys),
        submitted=len(submitted & set(keys)),
        drafts=len((rated - submitted) & set(keys)),
        active_invites=active_invites,
    )


def next_step(request: web.Request, cycle: Cycle, st: CycleStatus, writer: bool) -> NextStep:
    """The one thing to do next, most urgent first: invites, answers from the groups still
    missing, the self-assessment, evidence; when all is there, the results."""
    tx = texts_of(request)
    c = {"cycle_id": cycle.id}
    if writer and not st.active_invites:
        return NextStep(
            _(request, "Make invites"),
            _(request, "Nobody can answer yet: the cycle has no working invite."),
            "dash:invites",
            c,
        )
    if writer and st.missing_groups:
        names = ", ".join(tx.role_name(g.rate.role) for g in st.missing_groups)
        return NextStep(
            _(request, "Get answers from %(groups)s", groups=names),
            tx.ngettext(
                "Its results are not shown yet: print or send its invites again.",
                "Their results are not shown yet: print or send their invites again.",
                len(st.missing_groups),
            ),
            "dash:invites",
            c,
        )
    if writer and st.submitted < st.indicators:
        return NextStep(
            _(request, "Finish the self-assessment"),
            _(
                request,
                "%(submitted)s of %(total)s indicators submitted.",
                submitted=tx.number(st.submitted),
                total=tx.number(st.indicators),
            ),
            "dash:self",
            c,
        )
    if writer and st.no_evidence:
        return NextStep(
            _(request, "Add evidence"),
            tx.ngettext(
                "%(num)s indicator has no evidence yet.",
                "%(num)s indicators have no evidence yet.",
                st.no_evidence,
            ),
            "dash:self",
            c,
        )
    return NextStep(
        _(request, "Read the results"),
        _(request, "See where the school and its groups agree, and where they do not."),
        "dash:cycle",
        c,
    )


async def home(request: web.Request) -> web.Response:
    user = user_of(request)
    if user.role == "admin":
        return redirect(request, "dash:admin")
    if user.role in ("board", "assessor"):
        return redirect(request, "dash:certification")
    async with sessionmaker(request).begin() as s:
        school = await schools.get_school(s, user.school_id) if user.school_id else None
        if school is not None:
            cycles = await schools.list_cycles(s, school.id)
            cycle = await schools.current_cycle(s, school.id)
            told = await school_notices(request, s, school.id)
    if school is None:
        return render(
            request,
            "dashboard/error.html",
            {
                "status": 403,
                "title": _(request, "No school"),
                "message": _(request, "Your account has no school yet."),
            },
            status=403,
        )
    request[R_SCHOOL] = school.slug
    writer = may_write(user, school.id)
    ctx: dict[str, Any] = {"school": school, "cycles": cycles, "open_cycle": cycle, **told}
    if cycle is None:
        draft = next((c for c in cycles if c.status == "draft"), None)
        if draft is not None and writer:
            step = NextStep(
                _(request, "Open the cycle %(name)s", name=draft.name),
                _(request, "It is a draft: make its invites, then open it."),
                "dash:cycle",
                {"cycle_id": draft.id},
            )
        elif writer:
            step = NextStep(
                _(request, "Start a cycle"),
                _(request, "No cycle is open: a cycle collects one round of answers."),
                "dash:school",
                {"slug": school.slug},
            )
        else:
            step = NextStep(
                _(request, "See the cycles"),
                _(request, "No cycle is open."),
                "dash:school",
                {"slug": school.slug},
            )
        return render(request, "dashboard/home.html", {**ctx, "step": step, "status": None})
    model = load_model()
    await releases.refresh(sessionmaker(request), [cycle.id])
    async with sessionmaker(request).begin() as s:
        rates = await response_rates(s, cycle, texts_of(request))
        report = await build_report(s, cycle.id, model)
        ratings = await schools.list_self_ratings(s, cycle.id)
        evidence = await schools.evidence_counts(s, cycle.id)
        now = datetime.now(UTC)
        active = sum(
            1
            for inv in await responses.list_invites(s, cycle.id, include_revoked=False)
            if (inv.expires_at is None or inv.expires_at > now)
            and (inv.max_uses is None or inv.uses < inv.max_uses)
        )
    keys = [p.indicator.key for p in model.placed()]
    st = cycle_status(rates, report, ratings, evidence, keys, active)
    days_left = (cycle.closes_at - now).days if cycle.closes_at else None
    return render(
        request,
        "dashboard/home.html",
        {
            **ctx,
            "cycle_now": cycle,
            "status": st,
            "step": next_step(request, cycle, st, writer),
            "threshold": report["thresholds"]["anonymity"],
            "days_left": days_left,
            "writer": writer,
        },
    )


RECENT_DECISIONS = timedelta(days=30)


async def school_notices(request: web.Request, s: Any, school_id: int) -> dict[str, Any]:
    """What the home tells about the school's rounds: deadlines coming or passed without a
    submission, and the board's decisions (or revocations) of the last 30 days."""
    now = datetime.now(UTC)
    horizon = max(request.app[keys.SETTINGS].deadline_days, default=14)
    recent = [
        d
        for d in await cert_store.decisions_of_school(s, school_id)
        if max(d.decided_at, d.revoked_at or d.decided_at) >= now - RECENT_DECISIONS
    ]
    latest = {}
    for d in recent:  # newest first: one notice per round
        latest.setdefault(d.round_id, d)
    rounds = {rid: await cert_store.get_round(s, rid) for rid in latest}
    return {
        "deadline_notices": await notices.deadline_notices(s, school_id, now.date(), horizon),
        "recent_decisions": [d for d in latest.values() if rounds[d.round_id] is not None],
        "decision_rounds": rounds,
    }


async def my_certification(request: web.Request) -> web.Response:
    """The top bar's "Certification": the reader's school's."""
    user = user_of(request)
    async with sessionmaker(request).begin() as s:
        school = await schools.get_school(s, user.school_id) if user.school_id else None
    if school is None:
        return redirect(request, "dash:home")
    return redirect(request, "dash:school_certification", slug=school.slug)


async def root(request: web.Request) -> web.Response:
    """/dashboard: the home."""
    return redirect(request, "dash:home")


async def my_cycles(request: web.Request) -> web.Response:
    """The top bar's "Cycles": the reader's school's cycles (an admin's: the schools)."""
    user = user_of(request)
    if user.role in ("board", "assessor"):
        return redirect(request, "dash:certification")
    if user.school_id is None:
        return redirect(request, "dash:admin" if user.role == "admin" else "dash:home")
    async with sessionmaker(request).begin() as s:
        school = await schools.get_school(s, user.school_id)
    if school is None:
        return redirect(request, "dash:home")
    return redirect(request, "dash:school", slug=school.slug)


def routes() -> list[tuple[str, str, Any, str]]:
    return [
        ("GET", "/dashboard", root, "dash:root"),
        ("GET", "/dashboard/home", home, "dash:home"),
        ("GET", "/dashboard/cycles", my_cycles, "dash:my_cycles"),
        ("GET", "/dashboard/certification/mine", my_certification, "dash:my_certification"),
    ]
