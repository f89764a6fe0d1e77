"""Certification and accreditation pages: agencies (admin), rounds (board), reviews
(assessors), the school's side (coordinator) and the public verification page.

Thin: each view loads, calls `backend.certification.service`, and renders; what a reader
may reach is decided there (`service.Reader`), a `Refused` step becomes 404/403 or a
flash.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from backend.certification import service
from backend.certification.service import Refused
from backend.dashboard.passwords import PasswordRefused, hash_password
from backend.dashboard.views_account import refusal
from backend.dashboard.web import (
    _,
    flash,
    redirect,
    render,
    require_admin,
    sessionmaker,
    texts_of,
    user_of,
)
from storage import certification as store
from storage import schools
from storage.models import CertRound

log = logging.getLogger(__name__)

MAX_NAME = 200


def _int(raw: Any) -> int | None:
    text = str(raw or "").strip()
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        return None
    return int(text)


def _date(raw: Any) -> date | None:
    try:
        return date.fromisoformat(str(raw or "").strip())
    except ValueError:
        return None


def _refused_http(request: web.Request, exc: Refused) -> web.HTTPException:
    if exc.kind == "not_found":
        return web.HTTPNotFound()
    return web.HTTPForbidden(text=_(request, exc.message, **exc.params))


async def _reader(request: web.Request, s: Any) -> service.Reader:
    return await service.reader(s, user_of(request))


async def _round(request: web.Request, s: Any, who: service.Reader) -> CertRound:
    rid = _int(request.match_info.get("round_id"))
    if rid is None:
        raise web.HTTPNotFound()
    try:
        return await service.round_for(s, who, rid)
    except Refused as exc:
        raise _refused_http(request, exc) from None


# --- admin: agencies and their people ------------------------------------------------------


async def admin_agencies(request: web.Request) -> web.Response:
    require_admin(request)
    async with sessionmaker(request).begin() as s:
        agencies = await store.list_agencies(s)
    return render(request, "dashboard/admin_agencies.html", {"agencies": agencies})


async def admin_agency_create(request: web.Request) -> web.Response:
    require_admin(request)
    form = await request.post()
    name = str(form.get("name", "")).strip()
    if not name or len(name) > MAX_NAME:
        flash(request, _(request, "An agency needs a name of up to 200 characters."), "error")
        return redirect(request, "dash:admin_agencies")
    async with sessionmaker(request).begin() as s:
        if await store.agency_by_name(s, name) is not None:
            flash(
                request, _(request, "An agency named %(name)s exists already.", name=name), "error"
            )
            return redirect(request, "dash:admin_agencies")
        agency = await store.create_agency(s, name)
        await store.audit(s, agency.id, user_of(request), "agency_created", detail={"name": name})
    flash(
        request,
        _(request, "Agency %(name)s created: add its board and assessors.", name=name),
        "ok",
    )
    return redirect(request, "dash:agency", agency_id=agency.id)


async def _agency(request: web.Request, s: Any, who: service.Reader) -> Any:
    aid = _int(request.match_info.get("agency_id"))
    agency = await store.get_agency(s, aid) if aid is not None else None
    if agency is None or not (who.boards(agency.id) or who.assesses_for(agency.id)):
        raise web.HTTPNotFound()
    return agency


async def agency_page(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        who = await _reader(request, s)
        agency = await _agency(request, s, who)
        if not who.boards(agency.id):
            raise web.HTTPNotFound()
        members = await store.list_members(s, agency.id)
        rounds = await store.list_rounds(s, agency.id)
        all_schools = await schools.list_schools(s)
    homes = {sch.id: sch for sch in all_schools}
    return render(
        request,
        "dashboard/agency.html",
        {
            "agency": agency,
            "members": members,
            "homes": homes,
            "rounds": rounds,
            "schools": all_schools,
            "can_admin": who.is_admin,
            "today": datetime.now(UTC).date(),
        },
    )


async def agency_member_add(request: web.Request) -> web.Response:
    """An admin creates a board member's or an assessor's account in the agency."""
    require_admin(request)
    form = await request.post()
    email = str(form.get("email", "")).strip()
    password = str(form.get("password", ""))
    role = str(form.get("role", ""))
    home_slug = str(form.get("home_school", "")).strip()
    aid = _int(request.match_info.get("agency_id"))
    if role not in store.MEMBER_ROLES or "@" not in email or len(email) > 254:
        flash(request, _(request, "Give a valid e-mail and role."), "error")
        return redirect(request, "dash:agency", agency_id=aid)
    try:
        pw_hash = await asyncio.get_running_loop().run_in_executor(
            None, hash_password, password, email
        )
    except PasswordRefused as exc:
        flash(request, refusal(request, exc), "error")
        return redirect(request, "dash:agency", agency_id=aid)
    async with sessionmaker(request).begin() as s:
        who = await _reader(request, s)
        agency = await _agency(request, s, who)
        home = None
        if home_slug:
            home = await schools.get_school_by_slug(s, home_slug)
            if home is None:
                raise web.HTTPBadRequest()
        if await schools.get_user_by_email(s, email) is not None:
            flash(request, _(request, "A user with that e-mail exists already."), "error")
            return redirect(request, "dash:agency", agency_id=agency.id)
        user = await schools.create_user(s, None, email, pw_hash, role)
        await store.add_member(s, agency.id, user.id, role, home.id if home else None)
        await store.audit(
            s,
            agency.id,
            who.user,
            "member_added",
            detail={"email": user.email, "role": role, "home_school": home.slug if home else None},
        )
    words = {
        "board": _(request, "Board member %(email)s added.", email=email),
        "assessor": _(request, "Assessor %(email)s added.", email=email),
    }
    flash(request, words[role], "ok")
    return redirect(request, "dash:agency", agency_id=agency.id)


async def round_create(request: web.Request) -> web.Response:
    form = await request.post()
    name = str(form.get("name", "")).strip()
    kind = str(form.get("kind", ""))
    deadline = _date(form.get("deadline"))
    exclude = form.get("exclude_cluster") == "1"
    slugs = [str(v) for v in form.getall("school", [])]
    async with sessionmaker(request).begin() as s:
        who = await _reader(request, s)
        agency = await _agency(request, s, who)
        if not who.boards(agency.id):
            raise web.HTTPForbidden(text=_(request, "Only the agency's board may do this."))
        error = ""
        if not name or len(name) > MAX_NAME:
            error = _(request, "A round needs a name of up to 200 characters.")
        elif kind not in store.ROUND_KINDS:
            error = _(request, "Choose certification or accreditation.")
        elif deadline is None:
            error = _(request, "Give the round's deadline.")
        elif await store.round_by_name(s, agency.id, name) is not None:
            error = _(request, "A round named %(name)s exists already.", name=name)
        school_ids = []
        for slug in slugs:
            sch = await schools.get_school_by_slug(s, slug)
            if sch is not None:
                school_ids.append(sch.id)
        if not error and kind == "accreditation" and not school_ids:
            error = _(request, "An accreditation round needs its list of schools.")
        if error:
            flash(request, error, "error")
            return redirect(request, "dash:agency", agency_id=agency.id)
        rnd = await store.create_round(
            s,
            agency.id,
            name,
            kind,
            deadline,
            exclude,
            school_ids if kind == "accreditation" else (),
        )
        await store.audit(
            s,
            agency.id,
            who.user,
            "round_created",
            round_id=rnd.id,
            detail={
                "name": name,
                "kind": kind,
                "deadline": deadline.isoformat(),
                "exclude_cluster": exclude,
                "schools": slugs if kind == "accreditation" else [],
            },
        )
    flash(request, _(request, "Round %(name)s opened.", name=name), "ok")
    return redirect(request, "dash:round", round_id=rnd.id)


# --- the board's and the assessors' home -------------------------------------------------


async def certification_home(request: web.Request) -> web.Response:
    """Where a board member or an assessor starts: their agency's rounds."""
    async with sessionmaker(request).begin() as s:
        who = await _reader(request, s)
        if who.is_admin:
            return redirect(request, "dash:admin_agencies")
        if who.member is None:
            school = await schools.get_school(s, who.user.school_id) if who.user.school_id else None
            if school is None:
                raise web.HTTPNotFound()
            return redirect(request, "dash:school_certification", slug=school.slug)
        agency = await store.get_agency(s, who.member.agency_id)
        rounds = await store.list_rounds(s, who.member.agency_id)
        if who.member.role == "assessor":
            mine = set(await store.assessor_round_ids(s, who.user.id))
            rounds = [r for r in rounds if r.id in mine]
    return render(
        request,
        "dashboard/certification.html",
        {"agency": agency, "rounds": rounds, "is_board": who.boards(agency.id)},
    )


