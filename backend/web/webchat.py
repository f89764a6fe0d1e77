"""The web chat: the Telegram bot's flows as a mobile-first web page, and as a Telegram Mini App.

One answer reads like the bot's handler, with HTML instead of Bot API calls:
    who (cookie or initData) -> form fields -> engine event -> runner.handle -> render the prompt

- Works without JavaScript: plain forms, POST -> 303 -> GET (`/chat`). The prompts of a POST
  (a notice, "thank you", "nothing was erased") ride across the redirect as a short-lived
  flash in the session store.
- With JavaScript (`static/webchat/webchat.js`) the same forms are posted with fetch and the
  card is swapped in place (`Accept: application/json` -> `{"html": ..., "lang": ...}`).
- Identity on the web: a random respondent cookie; the subject is `runner.subject("web", v)`
  (a keyed hash: the cookie value is never stored). CSRF: an HMAC of the cookie value under
  the app's secret key in every form, plus Origin / Sec-Fetch-Site checks.
- Mini App (`/app`, only with a bot token): identity from Telegram's signed initData
  (`backend.web.miniapp`), the subject is `runner.subject("telegram", user.id)`: the same person,
  the same response and position as in the Telegram chat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from markupsafe import Markup, escape

from backend.dashboard import auth
from backend.dashboard.auth import request_is_https
from backend.i18n import negotiate
from backend.web import keys
from backend.web.input_guard import MAX_WEBCHAT_FORM_BYTES, contains_nul
from backend.web.miniapp import InitDataError, validate_init_data
from conversations import engine as E
from conversations.i18n import Translator, available_languages, format_number
from conversations.ports import SessionKey
from conversations.survey import WebOrigin

COOKIE = "gs_respondent"
# The cookie lives WEBCHAT_COOKIE_HOURS (default 72) after the last visit: see the setting.
FLASH_TTL = 120
INIT_DATA_MAX_AGE = 24 * 3600
INIT_DATA_HEADER = "X-Telegram-Init-Data"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "webchat"
TELEGRAM_FRAME_ANCESTORS = "https://web.telegram.org https://*.web.telegram.org"

_COOKIE_VALUE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
_COMMAND = re.compile(r"(?<![\w/])/(delete|resume|stop|language|privacy|help|restart)\b")
_ACTIONS: dict[str, E.Event] = {
    "stop": E.Stop(),
    "resume": E.Resume(),
    "delete": E.DeleteRequest(),
    "language": E.ShowLanguages(),
    "privacy": E.Privacy(),
}
_OUR_PATHS = ("/chat", "/chat/forget", "/privacy", "/app")
_OUR_PREFIXES = ("/s/", "/app/", "/static/webchat/")


# -- pure helpers ------------------------------------------------------------------


def form_event(fields: Mapping[str, str]) -> E.Event | None:
    """The engine event of a posted form (or Mini App JSON body); None: just show the card."""
    qid = (fields.get("question_id") or "").strip()[:12] or None
    action = fields.get("action") or ""
    if action:
        return _ACTIONS.get(action)
    choice = (fields.get("choice") or "")[:64]
    if choice:
        if choice.startswith(E.LANG_PREFIX):
            return E.ChooseLanguage(choice)
        if choice == E.BACK:
            return E.Back(qid)
        if choice == E.SKIP:
            return E.Skip(qid)
        return E.Answer(qid, choice)
    if "text" in fields:
        return E.Answer(qid, str(fields["text"]))
    return None


def csrf_token(secret_key: str, cookie_value: str) -> str:
    msg = b"webchat-csrf:" + cookie_value.encode()
    return hmac.new(secret_key.encode(), msg, hashlib.sha256).hexdigest()[:40]


def web_text(text: str, t: Translator) -> str:
    """Telegram's /commands in an engine text, named as the web page's buttons instead."""
    labels = {
        "delete": t("web.erase"),
        "resume": t("web.resume"),
        "stop": t("web.stop"),
        "language": t("web.language"),
        "privacy": t("web.privacy_link"),
        "help": t("web.help"),
        "restart": t("web.restart"),
    }
    return _COMMAND.sub(lambda m: t("web.command", label=labels[m.group(1)]), text)


def prompt_to_dict(p: E.Prompt) -> dict[str, Any]:
    return {
        "kind": p.kind,
        "text": p.text,
        "choices": [{"id": c.id, "label": c.label} for c in p.choices],
        "nav": [{"id": c.id, "label": c.label} for c in p.nav],
        "expects": p.expects,
        "question_id": p.question_id,
        "progress": list(p.progress) if p.progress else None,
        "progress_upto": p.progress_upto,
        "notice": p.notice,
        "current": p.current,
        "final": p.final,
    }


def prompt_from_dict(d: Mapping[str, Any]) -> E.Prompt:
    return E.Prompt(
        kind=d["kind"],
        text=d["text"],
        choices=tuple(E.Choice(c["id"], c["label"]) for c in d.get("choices", ())),
        nav=tuple(E.Choice(c["id"], c["label"]) for c in d.get("nav", ())),
        expects=d.get("expects"),
        question_id=d.get("question_id"),
        progress=tuple(d["progress"]) if d.get("progress") else None,  # type: ignore[arg-type]
        progress_upto=d.get("progress_upto"),
        notice=d.get("notice"),
        current=d.get("current"),
        final=bool(d.get("final")),
    )


# -- rendering -----------------------------------------------------------------------


def _prompt_view(
    engine: E.Engine, state: Mapping[str, Any], p: E.Prompt, t: Translator, draft: str = ""
) -> dict[str, Any]:
    cur = p.current
    view: dict[str, Any] = {
        "kind": p.kind,
        "text": web_text(p.text, t),
        "notice": web_text(p.notice, t) if p.notice else None,
        "final": p.final,
        "question_id": p.question_id or "",
        "is_question": p.kind == "question",
        "choices": [
            {"id": c.id, "label": c.label, "current": cur is not None and c.id == cur}
            for c in p.choices
        ],
        "nav": [
            {"id": c.id, "label": c.label, "current": cur is not None and c.id == cur}
            for c in p.nav
        ],
        "expects": p.expects,
        "progress": None,
        "current_label": None,
    }
    if p.progress:
        index, total = p.progress
        view["progress"] = {
            "index": index,
            "total": p.progress_upto or total,
            "label": E.progress_label(t, p),
        }
    question = None
    bank = engine.bank_for(state) if state.get("bank") else None
    if bank is not None and p.question_id:
        try:
            question = bank.question(p.question_id)
        except KeyError:
            question = None
    if cur is not None and p.question_id and question is not None:
        label = E.answer_label(engine, state, p.question_id)
        if label:
            view["current_label"] = t("question.current", answer=label)
    if p.expects == "number":
        integer = question is None or question.number is None or question.number.integer
        view["inputmode"] = "numeric" if integer else "decimal"
        view["input_label"] = t("question.type_number")
        given = cur[2:] if cur and cur.startswith("n:") else ""
        view["value"] = format_number(t.lang, float(given)) if given else ""
        if question is not None and question.number is not None:
            b = question.number
            low, high = format_number(t.lang, b.min), format_number(t.lang, b.max)
            view["hint"] = t("number.range", min=low, max=high)
    elif p.expects == "text":
        # No maxlength on the box: a longer paste is kept whole, the counter says how much
        # too long it is, and a refused answer comes back in the box (`draft`).
        max_length = question.max_length if question is not None else 1000
        shown_max = format_number(t.lang, max_length)
        view["input_label"] = t("question.type_text")
        view["max_length"] = max_length
        view["value"] = draft
        over = len(draft) - max_length
        if over > 0:
            view["counter"] = t(
                "web.chars_over",
                count=format_number(t.lang, len(draft)),
                max=shown_max,
                over=format_number(t.lang, over),
            )
        else:
            view["counter"] = t("web.chars", count=format_number(t.lang, len(draft)), max=shown_max)
        view["counter_over"] = over > 0
        view["counter_template"] = t("web.chars", count="{count}", max=shown_max)
        view["counter_over_template"] = t(
            "web.chars_over", count="{count}", max=shown_max, over="{over}"
        )
        view["too_long_template"] = t("text.too_long", length="{count}", max=shown_max)
    return view


def _page_context(
    request: web.Request,
    state: Mapping[str, Any],
    prompts: tuple[E.Prompt, ...],
    *,
    mode: str,
    cookie_value: str = "",
    draft: str = "",
) -> dict[str, Any]:
    """The page's context; `draft`: text the last post sent that was refused (shown again in
    the box of the card that asks for it, so that nothing typed is lost)."""
    engine: E.Engine = request.app[keys.SURVEY_ENGINE]
    # Nobody's language known yet (no survey here): the browser's.
    t = engine.t(state) if state.get("lang") else _browser_translator(request)
    if not state.get("stage") and (
        not prompts or prompts[-1].text == engine.t(state)("start.no_code")
    ):
        # A visitor with no invite behind them (the engine's text speaks of t.me links).
        prompts = (*prompts[:-1], E.Prompt("info", t("web.no_survey"), final=True))
    elif state.get("stage") == E.Stage.STOPPED and prompts and prompts[-1].text == t("stop.text"):
        # Paused: the page's own words ("tap Continue"), not the chat's ("send /resume").
        last = prompts[-1]
        prompts = (
            *prompts[:-1],
            E.Prompt("info", t("web.stop_text"), notice=last.notice, final=True),
        )
    views = [_prompt_view(engine, state, p, t) for p in prompts[:-1]]
    if prompts:
        views.append(_prompt_view(engine, state, prompts[-1], t, draft))
    stage = state.get("stage")
    langs = (state.get("inv") or {}).get("langs") or []
    return {
        "t": t,
        "lang": t.lang,
        "mode": mode,
        "title": t("web.title"),
        "school": (state.get("inv") or {}).get("school") or "",
        "infos": views[:-1],
        "card": views[-1] if views else None,
        "csrf": csrf_token(request.app[keys.SECRET_KEY], cookie_value) if cookie_value else "",
        "post_url": str(request.app.router["webchat.post"].url_for()),
        "privacy_url": str(request.app.router["webchat.privacy"].url_for()),
        "can_stop": stage == E.Stage.QUESTION,
        "can_resume": stage == E.Stage.STOPPED,
        "can_erase": bool(state.get("opened"))
        and stage not in (E.Stage.CONFIRM_DELETE, E.Stage.ERASED),
        "can_language": len(langs) > 1
        and stage in (E.Stage.QUESTION, E.Stage.CONSENT, E.Stage.STOPPED),
        # A shared device: the last answer's page offers to forget it (web chat only; the
        # Mini App's identity is the Telegram account, not the device).
        "offer_forget": mode == "web" and stage == E.Stage.DONE and bool(cookie_value),
        "can_forget": mode == "web" and bool(stage) and bool(cookie_value),
        "forget_page_url": str(request.app.router["webchat.forget"].url_for()),
        "forget_url": str(request.app.router["webchat.forget_post"].url_for()),
        "css_url": _static_url(request, "webchat.css"),
        "js_url": _static_url(request, "webchat.js"),
    }


STATIC_FILES = ("webchat.css", "webchat.js")


def _static_url(request: web.Request, filename: str) -> str:
    """The file's URL with its content's hash (`append_version`), computed once at setup:
    aiohttp reads and hashes the file on every `url_for`, which was 9% of the server's CPU
    per Mini App answer (py-spy under the bench's Mini App crowd)."""
    return request.app[keys.WEBCHAT_STATIC][filename]


class Fragments:
    """The swappable part of the Mini App's page, rendered, by the context it is rendered
    from (the most recently used `size`).

    A crowd answers the same questions in the same few languages, and Jinja's render of the
    card was about 30% of the server's CPU per Mini App answer (py-spy under the bench's
    crowd of 1,000; bench/README.md, the eighth pass). The key is the whole context the
    template reads, as JSON, except the translator, for which the language in it stands.
    Only a context without anything of one person's own is kept: no CSRF token (the web
    chat's pages have one; the Mini App's have none) and no text typed in the box (a
    refused answer shown again)."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._html: OrderedDict[str, str] = OrderedDict()

    @staticmethod
    def key(ctx: Mapping[str, Any]) -> str | None:
        if ctx["csrf"] or (ctx["card"] or {}).get("value"):
            return None
        try:
            return json.dumps({k: v for k, v in ctx.items() if k != "t"}, separators=(",", ":"))
        except TypeError:  # something not plain data in it: rendered each time
            return None

    def render(self, request: web.Request, ctx: dict[str, Any]) -> str:
        key = self.key(ctx)
        html = None if key is None else self._html.get(key)
        if html is not None:
            self._html.move_to_end(key)
            return html
        html = aiohttp_jinja2.render_string("webchat/_content.html", request, ctx)
        if key is not None:
            self._html[key] = html
            if len(self._html) > self.size:
                self._html.popitem(last=False)
        return html


def _render_fragment(request: web.Request, ctx: dict[str, Any]) -> dict[str, Any]:
    html = request.app[keys.WEBCHAT_FRAGMENTS].render(request, ctx)
    card = ctx["card"] or {}
    t = ctx["t"]
    return {
        "html": html,
        "lang": ctx["lang"],
        "brand": ctx["school"] or ctx["title"],
        "final": bool(card.get("final")),
        "forget": bool(ctx.get("can_forget")),  # the top bar's "Not you?" (outside the card)
        # The page's own words outside the card, in the card's language: a person who
        # switches language mid-survey reads them in the new one without a reload.
        "words": {
            "not_me": t("web.forget.link"),
            "skip": t("web.skip_to_card"),
            "network_error": t("web.network_error"),
            "leave": t("web.leave"),
        },
    }


# -- identity ------------------------------------------------------------------------


def _cookie_value(request: web.Request) -> str | None:
    value = request.cookies.get(COOKIE, "")
    return value if _COOKIE_VALUE.match(value) else None


def cookie_max_age(request: web.Request) -> int:
    return request.app[keys.SETTINGS].webchat_cookie_hours * 3600


def _set_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    """The respondent cookie, renewed: it lives WEBCHAT_COOKIE_HOURS after the last visit.

    Secure whenever the browser reached us over https (TLS, a trusted proxy's word, or an
    https PUBLIC_URL: `request_is_https`), so it never travels in clear text after that."""
    response.set_cookie(
        COOKIE,
        value,
        max_age=cookie_max_age(request),
        path="/",
        httponly=True,
        samesite="Lax",
        secure=request_is_https(request),
    )


def _drop_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(
        COOKIE, path="/", httponly=True, samesite="Lax", secure=request_is_https(request)
    )


def _allowed_origins(request: web.Request) -> set[str]:
    origins = {f"{request.scheme}://{request.host}"}
    if request_is_https(request):
        origins.add(f"https://{request.host}")
    public = request.app[keys.SETTINGS].public_url
    if public:
        parts = urlsplit(public)
        origins.add(f"{parts.scheme}://{parts.netloc}")
    return origins


def _check_origin(request: web.Request) -> None:
    """Refuse a cross-site POST (Origin is "null" under our no-referrer policy: allowed)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise _forbidden(request, "web.error.origin")
    origin = request.headers.get("Origin")
    if origin and origin != "null" and origin not in _allowed_origins(request):
        raise _forbidden(request, "web.error.origin")


def _error_html(request: web.Request, t: Translator, message: str) -> str:
    """The web chat's error page, in the language of `t`."""
    return aiohttp_jinja2.render_string(
        "webchat/error.html",
        request,
        {
            "t": t,
            "lang": t.lang,
            "title": t("web.title"),
            "message": message,
            "mode": "web",
            "css_url": _static_url(request, "webchat.css"),
            "chat_url": str(request.app.router["webchat.chat"].url_for()),
        },
    )


def _browser_translator(request: web.Request) -> Translator:
    return Translator(negotiate(request.headers.get("Accept-Language"), available_languages()))


def _forbidden(request: web.Request, key: str) -> web.HTTPException:
    t = _browser_translator(request)
    if _wants_json(request):
        body = json.dumps({"error": "forbidden", "message": t(key)})
        return web.HTTPForbidden(text=body, content_type="application/json")
    html = _error_html(request, t, t(key))
    return web.HTTPForbidden(text=html, content_type="text/html")


def _web_origin(request: web.Request) -> WebOrigin:
    """Where this respondent comes from: their network (for the shared-code limit) and
    whether this browser is logged in to the dashboard (its answers are marked and kept
    out of every figure: a coordinator trying the survey cannot pad a group)."""
    dashboard = request.app[keys.CODEC].loads(request.cookies.get(auth.COOKIE, "")) is not None
    return WebOrigin(network=auth.client_ip(request), dashboard=dashboard)


async def bad_input(request: web.Request) -> web.Response:
    """400 for input no text may hold (a NUL character: `backend.web.input_guard`), in the
    respondent's language: an error page, or JSON for the Mini App and fetch."""
    runner = request.app[keys.SURVEY]
    state: Mapping[str, Any] = {}
    value = _cookie_value(request)
    if value is not None:
        try:
            state = await runner.load_state(runner.subject("web", value))
        except Exception:  # the page is still worth showing, in the browser's language
            state = {}
    t = Translator(state["lang"]) if state.get("lang") else _browser_translator(request)
    message = t("web.error.bad_input")
    if request.path.startswith("/app/") or _wants_json(request):
        return web.json_response({"error": "bad_input", "message": message}, status=400)
    return web.Response(status=400, text=_error_html(request, t, message), content_type="text/html")


def _wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


# -- flash: a POST's prompts across the redirect ---------------------------------------


def _flash_key(subject: str) -> SessionKey:
    return SessionKey("webflash", subject)


async def _flash_save(
    request: web.Request, subject: str, prompts: tuple[E.Prompt, ...], draft: str = ""
) -> None:
    store = request.app[keys.SESSION_STORE]
    data: dict[str, Any] = {"p": [prompt_to_dict(p) for p in prompts]}
    if draft:
        data["d"] = draft  # refused text, back in the box after the redirect (FLASH_TTL)
    await store.save(_flash_key(subject), data, FLASH_TTL)


async def _flash_pop(request: web.Request, subject: str) -> tuple[tuple[E.Prompt, ...] | None, str]:
    """The flashed prompts (None: nothing flashed) and the refused text that rode along."""
    store = request.app[keys.SESSION_STORE]
    data = await store.load(_flash_key(subject))
    if data is None:
        return None, ""
    await store.delete(_flash_key(subject))
    draft = data.get("d") if isinstance(data.get("d"), str) else ""
    try:
        return tuple(prompt_from_dict(d) for d in data.get("p", ())) or None, draft
    except (KeyError, TypeError):
        return None, ""


def refused_text(fields: Mapping[str, str], step: E.Step) -> str:
    """The typed text of a post the engine refused (too long, say): the card asks the same
    question again with a notice, and the box gets the text back instead of coming back empty."""
    text = fields.get("text")
    if not text or step.changed or not step.prompts:
        return ""
    card = step.prompts[-1]
    asked = (fields.get("question_id") or "").strip()
    if card.expects != "text" or not card.notice or (asked and asked != card.question_id):
        return ""
    return text


# -- web views -----------------------------------------------------------------------


async def start_view(request: web.Request) -> web.StreamResponse:
    """`GET /s/{code}`: the invite's web link. Start (or resume), then show the card."""
    runner = request.app[keys.SURVEY]
    value = _cookie_value(request) or secrets.token_urlsafe(32)
    subject = runner.subject("web", value)
    lang = _browser_translator(request).lang
    outcome = await runner.start(subject, request.match_info["code"], channel="web", lang=lang)
    await _flash_save(request, subject, outcome.step.prompts)
    response = web.HTTPSeeOther(str(request.app.router["webchat.chat"].url_for()))
    _set_cookie(request, response, value)
    raise response


async def chat_view(request: web.Request) -> web.StreamResponse:
    """`GET /chat`: the current card (or the prompts of the POST just redirected from)."""
    runner = request.app[keys.SURVEY]
    value = _cookie_value(request)
    if value is None:
        value = secrets.token_urlsafe(32)
        ctx = _page_context(request, {}, (), mode="web", cookie_value=value)
    else:
        subject = runner.subject("web", value)
        flashed, draft = await _flash_pop(request, subject)
        state = await runner.load_state(subject)
        prompts = flashed or runner.engine.render(state).prompts
        ctx = _page_context(request, state, prompts, mode="web", cookie_value=value, draft=draft)
    response = aiohttp_jinja2.render_template("webchat/chat.html", request, ctx)
    _set_cookie(request, response, value)
    return response


async def chat_post(request: web.Request) -> web.StreamResponse:
    """`POST /chat`: one answer or action; 303 back to `/chat` (JSON card for fetch)."""
    _check_origin(request)
    value = _cookie_value(request)
    if value is None:
        raise _forbidden(request, "web.error.cookie")
    form = await _checked_form(request, value)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    runner = request.app[keys.SURVEY]
    subject = runner.subject("web", value)
    event = form_event(fields)
    if event is None:
        outcome = await runner.current(subject)
    else:
        outcome = await runner.handle(subject, event, channel="web", web=_web_origin(request))
    draft = refused_text(fields, outcome.step)
    if _wants_json(request):
        ctx = _page_context(
            request,
            outcome.step.state,
            outcome.step.prompts,
            mode="web",
            cookie_value=value,
            draft=draft,
        )
        response = web.json_response(_render_fragment(request, ctx))
        _set_cookie(request, response, value)  # every answer renews the place
        return response
    await _flash_save(request, subject, outcome.step.prompts, draft)
    redirect = web.HTTPSeeOther(str(request.app.router["webchat.chat"].url_for()))
    _set_cookie(request, redirect, value)
    raise redirect


async def _checked_form(request: web.Request, value: str) -> Any:
    """The posted form, once its size and its CSRF token (bound to the cookie) are right."""
    if request.content_length is not None and request.content_length > MAX_WEBCHAT_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_WEBCHAT_FORM_BYTES, request.content_length)
    try:
        form = await request.post()
    except ValueError:  # not UTF-8, a broken multipart body ...
        raise web.HTTPBadRequest(text="bad form") from None
    token = form.get("csrf")
    expected = csrf_token(request.app[keys.SECRET_KEY], value)
    # Compared as bytes: compare_digest refuses str with non-ASCII characters (TypeError).
    if not isinstance(token, str) or not hmac.compare_digest(
        token.encode("utf-8", "surrogatepass"), expected.encode()
    ):
        raise _forbidden(request, "web.error.csrf")
    return form


