"""Releases (the only figures anyone reads) and no link from a response to its invite.

- `release_state`, `release_unit`, `release_check`: the published figures of each question
  and group, the answers some release has counted, and when the work was last done
  (`backend.reporting.anonymity`, the release rule). Existing cycles start with no release:
  the first read releases what the rule allows.
- `response.origin` (invite | shared | dashboard) replaces `response.invite_id`: once a
  single-use code is used, nothing stored links the code (or its label) to the answers.
  Existing links are turned into their origin and dropped.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "release_state",
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("bank_tag", sa.String(40), nullable=False),
        sa.Column("question_id", sa.String(12), nullable=False),
        sa.Column("kind", sa.String(6), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("respondents", sa.Integer(), nullable=False),
        *(sa.Column(f"d{v}", sa.Integer(), nullable=False) for v in range(5)),
        sa.Column("na", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("released_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint(
            "cycle_id", "role", "bank_tag", "question_id", name="pk_release_state"
        ),
        sa.ForeignKeyConstraint(
            ["cycle_id"], ["cycle.id"], name="fk_release_state_cycle_id_cycle", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "release_unit",
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.String(12), nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("response_id", "question_id", name="pk_release_unit"),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["response.id"],
            name="fk_release_unit_response_id_response",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["cycle_id"], ["cycle.id"], name="fk_release_unit_cycle_id_cycle", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_release_unit_cycle_id", "release_unit", ["cycle_id"])
    op.create_table(
        "release_check",
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("checked_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("cycle_id", name="pk_release_check"),
        sa.ForeignKeyConstraint(
            ["cycle_id"], ["cycle.id"], name="fk_release_check_cycle_id_cycle", ondelete="CASCADE"
        ),
    )

    with op.batch_alter_table("response") as batch:
        batch.add_column(
            sa.Column("origin", sa.String(10), nullable=False, server_default="invite")
        )
    op.execute(
        "UPDATE response SET origin = 'shared' WHERE invite_id IN "
        "(SELECT id FROM invite WHERE max_uses IS NULL OR max_uses > 1)"
    )
    with op.batch_alter_table("response") as batch:
        batch.drop_constraint("fk_response_invite_id_invite", type_="foreignkey")
        batch.drop_column("invite_id")


def downgrade() -> None:
    # The links dropped on upgrade cannot come back: invite_id returns empty.
    with op.batch_alter_table("response") as batch:
        batch.add_column(sa.Column("invite_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_response_invite_id_invite", "invite", ["invite_id"], ["id"], ondelete="SET NULL"
        )
        batch.drop_column("origin")
    op.drop_table("release_check")
    op.drop_index("ix_release_unit_cycle_id", table_name="release_unit")
    op.drop_table("release_unit")
    op.drop_table("release_state")
