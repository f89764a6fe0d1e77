"""E-mail to coordinators about certification rounds: `coordinator_mail`, the queue of the
board's decisions and revocations and of the deadline reminders (one per round, school and
days before the deadline), each sent after its commit and retried on failure.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=f"fk_coordinator_mail_{column}_{target}",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "coordinator_mail",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=True),
        sa.Column("days_before", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_coordinator_mail"),
        _fk("round_id", "cert_round"),
        _fk("school_id", "school"),
        _fk("decision_id", "decision"),
        sa.UniqueConstraint(
            "round_id", "school_id", "kind", "days_before", name="uq_coordinator_mail_round_id"
        ),
    )
    op.create_index("ix_coordinator_mail_school_id", "coordinator_mail", ["school_id"])
    op.create_index(
        "ix_coordinator_mail_due", "coordinator_mail", ["status", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_coordinator_mail_due", table_name="coordinator_mail")
    op.drop_index("ix_coordinator_mail_school_id", table_name="coordinator_mail")
    op.drop_table("coordinator_mail")