# -- a shared device: "not me", and forgetting after the last answer ------------------


def _state_lang(state: Mapping[str, Any]) -> str:
    lang = state.get("lang")
    return lang if isinstance(lang, str) and lang in available_languages() else "en"


def _forget_page(
    request: web.Request, t: Translator, *, text: str, csrf: str = "", school: str = ""
) -> dict[str, Any]:
    return {
        "t": t,
        "lang": t.lang,
        "mode": "web",
        "title": t("web.title"),
        "heading": t("web.forget.title"),
        "school": school,
        "text": text,
        "csrf": csrf,
        "forget_url": str(request.app.router["webchat.forget_post"].url_for()),
        "chat_url": str(request.app.router["webchat.chat"].url_for()),
        "css_url": _static_url(request, "webchat.css"),
    }


async def forget_view(request: web.Request) -> web.StreamResponse:
    """`GET /chat/forget`: "Not you?" - what forgetting does, and the button that does it."""
    runner = request.app[keys.SURVEY]
    value = _cookie_value(request)
    state = await runner.load_state(runner.subject("web", value)) if value else {}
    if state.get("stage"):
        t = runner.engine.t(state)
        ctx = _forget_page(
            request,
            t,
            text=t("web.forget.text"),
            csrf=csrf_token(request.app[keys.SECRET_KEY], value or ""),
            school=(state.get("inv") or {}).get("school") or "",
        )
    else:  # nothing kept here (any more): after forgetting, or never
        lang = request.query.get("lang")
        t = Translator(lang) if lang else _browser_translator(request)
        done = "done" in request.query
        ctx = _forget_page(request, t, text=t("web.forget.done" if done else "web.no_survey"))
    response = aiohttp_jinja2.render_template("webchat/forget.html", request, ctx)
    if value is not None and not state.get("stage"):
        _drop_cookie(request, response)  # a cookie that keeps nothing: no need to keep it
    return response


