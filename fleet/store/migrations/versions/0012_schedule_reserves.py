"""Keep a schedule interval's reserves per product in one JSON column.

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-07

``schedule_intervals.reserves`` maps each reserve product of the market rules
(``reg_up``, ``ecrs``, ``nonspin``, …) to its MW, so that a product added to a rules
file needs no migration. The columns ``reg_up_mw``, ``reg_down_mw`` and ``spin_mw`` stay
as copies of the spec's three products (readers of the spec's result format use them).
Rows written before this revision have no ``reserves``; readers fall back to the three
columns.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Add the column."""
    with op.batch_alter_table("schedule_intervals") as batch:
        batch.add_column(
            sa.Column(
                "reserves",
                JSON_DOC,
                nullable=True,
                comment="MW per reserve product (market rules' service names)",
            )
        )


def downgrade() -> None:
    """Drop the column (products other than the spec's three are lost)."""
    with op.batch_alter_table("schedule_intervals") as batch:
        batch.drop_column("reserves")
