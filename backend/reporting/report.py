"""The triangulation report: every indicator of the model, the school's view beside each group's.

The only way to the report's figures is `aggregate_cycle` (released figures only) ->
`anonymity.enforce`; nothing here reads an answer. A reader that wants the newest
release calls `releases.refresh` first; without it the report shows the last one. Means, gaps and spreads are rounded to two
decimals in the output only; all computation keeps full precision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.reporting import intervals
from backend.reporting import triangulation as tri
from backend.reporting.aggregate import aggregate_cycle
from backend.reporting.anonymity import SafeAggregates, ShownGroup, Thresholds, enforce
from conversations.model import ExcellenceModel
from conversations.roles import ROLES
from conversations.scales import AnswerKind
from storage.reporting import load_cycle, load_self_ratings
from storage.schools import get_school


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _iv(iv: intervals.Interval | None) -> list[float] | None:
    """An interval's ends to one decimal: they are not known better than that."""
    return None if iv is None else [round(iv.low, 1), round(iv.high, 1)]


def _group_json(g: ShownGroup, ci: intervals.Interval | None) -> dict[str, Any]:
    return {
        "n": g.n,
        "respondents": g.respondents,
        "questions": g.questions,
        "mean": _r(g.mean),
        # 95% t-interval of the mean (backend/reporting/intervals.py); None below 2 answers
        "ci95": _iv(ci),
        "ci_note": intervals.width_note(g.distribution) if ci is not None else None,
        "distribution": (
            None if g.distribution is None else {str(v): c for v, c in g.distribution.items()}
        ),
        "na": g.na,
        "skipped": g.skipped,
        "suppressed": g.suppressed,
    }


def _role_json(safe: SafeAggregates, role: str, targets: Mapping[str, Any]) -> dict[str, Any]:
    """Live counts of the role's responses, when its figures were last released, and its
    response rate against the cycle's target (completed / target; None without a target)."""
    r = safe.roles.get(role)
    target = targets.get(role)
    target = target if isinstance(target, int) and target > 0 else None
    completed = r.completed if r is not None else 0
    return {
        "started": r.started if r is not None else 0,
        "completed": completed,
        "shared": r.shared if r is not None else 0,
        "dashboard": r.dashboard if r is not None else 0,
        "released_at": None if r is None or r.released_at is None else r.released_at.isoformat(),
        "target": target,
        "response_rate": None if target is None else _r(completed / target),
    }


def _report_roles(safe: SafeAggregates, roles: Sequence[str] | None) -> list[str]:
    if roles is not None:
        return list(dict.fromkeys(roles))
    known = [r.value for r in ROLES]
    extra = sorted(({role for _, role in safe.groups} | set(safe.roles)) - set(known))
    return known + extra


