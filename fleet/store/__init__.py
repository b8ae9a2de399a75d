"""The store: SQLAlchemy Core tables, Alembic migrations and aggregate functions."""
