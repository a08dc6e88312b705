"""Call characteristics and categories: sentences.loudness_dbfs and the call_categories table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Like 0001, tolerant of a store whose tables `create_all` already made (tests, old tools).
    if "loudness_dbfs" not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("sentences")}:
        with op.batch_alter_table("sentences") as batch:
            batch.add_column(sa.Column("loudness_dbfs", sa.Float(), nullable=True))
    op.create_table(
        "call_categories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("first_sentence_idx", sa.Integer(), nullable=True),
        sa.Column("start", sa.Float(), nullable=True),
        sa.Column("matched_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_id", "category", name="uq_call_category"),
        if_not_exists=True,
    )
    op.create_index("ix_call_categories_call_id", "call_categories", ["call_id"], unique=False, if_not_exists=True)
    op.create_index("ix_call_categories_category_matched", "call_categories", ["category", "matched_at"],
                    unique=False, if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_call_categories_category_matched", table_name="call_categories")
    op.drop_index("ix_call_categories_call_id", table_name="call_categories")
    op.drop_table("call_categories")
    with op.batch_alter_table("sentences") as batch:
        batch.drop_column("loudness_dbfs")
