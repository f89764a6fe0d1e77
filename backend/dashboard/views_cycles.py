"""A school's cycles, opening and closing them, invites with links and QR codes, live rates."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import segno
from aiohttp import web

from backend import keys
from backend.cli import invite_links, public_base
from backend.dashboard.queries import cycle_by_name, get_invite, response_rates
from backend.dashboard.web import (
    R_SCHOOL,
    cycle_for,
    flash,
    hides_raw,
    redirect,
    render,
    require_write,
    school_for,
    sessionmaker,
    user_of,
    writable_cycle,
)
from conversations.model import load_model
from conversations.roles import ROLE_LABELS, ROLES, Role
from storage import repo
from storage.models import Cycle, Invite

MAX_INVITES_AT_ONCE = 500


def _parse_date(value: Any, *, end: bool = False) -> datetime | None:
    text = str(value or "").strip()
    if not text:
        return None
    d = date.fromisoformat(text)  # ValueError on nonsense
    return datetime.combine(d, time.max if end else time.min, tzinfo=UTC)


def _int(value: Any, lo: int, hi: int) -> int | None:
    text = str(value or "").strip()
    if not text:
        return None
    n = int(text)
    if not lo <= n <= hi:
        raise ValueError(f"{n} is not between {lo} and {hi}")
    return n


def model_versions(cycles: list[Cycle]) -> list[str]:
    """The model versions a new cycle may use, the default first: the newest cycle's
    (carried forward, so that a repeat cycle compares like with like), then the current."""
    current = load_model().version
    carried = cycles[0].model_version if cycles else current
    return list(dict.fromkeys([carried, current]))


async def school_page(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        school = await school_for(request, s, request.match_info["slug"])
        cycles = await repo.list_cycles(s, school.id)
    request[R_SCHOOL] = school.slug
    versions = model_versions(cycles)
    return render(
        request,
        "dashboard/school.html",
        {
            "school": school,
            "cycles": cycles,
            "roles": [(r.value, ROLE_LABELS[r]) for r in ROLES],
            "model_version": versions[0],
            "model_versions": versions,
        },
    )


async def cycle_create(request: web.Request) -> web.Response:
    form = await request.post()
    async with sessionmaker(request).begin() as s:
        school = await school_for(request, s, request.match_info["slug"])
        require_write(request, school.id)
        name = str(form.get("name", "")).strip()
        try:
            if not name or len(name) > 100:
                raise ValueError("give the cycle a name of up to 100 characters, e.g. 2026/27")
            opens = _parse_date(form.get("opens_at"))
            closes = _parse_date(form.get("closes_at"), end=True)
            if opens and closes and closes <= opens:
                raise ValueError("the closing date must come after the opening date")
            targets = {}
            for role in ROLES:
                n = _int(form.get(f"target_{role.value}"), 0, 100_000)
                if n:
                    targets[role.value] = n
            versions = model_versions(await repo.list_cycles(s, school.id))
            version = str(form.get("model_version", "") or versions[0])
            if version not in versions:
                raise ValueError(f"the model version is one of {', '.join(versions)}")
        except ValueError as exc:
            flash(request, f"Cycle not created: {exc}.", "error")
            return redirect(request, "dash:school", slug=school.slug)
        if await cycle_by_name(s, school.id, name) is not None:
            flash(request, f"There is a cycle named {name} already.", "error")
            return redirect(request, "dash:school", slug=school.slug)
        cycle = await repo.create_cycle(
            s,
            school.id,
            name,
            version,
            targets=targets,
            status="draft",
            opens_at=opens,
            closes_at=closes,
        )
    flash(request, f"Cycle {name} created as a draft: open it when invites are ready.", "ok")
    return redirect(request, "dash:cycle", cycle_id=cycle.id)


async def cycle_status(request: web.Request) -> web.Response:
    form = await request.post()
    status = str(form.get("status", ""))
    if status not in ("open", "closed"):
        raise web.HTTPBadRequest(text="status is open or closed")
    async with sessionmaker(request).begin() as s:
        cycle = await writable_cycle(request, s)
        await repo.set_cycle_status(s, cycle.id, status)
    flash(request, f"Cycle {cycle.name} is {status} now.", "ok")
    return redirect(request, "dash:cycle", cycle_id=cycle.id)


async def cycle_announcement(request: web.Request) -> web.Response:
    """The cycle's one announcement to the respondents who opted in (sent by the scheduler)."""
    from backend.reminders import AnnouncementRefused, create_announcement

    form = await request.post()
    text = str(form.get("text", ""))
    user = user_of(request)
    try:
        async with sessionmaker(request).begin() as s:
            cycle = await writable_cycle(request, s)
            reach = await create_announcement(s, cycle.id, text, created_by=user.id)
    except AnnouncementRefused as exc:
        flash(request, f"Not sent: {exc}.", "error")
        return redirect(request, "dash:cycle", cycle_id=request.match_info["cycle_id"])
    flash(request, f"Announcement saved: it goes to {reach} respondent(s) who opted in.", "ok")
    return redirect(request, "dash:cycle", cycle_id=cycle.id)


