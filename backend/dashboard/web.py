"""Request plumbing of the dashboard: app keys, the session/auth and error middlewares, helpers.

Only requests to the dashboard's own routes (names `dash:*` and `api:*`) and unmatched
URLs are touched; the webhook and the web chat pass through unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.dashboard import auth, once
from backend.i18n import N_, Texts, dashboard_languages, negotiate, texts
from backend.reporting import releases
from backend.web import keys
from storage import schools
from storage.clusters import peer_school_ids
from storage.models import Cycle, School, User

log = logging.getLogger(__name__)

R_SESSION = web.RequestKey("dash_session", dict)
R_USER = web.RequestKey("dash_user", object)  # User, or None
R_DIRTY = web.RequestKey("dash_dirty", bool)
R_SCHOOL = web.RequestKey("dash_school_slug", str)  # for the nav
R_PEERS = web.RequestKey("dash_peer_schools", frozenset)  # a peer's reviewed schools
R_TEXTS = web.RequestKey("dash_texts", Texts)

# Routes whose POST body is multipart: the view checks the CSRF field (the first part).
MULTIPART_ROUTES = frozenset({"dash:evidence_add"})
PUBLIC_ROUTES = frozenset(
    {
        "dash:login",
        "dash:login_submit",
        "dash:language",
        "dash:static",
        "dash:verify",
        "api:openapi",
    }
)
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def route_name(request: web.Request) -> str:
    return getattr(request.match_info.route, "name", None) or ""


def is_api(request: web.Request) -> bool:
    return route_name(request).startswith("api:") or request.path.startswith("/api/")


def is_mine(request: web.Request) -> bool:
    name = route_name(request)
    return name.startswith(("dash:", "api:"))


# --- helpers for views -----------------------------------------------------------------


def session_of(request: web.Request) -> dict[str, Any]:
    return request[R_SESSION]


def user_of(request: web.Request) -> User:
    user = request.get(R_USER)
    if user is None:  # the auth middleware guarantees a user on non-public routes
        raise web.HTTPUnauthorized()
    return user


def language_of(request: web.Request) -> str:
    """The reader's language: the account's choice, else the session's (picked before
    logging in), else the browser's Accept-Language; English when none is available."""
    available = dashboard_languages()
    user = request.get(R_USER)
    sess = request.get(R_SESSION) or {}
    for lang in (getattr(user, "language", None), sess.get("lang")):
        if lang in available:
            return lang
    return negotiate(request.headers.get("Accept-Language"), available)


def texts_of(request: web.Request) -> Texts:
    """The reader's texts (gettext, numbers, dates, the model in their language)."""
    found = request.get(R_TEXTS)
    if found is None:
        found = request[R_TEXTS] = texts(language_of(request))
    return found


def _(request: web.Request, message: str, /, **params: Any) -> str:
    """`message` in the reader's language (`%(name)s` placeholders filled from `params`)."""
    return texts_of(request).gettext(message, **params)


def flash(request: web.Request, message: str, category: str = "info") -> None:
    sess = session_of(request)
    sess.setdefault("flash", []).append([category, message[:300]])
    request[R_DIRTY] = True


def redirect(request: web.Request, name: str, anchor: str = "", **parts: Any) -> web.Response:
    """303 See Other to a named route (after a POST)."""
    url = str(request.app.router[name].url_for(**{k: str(v) for k, v in parts.items()}))
    return web.Response(status=303, headers={"Location": url + anchor})


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    sess = request.get(R_SESSION) or {}
    flashes = sess.pop("flash", []) if sess else []
    if flashes:
        request[R_DIRTY] = True
    user = request.get(R_USER)
    tx = texts_of(request)
    ctx = {
        "texts": tx,
        "lang": tx.lang,
        "languages": [(code, tx.language_name(code)) for code in dashboard_languages()],
        "user": user,
        "csrf": sess.get("csrf", ""),
        # {{ form_token() }}: the CSRF field and a one-time token (`once`), in every form
        # that changes something.
        "form_token": lambda: once.form_fields(sess.get("csrf", "")),
        "submission_token": once.new_token,  # a multipart form's, in its action's query
        "flashes": flashes,
        "school_slug": request.get(R_SCHOOL),
        "here": route_name(request),
        "path": request.path_qs,
        **context,
    }
    response = aiohttp_jinja2.render_template(template, request, ctx, status=status)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def sessionmaker(request: web.Request):
    return request.app[keys.SESSIONMAKER]


async def release_figures(request: web.Request) -> None:
    """Bring the releases of the URL's cycle (and its school's other cycles) up to date before
    its figures are read, if this reader may read them (a refused request writes nothing;
    the view itself answers 404)."""
    raw = request.match_info.get("cycle_id", "")
    if not raw.isdigit() or int(raw) > MAX_ROW_ID:
        return
    async with sessionmaker(request)() as s:
        cycle = await schools.get_cycle(s, int(raw))
    if cycle is not None and access_of(request).reads(cycle.school_id):
        await releases.refresh(sessionmaker(request), [cycle.id])


