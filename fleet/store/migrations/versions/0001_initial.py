"""Create the store's first tables: sites, prices, forecasts, schedules, bids, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Hand-written to match ``fleet/store/tables.py`` as of this revision; never import the
application's table objects here (a migration is frozen once released).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("market", sa.String(length=32), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=True),
        sa.Column("meter", sa.String(length=32), nullable=True),
        sa.Column("config", JSON_DOC, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
    )
    op.create_table(
        "prices",
        sa.Column("market", sa.String(length=32), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("product", sa.String(length=32), nullable=False),
        sa.Column("ts", UTC_TIME, nullable=False, comment="interval start, UTC"),
        sa.Column("interval_minutes", sa.Integer(), nullable=False),
        sa.Column("price", sa.Float(), nullable=False, comment="in `unit`"),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=True),
        sa.Column("imported_at", UTC_TIME, nullable=False),
        sa.CheckConstraint(
            "unit IN ('usd_per_mwh', 'usd_per_mw')", name=op.f("ck_prices_unit")
        ),
        sa.CheckConstraint(
            "interval_minutes > 0", name=op.f("ck_prices_interval_minutes")
        ),
        sa.PrimaryKeyConstraint(
            "market", "node", "product", "ts", name=op.f("pk_prices")
        ),
    )
    op.create_table(
        "price_forecasts",
        sa.Column("market", sa.String(length=32), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("product", sa.String(length=32), nullable=False),
        sa.Column("ts", UTC_TIME, nullable=False, comment="interval start, UTC"),
        sa.Column("issue_time", UTC_TIME, nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("horizon_h", sa.Float(), nullable=False),
        sa.Column("p10", sa.Float(), nullable=True, comment="in `unit`"),
        sa.Column("p50", sa.Float(), nullable=False, comment="in `unit`"),
        sa.Column("p90", sa.Float(), nullable=True, comment="in `unit`"),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.CheckConstraint(
            "unit IN ('usd_per_mwh', 'usd_per_mw')",
            name=op.f("ck_price_forecasts_unit"),
        ),
        sa.PrimaryKeyConstraint(
            "market",
            "node",
            "product",
            "ts",
            "issue_time",
            "model_version",
            name=op.f("pk_price_forecasts"),
        ),
    )
    op.create_table(
        "load_forecasts",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("ts", UTC_TIME, nullable=False, comment="interval start, UTC"),
        sa.Column("issue_time", UTC_TIME, nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("horizon_h", sa.Float(), nullable=False),
        sa.Column("p10_mw", sa.Float(), nullable=True),
        sa.Column("p50_mw", sa.Float(), nullable=False),
        sa.Column("p90_mw", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint(
            "site_id",
            "ts",
            "issue_time",
            "model_version",
            name=op.f("pk_load_forecasts"),
        ),
    )
    op.create_table(
        "schedules",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("market", sa.String(length=32), nullable=False),
        sa.Column("operating_day", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("objective_usd", sa.Float(), nullable=True),
        sa.Column("solve_path", sa.String(length=64), nullable=True),
        sa.Column("scenario", JSON_DOC, nullable=True),
        sa.Column("result", JSON_DOC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
        sa.UniqueConstraint(
            "market", "operating_day", "version", name=op.f("uq_schedules_market")
        ),
    )
    op.create_table(
        "schedule_intervals",
        sa.Column("schedule_id", BIG_ID, nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("ts", UTC_TIME, nullable=False, comment="interval start, UTC"),
        sa.Column("charge_mw", sa.Float(), nullable=False),
        sa.Column("discharge_mw", sa.Float(), nullable=False),
        sa.Column("reg_up_mw", sa.Float(), nullable=False),
        sa.Column("reg_down_mw", sa.Float(), nullable=False),
        sa.Column("spin_mw", sa.Float(), nullable=False),
        sa.Column(
            "soc", sa.Float(), nullable=True, comment="fraction 0-1, end of interval"
        ),
        sa.Column("energy_value_usd_per_mwh", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["schedules.id"],
            name=op.f("fk_schedule_intervals_schedule_id_schedules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "schedule_id", "site_id", "ts", name=op.f("pk_schedule_intervals")
        ),
    )
    op.create_index(
        op.f("ix_schedule_intervals_site_id"),
        "schedule_intervals",
        ["site_id", "ts"],
        unique=False,
    )
    op.create_table(
        "bid_sets",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("market", sa.String(length=32), nullable=False),
        sa.Column("operating_day", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "submitted_by", sa.String(length=64), nullable=False, comment="API key id"
        ),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("payload", JSON_DOC, nullable=False),
        sa.Column("refusal_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('accepted', 'refused')", name=op.f("ck_bid_sets_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bid_sets")),
    )
    op.create_index(
        op.f("ix_bid_sets_market"),
        "bid_sets",
        ["market", "operating_day", "version"],
        unique=False,
    )
    op.create_table(
        "awards",
        sa.Column("market", sa.String(length=32), nullable=False),
        sa.Column("operating_day", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, comment="bid set version"),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("ts", UTC_TIME, nullable=False, comment="interval start, UTC"),
        sa.Column("product", sa.String(length=32), nullable=False),
        sa.Column("award_mw", sa.Float(), nullable=False),
        sa.Column("price", sa.Float(), nullable=True, comment="in `unit`"),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.CheckConstraint(
            "unit IN ('usd_per_mwh', 'usd_per_mw')", name=op.f("ck_awards_unit")
        ),
        sa.PrimaryKeyConstraint(
            "market",
            "operating_day",
            "version",
            "site_id",
            "ts",
            "product",
            name=op.f("pk_awards"),
        ),
    )
    op.create_index(
        op.f("ix_awards_site_id"), "awards", ["site_id", "ts"], unique=False
    )
    op.create_table(
        "setpoints",
        sa.Column("cmd_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("issued_ts", UTC_TIME, nullable=False),
        sa.Column("valid_from", UTC_TIME, nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=False),
        sa.Column(
            "p_ac_w_setpoint", sa.Float(), nullable=False, comment="W, + = discharge"
        ),
        sa.Column("schedule_version", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ack_ts", UTC_TIME, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('sent', 'accepted', 'applied', 'rejected', 'expired')",
            name=op.f("ck_setpoints_status"),
        ),
        sa.PrimaryKeyConstraint("cmd_id", name=op.f("pk_setpoints")),
    )
    op.create_index(
        op.f("ix_setpoints_site_id"),
        "setpoints",
        ["site_id", "issued_ts"],
        unique=False,
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("ts", UTC_TIME, nullable=False),
        sa.Column(
            "actor",
            sa.String(length=64),
            nullable=False,
            comment="key id, system or cli",
        ),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=200), nullable=True),
        sa.Column("detail", JSON_DOC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(
        op.f("ix_audit_log_object_type"),
        "audit_log",
        ["object_type", "object_id"],
        unique=False,
    )
    op.create_index(op.f("ix_audit_log_ts"), "audit_log", ["ts"], unique=False)
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("hash", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("revoked_at", UTC_TIME, nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "role IN ('viewer', 'scheduler', 'admin')", name=op.f("ck_api_keys_role")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("opened_at", UTC_TIME, nullable=False),
        sa.Column("closed_at", UTC_TIME, nullable=True),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("detail", JSON_DOC, nullable=True),
        sa.CheckConstraint(
            "severity IN ('info', 'warning', 'critical')",
            name=op.f("ck_alerts_severity"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(
        op.f("ix_alerts_site_id"), "alerts", ["site_id", "opened_at"], unique=False
    )


def downgrade() -> None:
    op.drop_table("alerts")
    op.drop_table("api_keys")
    op.drop_table("audit_log")
    op.drop_table("setpoints")
    op.drop_table("awards")
    op.drop_table("bid_sets")
    op.drop_table("schedule_intervals")
    op.drop_table("schedules")
    op.drop_table("load_forecasts")
    op.drop_table("price_forecasts")
    op.drop_table("prices")
    op.drop_table("sites")
