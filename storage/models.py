"""SQLAlchemy 2 models. The database is the truth; Redis only holds a fast copy of positions.

Privacy: a respondent is a keyed hash of the channel user id (see `conversations.identity`),
never a name or a username.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on PostgreSQL and SQLite alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}  # noqa: RUF012


class School(Base):
    __tablename__ = "school"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    languages: Mapped[list[str]] = mapped_column(default=lambda: ["en"])
    # Defaults for new cycles; a cycle fixes its own thresholds when it opens.
    anonymity_threshold: Mapped[int] = mapped_column(Integer, default=5)
    free_text_threshold: Mapped[int] = mapped_column(Integer, default=10)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    cycles: Mapped[list[Cycle]] = relationship(back_populates="school", lazy="raise")


class User(Base):
    """A coordinator (school management, guidance practitioner), an admin, or a peer reviewer."""

    __tablename__ = "user_account"
    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int | None] = mapped_column(ForeignKey("school.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default="coordinator")  # coordinator|admin|peer
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # Logout ends every session issued before this moment (signed cookies hold no state).
    sessions_valid_after: Mapped[datetime | None]
    # The dashboard's language; None: negotiated from the browser's Accept-Language.
    language: Mapped[str | None] = mapped_column(String(10))
    # Bumped when the user replaces their API token: the old one stops working.
    api_token_version: Mapped[int] = mapped_column(default=0, server_default="0")


class Cycle(Base):
    """One assessment round of a school (e.g. "2026/27")."""

    __tablename__ = "cycle"
    __table_args__ = (UniqueConstraint("school_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("school.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10), default="open")  # draft|open|closed
    opens_at: Mapped[datetime | None]
    closes_at: Mapped[datetime | None]
    anonymity_threshold: Mapped[int] = mapped_column(Integer, default=5)
    free_text_threshold: Mapped[int] = mapped_column(Integer, default=10)
    targets: Mapped[dict[str, Any]] = mapped_column(default=dict)  # role -> target count
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    school: Mapped[School] = relationship(back_populates="cycles", lazy="raise")


class Invite(Base):
    __tablename__ = "invite"
    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)  # fits Telegram's start payload
    role: Mapped[str] = mapped_column(String(32))
    label: Mapped[str | None] = mapped_column(String(200))
    max_uses: Mapped[int | None]  # None: unlimited
    uses: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Respondent(Base):
    """A person who answers, known only by a keyed hash of their channel user id."""

    __tablename__ = "respondent"
    id: Mapped[int] = mapped_column(primary_key=True)
    subject_hash: Mapped[str] = mapped_column(String(64), unique=True)
    language: Mapped[str | None] = mapped_column(String(10))
    blocked_at: Mapped[datetime | None]  # the bot was blocked (403): do not send again
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Response(Base):
    """One respondent's survey in one cycle."""

    __tablename__ = "response"
    __table_args__ = (
        UniqueConstraint("respondent_id", "cycle_id"),
        Index("ix_response_cycle_role_status", "cycle_id", "role", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    respondent_id: Mapped[int] = mapped_column(ForeignKey("respondent.id", ondelete="CASCADE"))
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id", ondelete="CASCADE"))
    # No link to the invite it came through (a code or its label would name the person):
    # only how it came, which the report counts per group. invite: a single-use code;
    # shared: a code many use; dashboard: from a browser logged in to the dashboard (a
    # coordinator trying the survey: counted apart, never in the figures).
    origin: Mapped[str] = mapped_column(String(10), default="invite", server_default="invite")
    role: Mapped[str] = mapped_column(String(32))
    bank_tag: Mapped[str] = mapped_column(String(40))  # e.g. "learner@1"
    model_version: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(10), default="en")
    status: Mapped[str] = mapped_column(String(12), default="in_progress")  # |completed|stopped
    consent_at: Mapped[datetime]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # +1 whenever its answers or its status change (repo.touch_response, repo.set_status):
    # a counter, not a clock, so that the sum over a cycle grows with every change whatever
    # the order in which concurrent transactions commit (backend.reporting.summaries).
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Answer(Base):
    """One answer to one question; idempotent on (response, question)."""

    __tablename__ = "answer"
    __table_args__ = (UniqueConstraint("response_id", "question_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("response.id", ondelete="CASCADE"))
    question_id: Mapped[str] = mapped_column(String(12))
    value: Mapped[int | None]  # 0..4 on the question's scale
    na: Mapped[bool] = mapped_column(Boolean, default=False)  # "Not applicable"
    number: Mapped[float | None] = mapped_column(Float)
    choice: Mapped[str | None] = mapped_column(String(8))  # routing answers
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)  # "prefer not to say"
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)


class QuestionMap(Base):
    """Which indicators each question of each bank version evidences (synced from the banks)."""

    __tablename__ = "question_map"
    __table_args__ = (
        UniqueConstraint("bank_tag", "question_id", "indicator_key"),
        Index("ix_question_map_indicator", "indicator_key"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    bank_tag: Mapped[str] = mapped_column(String(40))
    question_id: Mapped[str] = mapped_column(String(12))
    indicator_key: Mapped[str] = mapped_column(String(20))
    scale: Mapped[str] = mapped_column(String(10))


class Comment(Base):
    """Free text from a respondent (shown only to groups of at least the free-text threshold)."""

    __tablename__ = "comment"
    __table_args__ = (UniqueConstraint("response_id", "question_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("response.id", ondelete="CASCADE"))
    question_id: Mapped[str] = mapped_column(String(12))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SelfRating(Base):
    """The school's own rating of one indicator in one cycle."""

    __tablename__ = "self_rating"
    __table_args__ = (UniqueConstraint("cycle_id", "indicator_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id", ondelete="CASCADE"))
    indicator_key: Mapped[str] = mapped_column(String(20))
    value: Mapped[int | None]  # 0..4 on the indicator's scale
    number: Mapped[float | None] = mapped_column(Float)  # count / rate indicators
    comment: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="draft")  # draft|submitted
    updated_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Evidence(Base):
    """An item of the evidence portfolio ("means of verification") for one indicator."""

    __tablename__ = "evidence"
    __table_args__ = (Index("ix_evidence_cycle_indicator", "cycle_id", "indicator_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id", ondelete="CASCADE"))
    indicator_key: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(8))  # file|link
    url: Mapped[str | None] = mapped_column(String(2000))
    filename: Mapped[str | None] = mapped_column(String(255))  # sanitised original name
    stored_name: Mapped[str | None] = mapped_column(String(80))  # random name on disk
    content_type: Mapped[str | None] = mapped_column(String(100))
    size_bytes: Mapped[int | None]
    note: Mapped[str | None] = mapped_column(Text)
    uploaded_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Contact(Base):
    """Where to send an opted-in respondent's reminders and the cycle's one announcement.

    One per response (so per cycle). `address` is the channel address (a Telegram chat id)
    ENCRYPTED with a key derived from SECRET_KEY (see `storage.contacts`): never stored or
    logged in clear. Deleted on opt-out, on erasure, and by retention after the cycle closed.
    """

    __tablename__ = "contact"
    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(
        ForeignKey("response.id", ondelete="CASCADE"), unique=True
    )
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(Text)  # Fernet token
    opted_in_at: Mapped[datetime] = mapped_column(default=utcnow)
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    last_reminded_at: Mapped[datetime | None]
    announced_at: Mapped[datetime | None]


class Announcement(Base):
    """A coordinator's one message per cycle to the respondents who opted in."""

    __tablename__ = "announcement"
    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id", ondelete="CASCADE"), unique=True)
    text: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- peer review clusters and the action plan ---------------------------------------------


class Cluster(Base):
    """A group of schools that pursue excellence together and review each other."""

    __tablename__ = "cluster"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClusterMember(Base):
    """A school in a cluster (a school may be in several clusters)."""

    __tablename__ = "cluster_member"
    __table_args__ = (UniqueConstraint("cluster_id", "school_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("cluster.id", ondelete="CASCADE"))
    school_id: Mapped[int] = mapped_column(ForeignKey("school.id", ondelete="CASCADE"), index=True)


class PeerFeedback(Base):
    """A peer reviewer's note on one indicator of another school's cycle."""

    __tablename__ = "peer_feedback"
    __table_args__ = (Index("ix_peer_feedback_cycle_indicator", "cycle_id", "indicator_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id", ondelete="CASCADE"))
    indicator_key: Mapped[str] = mapped_column(String(20))
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ActionItem(Base):
    """What the school will do about one indicator: owner (a staff role or name), due, status."""

    __tablename__ = "action_item"
    __table_args__ = (Index("ix_action_item_cycle_indicator", "cycle_id", "indicator_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id", ondelete="CASCADE"))
    indicator_key: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(300))
    owner: Mapped[str | None] = mapped_column(String(200))
    due_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), default="open")  # open|in_progress|done
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- releases: the only figures anyone reads -----------------------------------------------


class ReleaseState(Base):
    """The published figure of one question for one group (the answers of one bank version
    in one cycle), as frozen when it was released (`backend.reporting.anonymity`, the
    release rule). `seq` counts its releases. Scale questions hold counts; a free-text
    question holds only how many wrote (its texts are on `ReleaseUnit`)."""

    __tablename__ = "release_state"
    cycle_id: Mapped[int] = mapped_column(
        ForeignKey("cycle.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(32), primary_key=True)
    bank_tag: Mapped[str] = mapped_column(String(40), primary_key=True)
    question_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    kind: Mapped[str] = mapped_column(String(6))  # scale|text
    seq: Mapped[int] = mapped_column(Integer, default=1)
    respondents: Mapped[int] = mapped_column(Integer)  # people in this state
    d0: Mapped[int] = mapped_column(Integer, default=0)
    d1: Mapped[int] = mapped_column(Integer, default=0)
    d2: Mapped[int] = mapped_column(Integer, default=0)
    d3: Mapped[int] = mapped_column(Integer, default=0)
    d4: Mapped[int] = mapped_column(Integer, default=0)
    na: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    released_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReleaseUnit(Base):
    """One respondent's answer to one question that some release has counted. A new release
    of a question needs enough answers that none before counted (the release rule); `text`
    is the free text as the current release shows it (NULL: not in it). Erasing the
    respondent deletes these rows with the response."""

    __tablename__ = "release_unit"
    response_id: Mapped[int] = mapped_column(
        ForeignKey("response.id", ondelete="CASCADE"), primary_key=True
    )
    question_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id", ondelete="CASCADE"), index=True)
    text: Mapped[str | None] = mapped_column(Text)


class ReleaseCheck(Base):
    """What a cycle's responses looked like when its releases were last worked out: while
    they look the same, nothing can be released and the work is skipped."""

    __tablename__ = "release_check"
    cycle_id: Mapped[int] = mapped_column(
        ForeignKey("cycle.id", ondelete="CASCADE"), primary_key=True
    )
    fingerprint: Mapped[str] = mapped_column(String(64))
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReportSummary(Base):
    """A cycle's report in brief, for the cluster view: each indicator's own rating and the
    groups' shown means, as `build_report` gave them (after the anonymity gate; no free
    text). Valid while the cycle's data has the same `fingerprint`
    (`backend.reporting.summaries`); erasing a respondent deletes their cycles' rows."""

    __tablename__ = "report_summary"
    cycle_id: Mapped[int] = mapped_column(
        ForeignKey("cycle.id", ondelete="CASCADE"), primary_key=True
    )
    fingerprint: Mapped[str] = mapped_column(String(64))
    summary: Mapped[dict[str, Any]]
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- certification and accreditation (the model's modes of use b and c) --------------------


class Agency(Base):
    """An organisation above schools (a VET or quality-assurance agency) that runs rounds of
    certification or accreditation with its board and assessors."""

    __tablename__ = "agency"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgencyMember(Base):
    """A board member or an assessor of one agency (a user of role `board` or `assessor`).
    `home_school_id`: the school the person works at, if any (an assessor is never assigned
    to it, nor to its cluster's schools where the round says so)."""

    __tablename__ = "agency_member"
    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), unique=True
    )
    role: Mapped[str] = mapped_column(String(10))  # board|assessor
    home_school_id: Mapped[int | None] = mapped_column(ForeignKey("school.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CertRound(Base):
    """A round of certification (schools apply) or accreditation (every listed school must
    submit by the deadline)."""

    __tablename__ = "cert_round"
    __table_args__ = (UniqueConstraint("agency_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # certification|accreditation
    deadline: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default="open")  # open|closed
    exclude_cluster: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RoundSchool(Base):
    """A school on an accreditation round's list (it must submit by the deadline)."""

    __tablename__ = "round_school"
    __table_args__ = (UniqueConstraint("round_id", "school_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("cert_round.id", ondelete="CASCADE"))
    school_id: Mapped[int] = mapped_column(ForeignKey("school.id", ondelete="CASCADE"), index=True)


class Submission(Base):
    """A school's cycle as submitted to a round, frozen: `snapshot` is the JSON text the
    assessors read (only figures that passed the anonymity gate), `content_hash` its
    SHA-256. A new submission is a new version; the old ones are kept."""

    __tablename__ = "submission"
    __table_args__ = (UniqueConstraint("round_id", "school_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("cert_round.id", ondelete="CASCADE"))
    school_id: Mapped[int] = mapped_column(ForeignKey("school.id", ondelete="CASCADE"), index=True)
    cycle_id: Mapped[int | None] = mapped_column(ForeignKey("cycle.id", ondelete="SET NULL"))
    version: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    submitted_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)


class Assignment(Base):
    """An assessor assigned to review one school in one round."""

    __tablename__ = "assignment"
    __table_args__ = (UniqueConstraint("round_id", "school_id", "assessor_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("cert_round.id", ondelete="CASCADE"))
    school_id: Mapped[int] = mapped_column(ForeignKey("school.id", ondelete="CASCADE"))
    assessor_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewRating(Base):
    """An assessor's view of one indicator: agrees with the school's rating, or proposes
    another with a reason (the latest; every change is in the audit trail)."""

    __tablename__ = "review_rating"
    __table_args__ = (UniqueConstraint("assignment_id", "indicator_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignment.id", ondelete="CASCADE"))
    indicator_key: Mapped[str] = mapped_column(String(20))
    agrees: Mapped[bool] = mapped_column(Boolean)
    value: Mapped[int | None]  # the proposed rating 0..4 (None when agreeing)
    reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class EvidenceRequest(Base):
    """An assessor asks a school for more evidence on one indicator; the school answers."""

    __tablename__ = "evidence_request"
    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("cert_round.id", ondelete="CASCADE"))
    school_id: Mapped[int] = mapped_column(ForeignKey("school.id", ondelete="CASCADE"), index=True)
    indicator_key: Mapped[str] = mapped_column(String(20))
    question: Mapped[str] = mapped_column(Text)
    asked_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    asked_at: Mapped[datetime] = mapped_column(default=utcnow)
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    answered_at: Mapped[datetime | None]


class Decision(Base):
    """The board's decision on one school in one round (a new decision is a new row; the
    newest counts). `token` is the certificate's public verification token."""

    __tablename__ = "decision"
    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("cert_round.id", ondelete="CASCADE"))
    school_id: Mapped[int] = mapped_column(ForeignKey("school.id", ondelete="CASCADE"), index=True)
    outcome: Mapped[str] = mapped_column(String(12))  # certified|conditions|not_yet
    conditions: Mapped[str | None] = mapped_column(Text)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    token: Mapped[str] = mapped_column(String(43), unique=True)
    decided_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class AuditEvent(Base):
    """The audit trail of an agency's rounds: who did what when. Rows are only ever added
    (storage offers no update or delete; on PostgreSQL a trigger refuses both)."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_round", "round_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(Integer)
    round_id: Mapped[int | None] = mapped_column(Integer)
    school_id: Mapped[int | None] = mapped_column(Integer)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(254))  # the e-mail at the time
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class FormSubmission(Base):
    """A dashboard form's one-time token, recorded when the form is first sent: a second POST
    with the same token is answered with `location`, where the first one led (None while the
    first is still being handled). `backend.dashboard.once` reads and writes it."""

    __tablename__ = "form_submission"
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    location: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class CoordinatorMail(Base):
    """One e-mail to a school's coordinators about a round (`storage.mail`, sent by
    `backend.certification.notices`): the board's decision or revocation, or a reminder
    `days_before` the deadline. A row is queued in the transaction that makes it due and
    sent after the commit, tried again later if the mail server fails. A deadline reminder
    is one row per (round, school, days_before): the unique constraint keeps a restarted or
    second process from queueing it twice (a decision's row has days_before NULL, which the
    constraint never matches). Nothing of a respondent is stored or sent."""

    __tablename__ = "coordinator_mail"
    __table_args__ = (
        UniqueConstraint("round_id", "school_id", "kind", "days_before"),
        Index("ix_coordinator_mail_due", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("cert_round.id", ondelete="CASCADE"))
    school_id: Mapped[int] = mapped_column(ForeignKey("school.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # decision|revocation|deadline
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decision.id", ondelete="CASCADE"))
    days_before: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(8), default="pending")  # |sent|failed|skipped
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(String(200))  # the last failure's kind
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
