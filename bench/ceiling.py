"""The ceiling: a bare aiohttp webhook that checks the secret, parses the JSON and answers 200.

    python -m bench.ceiling --port 8082

Nothing is stored and nothing is sent: what one Python process with aiohttp can take at all
on this machine (with the same load generator), the upper bound for any bot written on it. It
runs on the same event loop as ours (uvloop where installed, as `guidance-survey serve`), so
that the ratio compares handlers, not loops.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web

from bench.common import SECRET

try:
    import uvloop
except ImportError:  # pragma: no cover - as backend.cli.event_loop
    uvloop = None


async def webhook(request: web.Request) -> web.Response:
    if request.headers.get("X-Telegram-Bot-Api-Secret-Token") != SECRET:
        return web.Response(status=403)
    data = json.loads(await request.read())
    if not isinstance(data, dict) or "update_id" not in data:
        return web.Response(status=400)
    return web.Response(text="ok")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    app = web.Application()
    app.router.add_post("/telegram/webhook", webhook)
    app.router.add_get("/healthz", healthz)
    loop = asyncio.new_event_loop() if uvloop is None else uvloop.new_event_loop()
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, loop=loop)


if __name__ == "__main__":
    main()
