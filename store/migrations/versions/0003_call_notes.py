"""Live guidance: the call_notes table (a manager's notes to the agent during a call).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-19
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("author", sa.String(), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=True),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index("ix_call_notes_call_created", "call_notes", ["call_id", "created_at"], unique=False,
                    if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_call_notes_call_created", table_name="call_notes")
    op.drop_table("call_notes")
