"""Create the telemetry tables: measurements, quarantine, latest state, gaps, sessions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Hand-written to match ``fleet/store/telemetry_tables.py`` as of this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

MEASUREMENT_COLUMNS = (
    "soc_pct",
    "soh_pct",
    "p_dc_w",
    "v_dc_v",
    "i_dc_a",
    "cell_v_max_v",
    "cell_v_min_v",
    "cell_v_avg_v",
    "cell_t_max_c",
    "cell_t_min_c",
    "cell_t_avg_c",
    "i_cha_max_a",
    "i_dis_max_a",
    "p_ac_w",
)


def upgrade() -> None:
    op.create_table(
        "tlm_measurements",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("dev_id", sa.String(length=32), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False, comment="sample time, UTC"),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("sid", sa.BigInteger(), nullable=False),
        sa.Column("hist", sa.Boolean(), nullable=False),
        sa.Column("q", sa.String(length=16), nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False, comment="telemetry Flag bits"),
        sa.Column("payload_hash", sa.String(length=32), nullable=False),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=True) for name in MEASUREMENT_COLUMNS),
        sa.Column("m_extra", JSON_DOC, nullable=True),
        sa.PrimaryKeyConstraint(
            "site_id", "dev_id", "ts_ms", name=op.f("pk_tlm_measurements")
        ),
    )
    op.create_index(
        op.f("ix_tlm_measurements_site_id"),
        "tlm_measurements",
        ["site_id", "dev_id", "seq"],
    )
    op.create_table(
        "tlm_quarantine",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("qos", sa.SmallInteger(), nullable=False),
        sa.Column("dup", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False, comment="raw bytes"),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("site_from_topic", sa.String(length=64), nullable=True),
        sa.Column("schema_v", sa.Integer(), nullable=True),
        sa.Column("reprocessed_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tlm_quarantine")),
    )
    op.create_index(
        op.f("ix_tlm_quarantine_reason"),
        "tlm_quarantine",
        ["reason", "received_at_ms"],
    )
    op.create_index(
        op.f("ix_tlm_quarantine_site_from_topic"),
        "tlm_quarantine",
        ["site_from_topic"],
    )
    op.create_table(
        "tlm_latest",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("dev_id", sa.String(length=32), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("sid", sa.BigInteger(), nullable=False),
        sa.Column("q", sa.String(length=16), nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.Column("soc_pct", sa.Float(), nullable=True),
        sa.Column("p_dc_w", sa.Float(), nullable=True),
        sa.Column("p_ac_w", sa.Float(), nullable=True),
        sa.Column("m", JSON_DOC, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "dev_id", name=op.f("pk_tlm_latest")),
    )
    op.create_table(
        "tlm_seq_tracker",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("dev_id", sa.String(length=32), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("contiguous_seq", sa.BigInteger(), nullable=False),
        sa.Column("contiguous_ts_ms", sa.BigInteger(), nullable=True),
        sa.Column("max_seq_seen", sa.BigInteger(), nullable=False),
        sa.Column("max_ts_ms", sa.BigInteger(), nullable=True),
        sa.Column("first_gap_seen_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("backfill_requested_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("backfill_attempts", sa.Integer(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "dev_id", name=op.f("pk_tlm_seq_tracker")),
    )
    op.create_table(
        "tlm_gaps",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("dev_id", sa.String(length=32), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("from_seq", sa.BigInteger(), nullable=False),
        sa.Column("to_seq", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tlm_gaps")),
    )
    op.create_index(op.f("ix_tlm_gaps_site_id"), "tlm_gaps", ["site_id", "dev_id"])
    op.create_table(
        "tlm_site_sessions",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("grp", sa.String(length=32), nullable=False, comment="topic group"),
        sa.Column("sid", sa.BigInteger(), nullable=False, comment="current birth sid"),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("birth_ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("state_ts_ms", sa.BigInteger(), nullable=True),
        sa.Column("birth", JSON_DOC, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_tlm_site_sessions")),
    )
    op.create_table(
        "tlm_counters",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("stored", sa.BigInteger(), nullable=False),
        sa.Column("duplicates", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_tlm_counters")),
    )
    op.create_table(
        "tlm_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("sid", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("dev_id", sa.String(length=32), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tlm_events")),
    )
    op.create_index(op.f("ix_tlm_events_site_id"), "tlm_events", ["site_id", "ts_ms"])


def downgrade() -> None:
    op.drop_index(op.f("ix_tlm_events_site_id"), table_name="tlm_events")
    op.drop_table("tlm_events")
    op.drop_table("tlm_counters")
    op.drop_table("tlm_site_sessions")
    op.drop_index(op.f("ix_tlm_gaps_site_id"), table_name="tlm_gaps")
    op.drop_table("tlm_gaps")
    op.drop_table("tlm_seq_tracker")
    op.drop_table("tlm_latest")
    op.drop_index(
        op.f("ix_tlm_quarantine_site_from_topic"), table_name="tlm_quarantine"
    )
    op.drop_index(op.f("ix_tlm_quarantine_reason"), table_name="tlm_quarantine")
    op.drop_table("tlm_quarantine")
    op.drop_index(op.f("ix_tlm_measurements_site_id"), table_name="tlm_measurements")
    op.drop_table("tlm_measurements")
