"""No text of this application holds a NUL character: one in a request is refused (400).

PostgreSQL cannot store U+0000 in text (the database refuses it: every form answered 500),
SQLite stores it and hands it to every later reader, and the file system refuses it in a
path. None of our texts has a use for it, so `nul_middleware` refuses a request that
carries one, before any view runs (nothing is stored):
- in the path (any segment, e.g. a school slug or invite code with `%00`) or the query
  string (names and values), on every route, matched or not;
- in a form field, urlencoded or multipart (names, values and file names), on every
  route that reads a form.
The answer is the area's own 400 page, in the reader's language: the dashboard's error
page (through its error middleware), JSON under /api, the web chat's page (JSON for the
Mini App and fetch), plain text elsewhere.

Bodies not read here: JSON (the API's validation is its own; the Mini App's view checks
its fields with `contains_nul`; a Telegram update is the engine's), a form the web chat
refuses as too large before reading it, and the evidence upload, which its view streams
and checks with `contains_nul` itself (`STREAMED_ROUTES`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from backend.i18n import N_

NUL = "\x00"
MAX_WEBCHAT_FORM_BYTES = 64 * 1024  # a bigger web-chat form is refused (413) unread
# Routes whose view reads a multipart body as a stream (reading it here would consume it).
STREAMED_ROUTES = frozenset({"dash:evidence_add"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MESSAGE = N_(
    "The address or a form field contains a null character (an invisible control "
    "character that no text here may hold). Nothing was saved. Go back, retype what you "
    "entered and try again."
)
API_MESSAGE = "the request contains a NUL character (U+0000), which no text may hold"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def contains_nul(*texts: object) -> bool:
    """True if any of the texts (str; anything else is ignored) holds a NUL character."""
    return any(isinstance(t, str) and NUL in t for t in texts)


def route_name(request: web.Request) -> str:
    return getattr(request.match_info.route, "name", None) or ""


def in_url(request: web.Request) -> bool:
    """A NUL in the path or the query string, as sent (`%00`) or decoded."""
    if "%00" in request.raw_path or contains_nul(request.path):
        return True
    return any(contains_nul(k, v) for k, v in request.query.items())


async def in_form(request: web.Request) -> bool:
    """A NUL in a field of a posted form (its names, values and file names)."""
    if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return False
    ctype = request.content_type
    if ctype not in FORM_TYPES:
        return False
    name = route_name(request)
    if ctype == "multipart/form-data" and name in STREAMED_ROUTES:
        return False
    if name.startswith("webchat."):
        too_big = request.content_length is not None
        if too_big and request.content_length > MAX_WEBCHAT_FORM_BYTES:
            return False  # the view refuses it (413) without reading it
    try:
        form = await request.post()  # parsed once: the views get the same (cached) form
    except (ValueError, HttpProcessingError):  # not UTF-8, a malformed multipart body ...
        raise web.HTTPBadRequest() from None
    for key, value in form.items():
        if contains_nul(key, value) or contains_nul(getattr(value, "filename", None)):
            return True
    return False


def nul_middleware(refuse: Handler) -> Callable[..., Awaitable[web.StreamResponse]]:
    """A middleware that refuses (400) a request with a NUL in its path, query string or form
    fields; `refuse` writes the area's answer (the app factory knows the areas).

    Registered last (innermost): the dashboard's session middleware has loaded the reader
    (their language) and checked the form's CSRF token; its error middleware writes the
    page. No view runs for a refused request."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if in_url(request) or await in_form(request):
            return await refuse(request)
        return await handler(request)

    return middleware
