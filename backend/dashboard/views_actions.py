"""The action plan: per indicator, what the school will do next (owner, due date, status).

Coordinators of the school (and admins) write; every reader of the school reads. The
owner is free text naming a member of staff or a role, never a respondent.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from backend.dashboard.web import (
    R_SCHOOL,
    _,
    cycle_for,
    flash,
    redirect,
    render,
    sessionmaker,
    texts_of,
    writable_cycle,
)
from backend.i18n import N_
from backend.reporting.charts import reading
from backend.reporting.charts.reading import shorten
from conversations.model import load_model
from conversations.roles import ROLES
from storage import schools
from storage.models import ActionItem, Cycle
from storage.schools import ACTION_STATUSES, add_action, delete_action, get_action, list_actions

ROLE_SLUGS = frozenset(r.value for r in ROLES)
MAX_TITLE = 300
MAX_OWNER = 200
BAD_STATUS = N_("the status is open, in progress or done")


def _fields(request: web.Request, form: Any) -> dict[str, Any]:
    """Title, owner, due date and status from a form; ValueError (in the reader's
    language) on bad input."""
    title = str(form.get("title", "")).strip()
    if not title or len(title) > MAX_TITLE:
        raise ValueError(
            _(request, "give the action a title of up to %(max)s characters", max=MAX_TITLE)
        )
    owner = str(form.get("owner", "")).strip()
    if len(owner) > MAX_OWNER:
        raise ValueError(_(request, "the owner is at most %(max)s characters", max=MAX_OWNER))
    due_text = str(form.get("due_date", "")).strip()
    try:
        due = date.fromisoformat(due_text) if due_text else None
    except ValueError:
        raise ValueError(_(request, "the due date is not a date (YYYY-MM-DD)")) from None
    status = str(form.get("status", "open") or "open")
    if status not in ACTION_STATUSES:
        raise ValueError(_(request, BAD_STATUS))
    return {"title": title, "owner": owner or None, "due_date": due, "status": status}


def _back(request: web.Request, form: Any, cycle_id: int) -> web.Response:
    """Back to the indicator page when the form came from there, else to the action plan."""
    key = str(form.get("back_indicator", ""))
    if key and key in load_model().index():
        return redirect(request, "dash:indicator", anchor="#actions", cycle_id=cycle_id, key=key)
    return redirect(request, "dash:actions", cycle_id=cycle_id)


async def actions_page(request: web.Request) -> web.Response:
    status = request.query.get("status") or None
    if status is not None and status not in ACTION_STATUSES:
        status = None
    tx = texts_of(request)
    model = tx.model
    index = model.index()
    labels = reading.indicator_labels(model)
    preset = request.query.get("indicator", "")
    if preset not in index:
        preset = ""
    role = request.query.get("role", "")
    role_text = tx.role_name(role) if role in ROLE_SLUGS else ""
    async with sessionmaker(request).begin() as s:
        cycle = await cycle_for(request, s, request.match_info["cycle_id"])
        school = await schools.get_school(s, cycle.school_id)
        everything = await list_actions(s, cycle.id)
    items = [a for a in everything if status is None or a.status == status]
    counts = {k: sum(1 for a in everything if a.status == k) for k in ACTION_STATUSES}
    request[R_SCHOOL] = school.slug
    return render(
        request,
        "dashboard/actions.html",
        {
            "school": school,
            "cycle": cycle,
            "items": items,
            "status": status,
            "statuses": ACTION_STATUSES,
            "counts": counts,
            "total": len(everything),
            "indicators": [
                (p.indicator.key, f"{labels[p.indicator.key]} · {shorten(p.indicator.text, 70)}")
                for p in model.placed()
            ],
            "ind_labels": labels,
            "indicator_texts": {k: p.indicator.text for k, p in index.items()},
            "preset": preset,
            "preset_role": role_text,
            "today": date.today().isoformat(),
        },
    )


async def action_create(request: web.Request) -> web.Response:
    form = await request.post()
    async with sessionmaker(request).begin() as s:
        cycle = await writable_cycle(request, s)
        key = str(form.get("indicator_key", ""))
        try:
            if key not in load_model().index():
                raise ValueError(_(request, "choose the indicator the action is for"))
            fields = _fields(request, form)
        except ValueError as exc:
            flash(request, _(request, "Action not added: %(reason)s.", reason=exc), "error")
            return _back(request, form, cycle.id)
        await add_action(s, cycle.id, key, **fields)
    flash(request, _(request, "Action added to the plan for %(key)s.", key=key), "ok")
    return _back(request, form, cycle.id)


async def _action_of(request: web.Request, s: AsyncSession) -> tuple[Cycle, ActionItem]:
    """The URL's action item of a cycle this reader may change; 404 if there is none."""
    cycle = await writable_cycle(request, s)
    item = await get_action(s, cycle.id, int(request.match_info["action_id"]))
    if item is None:
        raise web.HTTPNotFound()
    return cycle, item


async def action_update(request: web.Request) -> web.Response:
    form = await request.post()
    async with sessionmaker(request).begin() as s:
        cycle, item = await _action_of(request, s)
        try:
            if "title" in form:
                fields = _fields(request, form)
            else:  # a status change only
                status = str(form.get("status", ""))
                if status not in ACTION_STATUSES:
                    raise ValueError(_(request, BAD_STATUS))
                fields = {"status": status}
        except ValueError as exc:
            flash(request, _(request, "Action not changed: %(reason)s.", reason=exc), "error")
            return _back(request, form, cycle.id)
        for name, value in fields.items():
            setattr(item, name, value)
    flash(request, _(request, "Action “%(title)s” updated.", title=item.title), "ok")
    return _back(request, form, cycle.id)


async def action_delete(request: web.Request) -> web.Response:
    form = await request.post()
    async with sessionmaker(request).begin() as s:
        cycle, item = await _action_of(request, s)
        await delete_action(s, item)
    flash(request, _(request, "Action deleted."), "ok")
    return _back(request, form, cycle.id)


def routes() -> list[tuple[str, str, Any, str]]:
    c = "/dashboard/cycles/{cycle_id:\\d+}/actions"
    a = c + "/{action_id:\\d+}"
    return [
        ("GET", c, actions_page, "dash:actions"),
        ("POST", c, action_create, "dash:action_create"),
        ("POST", a, action_update, "dash:action_update"),
        ("POST", a + "/delete", action_delete, "dash:action_delete"),
    ]
