"""Widen ``tlm_events.code`` to the spec's free-string limit (256 characters).

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-07

Spec telemetry.md 1.1 (Strings): every free string (``code``, ``detail``, ``reason``) is
at most 256 characters; the column was 64, so PostgreSQL refused a valid event.
SQLite does not enforce ``VARCHAR`` lengths; the column is altered in batch mode there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Widen the column."""
    with op.batch_alter_table("tlm_events") as batch:
        batch.alter_column(
            "code",
            existing_type=sa.String(length=64),
            type_=sa.String(length=256),
            existing_nullable=True,
        )


def downgrade() -> None:
    """Narrow the column back (longer codes are cut to 64 characters first)."""
    op.execute(
        "UPDATE tlm_events SET code = substr(code, 1, 64) WHERE length(code) > 64"
    )
    with op.batch_alter_table("tlm_events") as batch:
        batch.alter_column(
            "code",
            existing_type=sa.String(length=256),
            type_=sa.String(length=64),
            existing_nullable=True,
        )
