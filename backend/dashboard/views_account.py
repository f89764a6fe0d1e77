"""Login, logout, the account page (API token) and the admin page."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from backend.dashboard import auth
from backend.dashboard.passwords import (
    GUESSABLE,
    IS_EMAIL,
    MAX_LENGTH,
    MIN_LENGTH,
    TOO_LONG,
    PasswordRefused,
    hash_password,
    verify_password,
)
from backend.dashboard.web import (
    R_DIRTY,
    R_SESSION,
    R_USER,
    _,
    dashboard_languages,
    flash,
    redirect,
    render,
    require_admin,
    sessionmaker,
    texts_of,
    user_of,
)
from backend.i18n import N_
from backend.web import keys
from storage import schools
from storage.models import User
from storage.schools import list_users

log = logging.getLogger(__name__)
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
# The flash after creating a user, one whole sentence per role.
USER_CREATED = {
    "coordinator": N_("Coordinator %(email)s created."),
    "peer": N_("Peer %(email)s created."),
    "admin": N_("Admin %(email)s created."),
}
# A valid argon2 hash of a random password: verified against when the e-mail is unknown,
# so that a wrong e-mail takes as long as a wrong password.
_DUMMY_HASH: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(hash_password("not-a-real-password-" + "x" * 8))
    return _DUMMY_HASH[0]


MAX_NEXT = 2000


def _safe_next(target: str | None) -> str | None:
    r"""Only a path of this site may be a redirect target (no open redirect).

    "/" and a path: never "//host" or "/\host" (browsers read a backslash as a slash),
    no backslash at all, no scheme or host, and no control, format or space characters
    (browsers drop tabs and newlines from a URL, so "/\t/evil" would be "//evil"; CR/LF
    would end the Location header). The dashboard's own targets (`request.path_qs`) are
    percent-encoded and pass as they are.
    """
    if not target or len(target) > MAX_NEXT or not target.startswith("/"):
        return None
    if target.startswith("//") or "\\" in target:
        return None
    if any(unicodedata.category(c)[0] in "CZ" for c in target):
        return None  # Cc, Cf, Cs, Co, Cn; Zs, Zl, Zp
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


async def login_page(request: web.Request) -> web.Response:
    if request.get(R_USER) is not None:
        return redirect(request, "dash:home")
    nxt = _safe_next(request.query.get("next")) or ""
    return render(request, "dashboard/login.html", {"next": nxt})


@dataclass(frozen=True, slots=True)
class LoginTry:
    """Who a password try counts against: the account, the client's address, the browser."""

    account: str  # the normalised e-mail
    address: str  # auth.login_address of the client's IP
    device: str | None  # the device cookie's id, if it vouches for this account


def login_try(request: web.Request, email: str) -> LoginTry:
    account = schools.normalise_email(email)
    device = request.app[keys.DEVICES].device_for(request.cookies.get(auth.DEVICE_COOKIE), account)
    return LoginTry(account, auth.login_address(auth.client_ip(request)), device)


async def check_login_limit(request: web.Request, attempt: LoginTry) -> None:
    """429 with Retry-After if this try may not check a password now."""
    wait = await request.app[keys.LIMITER].blocked(attempt.account, attempt.address, attempt.device)
    if wait is None:
        return
    tx = texts_of(request)
    if wait.bound == "account":
        seconds = max(1, math.ceil(wait.seconds))
        text = tx.ngettext(
            "This account has had many failed logins. For its protection it takes one try "
            "at a time: please wait %(num)s second and try again.",
            "This account has had many failed logins. For its protection it takes one try "
            "at a time: please wait %(num)s seconds and try again.",
            seconds,
        )
    else:
        minutes = max(1, round(wait.seconds / 60))
        text = tx.ngettext(
            "Too many failed logins. Please wait about %(num)s minute and try again.",
            "Too many failed logins. Please wait about %(num)s minutes and try again.",
            minutes,
        )
    raise web.HTTPTooManyRequests(text=text, headers={"Retry-After": str(int(wait.seconds) + 1)})


