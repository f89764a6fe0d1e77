"""A school's cycles, opening and closing them, invites with links and QR codes, live rates."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import segno
from aiohttp import web

from backend.dashboard.rates import response_rates
from backend.dashboard.web import (
    R_SCHOOL,
    _,
    cycle_for,
    flash,
    hides_raw,
    redirect,
    render,
    require_write,
    school_for,
    sessionmaker,
    texts_of,
    user_of,
    writable_cycle,
)
from backend.i18n import Texts, dashboard_languages, texts
from backend.web import keys
from backend.web.links import invite_links, public_base
from conversations import i18n as conv_i18n
from conversations.banks import count_text, question_range
from conversations.model import load_model
from conversations.roles import ROLES, Role
from storage import certification, responses, schools
from storage.models import Cycle, Invite
from storage.reminders import AnnouncementRefused, create_announcement
from storage.responses import get_invite
from storage.schools import cycle_by_name

MAX_INVITES_AT_ONCE = 500


def _parse_date(request: web.Request, value: Any, *, end: bool = False) -> datetime | None:
    text = str(value or "").strip()
    if not text:
        return None
    try:
        d = date.fromisoformat(text)
    except ValueError:
        raise ValueError(
            _(request, "%(given)s is not a date (YYYY-MM-DD)", given=repr(text))
        ) from None
    return datetime.combine(d, time.max if end else time.min, tzinfo=UTC)


def _int(request: web.Request, value: Any, lo: int, hi: int) -> int | None:
    """A whole number from a form field, None if empty; ValueError (in the reader's
    language) if it is not one or not between `lo` and `hi`."""
    text = str(value or "").strip()
    if not text:
        return None
    try:
        n = int(text)
    except ValueError:
        raise ValueError(_(request, "%(given)s is not a whole number", given=repr(text))) from None
    if not lo <= n <= hi:
        raise ValueError(_(request, "%(n)s is not between %(lo)s and %(hi)s", n=n, lo=lo, hi=hi))
    return n


def _roles(tx: Texts) -> list[tuple[str, str]]:
    """(slug, the model's name of the group in the reader's language) for every group."""
    return [(r.value, tx.role_name(r.value)) for r in ROLES]


def model_versions(cycles: list[Cycle]) -> list[str]:
    """The model versions a new cycle may use, the default first: the newest cycle's
    (carried forward, so that a repeat cycle compares like with like), then the current."""
    current = load_model().version
    carried = cycles[0].model_version if cycles else current
    return list(dict.fromkeys([carried, current]))


def next_cycle_name(cycles: list[Cycle], now: datetime) -> str:
    """A name for the next cycle, never one in use: the round after the newest "2026/27",
    else this school year's."""
    names = {c.name for c in cycles}
    year = now.year if now.month >= 8 else now.year - 1
    for c in cycles:
        m = re.fullmatch(r"(\d{4})/(\d{2})", c.name.strip())
        if m:
            year = max(year, int(m.group(1)) + 1)
            break
    while f"{year}/{(year + 1) % 100:02d}" in names:
        year += 1
    return f"{year}/{(year + 1) % 100:02d}"


