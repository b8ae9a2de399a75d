"""Add key expiry (``api_keys.expires_at``) and dashboard sessions (``api_sessions``).

Revision ID: 0007
Revises: 0008
Create Date: 2026-12-07

Hand-written to match ``fleet/store/tables.py`` (``api_keys``) and
``fleet/store/keys.py`` (``api_sessions``) as of this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# api_sessions is declared in fleet/store/keys.py, a module that migrate.TABLE_MODULES
# does not list; importing it here registers the table on the shared MetaData whenever
# the migrations are loaded, so metadata comparisons see it.
import fleet.store.keys  # noqa: F401

revision = "0007"
down_revision = "0008"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the expiry column and the sessions table."""
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", UTC_TIME, nullable=True))
    op.create_table(
        "api_sessions",
        sa.Column("hash", sa.String(length=80), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_sessions_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_api_sessions")),
    )
    op.create_index(
        op.f("ix_api_sessions_key_id"), "api_sessions", ["key_id"], unique=False
    )
    op.create_index(
        op.f("ix_api_sessions_expires_at"), "api_sessions", ["expires_at"], unique=False
    )


def downgrade() -> None:
    """Drop the sessions table and the expiry column."""
    op.drop_index(op.f("ix_api_sessions_expires_at"), table_name="api_sessions")
    op.drop_index(op.f("ix_api_sessions_key_id"), table_name="api_sessions")
    op.drop_table("api_sessions")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("expires_at")
