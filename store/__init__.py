"""The SQLModel schema and the repository over it (SQLite or PostgreSQL)."""