async def forget_post(request: web.Request) -> web.StreamResponse:
    """`POST /chat/forget`: this device forgets its respondent.

    The cookie goes, and so does the server's copy of where it stood (the session state and
    any flash); the answers stay in the database, where nobody can reach them from this
    device any more (the subject is a keyed hash of the forgotten cookie value).
    """
    _check_origin(request)
    value = _cookie_value(request)
    lang = "en"
    if value is not None:
        await _checked_form(request, value)
        runner = request.app[keys.SURVEY]
        subject = runner.subject("web", value)
        key = runner.key(subject)
        async with runner.store.lock(key):  # not while an answer of this person is applied
            lang = _state_lang(await runner.load_state(subject))
            await runner.store.delete(key)
        await runner.store.delete(_flash_key(subject))
    t = Translator(lang)
    if _wants_json(request):
        ctx = _page_context(
            request,
            {"lang": lang},
            (E.Prompt("info", t("web.forget.done"), final=True),),
            mode="web",
        )
        response: web.StreamResponse = web.json_response(_render_fragment(request, ctx))
    else:
        url = request.app.router["webchat.forget"].url_for().with_query(done="1", lang=lang)
        response = web.HTTPSeeOther(str(url))
    _drop_cookie(request, response)
    if isinstance(response, web.HTTPException):
        raise response
    return response


