"""What respondents wrote: a cycle's free-text answers, by question and group, searchable.

The texts come from `build_report` (released texts only, withheld below the free-text
threshold by `anonymity.enforce`); `reporting.comments` arranges and filters them. A
peer reviewer of another school reads no respondent's words (`web.hides_raw`).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from markupsafe import Markup, escape

from backend.dashboard.web import (
    R_SCHOOL,
    _,
    cycle_for,
    hides_raw,
    release_figures,
    render,
    sessionmaker,
    texts_of,
)
from backend.reporting.comments import QuestionTexts, comment_sections, group_order
from backend.reporting.report import build_report
from conversations.model import load_model
from storage import schools

MAX_QUERY = 200


def highlight(text: str, query: str) -> Markup:
    """`text` escaped, each word of `query` in it marked (<mark>), case ignored."""
    words = sorted({w for w in query.split() if w}, key=len, reverse=True)
    if not words:
        return escape(text)
    pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
    out, last = [], 0
    for m in pattern.finditer(text):
        out.append(escape(text[last : m.start()]))
        out.append(Markup("<mark>%s</mark>") % text[m.start() : m.end()])
        last = m.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


def readable(sections: list[QuestionTexts]) -> int:
    """How many texts the sections show (a search's matches)."""
    return sum(len(g.matches or ()) for q in sections for g in q.groups)


def refuse_peer(request: web.Request, school_id: int) -> None:
    if hides_raw(request, school_id):
        raise web.HTTPForbidden(
            text=_(
                request,
                "Peer reviewers read a school's figures, never what its respondents wrote.",
            )
        )


async def comments_page(request: web.Request) -> web.Response:
    tx = texts_of(request)
    await release_figures(request)
    async with sessionmaker(request).begin() as s:
        cycle = await cycle_for(request, s, request.match_info["cycle_id"])
        refuse_peer(request, cycle.school_id)
        school = await schools.get_school(s, cycle.school_id)
        report = await build_report(s, cycle.id, load_model())
    query = " ".join(request.query.get("q", "").split())[:MAX_QUERY]
    every = comment_sections(report, tx)
    groups = sorted({g.role for q in every for g in q.groups}, key=group_order)
    group = request.query.get("group") or None
    if group not in groups:
        group = None
    sections = comment_sections(report, tx, query=query, role=group)
    request[R_SCHOOL] = school.slug
    return render(
        request,
        "dashboard/comments.html",
        {
            "school": school,
            "cycle": cycle,
            "sections": sections,
            "any_comments": bool(every),
            "query": query,
            "group": group,
            "groups": groups,
            "shown": readable(sections),
            "total": readable(every),
            "free_text": report["thresholds"]["free_text"],
            "highlight": highlight,
        },
    )


def routes() -> list[tuple[str, str, Any, str]]:
    c = "/dashboard/cycles/{cycle_id:\\d+}"
    return [("GET", c + "/comments", comments_page, "dash:comments")]
