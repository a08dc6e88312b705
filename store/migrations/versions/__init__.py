"""Alembic revisions of the callsense store, oldest first (`0001_initial` is the schema
that `create_all` made before migrations existed)."""
