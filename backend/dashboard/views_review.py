"""A school in a round: the assessor's review, the board's side by side and decision, the
audit trail; the school's own side (submit, answer evidence requests, see the decision);
the certificate and its public verification page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from backend.certification import notices, service
from backend.certification.service import Refused
from backend.dashboard import evidence as ev
from backend.dashboard.views_agency import (
    _date,
    _int,
    _reader,
    _refused_http,
    _round,
    table_download,
)
from backend.dashboard.web import (
    CSP,
    _,
    flash,
    redirect,
    render,
    school_for,
    sessionmaker,
    texts_of,
    user_of,
)
from backend.i18n import texts
from backend.reporting import releases
from backend.web import keys
from conversations.model import load_model
from storage import certification as store
from storage import evidence_files, schools
from storage.models import CertRound


async def _round_and_school(request: web.Request, s: Any):
    """The reader, the round and the school of the URL: 404 unless the reader may review it."""
    who = await _reader(request, s)
    rnd = await _round(request, s, who)
    sid = _int(request.match_info.get("school_id"))
    if sid is None or not await service.reviewable(s, who, rnd, sid):
        raise web.HTTPNotFound()
    return who, rnd, await schools.get_school(s, sid)


def _flash_refusal(request: web.Request, exc: Refused) -> None:
    if not exc.shown:
        raise _refused_http(request, exc)
    flash(request, _(request, exc.message, **exc.params), "error")


# --- the review page -----------------------------------------------------------------------


async def review_page(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        who, rnd, school = await _round_and_school(request, s)
        is_board = who.boards(rnd.agency_id)
        versions = await store.list_submissions(s, rnd.id, school.id)
        assignments = await store.list_assignments(s, rnd.id, school.id)
        if not is_board:
            assignments = [(a, u) for a, u in assignments if a.assessor_id == who.user.id]
        ratings = await store.review_ratings(s, [a.id for a, _u in assignments])
        requests = await store.list_requests(s, rnd.id, school.id)
        decisions = [
            d for d in await store.decisions_of_school(s, school.id) if d.round_id == rnd.id
        ]
    snap = service.load_snapshot(versions[0]) if versions else None
    tx = texts_of(request)
    statements = {p.indicator.key: p.indicator.text for p in tx.model.placed()}
    mine = ratings[assignments[0][0].id] if (assignments and not is_board) else {}
    pair = None
    if is_board and snap and len(assignments) >= 2:
        (a1, u1), (a2, u2) = assignments[0], assignments[1]
        rows, kappa, n = service.side_by_side(snap, ratings[a1.id], ratings[a2.id])
        pair = {"a": u1.email, "b": u2.email, "rows": rows, "kappa": kappa, "n": n}
    evidence: dict[str, list[dict[str, Any]]] = {}
    for e in (snap or {}).get("evidence", []):
        evidence.setdefault(e["indicator_key"], []).append(e)
    by_key: dict[str, list[Any]] = {}
    for r in requests:
        by_key.setdefault(r.indicator_key, []).append(r)
    report = snap["report"] if snap else None
    shown_roles = []
    if report:
        shown_roles = [
            role
            for role in report["roles"]
            if any(i["roles"][role]["mean"] is not None for i in report["indicators"])
        ]
    return render(
        request,
        "dashboard/review.html",
        {
            "round": rnd,
            "school_": school,
            "is_board": is_board,
            "versions": versions,
            "snap": snap,
            "indicators": service.rateable(snap) if snap else [],
            "numbers": [i for i in report["indicators"] if i["kind"] == "NUMBER"] if report else [],
            "statements": statements,
            "mine": mine,
            "assignments": assignments,
            "progress": [(u.email, *service.progress(snap, ratings[a.id])) for a, u in assignments]
            if snap
            else [],
            "pair": pair,
            "evidence": evidence,
            "requests": by_key,
            "all_requests": requests,
            "decisions": decisions,
            "shown_roles": shown_roles,
            "min_pairs": service.MIN_PAIRS,
            "today": datetime.now(UTC).date(),
        },
    )


async def review_evidence(request: web.Request) -> web.Response:
    """An evidence file as it was frozen with the school's submission to the round, for the
    round agency's board, an assessor assigned to the school and the school's coordinator
    (`service.reads_submission`); not found for anyone else. The bytes are the submitted
    ones (checked against the SHA-256 the submission's hash covers), whatever the school
    did to the item since."""
    rid = _int(request.match_info.get("round_id"))
    sid = _int(request.match_info.get("school_id"))
    eid = _int(request.match_info.get("evidence_id"))
    async with sessionmaker(request).begin() as s:
        who = await _reader(request, s)
        rnd = await store.get_round(s, rid) if rid is not None else None
        if rnd is None or sid is None or eid is None:
            raise web.HTTPNotFound()
        if not await service.reads_submission(s, who, rnd, sid):
            raise web.HTTPNotFound()
        versions = await store.list_submissions(s, rnd.id, sid)
    entry = service.frozen_file(versions, eid)
    if entry is None:
        raise web.HTTPNotFound()
    body = evidence_files.read_frozen(request.app[keys.SETTINGS].data_dir, entry["sha256"])
    if body is None:
        raise web.HTTPNotFound(text=_(request, "The file is missing from the evidence store."))
    return web.Response(
        body=body, headers=ev.download_headers(entry.get("filename"), entry.get("content_type"))
    )


async def _latest_snapshot(s: Any, rnd: CertRound, school_id: int) -> dict[str, Any]:
    versions = await store.list_submissions(s, rnd.id, school_id)
    if not versions:
        raise web.HTTPNotFound()
    return service.load_snapshot(versions[0])


# An assessor's step on one indicator: (session, reader, round, school id, the submission's
# snapshot, indicator key, form) -> the line to flash.
IndicatorStep = Callable[[Any, Any, CertRound, int, dict[str, Any], str, Any], Awaitable[str]]


async def _on_indicator(request: web.Request, act: IndicatorStep) -> web.Response:
    """An assessor's step on one indicator of the school's latest submission: `act` does it
    and says what to flash; a refusal is flashed instead. Back to the indicator's card."""
    form = await request.post()
    key = request.match_info["key"]
    async with sessionmaker(request).begin() as s:
        who, rnd, school = await _round_and_school(request, s)
        snap = await _latest_snapshot(s, rnd, school.id)
        try:
            done = await act(s, who, rnd, school.id, snap, key, form)
        except Refused as exc:
            _flash_refusal(request, exc)
        else:
            flash(request, done, "ok")
    return redirect(
        request, "dash:review", anchor=f"#ind-{key}", round_id=rnd.id, school_id=school.id
    )


async def review_rate(request: web.Request) -> web.Response:
    async def act(
        s: Any, who: Any, rnd: CertRound, school_id: int, snap: dict[str, Any], key: str, form: Any
    ) -> str:
        await service.rate(
            s,
            who,
            rnd,
            school_id,
            snap,
            key,
            str(form.get("verdict", "")) == "agree",
            _int(form.get("value")),
            str(form.get("reason", "")),
        )
        return _(request, "Your review of %(id)s is saved.", id=key)

    return await _on_indicator(request, act)


async def review_ask(request: web.Request) -> web.Response:
    async def act(
        s: Any, who: Any, rnd: CertRound, school_id: int, snap: dict[str, Any], key: str, form: Any
    ) -> str:
        if key not in {i["key"] for i in snap["report"]["indicators"]}:
            raise web.HTTPNotFound()
        await service.ask(s, who, rnd, school_id, key, str(form.get("question", "")))
        return _(request, "Your request is sent to the school.")

    return await _on_indicator(request, act)


async def review_decide(request: web.Request) -> web.Response:
    form = await request.post()
    notifier = request.app[keys.NOTIFIER]
    async with sessionmaker(request).begin() as s:
        who, rnd, school = await _round_and_school(request, s)
        try:
            await service.decide(
                s,
                who,
                rnd,
                school.id,
                str(form.get("outcome", "")),
                str(form.get("conditions", "")),
                _date(form.get("valid_from")),
                _date(form.get("valid_until")),
                mail=notifier,
            )
        except Refused as exc:
            _flash_refusal(request, exc)
        else:
            flash(request, _(request, "The decision is recorded; the school sees it."), "ok")
    notifier.kick()  # after the commit, in the background: the mail server never holds it up
    return redirect(
        request, "dash:review", anchor="#decision", round_id=rnd.id, school_id=school.id
    )


async def review_revoke(request: web.Request) -> web.Response:
    notifier = request.app[keys.NOTIFIER]
    async with sessionmaker(request).begin() as s:
        who, rnd, school = await _round_and_school(request, s)
        try:
            await service.revoke(s, who, rnd, school.id, mail=notifier)
        except Refused as exc:
            _flash_refusal(request, exc)
        else:
            flash(
                request,
                _(request, "The certificate is revoked: its verification page says so."),
                "ok",
            )
    notifier.kick()
    return redirect(
        request, "dash:review", anchor="#decision", round_id=rnd.id, school_id=school.id
    )


# --- the audit trail -------------------------------------------------------------------------


def audit_value(tx: Any, key: str, value: Any) -> str:
    """One detail of an audit row in the reader's words (as the audit page shows it)."""
    if isinstance(value, bool):
        return tx.label("yes no", str(value))
    kinds = {"outcome": "outcome", "kind": "round kind", "role": "user role"}
    if key in kinds:
        return tx.label(kinds[key], value)
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def _audit_rows(request: web.Request, events: list[Any], names: dict[int, Any]) -> list[list[Any]]:
    head = [
        _(request, "When"),
        _(request, "Who"),
        _(request, "What"),
        _(request, "School"),
        _(request, "Details"),
    ]
    rows: list[list[Any]] = [head]
    for e in events:
        school = names.get(e.school_id)
        tx = texts_of(request)
        detail = "; ".join(
            f"{tx.label('audit field', k)}: {audit_value(tx, k, v)}"
            for k, v in sorted(e.detail.items())
            if v is not None
        )
        rows.append(
            [
                e.at.isoformat(timespec="seconds"),
                e.actor,
                tx.label("audit action", e.action),
                school.name if school else "",
                detail,
            ]
        )
    return rows


async def audit_page(request: web.Request) -> web.Response:
    fmt = request.match_info.get("fmt")
    async with sessionmaker(request).begin() as s:
        who = await _reader(request, s)
        rnd = await _round(request, s, who)
        if not who.boards(rnd.agency_id):
            raise web.HTTPNotFound()
        events = await store.audit_events(s, rnd.agency_id, rnd.id)
        names = await store.schools_by_id(s, sorted({e.school_id for e in events if e.school_id}))
    if fmt:
        rows = _audit_rows(request, events, names)
        return await table_download(
            request, f"round-{rnd.id}-audit", fmt, _(request, "Audit trail"), rows
        )
    return render(request, "dashboard/audit.html", {"round": rnd, "events": events, "names": names})


# --- the school's side ---------------------------------------------------------------------


async def school_certification(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        school = await school_for(request, s, request.match_info["slug"])
        who = await _reader(request, s)
        can_write = who.coordinates(school.id)
        open_rounds = await store.open_rounds_for_school(s, school.id)
        rounds = await store.rounds_of_school(s, school.id)
        seen = {r.id for r in rounds}
        rounds += [r for r in open_rounds if r.id not in seen]
        agencies = {a.id: a for a in await store.list_agencies(s)}
        cycles = await schools.list_cycles(s, school.id)
        versions = {r.id: await store.list_submissions(s, r.id, school.id) for r in rounds}
        requests = await store.list_requests(s, school_id=school.id)
        decisions = await store.decisions_of_school(s, school.id)
        deadline_notices = await notices.deadline_notices(
            s, school.id, datetime.now(UTC).date(), notice_horizon(request)
        )
    latest = {}
    for d in reversed(decisions):
        latest[d.round_id] = d
    return render(
        request,
        "dashboard/school_certification.html",
        {
            "school": school,
            "school_slug": school.slug,
            "can_write": can_write,
            "rounds": rounds,
            "open_ids": {r.id for r in open_rounds},
            "agencies": agencies,
            "cycles": cycles,
            "versions": versions,
            "requests": requests,
            "decisions": latest,
            "states": {rid: service.certificate_state(d) for rid, d in latest.items()},
            "deadline_notices": deadline_notices,
        },
    )


def notice_horizon(request: web.Request) -> int:
    """How many days before a deadline the school's pages start to count them down: from
    the first reminder (DEADLINE_REMINDER_DAYS), 14 without reminders."""
    return max(request.app[keys.SETTINGS].deadline_days, default=14)


async def school_submit(request: web.Request) -> web.Response:
    form = await request.post()
    slug = request.match_info["slug"]
    round_id = _int(form.get("round_id"))
    cycle_id = _int(form.get("cycle_id"))
    async with sessionmaker(request).begin() as s:
        school = await school_for(request, s, slug)
        cycle = await schools.get_cycle(s, cycle_id) if cycle_id is not None else None
        rnd = await store.get_round(s, round_id) if round_id is not None else None
    if cycle is None or cycle.school_id != school.id or rnd is None:
        flash(request, _(request, "Choose a round and one of the school's cycles."), "error")
        return redirect(request, "dash:school_certification", slug=slug)
    # The figures as the newest release gives them, like every other reader's.
    await releases.refresh(sessionmaker(request), [cycle.id])
    async with sessionmaker(request).begin() as s:
        who = await _reader(request, s)
        try:
            data_dir = request.app[keys.SETTINGS].data_dir
            sub = await service.submit(s, who, rnd, cycle, load_model(), data_dir)
        except Refused as exc:
            _flash_refusal(request, exc)
            return redirect(request, "dash:school_certification", slug=slug)
    flash(
        request,
        _(
            request,
            "Submitted to %(round)s as version %(version)s. It is frozen: a change needs a new submission.",
            round=rnd.name,
            version=sub.version,
        ),
        "ok",
    )
    return redirect(request, "dash:school_certification", slug=slug)


async def school_answer(request: web.Request) -> web.Response:
    form = await request.post()
    slug = request.match_info["slug"]
    async with sessionmaker(request).begin() as s:
        school = await school_for(request, s, slug)
        rid = _int(request.match_info.get("request_id"))
        req = await store.get_request(s, rid) if rid is not None else None
        if req is None or req.school_id != school.id:
            raise web.HTTPNotFound()
        who = await _reader(request, s)
        try:
            await service.answer(s, who, req, str(form.get("answer", "")))
        except Refused as exc:
            _flash_refusal(request, exc)
        else:
            flash(request, _(request, "Your answer is sent to the assessors."), "ok")
    return redirect(request, "dash:school_certification", anchor=f"#request-{rid}", slug=slug)


# --- the certificate -------------------------------------------------------------------------


def verify_url(request: web.Request, token: str) -> str:
    path = str(request.app.router["dash:verify"].url_for(token=token))
    settings = request.app[keys.SETTINGS]
    base = settings.public_url or f"{request.scheme}://{request.host}"
    return base.rstrip("/") + path


async def certificate_pdf(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        user = user_of(request)
        who = await _reader(request, s)
        rid = _int(request.match_info.get("round_id"))
        sid = _int(request.match_info.get("school_id"))
        rnd = await store.get_round(s, rid) if rid is not None else None
        if rnd is None or sid is None:
            raise web.HTTPNotFound()
        if not (
            who.boards(rnd.agency_id) or (user.role == "coordinator" and user.school_id == sid)
        ):
            raise web.HTTPNotFound()
        decision = (await store.latest_decisions(s, rnd.id)).get(sid)
        if decision is None or decision.outcome == "not_yet":
            raise web.HTTPNotFound()
        school = await schools.get_school(s, sid)
        agency = await store.get_agency(s, rnd.agency_id)
    from backend.reporting.exports.certificate import certificate_pdf as make  # fpdf, segno

    langs = [lang for lang in dict.fromkeys([*(school.languages or []), "en"])][:2]
    body = make(
        [texts(lang) for lang in langs],
        school=school.name,
        agency=agency.name,
        round_name=rnd.name,
        kind=rnd.kind,
        outcome=decision.outcome,
        conditions=decision.conditions,
        valid_from=decision.valid_from,
        valid_until=decision.valid_until,
        url=verify_url(request, decision.token),
    )
    return web.Response(
        body=body,
        headers={
            "Content-Type": "application/pdf",
            "Content-Disposition": f'inline; filename="certificate-{school.slug}.pdf"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def verify_page(request: web.Request) -> web.Response:
    """Public: the school, the level, the validity and the round of a certificate; nothing
    else."""
    token = request.match_info["token"]
    found = None
    if 20 <= len(token) <= 43 and token.isascii():
        async with sessionmaker(request).begin() as s:
            decision = await store.decision_by_token(s, token)
            if decision is not None:
                school = await schools.get_school(s, decision.school_id)
                rnd = await store.get_round(s, decision.round_id)
                found = {
                    "school": school.name if school else "",
                    "outcome": decision.outcome,
                    "valid_from": decision.valid_from,
                    "valid_until": decision.valid_until,
                    "round": rnd.name if rnd else "",
                    "kind": rnd.kind if rnd else "",
                    "state": service.certificate_state(decision),
                }
    response = render(
        request, "dashboard/verify.html", {"found": found}, status=200 if found else 404
    )
    response.headers["Content-Security-Policy"] = CSP
    return response


def routes() -> list[tuple[str, str, Any, str]]:
    r = "/dashboard/rounds/{round_id:\\d+}"
    sch = r + "/schools/{school_id:\\d+}"
    c = "/dashboard/schools/{slug}/certification"
    return [
        ("GET", sch, review_page, "dash:review"),
        ("POST", sch + "/indicators/{key}/rating", review_rate, "dash:review_rate"),
        ("POST", sch + "/indicators/{key}/request", review_ask, "dash:review_ask"),
        ("POST", sch + "/decision", review_decide, "dash:review_decide"),
        ("POST", sch + "/revoke", review_revoke, "dash:review_revoke"),
        ("GET", sch + "/certificate.pdf", certificate_pdf, "dash:certificate"),
        ("GET", sch + "/evidence/{evidence_id:\\d+}", review_evidence, "dash:review_evidence"),
        ("GET", r + "/audit", audit_page, "dash:audit"),
        ("GET", r + "/audit.{fmt:csv|xlsx}", audit_page, "dash:audit_export"),
        ("GET", c, school_certification, "dash:school_certification"),
        ("POST", c + "/submit", school_submit, "dash:school_submit"),
        ("POST", c + "/requests/{request_id:\\d+}/answer", school_answer, "dash:school_answer"),
        ("GET", "/verify/{token}", verify_page, "dash:verify"),
    ]
