"""The stakeholder groups of the ETF model (plus prospective learners), by stable slug."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    TEACHER = "teacher"
    STAFF = "staff"
    BOARD = "board"
    LEARNER = "learner"
    GRADUATE = "graduate"
    PARENT = "parent"
    EMPLOYER = "employer"
    EMPLOYER_SME = "employer_sme"
    UNION = "union"
    EDUCATION_PROVIDER = "education_provider"
    LOCAL_GOVERNMENT = "local_government"
    NATIONAL_GOVERNMENT = "national_government"
    RESEARCH = "research"
    INTERNATIONAL_PARTNER = "international_partner"
    PROSPECTIVE_LEARNER = "prospective_learner"


# The model's own wording for each group (section "Stakeholders to be involved").
ROLE_LABELS: dict[Role, str] = {
    Role.TEACHER: "In-house teachers/trainers",
    Role.STAFF: "Other staff (librarians, assistants ...)",
    Role.BOARD: "School board members",
    Role.LEARNER: "Learners",
    Role.GRADUATE: "Graduates",
    Role.PARENT: "Parents/guardians",
    Role.EMPLOYER: "Employers or employer representatives",
    Role.EMPLOYER_SME: "Employers that are SMEs",
    Role.UNION: "Trade unions and worker organisations",
    Role.EDUCATION_PROVIDER: "Other education providers",
    Role.LOCAL_GOVERNMENT: "Local and regional government",
    Role.NATIONAL_GOVERNMENT: "National government",
    Role.RESEARCH: "Research organisations and technology centres",
    Role.INTERNATIONAL_PARTNER: "International partners",
    Role.PROSPECTIVE_LEARNER: "Prospective (future) learners",
}

ROLES: tuple[Role, ...] = tuple(Role)
