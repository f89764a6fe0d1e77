"""Initial schema: schools, coordinators, cycles, invites, respondents, responses,
answers, comments, the question map, self-assessment ratings and evidence.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Constraint names follow the naming convention of `storage.models.Base.metadata`.
No server defaults: defaults are set by the application (see the models).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def utc() -> sa.DateTime:
    """A timezone-aware timestamp (the models' UTCDateTime stores this)."""
    return sa.DateTime(timezone=True)


def pk(table: str) -> list:
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
    ]


def fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "school",
        *pk("school"),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("anonymity_threshold", sa.Integer(), nullable=False),
        sa.Column("free_text_threshold", sa.Integer(), nullable=False),
        sa.Column("created_at", utc(), nullable=False),
        sa.UniqueConstraint("slug", name="uq_school_slug"),
    )

    op.create_table(
        "user_account",
        *pk("user_account"),
        sa.Column("school_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("created_at", utc(), nullable=False),
        sa.Column("last_login_at", utc(), nullable=True),
        fk("user_account", "school_id", "school", "CASCADE"),
        sa.UniqueConstraint("email", name="uq_user_account_email"),
    )

    op.create_table(
        "cycle",
        *pk("cycle"),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("model_version", sa.String(20), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("opens_at", utc(), nullable=True),
        sa.Column("closes_at", utc(), nullable=True),
        sa.Column("anonymity_threshold", sa.Integer(), nullable=False),
        sa.Column("free_text_threshold", sa.Integer(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("created_at", utc(), nullable=False),
        fk("cycle", "school_id", "school", "CASCADE"),
        sa.UniqueConstraint("school_id", "name", name="uq_cycle_school_id"),
    )
    op.create_index("ix_cycle_school_id", "cycle", ["school_id"])

    op.create_table(
        "invite",
        *pk("invite"),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("expires_at", utc(), nullable=True),
        sa.Column("revoked_at", utc(), nullable=True),
        sa.Column("created_at", utc(), nullable=False),
        fk("invite", "cycle_id", "cycle", "CASCADE"),
        sa.UniqueConstraint("code", name="uq_invite_code"),
    )
    op.create_index("ix_invite_cycle_id", "invite", ["cycle_id"])

    op.create_table(
        "respondent",
        *pk("respondent"),
        sa.Column("subject_hash", sa.String(64), nullable=False),
        sa.Column("language", sa.String(10), nullable=True),
        sa.Column("blocked_at", utc(), nullable=True),
        sa.Column("created_at", utc(), nullable=False),
        sa.UniqueConstraint("subject_hash", name="uq_respondent_subject_hash"),
    )

    op.create_table(
        "response",
        *pk("response"),
        sa.Column("respondent_id", sa.Integer(), nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("invite_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("bank_tag", sa.String(40), nullable=False),
        sa.Column("model_version", sa.String(20), nullable=False),
        sa.Column("language", sa.String(10), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("consent_at", utc(), nullable=False),
        sa.Column("started_at", utc(), nullable=False),
        sa.Column("completed_at", utc(), nullable=True),
        sa.Column("updated_at", utc(), nullable=False),
        fk("response", "respondent_id", "respondent", "CASCADE"),
        fk("response", "cycle_id", "cycle", "CASCADE"),
        fk("response", "invite_id", "invite", "SET NULL"),
        sa.UniqueConstraint("respondent_id", "cycle_id", name="uq_response_respondent_id"),
    )
    op.create_index("ix_response_cycle_role_status", "response", ["cycle_id", "role", "status"])

    op.create_table(
        "answer",
        *pk("answer"),
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.String(12), nullable=False),
        sa.Column("value", sa.Integer(), nullable=True),
        sa.Column("na", sa.Boolean(), nullable=False),
        sa.Column("number", sa.Float(), nullable=True),
        sa.Column("choice", sa.String(8), nullable=True),
        sa.Column("skipped", sa.Boolean(), nullable=False),
        sa.Column("answered_at", utc(), nullable=False),
        fk("answer", "response_id", "response", "CASCADE"),
        sa.UniqueConstraint("response_id", "question_id", name="uq_answer_response_id"),
    )

    op.create_table(
        "comment",
        *pk("comment"),
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.String(12), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", utc(), nullable=False),
        fk("comment", "response_id", "response", "CASCADE"),
        sa.UniqueConstraint("response_id", "question_id", name="uq_comment_response_id"),
    )

    op.create_table(
        "question_map",
        *pk("question_map"),
        sa.Column("bank_tag", sa.String(40), nullable=False),
        sa.Column("question_id", sa.String(12), nullable=False),
        sa.Column("indicator_key", sa.String(20), nullable=False),
        sa.Column("scale", sa.String(10), nullable=False),
        sa.UniqueConstraint(
            "bank_tag", "question_id", "indicator_key", name="uq_question_map_bank_tag"
        ),
    )
    op.create_index("ix_question_map_indicator", "question_map", ["indicator_key"])

    op.create_table(
        "self_rating",
        *pk("self_rating"),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("indicator_key", sa.String(20), nullable=False),
        sa.Column("value", sa.Integer(), nullable=True),
        sa.Column("number", sa.Float(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", utc(), nullable=False),
        fk("self_rating", "cycle_id", "cycle", "CASCADE"),
        fk("self_rating", "updated_by", "user_account", "SET NULL"),
        sa.UniqueConstraint("cycle_id", "indicator_key", name="uq_self_rating_cycle_id"),
    )

    op.create_table(
        "evidence",
        *pk("evidence"),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("indicator_key", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("url", sa.String(2000), nullable=True),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("stored_name", sa.String(80), nullable=True),
        sa.Column("content_type", sa.String(100), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("uploaded_by", sa.Integer(), nullable=True),
        sa.Column("created_at", utc(), nullable=False),
        fk("evidence", "cycle_id", "cycle", "CASCADE"),
        fk("evidence", "uploaded_by", "user_account", "SET NULL"),
    )
    op.create_index("ix_evidence_cycle_indicator", "evidence", ["cycle_id", "indicator_key"])


def downgrade() -> None:
    # Reverse order of creation: children before the tables they reference.
    op.drop_index("ix_evidence_cycle_indicator", table_name="evidence")
    op.drop_table("evidence")
    op.drop_table("self_rating")
    op.drop_index("ix_question_map_indicator", table_name="question_map")
    op.drop_table("question_map")
    op.drop_table("comment")
    op.drop_table("answer")
    op.drop_index("ix_response_cycle_role_status", table_name="response")
    op.drop_table("response")
    op.drop_table("respondent")
    op.drop_index("ix_invite_cycle_id", table_name="invite")
    op.drop_table("invite")
    op.drop_index("ix_cycle_school_id", table_name="cycle")
    op.drop_table("cycle")
    op.drop_table("user_account")
    op.drop_table("school")
