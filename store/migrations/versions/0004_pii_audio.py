"""PII in recordings: calls.audio_redaction, utterances.pii_spans and the clear_audio_blobs table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _add_nullable(table: str, column: str, type_) -> None:
    # Like 0002, tolerant of a store whose tables `create_all` already made (tests, old tools).
    if column not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column(column, type_, nullable=True))


def upgrade() -> None:
    _add_nullable("calls", "audio_redaction", sa.String())
    _add_nullable("utterances", "pii_spans", sa.String())
    op.create_table(
        "clear_audio_blobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("blob", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("added_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_id", "blob", name="uq_clear_audio_blob"),
        if_not_exists=True,
    )
    op.create_index("ix_clear_audio_blobs_call_id", "clear_audio_blobs", ["call_id"], unique=False, if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_clear_audio_blobs_call_id", table_name="clear_audio_blobs")
    op.drop_table("clear_audio_blobs")
    with op.batch_alter_table("utterances") as batch:
        batch.drop_column("pii_spans")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("audio_redaction")
