"""Structured JSON logs with a request id, and no personal data.

Every record is one JSON object per line: time, level, logger, message, request_id (when a
request is being handled) and any `extra={...}` fields. Respondents never appear by name,
username or raw Telegram id: code logs keyed hashes (shortened) or nothing.
"""

from __future__ import annotations

import contextvars
import json
import logging
import secrets
import sys
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


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
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure(level: str = "INFO", *, json_format: bool = True) -> None:
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
        log.info(
            "request",
            extra={
                "method": request.method,
                "route": path,
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        request_id.reset(token)