async def privacy_view(request: web.Request) -> web.StreamResponse:
    runner = request.app[keys.SURVEY]
    settings = request.app[keys.SETTINGS]
    value = _cookie_value(request)
    state = await runner.load_state(runner.subject("web", value)) if value else {}
    inv = state.get("inv") or {}
    t = runner.engine.t(state)
    text = t(
        "web.privacy.text",
        threshold=inv.get("thr", settings.anonymity_threshold),
        free_text_threshold=inv.get("ftt", settings.free_text_threshold),
    )
    ctx = {
        "t": t,
        "lang": t.lang,
        "mode": "web",
        "title": t("web.privacy.title"),
        "school": inv.get("school") or "",
        "text": text,
        "chat_url": str(request.app.router["webchat.chat"].url_for()),
        "css_url": _static_url(request, "webchat.css"),
    }
    return aiohttp_jinja2.render_template("webchat/privacy.html", request, ctx)


# -- Mini App --------------------------------------------------------------------------


_START_PARAM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


async def miniapp_view(request: web.Request) -> web.StreamResponse:
    """`GET /app`: the Mini App's shell; the script reads initData and loads the card.

    Opened outside Telegram (or with no bot configured), the page says so in the browser's
    language and offers the web chat: the invite's web link when the address carries its code
    (`?startapp=`, as a t.me Mini App link passes it), the survey this browser has started,
    or how to get a link."""
    t = _browser_translator(request)
    router = request.app.router
    has_bot = "webchat.app_state" in router
    code = request.query.get("startapp") or request.query.get("tgWebAppStartParam") or ""
    web_link = ""
    if _START_PARAM.match(code):
        web_link = str(router["webchat.start"].url_for(code=code))
    resume_url = ""
    value = _cookie_value(request)
    if not web_link and value is not None:
        runner = request.app[keys.SURVEY]
        state = await runner.load_state(runner.subject("web", value))
        if state.get("stage") in E.ACTIVE:
            resume_url = str(router["webchat.chat"].url_for())
            t = runner.engine.t(state)
    ctx = {
        "t": t,
        "lang": t.lang,
        "mode": "app",
        "title": t("web.title"),
        "school": "",
        "has_bot": has_bot,
        "web_link": web_link,
        "resume_url": resume_url,
        "css_url": _static_url(request, "webchat.css"),
        "js_url": _static_url(request, "webchat.js") if has_bot else "",
        "state_url": str(router["webchat.app_state"].url_for()) if has_bot else "",
        "answer_url": str(router["webchat.app_answer"].url_for()) if has_bot else "",
    }
    return aiohttp_jinja2.render_template("webchat/app.html", request, ctx)


