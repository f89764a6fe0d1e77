"""The self-assessment form (saved per theme, then submitted) and the evidence portfolio."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

from backend.dashboard import evidence as ev
from backend.dashboard.auth import csrf_ok
from backend.dashboard.modeltree import points, theme_indicators, tree
from backend.dashboard.web import (
    R_SCHOOL,
    _,
    cycle_for,
    flash,
    hides_raw,
    redirect,
    render,
    session_of,
    sessionmaker,
    texts_of,
    user_of,
    writable_cycle,
)
from backend.i18n import ENGLISH, Texts
from backend.reporting.charts import reading
from backend.web import input_guard, keys
from conversations.model import ExcellenceModel, Indicator, load_model
from conversations.scales import AnswerKind
from storage import schools
from storage.schools import evidence_counts, get_evidence, submit_self_ratings

MAX_COMMENT = 4000
MAX_NOTE = 2000


def indicator_or_404(key: str, model: ExcellenceModel | None = None) -> Indicator:
    """The indicator of `key` in `model` (the reader's, for its texts); 404 if none."""
    index = (model or load_model()).index()
    if key not in index:
        raise web.HTTPNotFound()
    return index[key].indicator


async def self_page(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        cycle = await cycle_for(request, s, request.match_info["cycle_id"])
        school = await schools.get_school(s, cycle.school_id)
        ratings = await schools.list_self_ratings(s, cycle.id)
        evidence = await evidence_counts(s, cycle.id)
    tx = texts_of(request)
    dims = tree(tx.model)
    progress = []
    for d in dims:
        rated = [k for k in d.keys if k in ratings and _rated(ratings[k])]
        submitted = [k for k in rated if ratings[k].status == "submitted"]
        progress.append(
            {
                "dimension": d,
                "total": len(d.keys),
                "rated": len(rated),
                "submitted": len(submitted),
                "percent": round(100 * len(rated) / len(d.keys)) if d.keys else 0,
            }
        )
    request[R_SCHOOL] = school.slug
    saved = request.query.get("saved", "")
    themes = {t.id for d in dims for c in d.criteria for t in c.themes}
    return render(
        request,
        "dashboard/self.html",
        {
            "inline_theme": saved if saved in themes else None,
            "school": school,
            "cycle": cycle,
            "dims": dims,
            "ratings": ratings,
            "evidence": evidence,
            "progress": progress,
            "points": lambda ind: points(ind, tx),
            "total": sum(p["total"] for p in progress),
            "rated": sum(p["rated"] for p in progress),
            "submitted": sum(p["submitted"] for p in progress),
            "hide_comments": hides_raw(request, cycle.school_id),
        },
    )


def _rated(r: Any) -> bool:
    return r.value is not None or r.number is not None


def parse_rating(
    ind: Indicator, raw_value: str, raw_number: str, tx: Texts = ENGLISH
) -> tuple[int | None, float | None]:
    """(value, number) from form text, checked against the indicator's scale or NumberSpec.

    The ValueError's text is in the language of `tx` (English for the JSON API)."""
    if ind.kind == AnswerKind.NUMBER:
        text = raw_number.strip().replace(",", ".")
        if not text:
            return None, None
        try:
            n = float(text)
        except ValueError:
            raise ValueError(
                tx.gettext("%(id)s: %(given)s is not a number", id=ind.id, given=repr(raw_number))
            ) from None
        spec = ind.number
        assert spec is not None
        if not math.isfinite(n) or not spec.min <= n <= spec.max:
            raise ValueError(
                tx.gettext(
                    "%(id)s: give a number from %(min)s to %(max)s",
                    id=ind.id,
                    min=_bound(tx, spec.min),
                    max=_bound(tx, spec.max),
                )
            )
        if spec.integer and n != int(n):
            raise ValueError(tx.gettext("%(id)s: give a whole number", id=ind.id))
        return None, n
    text = raw_value.strip()
    if not text:
        return None, None
    if text not in {"0", "1", "2", "3", "4"}:
        raise ValueError(
            tx.gettext(
                "%(id)s: %(given)s is not a point of the scale", id=ind.id, given=repr(raw_value)
            )
        )
    return int(text), None


def _bound(tx: Texts, x: float) -> str:
    """A bound of a number as `:g` writes it ("0", "2.5"), in the reader's digits."""
    return tx.number(int(x)) if float(x).is_integer() else tx.number(x)


async def self_save(request: web.Request) -> web.Response:
    """Save one theme's ratings as a draft (or submitted, with action=submit)."""
    form = await request.post()
    theme_id = str(form.get("theme", ""))
    tx = texts_of(request)
    indicators = theme_indicators(theme_id, tx.model)
    if not indicators:
        raise web.HTTPBadRequest(text=_(request, "unknown theme"))
    status = "submitted" if form.get("action") == "submit" else "draft"
    user = user_of(request)
    saved, errors, changed = 0, [], []
    labels = reading.indicator_labels(tx.model)  # "VL-14 (1.2.3)": the model numbers it twice
    async with sessionmaker(request).begin() as s:
        cycle = await writable_cycle(request, s)
        existing = await schools.list_self_ratings(s, cycle.id)
        for ind in indicators:
            if not any(f"{p}:{ind.key}" in form for p in "vnc"):
                continue  # not in this form: leave it as it is
            try:
                value, number = parse_rating(
                    ind,
                    str(form.get(f"v:{ind.key}", "")),
                    str(form.get(f"n:{ind.key}", "")),
                    tx,
                )
            except ValueError as exc:
                errors.append(str(exc))
                continue
            old = existing.get(ind.key)
            if f"c:{ind.key}" in form:
                comment = str(form.get(f"c:{ind.key}", "")).strip()[:MAX_COMMENT] or None
            else:  # comments hidden from this reader: keep the one there is
                comment = old.comment if old else None
            if value is None and number is None and comment is None and old is None:
                continue
            same = old is not None and (old.value, old.number, old.comment or None) == (
                value,
                number,
                comment,
            )
            if same and (status == "draft" or old.status == "submitted"):
                continue  # a draft is per indicator: what was not changed keeps its status
            st = status if (value is not None or number is not None) else "draft"
            await schools.upsert_self_rating(
                s, cycle.id, ind.key, value, number, comment, st, user.id
            )
            saved += 1
            changed.append(labels.get(ind.key, ind.id))
    if errors:
        flash(request, _(request, "Not saved: %(problems)s", problems="; ".join(errors)), "error")
    if status == "submitted":
        done = tx.ngettext(
            "Theme %(theme)s: %(num)s indicator submitted.",
            "Theme %(theme)s: %(num)s indicators submitted.",
            saved,
            theme=theme_id,
        )
    elif saved:
        done = tx.ngettext(
            "Theme %(theme)s: %(num)s indicator saved as a draft (%(ids)s); the others keep"
            " their status.",
            "Theme %(theme)s: %(num)s indicators saved as drafts (%(ids)s); the others keep"
            " their status.",
            saved,
            theme=theme_id,
            ids=", ".join(changed),
        )
    else:
        done = tx.gettext("Theme %(theme)s: nothing changed, nothing saved.", theme=theme_id)
    flash(request, done, "ok")
    # The message shows at the top of the theme's form, which the page scrolls to.
    url = request.app.router["dash:self"].url_for(cycle_id=str(cycle.id))
    url = url.with_query(saved=theme_id)
    return web.Response(status=303, headers={"Location": f"{url}#theme-{theme_id}"})


async def self_submit(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        cycle = await writable_cycle(request, s)
        n = await submit_self_ratings(s, cycle.id, user_of(request).id)
    total = len(load_model().placed())
    tx = texts_of(request)
    if n < total:
        msg = _(
            request,
            "Self-assessment submitted: %(n)s of %(total)s indicators rated. "
            "You can still rate the others and submit again.",
            n=tx.number(n),
            total=tx.number(total),
        )
    else:
        msg = _(
            request,
            "Self-assessment submitted: %(n)s of %(total)s indicators rated.",
            n=tx.number(n),
            total=tx.number(total),
        )
    flash(request, msg, "ok")
    return redirect(request, "dash:self", cycle_id=cycle.id)


# --- evidence ------------------------------------------------------------------------


def _link_ok(url: str) -> bool:
    try:
        u = URL(url)
    except ValueError:
        return False
    return u.scheme in ("http", "https") and bool(u.host) and len(url) <= 2000


async def _read_field(part: Any, limit: int = 8192) -> str:
    data = await part.read()
    return bytes(data[:limit]).decode("utf-8", "replace")


class NulRefused(Exception):
    """A NUL in a streamed upload's field or file name (see `backend.web.input_guard`)."""


async def evidence_add(request: web.Request) -> web.Response:
    """A file (multipart) or a link with a note. The CSRF token must be the first field."""
    key = request.match_info["key"]
    ind = indicator_or_404(key)
    if request.content_length and request.content_length > ev.MAX_BYTES + 64 * 1024:
        raise web.HTTPRequestEntityTooLarge(
            max_size=ev.MAX_BYTES,
            actual_size=request.content_length,
            text=_(request, "The file is larger than 10 MB."),
        )
    async with sessionmaker(request).begin() as s:
        cycle = await writable_cycle(request, s)
    data_dir = request.app[keys.SETTINGS].data_dir
    fields: dict[str, str] = {}
    unused: list[str] = []
    stored: str | None = None
    filename = ""
    size = 0
    reader = None
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        try:
            first = await reader.next()
        except HttpProcessingError:  # a malformed part header (e.g. a NUL byte in it)
            raise web.HTTPBadRequest() from None
        if (
            first is None
            or first.name != "csrf"
            or not csrf_ok(session_of(request), await _read_field(first))
        ):
            raise web.HTTPForbidden(
                text=_(request, "The form has expired. Reload the page and try again.")
            )
    else:  # a link only, as an ordinary form (the middleware checked its CSRF token)
        form = await request.post()
        fields = {k: str(form.get(k, ""))[: MAX_NOTE + 100] for k in ("url", "note")}
    try:
        while reader is not None and (part := await reader.next()) is not None:
            if part.name == "file" and part.filename:
                if stored is not None:
                    raise ev.EvidenceRejected(_(request, "one file at a time"))
                filename = ev.sanitise_filename(unquote(part.filename))
                ext = ev.extension(filename)
                if ext not in ev.ALLOWED:
                    raise ev.EvidenceRejected(_(request, ev.NOT_ALLOWED))
                stored = ev.new_stored_name()
                path = ev.stored_path(data_dir, stored)
                with path.open("wb") as out:
                    while chunk := await part.read_chunk(64 * 1024):
                        size += len(chunk)
                        if size > ev.MAX_BYTES:
                            raise ev.EvidenceRejected(_(request, "the file is larger than 10 MB"))
                        out.write(chunk)
            elif part.name in ("kind", "url", "note"):
                fields[part.name] = await _read_field(part, MAX_NOTE + 100)
            elif part.filename is None:  # a field we do not use: read, for the check below
                unused.append(await _read_field(part))
            else:
                await part.release()
            # The middleware reads no streamed body: this view refuses a NUL itself.
            given = part.filename or ""
            if input_guard.contains_nul(
                part.name, given, unquote(given), *fields.values(), *unused
            ):
                raise NulRefused()
        note = fields.get("note", "").strip()[:MAX_NOTE] or None
        if stored is not None:
            if size == 0:
                raise ev.EvidenceRejected(_(request, "the file is empty"))
            content_type = ev.check_type(
                ev.stored_path(data_dir, stored), ev.extension(filename), texts_of(request)
            )
            item: dict[str, Any] = {
                "kind": "file",
                "filename": filename,
                "stored_name": stored,
                "content_type": content_type,
                "size_bytes": size,
            }
        else:
            url = fields.get("url", "").strip()
            if not _link_ok(url):
                raise ev.EvidenceRejected(
                    _(request, "give a file, or a link starting with http:// or https://")
                )
            item = {"kind": "link", "url": url}
    except (NulRefused, HttpProcessingError) as exc:  # a NUL, a malformed part header
        if stored is not None:
            ev.stored_path(data_dir, stored).unlink(missing_ok=True)
        text = _(request, input_guard.MESSAGE) if isinstance(exc, NulRefused) else None
        raise web.HTTPBadRequest(text=text) from None
    except ev.EvidenceRejected as exc:
        if stored is not None:
            ev.stored_path(data_dir, stored).unlink(missing_ok=True)
        flash(request, _(request, "Evidence not added: %(reason)s.", reason=exc), "error")
        return redirect(request, "dash:indicator", anchor="#evidence", cycle_id=cycle.id, key=key)
    async with sessionmaker(request).begin() as s:
        await schools.add_evidence(
            s, cycle.id, ind.key, note=note, user_id=user_of(request).id, **item
        )
    flash(request, _(request, "Evidence added to %(id)s.", id=ind.id), "ok")
    return redirect(request, "dash:indicator", anchor="#evidence", cycle_id=cycle.id, key=key)


async def evidence_file(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        cycle = await cycle_for(request, s, request.match_info["cycle_id"])
        item = await get_evidence(s, cycle.id, int(request.match_info["evidence_id"]))
    if item is None or item.kind != "file" or not item.stored_name:
        raise web.HTTPNotFound()
    path = ev.stored_path(request.app[keys.SETTINGS].data_dir, item.stored_name)
    if not path.is_file():
        raise web.HTTPNotFound(text=_(request, "The file is missing from the evidence store."))
    return web.Response(
        body=path.read_bytes(), headers=ev.download_headers(item.filename, item.content_type)
    )


async def evidence_delete(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        cycle = await writable_cycle(request, s)
        item = await get_evidence(s, cycle.id, int(request.match_info["evidence_id"]))
        if item is None:
            raise web.HTTPNotFound()
        await schools.delete_evidence(s, item.id, cycle_id=cycle.id)
    if item.stored_name:
        ev.stored_path(request.app[keys.SETTINGS].data_dir, item.stored_name).unlink(
            missing_ok=True
        )
    flash(request, _(request, "Evidence deleted."), "ok")
    return redirect(
        request, "dash:indicator", anchor="#evidence", cycle_id=cycle.id, key=item.indicator_key
    )


def routes() -> list[tuple[str, str, Any, str]]:
    c = "/dashboard/cycles/{cycle_id:\\d+}"
    e = c + "/evidence/{evidence_id:\\d+}"
    return [
        ("GET", c + "/self-assessment", self_page, "dash:self"),
        ("POST", c + "/self-assessment", self_save, "dash:self_save"),
        ("POST", c + "/self-assessment/submit", self_submit, "dash:self_submit"),
        ("POST", c + "/indicators/{key}/evidence", evidence_add, "dash:evidence_add"),
        ("GET", e, evidence_file, "dash:evidence_file"),
        ("POST", e + "/delete", evidence_delete, "dash:evidence_delete"),
    ]