def remember_device(request: web.Request, response: web.StreamResponse, account: str) -> None:
    """After a right password: this browser vouches for the account from now on."""
    value = request.app[keys.DEVICES].after_login(request.cookies.get(auth.DEVICE_COOKIE), account)
    response.set_cookie(
        auth.DEVICE_COOKIE,
        value,
        max_age=auth.DEVICE_MAX_AGE,
        path="/login",
        httponly=True,
        samesite="Strict",
        secure=auth.request_is_https(request),
    )


def _fresh_session(request: web.Request, user: User) -> None:
    """A new session for this browser (new id and CSRF token; the language kept) in which
    `user` is logged in, with the fingerprint of their password as it is now."""
    sess = auth.new_session()
    sess["uid"] = user.id
    if "lang" in request[R_SESSION]:
        sess["lang"] = request[R_SESSION]["lang"]
    sess["pwf"] = auth.password_fingerprint(request.app[keys.SECRET_KEY], user)
    request[R_SESSION] = sess
    request[R_USER] = user
    request[R_DIRTY] = True


async def login_submit(request: web.Request) -> web.Response:
    form = await request.post()
    email = str(form.get("email", "")).strip()[:254]
    password = str(form.get("password", ""))[:1024]
    nxt = _safe_next(str(form.get("next", ""))) or ""  # a foreign one is not carried on
    limiter = request.app[keys.LIMITER]
    attempt = login_try(request, email)
    await check_login_limit(request, attempt)
    async with sessionmaker(request).begin() as s:
        user = await schools.get_user_by_email(s, email) if email else None
    loop = asyncio.get_running_loop()
    pw_hash = user.password_hash if user else _dummy_hash()
    ok = await loop.run_in_executor(None, verify_password, pw_hash, password)
    if not ok or user is None:
        await limiter.failed(attempt.account, attempt.address, attempt.device)
        return render(
            request,
            "dashboard/login.html",
            {"next": nxt, "email": email, "error": _(request, "Wrong e-mail or password.")},
            status=401,
        )
    await limiter.succeeded(attempt.account, attempt.address, attempt.device)
    async with sessionmaker(request).begin() as s:
        await schools.record_login(s, user.id)
    # A new session id and CSRF token at login: a session planted before cannot be used.
    _fresh_session(request, user)
    if nxt:
        response = web.Response(status=303, headers={"Location": nxt})
    else:
        response = redirect(request, "dash:home")
    remember_device(request, response, attempt.account)
    return response


async def set_language(request: web.Request) -> web.Response:
    """The language picker: for this session, and kept on the account when logged in."""
    form = await request.post()
    lang = str(form.get("lang", ""))
    if lang not in dashboard_languages():
        raise web.HTTPBadRequest(text=_(request, "Unknown language."))
    sess = request[R_SESSION]
    sess["lang"] = lang
    request[R_DIRTY] = True
    user = request.get(R_USER)
    if user is not None:
        async with sessionmaker(request).begin() as s:
            await schools.set_user_language(s, user.id, lang)
        user.language = lang
    target = _safe_next(str(form.get("next", "")))
    if target:
        return web.Response(status=303, headers={"Location": target})
    return redirect(request, "dash:home" if user is not None else "dash:login")


async def logout(request: web.Request) -> web.Response:
    user = request.get(R_USER)
    if user is not None:
        # Every session of this user issued until now ends, copies of the cookie included.
        async with sessionmaker(request).begin() as s:
            await schools.end_sessions(s, user.id)
    lang = request[R_SESSION].get("lang") or getattr(user, "language", None)
    request[R_SESSION] = auth.new_session()
    if lang:
        request[R_SESSION]["lang"] = lang
    request[R_USER] = None
    request[R_DIRTY] = True
    flash(request, _(request, "You are logged out."))
    return redirect(request, "dash:login")


async def account(request: web.Request) -> web.Response:
    user = user_of(request)
    token = auth.api_token(request.app[keys.SECRET_KEY], user)
    return render(request, "dashboard/account.html", {"token": token})


