"""Alembic migrations of the callsense store (run by `callsense.store.db.ensure_schema`)."""
