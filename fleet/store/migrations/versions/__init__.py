"""Alembic revisions of the store, one file per revision (0001, 0002, …)."""