# --- a round -------------------------------------------------------------------------------


async def _round_rows(s: Any, who: service.Reader, rnd: CertRound) -> list[dict[str, Any]]:
    """One row per school the reader may see: status, newest submission, assessors and
    their progress, the newest decision."""
    ids = await store.round_school_ids(s, rnd.id)
    subs = await store.latest_submissions(s, rnd.id)
    decisions = await store.latest_decisions(s, rnd.id)
    assignments = await store.list_assignments(s, rnd.id)
    if who.assesses_for(rnd.agency_id):
        assignments = [(a, u) for a, u in assignments if a.assessor_id == who.user.id]
        ids = [i for i in ids if any(a.school_id == i for a, _u in assignments)]
    elif not who.boards(rnd.agency_id):  # a school's user (the API): its own row, no assessors
        assignments = []
        ids = [i for i in ids if i == who.user.school_id]
    names = await store.schools_by_id(s, ids)
    ratings = await store.review_ratings(s, [a.id for a, _u in assignments])
    listed = set(await store.listed_school_ids(s, rnd.id))
    today = datetime.now(UTC).date()
    rows = []
    for sid in ids:
        sub = subs.get(sid)
        snap = service.load_snapshot(sub) if sub else None
        mine = [(a, u) for a, u in assignments if a.school_id == sid]
        assessors = []
        for a, u in mine:
            done, total = service.progress(snap, ratings[a.id]) if snap else (0, 0)
            assessors.append({"email": u.email, "done": done, "total": total, "id": u.id})
        rows.append(
            {
                "school": names[sid],
                "listed": sid in listed,
                "status": service.school_status(
                    submitted=sub is not None,
                    assigned=bool(mine),
                    decided=sid in decisions,
                    deadline=rnd.deadline,
                    today=today,
                ),
                "submission": sub,
                "assessors": assessors,
                "decision": decisions.get(sid),
            }
        )
    return rows


