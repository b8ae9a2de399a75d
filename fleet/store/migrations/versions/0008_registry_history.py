"""Append-only asset registry events, unknown origin/FEOC, daily mean cell temperature.

Revision ID: 0008
Revises: 0010
Create Date: 2026-12-07

``asset_events`` gains ``actor``, ``recorded_at`` (entry time; ``ts`` is the effective
time) and ``reason``, and the ``correct`` kind; ``assets.country_of_manufacture`` and
``assets.feoc`` become nullable (NULL = unknown); ``health_daily`` gains
``temp_mean_c``. Hand-written to match ``fleet/store/asset_tables.py`` as of this
revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fleet.store.asset_tables  # noqa: F401

revision = "0008"
down_revision = "0010"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)
OLD_KINDS = "kind IN ('register', 'install', 'remove', 'swap_in', 'swap_out')"
NEW_KINDS = (
    "kind IN ('register', 'install', 'remove', 'swap_in', 'swap_out', 'correct')"
)


def upgrade() -> None:
    with op.batch_alter_table("asset_events") as batch:
        batch.add_column(
            sa.Column(
                "actor", sa.String(length=64), nullable=True, comment="who entered it"
            )
        )
        batch.add_column(
            sa.Column("recorded_at", UTC_TIME, nullable=True, comment="entry time")
        )
        batch.add_column(sa.Column("reason", sa.String(length=500), nullable=True))
        batch.alter_column(
            "ts",
            existing_type=UTC_TIME,
            existing_nullable=False,
            comment="effective time",
        )
        batch.drop_constraint(op.f("ck_asset_events_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_asset_events_kind"), NEW_KINDS)
    with op.batch_alter_table("assets") as batch:
        batch.alter_column(
            "country_of_manufacture",
            existing_type=sa.String(length=2),
            nullable=True,
            comment="ISO 3166-1 alpha-2; NULL = unknown origin",
        )
        batch.alter_column(
            "feoc", existing_type=sa.Boolean(), nullable=True, comment="NULL = unknown"
        )
    with op.batch_alter_table("health_daily") as batch:
        batch.add_column(sa.Column("temp_mean_c", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("health_daily") as batch:
        batch.drop_column("temp_mean_c")
    op.execute("UPDATE assets SET feoc = TRUE WHERE feoc IS NULL")
    op.execute(
        "UPDATE assets SET country_of_manufacture = 'XX' WHERE country_of_manufacture IS NULL"
    )
    with op.batch_alter_table("assets") as batch:
        batch.alter_column(
            "feoc", existing_type=sa.Boolean(), nullable=False, comment=None
        )
        batch.alter_column(
            "country_of_manufacture",
            existing_type=sa.String(length=2),
            nullable=False,
            comment=None,
        )
    op.execute("DELETE FROM asset_events WHERE kind = 'correct'")
    with op.batch_alter_table("asset_events") as batch:
        batch.drop_constraint(op.f("ck_asset_events_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_asset_events_kind"), OLD_KINDS)
        batch.alter_column(
            "ts", existing_type=UTC_TIME, existing_nullable=False, comment=None
        )
        batch.drop_column("reason")
        batch.drop_column("recorded_at")
        batch.drop_column("actor")
