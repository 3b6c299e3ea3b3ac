"""The schema's Alembic revisions, run by ``open_database`` (see docs/database.md)."""