async def school_page(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        school = await school_for(request, s, request.match_info["slug"])
        cycles = await schools.list_cycles(s, school.id)
        # The board's newest decision per round: the school is told here, on its dashboard.
        decided: dict[int, Any] = {}
        for d in await certification.decisions_of_school(s, school.id):
            decided.setdefault(d.round_id, d)
        rounds = {r.id: r for r in await certification.rounds_of_school(s, school.id)}
    request[R_SCHOOL] = school.slug
    versions = model_versions(cycles)
    return render(
        request,
        "dashboard/school.html",
        {
            "school": school,
            "cycles": cycles,
            "decisions": [(rounds[rid], d) for rid, d in decided.items() if rid in rounds],
            "roles": _roles(texts_of(request)),
            "model_version": versions[0],
            "model_versions": versions,
            "name_hint": next_cycle_name(cycles, datetime.now(UTC)),
            "survey_languages": [
                (code, conv_i18n.language_name(code)) for code in conv_i18n.available_languages()
            ],
        },
    )


async def school_languages(request: web.Request) -> web.Response:
    """The languages respondents may answer in; the first is where a survey starts.

    Takes effect for surveys started from now on (a started survey keeps its language)."""
    form = await request.post()
    available = conv_i18n.available_languages()
    chosen = [code for code in available if code in form.getall("lang", [])]
    first = str(form.get("first", ""))
    async with sessionmaker(request).begin() as s:
        school = await school_for(request, s, request.match_info["slug"])
        require_write(request, school.id)
        if not chosen:
            flash(request, _(request, "Choose at least one language."), "error")
        elif first not in chosen:
            flash(request, _(request, "The first language must be one of those chosen."), "error")
        else:
            school.languages = [first, *[code for code in chosen if code != first]]
            names = ", ".join(conv_i18n.language_name(code) for code in school.languages)
            flash(request, _(request, "Survey languages: %(languages)s.", languages=names), "ok")
    return redirect(request, "dash:school", slug=request.match_info["slug"], anchor="#languages")


async def cycle_create(request: web.Request) -> web.Response:
    form = await request.post()
    async with sessionmaker(request).begin() as s:
        school = await school_for(request, s, request.match_info["slug"])
        require_write(request, school.id)
        name = str(form.get("name", "")).strip()
        try:
            if not name or len(name) > 100:
                raise ValueError(
                    _(request, "give the cycle a name of up to 100 characters, e.g. 2026/27")
                )
            opens = _parse_date(request, form.get("opens_at"))
            closes = _parse_date(request, form.get("closes_at"), end=True)
            if opens and closes and closes <= opens:
                raise ValueError(_(request, "the closing date must come after the opening date"))
            targets = {}
            for role in ROLES:
                n = _int(request, form.get(f"target_{role.value}"), 0, 100_000)
                if n:
                    targets[role.value] = n
            versions = model_versions(await schools.list_cycles(s, school.id))
            version = str(form.get("model_version", "") or versions[0])
            if version not in versions:
                raise ValueError(
                    _(
                        request,
                        "the model version is one of %(versions)s",
                        versions=", ".join(versions),
                    )
                )
        except ValueError as exc:
            flash(request, _(request, "Cycle not created: %(reason)s.", reason=exc), "error")
            return redirect(request, "dash:school", slug=school.slug)
        if await cycle_by_name(s, school.id, name) is not None:
            flash(
                request, _(request, "There is a cycle named %(name)s already.", name=name), "error"
            )
            return redirect(request, "dash:school", slug=school.slug)
        cycle = await schools.create_cycle(
            s,
            school.id,
            name,
            version,
            targets=targets,
            status="draft",
            opens_at=opens,
            closes_at=closes,
        )
    flash(
        request,
        _(request, "Cycle %(name)s created as a draft: open it when invites are ready.", name=name),
        "ok",
    )
    return redirect(request, "dash:cycle", cycle_id=cycle.id)


async def cycle_close_page(request: web.Request) -> web.Response:
    """Closing a cycle asks first: what it ends (invites, unfinished surveys) and that it can
    be undone. A page, so that it works without JavaScript."""
    async with sessionmaker(request).begin() as s:
        cycle = await writable_cycle(request, s)
        school = await schools.get_school(s, cycle.school_id)
        rates = await response_rates(s, cycle)
    if cycle.status != "open":
        return redirect(request, "dash:cycle", cycle_id=cycle.id)
    request[R_SCHOOL] = school.slug
    return render(
        request,
        "dashboard/cycle_close.html",
        {
            "school": school,
            "cycle": cycle,
            "unfinished": sum(r.started - r.completed for r in rates),
            "completed": sum(r.completed for r in rates),
        },
    )


async def cycle_status(request: web.Request) -> web.Response:
    form = await request.post()
    status = str(form.get("status", ""))
    if status not in ("open", "closed"):
        raise web.HTTPBadRequest(text=_(request, "status is open or closed"))
    async with sessionmaker(request).begin() as s:
        cycle = await writable_cycle(request, s)
        if status == "closed" and form.get("confirm") != "yes":
            # Not from the confirmation page: ask there first.
            return redirect(request, "dash:cycle_close", cycle_id=cycle.id)
        await schools.set_cycle_status(s, cycle.id, status)
    if status == "open":
        done = _(request, "Cycle %(name)s is open now.", name=cycle.name)
    else:
        done = _(request, "Cycle %(name)s is closed now.", name=cycle.name)
    flash(request, done, "ok")
    return redirect(request, "dash:cycle", cycle_id=cycle.id)


async def cycle_announcement(request: web.Request) -> web.Response:
    """The cycle's one announcement to the respondents who opted in (sent by the scheduler)."""

    form = await request.post()
    text = str(form.get("text", ""))
    user = user_of(request)
    try:
        async with sessionmaker(request).begin() as s:
            cycle = await writable_cycle(request, s)
            reach = await create_announcement(s, cycle.id, text, created_by=user.id)
    except AnnouncementRefused as exc:
        flash(request, _(request, "Not sent: %(reason)s.", reason=exc), "error")
        return redirect(request, "dash:cycle", cycle_id=request.match_info["cycle_id"])
    flash(
        request,
        texts_of(request).ngettext(
            "Announcement saved: it goes to %(num)s respondent who opted in.",
            "Announcement saved: it goes to %(num)s respondents who opted in.",
            reach,
        ),
        "ok",
    )
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


async def _invite(request: web.Request, s: Any, cycle: Cycle) -> Invite:
    """The cycle's invite named in the URL, else 404."""
    invite = await get_invite(s, cycle.id, int(request.match_info["invite_id"]))
    if invite is None:
        raise web.HTTPNotFound()
    return invite


def survey_lengths(request: web.Request) -> dict[str, dict[str, Any]]:
    """Per group, what its own survey asks of a person: the bank's time estimate in minutes
    and its number of questions ("14–15" where routing changes it), as the consent card says."""
    return {
        bank.role.value: {"minutes": bank.minutes, "questions": count_text(*question_range(bank))}
        for bank in request.app[keys.SURVEY_ENGINE].banks.values()
    }


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
    for inv in await responses.list_invites(s, cycle.id, **kw):
        state = _invite_state(inv, now)
        rows.append(
            {
                "invite": inv,
                "state": state,
                **_links(request, inv),
            }
        )
    return rows


async def invites_page(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        cycle = await _invites_cycle(request, s)
        school = await schools.get_school(s, cycle.school_id)
        rows = await _invite_rows(request, s, cycle)
    request[R_SCHOOL] = school.slug
    return render(
        request,
        "dashboard/invites.html",
        {
            "school": school,
            "cycle": cycle,
            "rows": rows,
            "roles": _roles(texts_of(request)),
            "lengths": survey_lengths(request),
        },
    )


async def invites_create(request: web.Request) -> web.Response:
    form = await request.post()
    async with sessionmaker(request).begin() as s:
        cycle = await writable_cycle(request, s)
        try:
            try:
                role = Role(str(form.get("role", ""))).value
            except ValueError:
                raise ValueError(_(request, "choose the group the invites are for")) from None
            count = _int(request, form.get("count"), 1, MAX_INVITES_AT_ONCE) or 1
            kind = str(form.get("kind", "single"))
            if kind == "single":
                max_uses: int | None = 1
            else:
                max_uses = _int(request, form.get("max_uses"), 1, 100_000)  # empty: unlimited
            days = _int(request, form.get("days"), 1, 730)
            label = str(form.get("label", "")).strip()[:200] or None
        except ValueError as exc:
            flash(request, _(request, "No invites made: %(reason)s.", reason=exc), "error")
            return redirect(request, "dash:invites", cycle_id=cycle.id)
        expires = datetime.now(UTC) + timedelta(days=days) if days else None
        made = await responses.create_invites(
            s, cycle.id, role, count=count, max_uses=max_uses, expires_at=expires, label=label
        )
    tx = texts_of(request)
    flash(
        request,
        tx.ngettext(
            "%(num)s invite for %(group)s created.",
            "%(num)s invites for %(group)s created.",
            len(made),
            group=tx.role_name(role),
        ),
        "ok",
    )
    return redirect(request, "dash:invites", cycle_id=cycle.id)


async def invite_revoke(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        cycle = await writable_cycle(request, s)
        invite = await _invite(request, s, cycle)
        await responses.revoke_invite(s, invite.id, cycle_id=cycle.id)
    flash(
        request,
        _(request, "Invite %(code)s revoked: it no longer lets anyone in.", code=invite.code),
        "ok",
    )
    return redirect(request, "dash:invites", cycle_id=cycle.id)


async def invites_print(request: web.Request) -> web.Response:
    role = request.query.get("role") or None
    async with sessionmaker(request).begin() as s:
        cycle = await _invites_cycle(request, s)
        school = await schools.get_school(s, cycle.school_id)
        rows = [
            r
            for r in await _invite_rows(request, s, cycle, include_revoked=False)
            if r["state"] == "active" and (role is None or r["invite"].role == role)
        ]
    # The cards are for respondents: in one of the school's languages (`?lang=`, else the
    # one the coordinator reads the dashboard in if the school offers it, else its first).
    reader = texts_of(request).lang
    offered = [lang for lang in school.languages or [] if lang in dashboard_languages()]
    offered = offered or [reader]
    lang = request.query.get("lang")
    if lang not in offered:
        lang = reader if reader in offered else offered[0]
    tx = texts(lang)
    return render(
        request,
        "dashboard/print.html",
        {
            "school": school,
            "cycle": cycle,
            "rows": rows,
            "texts": tx,
            "lang": tx.lang,
            "card_languages": [(code, tx.language_name(code)) for code in offered],
            "role_filter": role,
            "lengths": survey_lengths(request),
        },
    )


async def _qr(request: web.Request) -> segno.QRCode:
    async with sessionmaker(request).begin() as s:
        invite = await _invite(request, s, await _invites_cycle(request, s))
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
        ("POST", "/dashboard/schools/{slug}/languages", school_languages, "dash:school_languages"),
        ("POST", c + "/status", cycle_status, "dash:cycle_status"),
        ("GET", c + "/close", cycle_close_page, "dash:cycle_close"),
        ("POST", c + "/announcement", cycle_announcement, "dash:cycle_announcement"),
        ("GET", c + "/invites", invites_page, "dash:invites"),
        ("POST", c + "/invites", invites_create, "dash:invites_create"),
        ("GET", c + "/invites/print", invites_print, "dash:invites_print"),
        ("POST", i + "/revoke", invite_revoke, "dash:invite_revoke"),
        ("GET", i + "/qr.png", qr_png, "dash:qr_png"),
        ("GET", i + "/qr.svg", qr_svg, "dash:qr_svg"),
        ("GET", c + "/rates.json", rates_json, "dash:rates_json"),
    ]