async def round_page(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        who = await _reader(request, s)
        rnd = await _round(request, s, who)
        agency = await store.get_agency(s, rnd.agency_id)
        rows = await _round_rows(s, who, rnd)
        is_board = who.boards(rnd.agency_id)
        assessors = []
        if is_board:
            assessors = [
                u for m, u in await store.list_members(s, rnd.agency_id) if m.role == "assessor"
            ]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return render(
        request,
        "dashboard/round.html",
        {
            "agency": agency,
            "round": rnd,
            "rows": rows,
            "is_board": is_board,
            "assessors": assessors,
            "counts": counts,
            "statuses": service.STATUSES,
        },
    )


async def round_assign(request: web.Request) -> web.Response:
    form = await request.post()
    async with sessionmaker(request).begin() as s:
        who = await _reader(request, s)
        rnd = await _round(request, s, who)
        school_id = _int(form.get("school_id"))
        assessor_id = _int(form.get("assessor_id"))
        if school_id is None or assessor_id is None:
            flash(request, _(request, "Choose one of the agency's assessors."), "error")
            return redirect(request, "dash:round", round_id=rnd.id)
        try:
            added = await service.assign(s, who, rnd, school_id, assessor_id)
        except Refused as exc:
            if not exc.shown:
                raise _refused_http(request, exc) from None
            flash(request, _(request, exc.message, **exc.params), "error")
            return redirect(request, "dash:round", round_id=rnd.id)
    if added:
        flash(request, _(request, "Assessor assigned."), "ok")
    else:
        flash(request, _(request, "This assessor is assigned to the school already."))
    return redirect(request, "dash:round", round_id=rnd.id)


def _export_rows(
    request: web.Request, rnd: CertRound, rows: list[dict[str, Any]]
) -> list[list[Any]]:
    tx = texts_of(request)
    head = [
        _(request, "School"),
        _(request, "Status"),
        _(request, "Deadline"),
        _(request, "Version"),
        _(request, "Submitted"),
        _(request, "SHA-256"),
        _(request, "Assessors"),
        _(request, "Decision"),
        _(request, "Valid until"),
    ]
    out: list[list[Any]] = [head]
    for r in rows:
        sub, dec = r["submission"], r["decision"]
        out.append(
            [
                r["school"].name,
                tx.label("school status", r["status"]),
                rnd.deadline.isoformat(),
                sub.version if sub else None,
                sub.submitted_at.isoformat(timespec="seconds") if sub else None,
                sub.content_hash if sub else None,
                "; ".join(f"{a['email']} ({a['done']}/{a['total']})" for a in r["assessors"]),
                tx.label("outcome", dec.outcome) if dec else None,
                dec.valid_until.isoformat() if dec and dec.valid_until else None,
            ]
        )
    return out


async def round_export(request: web.Request) -> web.Response:
    fmt = request.match_info["fmt"]
    async with sessionmaker(request).begin() as s:
        who = await _reader(request, s)
        rnd = await _round(request, s, who)
        if not who.boards(rnd.agency_id):
            raise web.HTTPNotFound()
        rows = _export_rows(request, rnd, await _round_rows(s, who, rnd))
    return await table_download(
        request, f"round-{rnd.id}-overview", fmt, _(request, "Overview"), rows
    )


async def table_download(
    request: web.Request, name: str, fmt: str, title: str, rows: list[list[Any]]
) -> web.Response:
    from backend.reporting import exports  # openpyxl: loaded with the first export

    if fmt == "csv":
        body = exports.table_csv(rows)
        ctype = "text/csv; charset=utf-8"
    else:
        body = await asyncio.get_running_loop().run_in_executor(
            None, exports.table_xlsx, title, rows
        )
        ctype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return web.Response(
        body=body,
        headers={
            "Content-Type": ctype,
            "Content-Disposition": f'attachment; filename="{name}.{fmt}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def routes() -> list[tuple[str, str, Any, str]]:
    r = "/dashboard/rounds/{round_id:\\d+}"
    return [
        ("GET", "/dashboard/admin/agencies", admin_agencies, "dash:admin_agencies"),
        ("POST", "/dashboard/admin/agencies", admin_agency_create, "dash:admin_agency_create"),
        ("GET", "/dashboard/agencies/{agency_id:\\d+}", agency_page, "dash:agency"),
        (
            "POST",
            "/dashboard/agencies/{agency_id:\\d+}/members",
            agency_member_add,
            "dash:agency_member_add",
        ),
        ("POST", "/dashboard/agencies/{agency_id:\\d+}/rounds", round_create, "dash:round_create"),
        ("GET", "/dashboard/certification", certification_home, "dash:certification"),
        ("GET", r, round_page, "dash:round"),
        ("POST", r + "/assign", round_assign, "dash:round_assign"),
        ("GET", r + "/overview.{fmt:csv|xlsx}", round_export, "dash:round_export"),
    ]
