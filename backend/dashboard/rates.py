"""Response rates: started and completed responses per group beside the cycle's targets."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from backend.i18n import Texts
from conversations.roles import ROLE_LABELS, ROLES
from storage import responses
from storage.models import Cycle


@dataclass(frozen=True, slots=True)
class RoleRate:
    role: str
    label: str
    started: int
    completed: int
    target: int | None

    @property
    def percent(self) -> int | None:
        """Completed as a share of the target, capped at 100."""
        if not self.target:
            return None
        return min(100, round(100 * self.completed / self.target))

    def as_json(self) -> dict[str, object]:
        return {
            "role": self.role,
            "label": self.label,
            "started": self.started,
            "completed": self.completed,
            "target": self.target,
            "percent": self.percent,
        }


async def response_rates(s: AsyncSession, cycle: Cycle, tx: Texts | None = None) -> list[RoleRate]:
    """Started (any status) and completed responses per role, beside the cycle's targets.

    Counts only, which the anonymity rules always allow to be shown. The labels are the
    model's group names, in the language of `tx` (English without: the JSON API).
    """
    counts = {
        role: (t.started, t.completed)
        for role, t in (await responses.role_counts(s, cycle.id)).items()
    }
    targets = cycle.targets or {}
    out = []
    for role in ROLES:
        started, done = counts.get(role.value, (0, 0))
        target = targets.get(role.value)
        label = tx.role_name(role.value) if tx is not None else ROLE_LABELS[role]
        out.append(RoleRate(role.value, label, started, done, int(target) if target else None))
    return out