# --- the password ------------------------------------------------------------------------


def password_rules(request: web.Request) -> str:
    """The rules as one sentence, shown beside every field that sets a password."""
    return texts_of(request).ngettext(
        "At least %(num)s character; not one of the most common passwords, nor your e-mail "
        "address. A few unrelated words make a good password.",
        "At least %(num)s characters; not one of the most common passwords, nor your e-mail "
        "address. A few unrelated words make a good password.",
        MIN_LENGTH,
    )


def refusal(request: web.Request, exc: PasswordRefused) -> str:
    """Why a new password was refused, in the reader's language."""
    tx = texts_of(request)
    if exc.reason == GUESSABLE:
        return _(
            request,
            "This password is too easy to guess: it is one of the most common passwords, or "
            "one with only digits or symbols added. Please choose another.",
        )
    if exc.reason == IS_EMAIL:
        return _(request, "A password may not be the e-mail address or the part before the @.")
    if exc.reason == TOO_LONG:
        return tx.ngettext(
            "A password may have at most %(num)s character.",
            "A password may have at most %(num)s characters.",
            MAX_LENGTH,
        )
    return tx.ngettext(
        "A password needs at least %(num)s character.",
        "A password needs at least %(num)s characters.",
        MIN_LENGTH,
    )


def _password_form(
    request: web.Request, error: str = "", status: int = 200, field: str = ""
) -> web.Response:
    ctx = {
        "rules": password_rules(request),
        "error": error,
        "field": field,
        "min_length": MIN_LENGTH,
        "max_length": MAX_LENGTH,
    }
    return render(request, "dashboard/password.html", ctx, status=status)


async def password_page(request: web.Request) -> web.Response:
    user_of(request)
    return _password_form(request)


async def password_submit(request: web.Request) -> web.Response:
    """Change one's own password: the current one first (under the login limits, so a
    stolen session cannot guess it), then the rules. The other sessions end (the password
    fingerprint in their cookies no longer matches) and so does the API token; this browser
    stays logged in with a fresh session."""
    user = user_of(request)
    form = await request.post()
    current = str(form.get("current", ""))[:MAX_LENGTH]
    new = str(form.get("new", ""))
    repeat = str(form.get("repeat", ""))
    # The session vouches for this browser, as a device cookie does at the login form.
    attempt = LoginTry(
        schools.normalise_email(user.email),
        auth.login_address(auth.client_ip(request)),
        "session:" + str(request[R_SESSION].get("sid", "")),
    )
    await check_login_limit(request, attempt)
    loop = asyncio.get_running_loop()
    old_hash = user.password_hash
    if not await loop.run_in_executor(None, verify_password, old_hash, current):
        await request.app[keys.LIMITER].failed(attempt.account, attempt.address, attempt.device)
        error = _(request, "The current password is not right.")
        return _password_form(request, error, 401, "current")
    if new != repeat:
        return _password_form(request, _(request, "The two new passwords differ."), 400, "new")
    if new == current:
        error = _(request, "The new password is the same as the current one.")
        return _password_form(request, error, 400, "new")
    try:
        new_hash = await loop.run_in_executor(None, hash_password, new, user.email)
    except PasswordRefused as exc:
        return _password_form(request, refusal(request, exc), 400, "new")
    await request.app[keys.LIMITER].succeeded(attempt.account, attempt.address, attempt.device)
    async with sessionmaker(request).begin() as s:
        changed = await schools.change_password(s, user.id, old_hash, new_hash)
    if not changed:  # changed meanwhile (another session): this one is stale
        raise web.HTTPConflict(
            text=_(request, "Your password was changed meanwhile. Please log in again.")
        )
    user.password_hash = new_hash
    log.info("password changed", extra={"user_id": user.id})
    _fresh_session(request, user)  # this browser stays in, with the new fingerprint
    flash(
        request,
        _(
            request,
            "Your password was changed. Your other sessions are logged out, and your API "
            "token was replaced: programs using the old one need the new one.",
        ),
        "ok",
    )
    return redirect(request, "dash:account")