def _miniapp_subject(request: web.Request) -> tuple[str, dict[str, Any]]:
    _check_origin(request)
    settings = request.app[keys.SETTINGS]
    t = Translator()
    try:
        data = validate_init_data(
            request.headers.get(INIT_DATA_HEADER, ""),
            settings.telegram_bot_token,
            max_age=INIT_DATA_MAX_AGE,
            now=time.time(),
        )
    except InitDataError as exc:
        if exc.reason in ("missing", "stale"):
            key = "web.miniapp.open_in_telegram" if exc.reason == "missing" else "web.miniapp.stale"
            body = {"error": exc.reason, "message": t(key)}
            raise web.HTTPUnauthorized(
                text=json.dumps(body), content_type="application/json"
            ) from None
        body = {"error": exc.reason, "message": t("web.miniapp.forged")}
        raise web.HTTPForbidden(text=json.dumps(body), content_type="application/json") from None
    runner = request.app[keys.SURVEY]
    return runner.subject("telegram", data["user"]["id"]), data


async def _miniapp_json(
    request: web.Request,
    state: Mapping[str, Any],
    prompts: tuple[E.Prompt, ...],
    draft: str = "",
) -> web.Response:
    ctx = _page_context(request, state, prompts, mode="app", draft=draft)
    body = _render_fragment(request, ctx)
    body["prompts"] = [prompt_to_dict(p) for p in prompts]
    return web.json_response(body)