# --- invites -------------------------------------------------------------------------


def _links(request: web.Request, invite: Invite) -> dict[str, str | None]:
    settings = request.app[keys.SETTINGS]
    return invite_links(
        invite.code, username=request.app[keys.BOT_USERNAME], base=public_base(settings)
    )


async def _invites_cycle(request: web.Request, s: Any) -> Cycle:
    """The cycle, if the user may see its invites: a peer reviewer of another school may not
    (an invite code lets anyone answer as one of that school's respondents)."""
    cycle = await cycle_for(request, s, request.match_info["cycle_id"])
    if hides_raw(request, cycle.school_id):
        raise web.HTTPNotFound()
    return cycle


def _invite_state(invite: Invite, now: datetime) -> str:
    if invite.revoked_at is not None:
        return "revoked"
    if invite.expires_at is not None and now >= invite.expires_at:
        return "expired"
    if invite.max_uses is not None and invite.uses >= invite.max_uses:
        return "used up"
    return "active"


async def _invite_rows(request: web.Request, s: Any, cycle: Cycle, **kw: Any) -> list[dict]:
    now = datetime.now(UTC)
    rows = []
    for inv in await repo.list_invites(s, cycle.id, **kw):
        rows.append(
            {
                "invite": inv,
                "label": ROLE_LABELS[Role(inv.role)],
                "state": _invite_state(inv, now),
                **_links(request, inv),
            }
        )
    return rows


