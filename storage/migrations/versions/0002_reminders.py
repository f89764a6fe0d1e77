"""Reminders and announcements: `contact` (an opted-in respondent's encrypted chat address,
one per response) and `announcement` (one per cycle).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "contact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("opted_in_at", utc(), nullable=False),
        sa.Column("reminders_sent", sa.Integer(), nullable=False),
        sa.Column("last_reminded_at", utc(), nullable=True),
        sa.Column("announced_at", utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_contact"),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["response.id"],
            name="fk_contact_response_id_response",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("response_id", name="uq_contact_response_id"),
    )
    op.create_table(
        "announcement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_announcement"),
        sa.ForeignKeyConstraint(
            ["cycle_id"], ["cycle.id"], name="fk_announcement_cycle_id_cycle", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["user_account.id"],
            name="fk_announcement_created_by_user_account",
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint("cycle_id", name="uq_announcement_cycle_id"),
    )


def downgrade() -> None:
    op.drop_table("announcement")
    op.drop_table("contact")
