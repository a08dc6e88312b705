"""Initial schema: every table as `create_all` made it before migrations existed.

Revision ID: 0001
Revises:
Create Date: 2026-12-05

Written to be run on any store callsense made before migrations, too (tables but no
``alembic_version``): each table and index is created only where it is missing, and an
existing table gets the nullable columns it lacks (what older versions added on every
start), so such a store is brought to this revision and stamped, never recreated.
Columns that are NOT NULL and missing cannot be added this way; no older store lacks one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _create_table(name: str, *elements) -> sa.Table:
    table = op.create_table(name, *elements, if_not_exists=True)
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(name)}
    for column in table.columns:
        if column.name not in present and column.nullable:
            op.add_column(name, sa.Column(column.name, column.type, nullable=True))
    return table


def _create_index(name: str, table: str, columns: list[str]) -> None:
    op.create_index(name, table, columns, unique=False, if_not_exists=True)


def upgrade() -> None:
    _create_table("agents",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id")
    )

    _create_table("call_audio",
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("blob", sa.String(), nullable=False),
        sa.Column("source_name", sa.String(), nullable=False),
        sa.Column("n_bytes", sa.Integer(), nullable=False),
        sa.Column("attached_by", sa.String(), nullable=False),
        sa.Column("attached_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("call_id")
    )

    _create_table("calls",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("source_name", sa.String(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=True),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("speakers", sa.String(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("utterances_expected", sa.Integer(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("audio_blob", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id")
    )
    _create_index("ix_calls_agent_id", "calls", ["agent_id"])
    _create_index("ix_calls_agent_started", "calls", ["agent_id", "started_at"])
    _create_index("ix_calls_started_at", "calls", ["started_at"])

    _create_table("catalog_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("brand", sa.String(), nullable=False),
        sa.Column("aliases", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id")
    )
    _create_index("ix_catalog_items_category", "catalog_items", ["category"])
    _create_index("ix_catalog_items_name", "catalog_items", ["name"])

    _create_table("catalog_stores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("city", sa.String(), nullable=False),
        sa.Column("address", sa.String(), nullable=False),
        sa.Column("hours", sa.String(), nullable=False),
        sa.Column("rating", sa.Float(), nullable=False),
        sa.Column("phone", sa.String(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("distance_km", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id")
    )
    _create_index("ix_catalog_stores_city", "catalog_stores", ["city"])
    _create_index("ix_catalog_stores_city_category", "catalog_stores", ["city", "category"])

    _create_table("dashboard_users",
        sa.Column("username", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("roles", sa.String(), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("username")
    )

    _create_table("dataset_versions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("splits_json", sa.Text(), nullable=False),
        sa.Column("sources_json", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id")
    )
    _create_index("ix_dataset_versions_kind", "dataset_versions", ["kind"])

    _create_table("dead_letters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id")
    )
    _create_index("ix_dead_letters_call_id", "dead_letters", ["call_id"])

    _create_table("dialog_sessions",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("flows", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("context_json", sa.Text(), nullable=False),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id")
    )
    _create_index("ix_dialog_sessions_updated_at", "dialog_sessions", ["updated_at"])

    _create_table("dialog_turns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("day", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("asr_confidence", sa.Float(), nullable=True),
        sa.Column("intent", sa.String(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("slots_json", sa.Text(), nullable=False),
        sa.Column("tokens", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("nlu_backend", sa.String(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("reviewed", sa.Boolean(), nullable=False),
        sa.Column("reviewed_intent", sa.String(), nullable=True),
        sa.Column("reviewed_tags", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "turn", name="uq_dialog_turn")
    )
    _create_index("ix_dialog_turns_day", "dialog_turns", ["day"])
    _create_index("ix_dialog_turns_reviewed", "dialog_turns", ["reviewed"])
    _create_index("ix_dialog_turns_session_id", "dialog_turns", ["session_id"])

    _create_table("label_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("utterance_idx", sa.Integer(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("sentence_id", sa.Integer(), nullable=True),
        sa.Column("speaker", sa.String(), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=True),
        sa.Column("original_text", sa.String(), nullable=False),
        sa.Column("original_sentiment", sa.String(), nullable=False),
        sa.Column("original_confidence", sa.Float(), nullable=False),
        sa.Column("sentiment_model", sa.String(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("sentiment", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("reviewer", sa.String(), nullable=False),
        sa.Column("reviewed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id")
    )
    _create_index("ix_label_reviews_at", "label_reviews", ["reviewed_at"])
    _create_index("ix_label_reviews_sentence", "label_reviews", ["call_id", "channel", "utterance_idx", "idx"])

    _create_table("model_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("by", sa.String(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("detail_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id")
    )
    _create_index("ix_model_events_name", "model_events", ["name"])

    _create_table("model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("format", sa.String(), nullable=False),
        sa.Column("artifact_dir", sa.String(), nullable=False),
        sa.Column("model_id", sa.String(), nullable=False),
        sa.Column("dataset_version", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("metrics_json", sa.Text(), nullable=False),
        sa.Column("notes", sa.String(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("promoted_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version", name="uq_model_version")
    )
    _create_index("ix_model_versions_name_status", "model_versions", ["name", "status"])

    _create_table("sentences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("utterance_idx", sa.Integer(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("speaker", sa.String(), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=True),
        sa.Column("call_started_at", sa.Float(), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("sentiment", sa.String(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("sentiment_model", sa.String(), nullable=False),
        sa.Column("asr_model", sa.String(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("stored_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_id", "channel", "utterance_idx", "idx", name="uq_sentence")
    )
    _create_index("ix_sentences_agent_mix", "sentences", ["agent_id", "speaker", "sentiment", "call_started_at", "call_id"])
    _create_index("ix_sentences_agent_time", "sentences", ["agent_id", "call_started_at"])
    _create_index("ix_sentences_call_id", "sentences", ["call_id"])
    _create_index("ix_sentences_confidence", "sentences", ["confidence"])

    _create_table("training_runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("job", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("dataset_version", sa.String(), nullable=False),
        sa.Column("code_version", sa.String(), nullable=False),
        sa.Column("config_json", sa.Text(), nullable=False),
        sa.Column("hardware_json", sa.Text(), nullable=False),
        sa.Column("epochs_json", sa.Text(), nullable=False),
        sa.Column("metrics_json", sa.Text(), nullable=False),
        sa.Column("folder", sa.String(), nullable=False),
        sa.Column("wall_s", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id")
    )
    _create_index("ix_training_runs_job", "training_runs", ["job"])
    _create_index("ix_training_runs_started_at", "training_runs", ["started_at"])

    _create_table("utterances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("speaker", sa.String(), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("asr_confidence", sa.Float(), nullable=True),
        sa.Column("asr_model", sa.String(), nullable=False),
        sa.Column("stored_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_id", "channel", "idx", name="uq_utterance")
    )
    _create_index("ix_utterances_call_id", "utterances", ["call_id"])

    _create_table("catalog_offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["catalog_items.id"]),
        sa.ForeignKeyConstraint(["store_id"], ["catalog_stores.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("store_id", "item_id", name="uq_catalog_offer")
    )
    _create_index("ix_catalog_offers_item_id", "catalog_offers", ["item_id"])
    _create_index("ix_catalog_offers_store_id", "catalog_offers", ["store_id"])


def downgrade() -> None:
    op.drop_table("catalog_offers")
    op.drop_table("utterances")
    op.drop_table("training_runs")
    op.drop_table("sentences")
    op.drop_table("model_versions")
    op.drop_table("model_events")
    op.drop_table("label_reviews")
    op.drop_table("dialog_turns")
    op.drop_table("dialog_sessions")
    op.drop_table("dead_letters")
    op.drop_table("dataset_versions")
    op.drop_table("dashboard_users")
    op.drop_table("catalog_stores")
    op.drop_table("catalog_items")
    op.drop_table("calls")
    op.drop_table("call_audio")
    op.drop_table("agents")
