"""Peer review clusters and the action plan: `cluster`, `cluster_member`, `peer_feedback`
and `action_item`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cluster",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cluster"),
        sa.UniqueConstraint("name", name="uq_cluster_name"),
    )
    op.create_table(
        "cluster_member",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cluster_member"),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["cluster.id"],
            name="fk_cluster_member_cluster_id_cluster",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["school.id"],
            name="fk_cluster_member_school_id_school",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("cluster_id", "school_id", name="uq_cluster_member_cluster_id"),
    )
    op.create_index("ix_cluster_member_school_id", "cluster_member", ["school_id"])
    op.create_table(
        "peer_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("indicator_key", sa.String(20), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_peer_feedback"),
        sa.ForeignKeyConstraint(
            ["cycle_id"], ["cycle.id"], name="fk_peer_feedback_cycle_id_cycle", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["user_account.id"],
            name="fk_peer_feedback_author_id_user_account",
            ondelete="SET NULL",
        ),
    )
    op.create_index(
        "ix_peer_feedback_cycle_indicator", "peer_feedback", ["cycle_id", "indicator_key"]
    )
    op.create_table(
        "action_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("indicator_key", sa.String(20), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("created_at", utc(), nullable=False),
        sa.Column("updated_at", utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_action_item"),
        sa.ForeignKeyConstraint(
            ["cycle_id"], ["cycle.id"], name="fk_action_item_cycle_id_cycle", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_action_item_cycle_indicator", "action_item", ["cycle_id", "indicator_key"])


def downgrade() -> None:
    op.drop_index("ix_action_item_cycle_indicator", table_name="action_item")
    op.drop_table("action_item")
    op.drop_index("ix_peer_feedback_cycle_indicator", table_name="peer_feedback")
    op.drop_table("peer_feedback")
    op.drop_index("ix_cluster_member_school_id", table_name="cluster_member")
    op.drop_table("cluster_member")
    op.drop_table("cluster")
