"""Create the operating-day tables: steps run, interval records, settlement, heartbeats.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-07

Hand-written to match ``fleet/store/ops_tables.py`` as of this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import fleet.store.ops_tables  # noqa: F401

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ops_runs",
        sa.Column("market", sa.String(length=16), nullable=False),
        sa.Column("operating_day", sa.Date(), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", UTC_TIME, nullable=False),
        sa.Column("finished_at", UTC_TIME, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("detail", JSON_DOC, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "step IN ('forecast', 'dayahead', 'bids', 'export', 'awards', "
            "'intraday', 'settle')",
            name=op.f("ck_ops_runs_step"),
        ),
        sa.CheckConstraint(
            "status IN ('running', 'done', 'failed', 'skipped')",
            name=op.f("ck_ops_runs_status"),
        ),
        sa.PrimaryKeyConstraint(
            "market", "operating_day", "step", name=op.f("pk_ops_runs")
        ),
    )
    op.create_table(
        "ops_intervals",
        sa.Column("market", sa.String(length=16), nullable=False),
        sa.Column("operating_day", sa.Date(), nullable=False),
        sa.Column("interval_index", sa.Integer(), nullable=False),
        sa.Column("start_ts", UTC_TIME, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fallback", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column(
            "setpoints", JSON_DOC, nullable=False, comment="site -> MW, + = discharge"
        ),
        sa.Column("stale", JSON_DOC, nullable=False),
        sa.Column("awarded_mw", JSON_DOC, nullable=False),
        sa.Column("held_mw", JSON_DOC, nullable=False),
        sa.Column("shortfall_mw", JSON_DOC, nullable=False),
        sa.Column("solve_seconds", sa.Float(), nullable=False),
        sa.Column("recorded_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint(
            "market", "operating_day", "interval_index", name=op.f("pk_ops_intervals")
        ),
    )
    op.create_table(
        "settlements",
        sa.Column("market", sa.String(length=16), nullable=False),
        sa.Column("operating_day", sa.Date(), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("item", sa.String(length=32), nullable=False),
        sa.Column("amount_usd", sa.Float(), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(length=16), nullable=True),
        sa.Column("detail", JSON_DOC, nullable=True),
        sa.Column("settled_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint(
            "market", "operating_day", "site_id", "item", name=op.f("pk_settlements")
        ),
    )
    op.create_table(
        "ingest_heartbeats",
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("host", sa.String(length=128), nullable=False),
        sa.Column("started_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_commit_ms", sa.BigInteger(), nullable=True),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("stored", sa.BigInteger(), nullable=False),
        sa.Column("stopped", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_ingest_heartbeats")),
    )


def downgrade() -> None:
    op.drop_table("ingest_heartbeats")
    op.drop_table("settlements")
    op.drop_table("ops_intervals")
    op.drop_table("ops_runs")
