"""Which stakeholder groups give evidence on which indicator.

Triangulation only works for an indicator some group is asked about. This
module crosses the model with the role banks: per indicator key, the roles and
question ids whose scale statements map to it. Indicators of dimensions 1 and 2
that no group is asked about, and that are not exempt, are `uncovered()`: a
gap in the banks. Dimension 3 (staff competences) is assessed by the school and
experts; the banks touch it where a group can see it, but need not cover it.

Exempt are the NUMBER indicators (counts and rates come from the school's
records, not from anybody's opinion) and the few keys in `OBSERVABLE_EXEMPT`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from conversations.banks import Bank, load_banks
from conversations.model import ExcellenceModel, load_model
from conversations.roles import ROLES, Role
from conversations.scales import AnswerKind

# Dimensions whose observable indicators every survey round must reach.
REQUIRED_DIMENSIONS: frozenset[str] = frozenset({"1", "2"})

# Qualitative indicators of dimensions 1-2 that no stakeholder can reasonably
# judge from what they see, each with the reason. Kept empty on purpose: every
# qualitative indicator of dimensions 1-2 has at least one group that sees it
# (e.g. board members receive the input/output reports of ME-1, other staff see
# the learner data of ME-2 being collected, the reflective practice of WS-8
# shows to colleagues as services changed after feedback). Add a key here only
# with an honest reason, never to silence `uncovered()`.
OBSERVABLE_EXEMPT: dict[str, str] = {}

NUMBER_REASON = "a count or rate from the school's records, not an opinion"

# Two-letter column heads for the table, in ROLES order.
ROLE_ABBR: dict[Role, str] = {
    Role.TEACHER: "TE",
    Role.STAFF: "ST",
    Role.BOARD: "BO",
    Role.LEARNER: "LE",
    Role.GRADUATE: "GR",
    Role.PARENT: "PA",
    Role.EMPLOYER: "EM",
    Role.EMPLOYER_SME: "SM",
    Role.UNION: "TU",
    Role.EDUCATION_PROVIDER: "EP",
    Role.LOCAL_GOVERNMENT: "LG",
    Role.NATIONAL_GOVERNMENT: "NG",
    Role.RESEARCH: "RO",
    Role.INTERNATIONAL_PARTNER: "IP",
    Role.PROSPECTIVE_LEARNER: "PL",
}


@dataclass(frozen=True, slots=True)
class CoverageRow:
    key: str
    dimension_id: str
    kind: AnswerKind
    evidence: Mapping[Role, tuple[str, ...]]  # role -> question ids, only roles with any
    exempt_reason: str | None

    @property
    def roles(self) -> tuple[Role, ...]:
        return tuple(r for r in ROLES if r in self.evidence)

    @property
    def covered(self) -> bool:
        return bool(self.evidence)


@dataclass(frozen=True, slots=True)
class CoverageTable:
    """Per indicator key (document order), the roles and questions evidencing it."""

    model_version: str
    rows: tuple[CoverageRow, ...]

    def row(self, key: str) -> CoverageRow:
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(key)

    def roles_for(self, key: str) -> tuple[Role, ...]:
        return self.row(key).roles

    def questions_for(self, key: str) -> Mapping[Role, tuple[str, ...]]:
        return self.row(key).evidence

    def covered(self) -> list[str]:
        return [r.key for r in self.rows if r.covered]

    def exempt(self) -> dict[str, str]:
        return {r.key: r.exempt_reason for r in self.rows if r.exempt_reason is not None}

    def uncovered(self) -> list[str]:
        """Keys of dimensions 1-2 that are neither asked of any role nor exempt."""
        return [
            r.key
            for r in self.rows
            if r.dimension_id in REQUIRED_DIMENSIONS and not r.covered and r.exempt_reason is None
        ]

    def format_table(self) -> str:
        """Indicator rows x role columns; a cell is the number of statements."""
        heads = [ROLE_ABBR[r] for r in ROLES]
        width = max(12, *(len(r.key) for r in self.rows))
        lines = [
            f"Coverage of model {self.model_version} by the role banks "
            "(cell: number of statements; n = number, x = exempt, ! = uncovered)",
            f"{'indicator':<{width}} " + " ".join(heads) + " roles  note",
        ]
        for r in self.rows:
            cells = [
                f"{len(r.evidence[role]):>2}" if role in r.evidence else " ." for role in ROLES
            ]
            if r.covered:
                note = ""
            elif r.kind == AnswerKind.NUMBER:
                note = "n"
            elif r.exempt_reason is not None:
                note = "x"
            elif r.dimension_id in REQUIRED_DIMENSIONS:
                note = "!"
            else:
                note = "-"
            lines.append(
                f"{r.key:<{width}} " + " ".join(cells) + f" {len(r.roles):>5}  {note}".rstrip()
            )
        lines.append("")
        lines.append("roles: " + ", ".join(f"{ROLE_ABBR[r]}={r.value}" for r in ROLES))
        required = [r for r in self.rows if r.dimension_id in REQUIRED_DIMENSIONS]
        lines.append(
            f"covered: {len(self.covered())} of {len(self.rows)} indicators; "
            f"dimensions 1-2: {sum(r.covered for r in required)} of {len(required)} covered, "
            f"{sum(1 for r in required if not r.covered and r.exempt_reason)} exempt, "
            f"{len(self.uncovered())} uncovered"
        )
        for key, reason in self.exempt().items():
            if self.row(key).kind != AnswerKind.NUMBER:
                lines.append(f"exempt {key}: {reason}")
        if self.uncovered():
            lines.append("UNCOVERED: " + " ".join(self.uncovered()))
        return "\n".join(lines)


def coverage(
    model: ExcellenceModel | None = None, banks: Mapping[Role, Bank] | None = None
) -> CoverageTable:
    """Cross the model with the banks (both default to the shipped ones)."""
    model = model if model is not None else load_model()
    banks = banks if banks is not None else load_banks()
    found: dict[str, dict[Role, list[str]]] = {}
    for role in ROLES:
        bank = banks.get(role)
        if bank is None:
            continue
        for q in bank.questions:
            if q.kind != "scale":
                continue
            for key in q.indicators:
                found.setdefault(key, {}).setdefault(role, []).append(q.id)
    rows = []
    for placed in model.placed():
        ind = placed.indicator
        if ind.kind == AnswerKind.NUMBER:
            reason: str | None = NUMBER_REASON
        else:
            reason = OBSERVABLE_EXEMPT.get(ind.key)
        evidence = {role: tuple(qids) for role, qids in found.get(ind.key, {}).items()}
        rows.append(
            CoverageRow(
                key=ind.key,
                dimension_id=placed.dimension_id,
                kind=ind.kind,
                evidence=MappingProxyType(evidence),
                exempt_reason=reason,
            )
        )
    return CoverageTable(model_version=model.version, rows=tuple(rows))