async def build_report(
    s: AsyncSession,
    cycle_id: int,
    model: ExcellenceModel,
    *,
    roles: Sequence[str] | None = None,
    thresholds: Thresholds | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The report JSON of a cycle, from its releases (of `roles` only, if given)."""
    cycle = await load_cycle(s, cycle_id)
    school = await get_school(s, cycle.school_id)
    thresholds = thresholds or Thresholds.for_cycle(cycle)
    raw = await aggregate_cycle(s, cycle_id, roles=roles)
    safe = enforce(raw, thresholds)
    selfs = await load_self_ratings(s, cycle_id)
    role_list = _report_roles(safe, roles)

    indicators: list[dict[str, Any]] = []
    self_scores: dict[str, float | None] = {}
    role_means: dict[str, dict[str, float | None]] = {r: {} for r in role_list}
    for placed in model.placed():
        ind = placed.indicator
        is_number = ind.kind == AnswerKind.NUMBER
        rating = selfs.get(ind.key)
        if rating is None:
            self_value: float | int | None = None
        else:
            self_value = rating.number if is_number else rating.value
        self_score = None if is_number or self_value is None else float(self_value)
        self_scores[ind.key] = self_score

        groups = {r: safe.group(ind.key, r) for r in role_list}
        gaps = {r: tri.gap(g.mean, self_score) for r, g in groups.items()}
        cis = {
            r: intervals.mean_interval(g.distribution, g.respondents or None)
            if g.mean is not None
            else None
            for r, g in groups.items()
        }
        gap_cis = {r: intervals.gap_interval(cis[r], self_score) for r in groups}
        for r, g in groups.items():
            role_means[r][ind.key] = g.mean
        agree = tri.agreement(g.mean for g in groups.values())
        indicators.append(
            {
                "key": ind.key,
                "id": ind.id,
                "dimension": placed.dimension_id,
                "criterion": placed.criterion_id,
                "theme": placed.theme_id,
                "kind": str(ind.kind),
                "self": self_value,
                "self_status": rating.status if rating else None,
                "roles": {r: _group_json(g, cis[r]) for r, g in groups.items()},
                "gap": {r: _r(v) for r, v in gaps.items()},
                "flag": {r: tri.flag(v) for r, v in gaps.items()},
                # the gap's 95% interval, and whether it excludes zero (not noise)
                "gap_ci95": {r: _iv(v) for r, v in gap_cis.items()},
                "gap_clear": {r: intervals.gap_is_clear(v) for r, v in gap_cis.items()},
                "agreement": {
                    "groups": agree.groups,
                    "range": _r(agree.range),
                    "sd": _r(agree.sd),
                    "label": agree.label,
                },
            }
        )

    rollups = {
        level: {
            uid: {
                "indicators": ru.indicators,
                "self": {"mean": _r(ru.self.mean), "count": ru.self.count},
                "roles": {r: {"mean": _r(f.mean), "count": f.count} for r, f in ru.roles.items()},
            }
            for uid, ru in by_id.items()
        }
        for level, by_id in tri.rollups(model, self_scores, role_means).items()
    }

    return {
        "school": {"slug": school.slug, "name": school.name} if school else None,
        "cycle": {
            "id": cycle.id,
            "name": cycle.name,
            "status": cycle.status,
            "model_version": cycle.model_version,
        },
        "model_version": model.version,
        "generated_at": (now or datetime.now(UTC)).isoformat(),
        "filter": {"roles": list(roles) if roles is not None else None},
        "thresholds": {"anonymity": thresholds.anonymity, "free_text": thresholds.free_text},
        "roles": {r: _role_json(safe, r, cycle.targets or {}) for r in role_list},
        "indicators": indicators,
        "rollups": rollups,
        "comments": {
            role: {
                qid: {"answered": t.answered, "texts": None if t.texts is None else list(t.texts)}
                for qid, t in sorted(by_q.items())
            }
            for role, by_q in sorted(safe.comments.items())
        },
    }


def biggest_gaps(report: dict[str, Any], limit: int = 10) -> list[dict[str, Any]]:
    """The (indicator, role) pairs with the largest gap either way, largest first."""
    rows = []
    for pos, ind in enumerate(report["indicators"]):
        for role, g in ind["gap"].items():
            if g is None:
                continue
            rows.append(
                (
                    -abs(g),
                    pos,
                    role,
                    {
                        "key": ind["key"],
                        "id": ind["id"],
                        "role": role,
                        "self": ind["self"],
                        "self_status": ind["self_status"],
                        "mean": ind["roles"][role]["mean"],
                        "n": ind["roles"][role]["n"],
                        "respondents": ind["roles"][role].get("respondents")
                        or ind["roles"][role]["n"],
                        "gap": g,
                        "flag": ind["flag"][role],
                        "gap_ci95": ind["gap_ci95"][role],
                        "gap_clear": ind["gap_clear"][role],
                    },
                )
            )
    rows.sort(key=lambda row: row[:3])
    return [row[3] for row in rows[:limit]]