async def token_replace(request: web.Request) -> web.Response:
    """A new API token; the old one stops working at once (e.g. after it leaked)."""
    user = user_of(request)
    async with sessionmaker(request).begin() as s:
        await schools.replace_api_token(s, user.id)
    flash(
        request,
        _(request, "Your API token was replaced: the old one no longer works."),
        "ok",
    )
    return redirect(request, "dash:account")


# --- admin ---------------------------------------------------------------------------


async def admin_page(request: web.Request) -> web.Response:
    require_admin(request)
    async with sessionmaker(request).begin() as s:
        all_schools = await schools.list_schools(s)
        users = await list_users(s)
    ctx = {"schools": all_schools, "users": users, "rules": password_rules(request)}
    return render(request, "dashboard/admin.html", ctx)


async def admin_create_school(request: web.Request) -> web.Response:
    require_admin(request)
    form = await request.post()
    slug = str(form.get("slug", "")).strip().lower()
    name = str(form.get("name", "")).strip()
    if not SLUG.match(slug) or not name or len(name) > 200:
        flash(request, _(request, "A school needs a slug (2-63 a-z, 0-9, -) and a name."), "error")
        return redirect(request, "dash:admin")
    async with sessionmaker(request).begin() as s:
        if await schools.get_school_by_slug(s, slug) is not None:
            flash(
                request,
                _(request, "A school with slug %(slug)s exists already.", slug=slug),
                "error",
            )
            return redirect(request, "dash:admin")
        await schools.create_school(s, slug, name)
    flash(request, _(request, "School %(name)s created.", name=name), "ok")
    return redirect(request, "dash:admin")


async def admin_create_user(request: web.Request) -> web.Response:
    require_admin(request)
    form = await request.post()
    email = str(form.get("email", "")).strip()
    password = str(form.get("password", ""))
    role = str(form.get("role", "coordinator"))
    slug = str(form.get("school", ""))
    if role not in ("coordinator", "peer", "admin") or "@" not in email or len(email) > 254:
        flash(request, _(request, "Give a valid e-mail and role."), "error")
        return redirect(request, "dash:admin")
    try:
        pw_hash = await asyncio.get_running_loop().run_in_executor(
            None, hash_password, password, email
        )
    except PasswordRefused as exc:
        flash(request, refusal(request, exc), "error")
        return redirect(request, "dash:admin")
    async with sessionmaker(request).begin() as s:
        school_id = None
        if role != "admin":
            school = await schools.get_school_by_slug(s, slug)
            if school is None:
                flash(request, _(request, "Choose the user's school."), "error")
                return redirect(request, "dash:admin")
            school_id = school.id
        if await schools.get_user_by_email(s, email) is not None:
            flash(request, _(request, "A user with that e-mail exists already."), "error")
            return redirect(request, "dash:admin")
        await schools.create_user(s, school_id, email, pw_hash, role)
    flash(request, _(request, USER_CREATED[role], email=email), "ok")
    return redirect(request, "dash:admin")


def routes() -> list[tuple[str, str, Any, str]]:
    return [
        ("GET", "/login", login_page, "dash:login"),
        ("POST", "/login", login_submit, "dash:login_submit"),
        ("POST", "/logout", logout, "dash:logout"),
        ("POST", "/language", set_language, "dash:language"),
        ("GET", "/dashboard/account", account, "dash:account"),
        ("POST", "/dashboard/account/token", token_replace, "dash:token_replace"),
        ("GET", "/dashboard/account/password", password_page, "dash:password"),
        ("POST", "/dashboard/account/password", password_submit, "dash:password_submit"),
        ("GET", "/dashboard/admin", admin_page, "dash:admin"),
        ("POST", "/dashboard/admin/schools", admin_create_school, "dash:admin_school"),
        ("POST", "/dashboard/admin/users", admin_create_user, "dash:admin_user"),
    ]