def access_of(request: web.Request) -> auth.Access:
    return auth.readable_schools(user_of(request), request.get(R_PEERS, frozenset()))


def hides_raw(request: web.Request, school_id: int) -> bool:
    """A peer reviewer reading another school: free-text comments are withheld (as raw)."""
    user = user_of(request)
    return user.role == "peer" and user.school_id != school_id


def for_reader(request: web.Request, report: dict[str, Any], school_id: int) -> dict[str, Any]:
    """The report as this reader may see it: without respondents' free text for a peer."""
    if not hides_raw(request, school_id):
        return report
    return {**report, "comments": {}}


async def _load_peers(request: web.Request, user: User | None) -> None:
    """For a peer: the schools of its clusters, for `readable_schools`."""
    if user is None or user.role != "peer" or user.school_id is None:
        return

    async with sessionmaker(request).begin() as s:
        request[R_PEERS] = frozenset(await peer_school_ids(s, user.school_id))


async def school_for(request: web.Request, s: AsyncSession, slug: str) -> School:
    """The school if the user may read it; 404 otherwise (as if it did not exist)."""
    if "\x00" in slug:  # no school's slug, and PostgreSQL refuses it in a query (a 500)
        raise web.HTTPNotFound()
    school = await schools.get_school_by_slug(s, slug)
    if school is None or not access_of(request).reads(school.id):
        raise web.HTTPNotFound()
    return school


async def cycle_for(request: web.Request, s: AsyncSession, cycle_id: Any) -> Cycle:
    """The cycle if the user may read its school; 404 otherwise."""
    try:
        cid = int(cycle_id)
    except (TypeError, ValueError):
        raise web.HTTPNotFound() from None
    cycle = await schools.get_cycle(s, cid)
    if cycle is None or not access_of(request).reads(cycle.school_id):
        raise web.HTTPNotFound()
    return cycle


async def writable_cycle(request: web.Request, s: AsyncSession) -> Cycle:
    """The cycle of the URL if the user may change its school: 404 unreadable, 403 read-only."""
    cycle = await cycle_for(request, s, request.match_info["cycle_id"])
    require_write(request, cycle.school_id)
    return cycle


def require_write(request: web.Request, school_id: int) -> None:
    if not auth.may_write(user_of(request), school_id):
        raise web.HTTPForbidden(
            text=_(request, "Your account may read this school but not change it.")
        )


def require_admin(request: web.Request) -> None:
    if user_of(request).role != "admin":
        raise web.HTTPNotFound()


# --- middlewares -------------------------------------------------------------------------


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"status": status, "message": message}}, status=status)