async def invites_page(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        cycle = await _invites_cycle(request, s)
        school = await repo.get_school(s, cycle.school_id)
        rows = await _invite_rows(request, s, cycle)
    request[R_SCHOOL] = school.slug
    return render(
        request,
        "dashboard/invites.html",
        {
            "school": school,
            "cycle": cycle,
            "rows": rows,
            "roles": [(r.value, ROLE_LABELS[r]) for r in ROLES],
        },
    )


async def invites_create(request: web.Request) -> web.Response:
    form = await request.post()
    async with sessionmaker(request).begin() as s:
        cycle = await writable_cycle(request, s)
        try:
            role = Role(str(form.get("role", ""))).value
            count = _int(form.get("count"), 1, MAX_INVITES_AT_ONCE) or 1
            kind = str(form.get("kind", "single"))
            if kind == "single":
                max_uses: int | None = 1
            else:
                max_uses = _int(form.get("max_uses"), 1, 100_000)  # empty: unlimited
            days = _int(form.get("days"), 1, 730)
            label = str(form.get("label", "")).strip()[:200] or None
        except ValueError as exc:
            flash(request, f"No invites made: {exc}.", "error")
            return redirect(request, "dash:invites", cycle_id=cycle.id)
        expires = datetime.now(UTC) + timedelta(days=days) if days else None
        made = await repo.create_invites(
            s, cycle.id, role, count=count, max_uses=max_uses, expires_at=expires, label=label
        )
    flash(request, f"{len(made)} invite(s) for {ROLE_LABELS[Role(role)]} created.", "ok")
    return redirect(request, "dash:invites", cycle_id=cycle.id)


async def invite_revoke(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        cycle = await writable_cycle(request, s)
        invite = await get_invite(s, cycle.id, int(request.match_info["invite_id"]))
        if invite is None:
            raise web.HTTPNotFound()
        await repo.revoke_invite(s, invite.id, cycle_id=cycle.id)
    flash(request, f"Invite {invite.code} revoked: it no longer lets anyone in.", "ok")
    return redirect(request, "dash:invites", cycle_id=cycle.id)


async def invites_print(request: web.Request) -> web.Response:
    role = request.query.get("role") or None
    async with sessionmaker(request).begin() as s:
        cycle = await _invites_cycle(request, s)
        school = await repo.get_school(s, cycle.school_id)
        rows = [
            r
            for r in await _invite_rows(request, s, cycle, include_revoked=False)
            if r["state"] == "active" and (role is None or r["invite"].role == role)
        ]
    return render(request, "dashboard/print.html", {"school": school, "cycle": cycle, "rows": rows})


async def _qr(request: web.Request) -> segno.QRCode:
    async with sessionmaker(request).begin() as s:
        cycle = await _invites_cycle(request, s)
        invite = await get_invite(s, cycle.id, int(request.match_info["invite_id"]))
    if invite is None:
        raise web.HTTPNotFound()
    links = _links(request, invite)
    target = links["telegram_link"] if request.query.get("link") == "telegram" else None
    return segno.make(target or links["web_link"], error="m")


async def qr_png(request: web.Request) -> web.Response:
    buf = io.BytesIO()
    (await _qr(request)).save(buf, kind="png", scale=8, border=2)
    return web.Response(
        body=buf.getvalue(), content_type="image/png", headers={"Cache-Control": "private"}
    )


async def qr_svg(request: web.Request) -> web.Response:
    buf = io.BytesIO()
    (await _qr(request)).save(buf, kind="svg", scale=4, border=2, xmldecl=False)
    return web.Response(
        body=buf.getvalue(), content_type="image/svg+xml", headers={"Cache-Control": "private"}
    )


# --- live response rates ---------------------------------------------------------------


async def rates_json(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        cycle = await cycle_for(request, s, request.match_info["cycle_id"])
        rates = await response_rates(s, cycle)
    return web.json_response(
        {
            "cycle": cycle.id,
            "status": cycle.status,
            "started": sum(r.started for r in rates),
            "completed": sum(r.completed for r in rates),
            "roles": [r.as_json() for r in rates],
        },
        headers={"Cache-Control": "no-store"},
    )


def routes() -> list[tuple[str, str, Any, str]]:
    c = "/dashboard/cycles/{cycle_id:\\d+}"
    i = c + "/invites/{invite_id:\\d+}"
    return [
        ("GET", "/dashboard/schools/{slug}", school_page, "dash:school"),
        ("POST", "/dashboard/schools/{slug}/cycles", cycle_create, "dash:cycle_create"),
        ("POST", c + "/status", cycle_status, "dash:cycle_status"),
        ("POST", c + "/announcement", cycle_announcement, "dash:cycle_announcement"),
        ("GET", c + "/invites", invites_page, "dash:invites"),
        ("POST", c + "/invites", invites_create, "dash:invites_create"),
        ("GET", c + "/invites/print", invites_print, "dash:invites_print"),
        ("POST", i + "/revoke", invite_revoke, "dash:invite_revoke"),
        ("GET", i + "/qr.png", qr_png, "dash:qr_png"),
        ("GET", i + "/qr.svg", qr_svg, "dash:qr_svg"),
        ("GET", c + "/rates.json", rates_json, "dash:rates_json"),
    ]
