"""Every state-changing dashboard form is done once: a one-time token per rendered form.

`form_token()` (in every page's template context) writes the CSRF field and a fresh
`submission` token into a form. When a logged-in user's POST carries one, `run_once` claims
it in the database (`storage.submissions`: it survives restarts and holds across processes)
before the view runs, and records where the view's answer led (post/redirect/get: every
form's view answers 303). The same token again (a double click, Back and send, a reloaded
POST) does nothing and is redirected to the first one's result. A view that refuses or fails
releases the token, so that the form can be corrected and sent again.

A multipart form (an upload: the view streams its body) carries the token in its action's
query string instead (`?submission=...`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from markupsafe import Markup

from storage.submissions import (
    claim_submission,
    finish_submission,
    release_submission,
    submission_location,
)

log = logging.getLogger(__name__)

FIELD = "submission"
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
WAIT_SECONDS = 5.0  # how long a resent form waits for the first one to finish
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_token() -> str:
    return secrets.token_urlsafe(18)


def form_fields(csrf: str) -> Markup:
    """The hidden fields of a state-changing form: the CSRF token and a one-time token."""
    return Markup(
        '<input type="hidden" name="csrf" value="{}"><input type="hidden" name="{}" value="{}">'
    ).format(csrf, FIELD, new_token())


def token_of(request: web.Request, form: Any) -> str | None:
    """The request's one-time token (from the form, else the query string), if well formed."""
    given = form.get(FIELD) if form is not None else None
    if not isinstance(given, str):
        given = request.query.get(FIELD)
    return given if isinstance(given, str) and TOKEN.fullmatch(given) else None


def _location(response: web.StreamResponse) -> str | None:
    if response.status in (301, 302, 303, 307, 308):
        return response.headers.get("Location")
    return None


async def run_once(
    request: web.Request,
    handler: Handler,
    sessionmaker: Any,
    user_id: int,
    token: str,
    resent: Callable[[web.Request, bool], None],
    refused: Callable[[web.Request], bool],
) -> web.StreamResponse:
    """Run the view once per token; a resent token is answered with the first result.

    `resent(request, done)` tells the reader (a flash): done, or still being handled.
    `refused(request)`: whether the view refused the form (said so in an error message):
    then the token is released, so that the corrected form can be sent with it."""
    for _attempt in range(3):
        async with sessionmaker.begin() as s:
            first = await claim_submission(s, token, user_id)
        if first:
            return await _run(request, handler, sessionmaker, token, refused)
        answer = await _answer_resent(request, sessionmaker, user_id, token, resent)
        if answer is not None:
            return answer
        # Released meanwhile (the first use changed nothing): this one may try.
    raise web.HTTPConflict()


async def _run(
    request: web.Request,
    handler: Handler,
    sessionmaker: Any,
    token: str,
    refused: Callable[[web.Request], bool],
) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        await _settle(sessionmaker, token, None if refused(request) else _location(exc))
        raise
    except BaseException:
        await _settle(sessionmaker, token, None)
        raise
    await _settle(sessionmaker, token, None if refused(request) else _location(response))
    return response


async def _settle(sessionmaker: Any, token: str, location: str | None) -> None:
    try:
        async with sessionmaker.begin() as s:
            if location:
                await finish_submission(s, token, location)
            else:
                await release_submission(s, token)
    except Exception:  # the view's own answer matters more than this bookkeeping
        log.exception("could not settle a form submission")


async def _answer_resent(
    request: web.Request,
    sessionmaker: Any,
    user_id: int,
    token: str,
    resent: Callable[[web.Request, bool], None],
) -> web.StreamResponse | None:
    """303 to the first use's result (waiting a little while it runs); None if the token
    was released meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while True:
        async with sessionmaker() as s:
            found = await submission_location(s, token)
        if found is None:
            return None
        owner, location = found
        if owner != user_id:  # another account's token: do nothing
            raise web.HTTPConflict()
        if location or loop.time() >= deadline:
            break
        await asyncio.sleep(0.1)
    resent(request, location is not None)
    target = location or request.headers.get("Referer", "") or ""
    if not target.startswith(f"{request.scheme}://{request.host}/") and not location:
        target = str(request.app.router["dash:home"].url_for())
    return web.Response(status=303, headers={"Location": target})
