"""Certification and accreditation: agencies, their board and assessors, rounds, frozen
submissions, reviews, evidence requests, decisions and the append-only audit trail.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete
    )


def _id(table: str) -> tuple[sa.Column, sa.PrimaryKeyConstraint]:
    return sa.Column("id", sa.Integer(), nullable=False), sa.PrimaryKeyConstraint(
        "id", name=f"pk_{table}"
    )


def _int(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Integer(), nullable=nullable)


APPEND_ONLY = (
    """CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'audit_event is append-only';
END;
$$ LANGUAGE plpgsql""",
    """CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
  FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()""",
)


def upgrade() -> None:
    op.create_table(
        "agency",
        *_id("agency"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.UniqueConstraint("name", name="uq_agency_name"),
    )
    op.create_table(
        "agency_member",
        *_id("agency_member"),
        _int("agency_id"),
        _int("user_id"),
        sa.Column("role", sa.String(10), nullable=False),
        _int("home_school_id", True),
        sa.Column("created_at", _utc(), nullable=False),
        _fk("agency_member", "agency_id", "agency", "CASCADE"),
        _fk("agency_member", "user_id", "user_account", "CASCADE"),
        _fk("agency_member", "home_school_id", "school", "SET NULL"),
        sa.UniqueConstraint("user_id", name="uq_agency_member_user_id"),
    )
    op.create_index("ix_agency_member_agency_id", "agency_member", ["agency_id"])
    op.create_table(
        "cert_round",
        *_id("cert_round"),
        _int("agency_id"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("exclude_cluster", sa.Boolean(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        _fk("cert_round", "agency_id", "agency", "CASCADE"),
        sa.UniqueConstraint("agency_id", "name", name="uq_cert_round_agency_id"),
    )
    op.create_index("ix_cert_round_agency_id", "cert_round", ["agency_id"])
    op.create_table(
        "round_school",
        *_id("round_school"),
        _int("round_id"),
        _int("school_id"),
        _fk("round_school", "round_id", "cert_round", "CASCADE"),
        _fk("round_school", "school_id", "school", "CASCADE"),
        sa.UniqueConstraint("round_id", "school_id", name="uq_round_school_round_id"),
    )
    op.create_index("ix_round_school_school_id", "round_school", ["school_id"])
    op.create_table(
        "submission",
        *_id("submission"),
        _int("round_id"),
        _int("school_id"),
        _int("cycle_id", True),
        _int("version"),
        sa.Column("snapshot", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        _int("submitted_by", True),
        sa.Column("submitted_at", _utc(), nullable=False),
        _fk("submission", "round_id", "cert_round", "CASCADE"),
        _fk("submission", "school_id", "school", "CASCADE"),
        _fk("submission", "cycle_id", "cycle", "SET NULL"),
        _fk("submission", "submitted_by", "user_account", "SET NULL"),
        sa.UniqueConstraint("round_id", "school_id", "version", name="uq_submission_round_id"),
    )
    op.create_index("ix_submission_school_id", "submission", ["school_id"])
    op.create_table(
        "assignment",
        *_id("assignment"),
        _int("round_id"),
        _int("school_id"),
        _int("assessor_id"),
        sa.Column("created_at", _utc(), nullable=False),
        _fk("assignment", "round_id", "cert_round", "CASCADE"),
        _fk("assignment", "school_id", "school", "CASCADE"),
        _fk("assignment", "assessor_id", "user_account", "CASCADE"),
        sa.UniqueConstraint("round_id", "school_id", "assessor_id", name="uq_assignment_round_id"),
    )
    op.create_index("ix_assignment_assessor_id", "assignment", ["assessor_id"])
    op.create_table(
        "review_rating",
        *_id("review_rating"),
        _int("assignment_id"),
        sa.Column("indicator_key", sa.String(20), nullable=False),
        sa.Column("agrees", sa.Boolean(), nullable=False),
        _int("value", True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("updated_at", _utc(), nullable=False),
        _fk("review_rating", "assignment_id", "assignment", "CASCADE"),
        sa.UniqueConstraint(
            "assignment_id", "indicator_key", name="uq_review_rating_assignment_id"
        ),
    )
    op.create_table(
        "evidence_request",
        *_id("evidence_request"),
        _int("round_id"),
        _int("school_id"),
        sa.Column("indicator_key", sa.String(20), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        _int("asked_by", True),
        sa.Column("asked_at", _utc(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        _int("answered_by", True),
        sa.Column("answered_at", _utc(), nullable=True),
        _fk("evidence_request", "round_id", "cert_round", "CASCADE"),
        _fk("evidence_request", "school_id", "school", "CASCADE"),
        _fk("evidence_request", "asked_by", "user_account", "SET NULL"),
        _fk("evidence_request", "answered_by", "user_account", "SET NULL"),
    )
    op.create_index("ix_evidence_request_school_id", "evidence_request", ["school_id"])
    op.create_table(
        "decision",
        *_id("decision"),
        _int("round_id"),
        _int("school_id"),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("conditions", sa.Text(), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("token", sa.String(43), nullable=False),
        _int("decided_by", True),
        sa.Column("decided_at", _utc(), nullable=False),
        sa.Column("revoked_at", _utc(), nullable=True),
        _fk("decision", "round_id", "cert_round", "CASCADE"),
        _fk("decision", "school_id", "school", "CASCADE"),
        _fk("decision", "decided_by", "user_account", "SET NULL"),
        sa.UniqueConstraint("token", name="uq_decision_token"),
    )
    op.create_index("ix_decision_school_id", "decision", ["school_id"])
    op.create_table(
        "audit_event",
        *_id("audit_event"),
        _int("agency_id"),
        _int("round_id", True),
        _int("school_id", True),
        _int("actor_id", True),
        sa.Column("actor", sa.String(254), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("at", _utc(), nullable=False),
    )
    op.create_index("ix_audit_event_round", "audit_event", ["round_id", "id"])
    if op.get_bind().dialect.name == "postgresql":
        for statement in APPEND_ONLY:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_event_append_only ON audit_event")
        op.execute("DROP FUNCTION IF EXISTS audit_event_append_only()")
    op.drop_index("ix_audit_event_round", table_name="audit_event")
    op.drop_table("audit_event")
    for table, index in (
        ("decision", "ix_decision_school_id"),
        ("evidence_request", "ix_evidence_request_school_id"),
        ("review_rating", None),
        ("assignment", "ix_assignment_assessor_id"),
        ("submission", "ix_submission_school_id"),
        ("round_school", "ix_round_school_school_id"),
        ("cert_round", "ix_cert_round_agency_id"),
        ("agency_member", "ix_agency_member_agency_id"),
        ("agency", None),
    ):
        if index:
            op.drop_index(index, table_name=table)
        op.drop_table(table)
