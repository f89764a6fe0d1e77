"""Structured JSON logs with a request id, and no personal data.

Every record is one JSON object per line: time, level, logger, message, request_id (when a
request is being handled) and any `extra={...}` fields. Respondents never appear by name,
username or raw Telegram id: code logs keyed hashes (shortened) or nothing.

Nor do their words: a database error quotes what it was given (SQLAlchemy the statement's
parameters, PostgreSQL the failing row and what a trigger says), so the text of a database
error is never printed, whoever logs it and however (`install_redaction`: every record,
whatever handler or formatter writes it; `JsonFormatter` again). The engine hides the
parameters too (`storage.db`): two layers, so that the guarantee rests on neither alone.
"""

from __future__ import annotations

import contextvars
import json
import logging
import secrets
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from aiohttp import web

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


# -- no database error's text in a log line ---------------------------------------------

WITHHELD = "message withheld: a database error may quote respondents' answers"
# Exceptions of these packages (or subclasses of them) are database errors.
_DB_PACKAGES = frozenset({"sqlalchemy", "sqlite3", "_sqlite3", "aiosqlite", "asyncpg", "psycopg"})
# These libraries' own log lines may carry a statement's parameters as arguments.
_DB_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg")
_SCALARS = (str, int, float, bool, type(None))
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


class WithheldDatabaseError(Exception):
    """Stands in a log record for a database error (and what it caused): its class, its
    SQLSTATE and statement, not its message."""


def is_database_error(exc: BaseException) -> bool:
    return any(
        (cls.__module__ or "").split(".")[0] in _DB_PACKAGES for cls in type(exc).__mro__[:-2]
    )


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and every one it came from (cause, context, SQLAlchemy's `orig`)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is x for x in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__, getattr(e, "orig", None)]
        if isinstance(e, BaseExceptionGroup):
            todo += list(e.exceptions)
    return [e for e in seen if isinstance(e, BaseException)]


def involves_database_error(exc: BaseException) -> bool:
    return any(is_database_error(e) for e in _chain(exc))


def describe(exc: BaseException) -> str:
    """One line for an exception: a database error's class, SQLSTATE and statement (SQL
    with placeholders, never values) instead of its message; other exceptions as usual."""
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    if not is_database_error(exc):
        return "".join(traceback.format_exception_only(type(exc), exc)).strip()
    parts = [name + ":"]
    orig = getattr(exc, "orig", None)
    state = getattr(exc, "sqlstate", None) or getattr(orig, "sqlstate", None)
    if isinstance(state, str) and state:
        parts.append(f"(SQLSTATE {state})")
    if orig is not None:
        parts.append(f"[{type(orig).__module__}.{type(orig).__qualname__}]")
    parts.append(WITHHELD)
    statement = getattr(exc, "statement", None)
    if isinstance(statement, str) and statement:
        parts.append("[SQL: " + " ".join(statement.split())[:300] + "]")
    return " ".join(parts)


def format_exception(exc: BaseException, tb: TracebackType | None = None) -> str:
    """A traceback like Python's (the chain of causes and contexts, each with its frames),
    each exception's line written by `describe`."""
    out: list[str] = []
    seen: set[int] = set()

    def walk(e: BaseException, frames: TracebackType | None, indent: str = "") -> None:
        seen.add(id(e))
        cause, context = e.__cause__, e.__context__
        if cause is not None and id(cause) not in seen:
            walk(cause, cause.__traceback__, indent)
            out.append(_CAUSE)
        elif context is not None and not e.__suppress_context__ and id(context) not in seen:
            walk(context, context.__traceback__, indent)
            out.append(_CONTEXT)
        if frames is not None:
            out.append(indent + "Traceback (most recent call last):\n")
            out.extend(indent + line for line in traceback.format_tb(frames))
        out.append(indent + describe(e) + "\n")
        if isinstance(e, BaseExceptionGroup):
            for i, sub in enumerate(e.exceptions, 1):
                if id(sub) not in seen:
                    out.append(f"{indent}  +-- {i} --\n")
                    walk(sub, sub.__traceback__, indent + "  | ")

    walk(exc, tb if tb is not None else exc.__traceback__)
    return "".join(out).rstrip("\n")


def _safe_arg(value: Any, library: bool) -> Any:
    if isinstance(value, BaseException) and involves_database_error(value):
        return describe(value)
    if library and not isinstance(value, _SCALARS):
        return "<withheld>"  # e.g. aiosqlite's functools.partial(execute, sql, parameters)
    return value


def redact(record: logging.LogRecord) -> logging.LogRecord:
    """The record without any database error's text: in its exception (replaced by a
    stand-in, the traceback kept as `exc_text`), its arguments and its message."""
    info = record.exc_info
    if isinstance(info, tuple) and len(info) == 3 and isinstance(info[1], BaseException):
        exc = info[1]
        if involves_database_error(exc):
            record.exc_text = format_exception(exc, info[2])
            record.exc_info = (WithheldDatabaseError, WithheldDatabaseError(describe(exc)), info[2])
    library = record.name.split(".")[0] in _DB_LOGGERS
    if isinstance(record.msg, BaseException) and involves_database_error(record.msg):
        record.msg = describe(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_safe_arg(a, library) for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: _safe_arg(v, library) for k, v in record.args.items()}
    return record


def install_redaction() -> None:
    """Pass every log record made in this process through `redact`, at its creation: so
    for every handler and formatter (pytest's caplog included). Idempotent."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact(previous(*args, **kwargs))

    factory.redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            out["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_text:
            out["exc"] = record.exc_text
        elif record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)

    def formatException(self, ei: Any) -> str:
        """Without a database error's text, also for a record `redact` never saw."""
        if isinstance(ei, tuple) and len(ei) == 3 and isinstance(ei[1], BaseException):
            return format_exception(ei[1], ei[2])
        return super().formatException(ei)


def configure(level: str = "INFO", *, json_format: bool = True) -> None:
    install_redaction()
    handler = logging.StreamHandler(sys.stderr)
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for noisy in ("httpx", "httpcore", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = logging.getLogger("backend.http")
# The respondents' hot routes: one request per answer, counted and timed by /metrics
# (gs_updates_total, gs_update_seconds). Their access line is DEBUG when it says nothing
# new (answered 2xx within QUIET_MS); a failure or a slow answer is logged as every other.
QUIET_ROUTES = frozenset({"/telegram/webhook", "/app/api/answer"})
QUIET_MS = 250.0


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request id per request (a sane incoming X-Request-Id is kept), logged and echoed."""
    incoming = request.headers.get("X-Request-Id", "")
    rid = (
        incoming
        if 8 <= len(incoming) <= 64 and incoming.isascii() and incoming.replace("-", "").isalnum()
        else secrets.token_hex(8)
    )
    token = request_id.set(rid)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = rid
        return response
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-Id"] = rid
        raise
    finally:
        # The path only, never the query string (invite codes and tokens may travel there).
        path = (
            request.match_info.route.resource.canonical
            if request.match_info.route.resource
            else "-"
        )
        ms = round((time.perf_counter() - started) * 1000, 1)
        # One concise access line per request ("GET /dashboard/cycles/{cycle_id} 200 3.1 ms"),
        # its parts also as fields for JSON lines.
        level = (
            logging.DEBUG
            if path in QUIET_ROUTES and 200 <= status < 300 and ms < QUIET_MS
            else logging.INFO
        )
        if log.isEnabledFor(level):
            log.log(
                level,
                "%s %s %s %.1f ms",
                request.method,
                path,
                status,
                ms,
                extra={"method": request.method, "route": path, "status": status, "ms": ms},
            )
        request_id.reset(token)