_TITLES = {
    400: N_("Bad request"),
    401: N_("Please log in"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    405: N_("Method not allowed"),
    413: N_("Too large"),
    422: N_("Cannot process this"),
    429: N_("Too many attempts"),
    500: N_("Something went wrong"),
    503: N_("Service unavailable"),
}


def _error_page(request: web.Request, status: int, message: str) -> web.Response:
    title = _(request, _TITLES.get(status, N_("Error")))
    try:
        return render(
            request,
            "dashboard/error.html",
            {"status": status, "title": title, "message": message},
            status,
        )
    except Exception:  # never fail while reporting a failure
        log.exception("error page failed")
        return web.Response(status=status, text=f"{status} {title}")


def _message(exc: web.HTTPException) -> str:
    text = exc.text or ""
    default = f"{exc.status}: {exc.reason}"
    return "" if text.strip() == default else text


MAX_ROW_ID = 2**31 - 1  # ids are 32-bit INTEGER columns (SQLite and PostgreSQL alike)


def ids_in_range(match_info: Any) -> bool:
    """False if a numeric path id (cycle_id, invite_id, ...) could not be a row's id.

    Such an id reached the database as an out-of-range parameter: an error (500), not 404.
    """
    for name, value in match_info.items():
        if (name == "id" or name.endswith("_id")) and value.isdigit() and int(value) > MAX_ROW_ID:
            return False
    return True


@web.middleware
async def error_middleware(request: web.Request, handler):
    """Friendly 4xx/5xx pages for the dashboard, JSON errors for /api; others untouched."""
    mine = is_mine(request)
    unmatched = isinstance(request.match_info.http_exception, web.HTTPException)
    if not mine and not (unmatched and not request.path.startswith("/telegram")):
        return await handler(request)
    try:
        if mine and not ids_in_range(request.match_info):
            raise web.HTTPNotFound()
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if is_api(request):
            resp = _json_error(exc.status, _message(exc) or _TITLES.get(exc.status, exc.reason))
        else:
            resp = _error_page(request, exc.status, _message(exc))
        for name in ("WWW-Authenticate", "Retry-After", "Allow"):  # a 405 names what is allowed
            if name in exc.headers:
                resp.headers[name] = exc.headers[name]
        resp.cookies.update(exc.cookies)
        return resp
    except Exception:
        log.exception("dashboard error on %s %s", request.method, request.path)
        if is_api(request):
            return _json_error(500, "internal error")
        return _error_page(
            request, 500, _(request, "The error was logged. Please try again later.")
        )


def _set_cookie(request: web.Request, response: web.StreamResponse) -> None:
    codec = request.app[keys.CODEC]
    secure = auth.request_is_https(request)
    response.set_cookie(
        auth.COOKIE,
        codec.dumps(request[R_SESSION]),
        max_age=auth.SESSION_MAX_AGE,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=secure,
    )


async def _load_user(request: web.Request, sess: dict[str, Any]) -> User | None:
    uid = sess.get("uid")
    if not isinstance(uid, int):
        return None
    async with sessionmaker(request).begin() as s:
        user = await schools.get_user(s, uid)
    secret = request.app[keys.SECRET_KEY]
    if user is None or sess.get("pwf") != auth.password_fingerprint(secret, user):
        return None
    ended = user.sessions_valid_after
    if ended is not None and float(sess.get("iat", 0)) < ended.timestamp():
        return None  # issued before a logout: a copied cookie dies with the session
    return user


async def _api_user(request: web.Request) -> User:
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise web.HTTPUnauthorized(
            text="Send Authorization: Bearer <token> (see your account page).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = token.strip()
    uid = auth.api_token_user_id(token)
    user = None
    if uid is not None and uid <= MAX_ROW_ID:  # a larger id is no row's (and fails the query)
        async with sessionmaker(request).begin() as s:
            user = await schools.get_user(s, uid)
    if user is None or not auth.api_token_ok(request.app[keys.SECRET_KEY], user, token):
        raise web.HTTPUnauthorized(text="invalid token", headers={"WWW-Authenticate": "Bearer"})
    return user


def _error_flashes(request: web.Request) -> int:
    return sum(1 for category, _msg in session_of(request).get("flash", []) if category == "error")


def _resent(request: web.Request, done: bool) -> None:
    """Tell the reader that a form they sent again was not done twice."""
    if done:
        flash(request, _(request, "This form had been sent already: nothing was done twice."))
    else:
        flash(
            request,
            _(request, "This form is still being handled: reload the page in a moment."),
        )


@web.middleware
async def session_middleware(request: web.Request, handler):
    """Load the signed session, check CSRF on POST, require a login where needed."""
    name = route_name(request)
    if name.startswith("api:"):
        if name not in PUBLIC_ROUTES:
            request[R_USER] = await _api_user(request)
            await _load_peers(request, request[R_USER])
        return await handler(request)
    if not name.startswith("dash:") or name == "dash:static":
        return await handler(request)

    codec = request.app[keys.CODEC]
    raw = request.cookies.get(auth.COOKIE)
    sess = codec.loads(raw) if raw else None
    request[R_DIRTY] = sess is None
    if sess is None:
        sess = auth.new_session()
    request[R_SESSION] = sess
    user = await _load_user(request, sess)
    if user is None and sess.get("uid") is not None:
        sess = auth.new_session()  # a stale or revoked login: start over
        request[R_SESSION] = sess
        request[R_DIRTY] = True
    request[R_USER] = user
    await _load_peers(request, user)

    form: Any = None
    try:
        if request.method == "POST":
            if name in MULTIPART_ROUTES and request.content_type.startswith("multipart/"):
                pass  # the view reads the CSRF field first
            else:
                try:
                    form = await request.post() if request.content_type else {}
                except (ValueError, HttpProcessingError):  # not UTF-8, broken multipart ...
                    raise web.HTTPBadRequest() from None
                given = request.headers.get("X-CSRF-Token") or form.get("csrf")
                if not auth.csrf_ok(sess, given if isinstance(given, str) else None):
                    raise web.HTTPForbidden(
                        text=_(
                            request,
                            "The form has expired or did not come from this site. "
                            "Go back, reload the page and try again.",
                        )
                    )
        if user is None and name not in PUBLIC_ROUTES:
            target = request.path_qs if request.method == "GET" else ""
            login = request.app.router["dash:login"].url_for()
            if target and target != "/":
                login = login.with_query(next=target)
            response: web.StreamResponse = web.Response(
                status=303, headers={"Location": str(login)}
            )
        elif (
            request.method == "POST"
            and user is not None
            and name not in PUBLIC_ROUTES
            and (token := once.token_of(request, form))
        ):
            # A form with a one-time token: done once, a resent one answered with the result.
            errors = _error_flashes(request)
            response = await once.run_once(
                request,
                handler,
                sessionmaker(request),
                user.id,
                token,
                _resent,
                lambda r: _error_flashes(r) > errors,
            )
        else:
            response = await handler(request)
    except web.HTTPException as exc:
        if request[R_DIRTY]:
            _set_cookie(request, exc)
        raise
    if request[R_DIRTY]:
        _set_cookie(request, response)
    return response