async def miniapp_state(request: web.Request) -> web.Response:
    """`POST /app/api/state`: where this Telegram user stands (start with `start_param`)."""
    subject, data = _miniapp_subject(request)
    runner = request.app[keys.SURVEY]
    code = data.get("start_param") or ""
    if code:
        outcome = await runner.start(subject, code, channel="miniapp")
    else:
        outcome = await runner.current(subject)
    return await _miniapp_json(request, outcome.step.state, outcome.step.prompts)


async def miniapp_answer(request: web.Request) -> web.Response:
    """`POST /app/api/answer`: one answer or action, JSON in, the next card as JSON out."""
    subject, _ = _miniapp_subject(request)
    if request.content_length is not None and request.content_length > MAX_WEBCHAT_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_WEBCHAT_FORM_BYTES, request.content_length)
    try:
        payload = await request.json()
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
        raise web.HTTPBadRequest(
            text='{"error": "bad_json"}', content_type="application/json"
        ) from None
    if not isinstance(payload, dict):
        raise web.HTTPBadRequest(text='{"error": "bad_json"}', content_type="application/json")
    fields = {k: v for k, v in payload.items() if isinstance(v, str)}
    if contains_nul(*fields, *fields.values()):  # a JSON body: not read by the middleware
        return await bad_input(request)
    runner = request.app[keys.SURVEY]
    event = form_event(fields)
    if event is None:
        outcome = await runner.current(subject)
    else:
        outcome = await runner.handle(subject, event, channel="miniapp")
    draft = refused_text(fields, outcome.step)
    return await _miniapp_json(request, outcome.step.state, outcome.step.prompts, draft)


