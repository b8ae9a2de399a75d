"""Create the asset registry (assets, asset events) and the daily health features.

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-29

Hand-written to match ``fleet/store/asset_tables.py`` as of this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# The asset tables are declared in a module that migrate.TABLE_MODULES does not list
# yet; importing it here registers them on the shared MetaData whenever the
# migrations are loaded, so metadata comparisons see them.
import fleet.store.asset_tables  # noqa: F401

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UTC_TIME = sa.DateTime(timezone=True)
HEALTH_FEATURE_COLUMNS = (
    "bad_fraction",
    "gap_fraction",
    "spread_mid_soc_mv",
    "temp_at_power_c",
    "soh",
    "energy_in_mwh",
    "energy_out_mwh",
    "soc_start",
    "soc_end",
    "soc_mean",
    "rte",
)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("manufacturer", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("country_of_manufacture", sa.String(length=2), nullable=False),
        sa.Column("feoc", sa.Boolean(), nullable=False),
        sa.Column("energy_mwh", sa.Float(), nullable=True),
        sa.Column("site_id", sa.String(length=64), nullable=True),
        sa.Column("position", sa.String(length=64), nullable=True),
        sa.Column(
            "dev_id", sa.String(length=32), nullable=True, comment="telemetry device"
        ),
        sa.Column("parent_serial", sa.String(length=64), nullable=True),
        sa.Column("installed_at", UTC_TIME, nullable=True),
        sa.Column("removed_at", UTC_TIME, nullable=True),
        sa.CheckConstraint(
            "kind IN ('cell', 'module', 'string', 'rack', 'pcs')",
            name=op.f("ck_assets_kind"),
        ),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_assets")),
    )
    op.create_index(op.f("ix_assets_site_id"), "assets", ["site_id", "position"])
    op.create_table(
        "asset_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ts", UTC_TIME, nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=True),
        sa.Column("position", sa.String(length=64), nullable=True),
        sa.Column("dev_id", sa.String(length=32), nullable=True),
        sa.Column("detail", JSON_DOC, nullable=True),
        sa.CheckConstraint(
            "kind IN ('register', 'install', 'remove', 'swap_in', 'swap_out')",
            name=op.f("ck_asset_events_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_events")),
    )
    op.create_index(op.f("ix_asset_events_serial"), "asset_events", ["serial", "ts"])

    op.create_table(
        "health_daily",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("dev_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False, comment="UTC day"),
        sa.Column("samples", sa.Integer(), nullable=False),
        *(
            sa.Column(name, sa.Float(), nullable=True)
            for name in HEALTH_FEATURE_COLUMNS
        ),
        sa.Column("computed_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint(
            "site_id", "dev_id", "day", name=op.f("pk_health_daily")
        ),
    )


def downgrade() -> None:
    op.drop_table("health_daily")
    op.drop_index(op.f("ix_asset_events_serial"), table_name="asset_events")
    op.drop_table("asset_events")
    op.drop_index(op.f("ix_assets_site_id"), table_name="assets")
    op.drop_table("assets")
