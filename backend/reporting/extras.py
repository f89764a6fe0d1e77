"""What the PDF report carries beside the report itself: the evidence list, the previous
cycle's report (for the change) and the action plan."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from backend.reporting.report import build_report
from conversations.model import load_model
from storage import schools
from storage.models import ActionItem, Cycle


def actions_for_export(items: list[ActionItem]) -> list[dict[str, object]]:
    """Plain dicts for `report_pdf(actions=...)`."""
    return [
        {
            "indicator_key": a.indicator_key,
            "title": a.title,
            "owner": a.owner,
            "due_date": a.due_date,
            "status": a.status,
        }
        for a in items
    ]


async def pdf_extras(s: AsyncSession, cycle: Cycle) -> dict[str, object]:
    """What the PDF report carries beside the report: the evidence list, the report of the
    previous cycle (for the change) and the action plan, as `report_pdf`'s keywords."""
    earlier = [c for c in await schools.list_cycles(s, cycle.school_id) if c.id < cycle.id]
    return {
        "evidence": [
            {
                "indicator_key": e.indicator_key,
                "title": e.filename or e.url,
                "kind": e.kind,
                "note": e.note,
                "created_at": e.created_at,
            }
            for e in await schools.list_evidence(s, cycle.id)
        ],
        "previous": await build_report(s, earlier[0].id, load_model()) if earlier else None,
        "actions": actions_for_export(await schools.list_actions(s, cycle.id)),
    }