# -- headers and setup ------------------------------------------------------------------


def _ours(path: str) -> bool:
    return path in _OUR_PATHS or path.startswith(_OUR_PREFIXES)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    path = request.path
    if not _ours(path):
        return
    in_telegram = path == "/app" or path.startswith("/app/")
    ancestors = TELEGRAM_FRAME_ANCESTORS if in_telegram else "'none'"
    h = response.headers
    h["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
        f"frame-ancestors {ancestors}"
    )
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "no-referrer"
    if not in_telegram:
        h["X-Frame-Options"] = "DENY"
    if path.startswith("/static/webchat/"):
        if "v" in request.query:
            h["Cache-Control"] = "public, max-age=31536000, immutable"
        else:
            h["Cache-Control"] = "public, max-age=3600"
    else:
        h["Cache-Control"] = "no-store"


# A symbol that leads or ends a button label ("◀ Back"): shown, but hidden from screen
# readers, which would otherwise read "black left-pointing triangle, Back".
_ICON = re.compile(
    r"^(?:([\u2190-\u21ff\u2300-\u23ff\u25a0-\u27bf\u2b00-\u2bff\U0001f300-\U0001faff\ufe0f]+)\s+)?"
    r"(.*?)"
    r"(?:\s+([\u2190-\u21ff\u2300-\u23ff\u25a0-\u27bf\u2b00-\u2bff\U0001f300-\U0001faff\ufe0f]+))?$",
    re.S,
)


