"""The cluster view's per-cycle summaries: `report_summary` (a cache keyed by a fingerprint of
the cycle's data; dropping it loses nothing), and `response.revision`, the counter of changes
to a response's answers and status that the fingerprint sums.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("response") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "report_summary",
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cycle_id", name="pk_report_summary"),
        sa.ForeignKeyConstraint(
            ["cycle_id"],
            ["cycle.id"],
            name="fk_report_summary_cycle_id_cycle",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("report_summary")
    with op.batch_alter_table("response") as batch:
        batch.drop_column("revision")
