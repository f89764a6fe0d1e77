"""Links from the results pages to charts and exports (backend.charts, backend.exports).

Those modules are written separately; until they exist, no links are shown.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


def links(request: web.Request, cycle_id: int) -> dict[str, Any]:
    return {"charts": [], "exports": []}


def routes() -> list[tuple[str, str, Any, str]]:
    return []