def icon_label(label: Any) -> Markup:
    """A button label with its leading/trailing symbol wrapped in `aria-hidden`."""
    text = str(label)
    m = _ICON.match(text)
    if not m or not (m[1] or m[3]) or not m[2].strip():
        return escape(text)
    out = escape(m[2])
    if m[1]:
        out = Markup('<span aria-hidden="true">{}</span> ').format(m[1]) + out
    if m[3]:
        out = out + Markup(' <span aria-hidden="true">{}</span>').format(m[3])
    return out


def setup(app: web.Application) -> None:
    """Register the web chat's routes (and the Mini App's, with a bot token)."""
    aiohttp_jinja2.get_env(app).filters["icon_label"] = icon_label
    r = app.router
    r.add_get("/s/{code}", start_view, name="webchat.start")
    r.add_get("/chat", chat_view, name="webchat.chat")
    r.add_post("/chat", chat_post, name="webchat.post")
    r.add_get("/chat/forget", forget_view, name="webchat.forget")
    r.add_post("/chat/forget", forget_post, name="webchat.forget_post")
    r.add_get("/privacy", privacy_view, name="webchat.privacy")
    static = r.add_static("/static/webchat", STATIC_DIR, name="webchat.static", append_version=True)
    app[keys.WEBCHAT_STATIC] = {f: str(static.url_for(filename=f)) for f in STATIC_FILES}
    app[keys.WEBCHAT_FRAGMENTS] = Fragments()
    # /app always answers: outside Telegram (or with no bot) it explains and offers the web chat.
    r.add_get("/app", miniapp_view, name="webchat.app")
    if app[keys.SETTINGS].telegram_bot_token:
        r.add_post("/app/api/state", miniapp_state, name="webchat.app_state")
        r.add_post("/app/api/answer", miniapp_answer, name="webchat.app_answer")
    app.on_response_prepare.append(_security_headers)
