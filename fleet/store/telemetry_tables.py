"""Declare the telemetry tables (spec telemetry.md sections 4-6) on the shared MetaData.

Times are integer milliseconds since the Unix epoch, UTC (``*_ms``), as on the wire.
Every table here is created by ``migrations/versions/0002_telemetry.py``.
"""

from __future__ import annotations

import sqlalchemy as sa

from fleet.store.tables import BigId, JsonDoc, metadata
from telemetry.compiled import STORE_COLUMNS

MEASUREMENT_COLUMNS = STORE_COLUMNS
"""Measurements stored in their own columns; the rest of ``m`` goes to ``m_extra`` (the
validator builds the ``COPY`` rows in this order: :data:`telemetry.compiled.STORE_COLUMNS`)."""

tlm_measurements = sa.Table(
    "tlm_measurements",
    metadata,
    sa.Column("site_id", sa.String(32), primary_key=True),
    sa.Column("dev_id", sa.String(32), primary_key=True),
    sa.Column("ts_ms", sa.BigInteger(), primary_key=True, comment="sample time, UTC"),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("sid", sa.BigInteger(), nullable=False),
    sa.Column("hist", sa.Boolean(), nullable=False),
    sa.Column("q", sa.String(16), nullable=False),
    sa.Column("flags", sa.Integer(), nullable=False, comment="telemetry Flag bits"),
    sa.Column("payload_hash", sa.String(32), nullable=False),
    sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
    *(sa.Column(name, sa.Float(), nullable=True) for name in MEASUREMENT_COLUMNS),
    sa.Column("m_extra", JsonDoc, nullable=True),
    sa.Index(None, "site_id", "dev_id", "seq"),
)

tlm_quarantine = sa.Table(
    "tlm_quarantine",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
    sa.Column("topic", sa.Text(), nullable=False),
    sa.Column("qos", sa.SmallInteger(), nullable=False),
    sa.Column("dup", sa.Boolean(), nullable=False),
    sa.Column("payload", sa.LargeBinary(), nullable=False, comment="raw bytes"),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text(), nullable=True),
    sa.Column("site_from_topic", sa.String(64), nullable=True),
    sa.Column("schema_v", sa.Integer(), nullable=True),
    sa.Column("reprocessed_at_ms", sa.BigInteger(), nullable=True),
    sa.Index(None, "reason", "received_at_ms"),
    sa.Index(None, "site_from_topic"),
)

tlm_latest = sa.Table(
    "tlm_latest",
    metadata,
    sa.Column("site_id", sa.String(32), primary_key=True),
    sa.Column("dev_id", sa.String(32), primary_key=True),
    sa.Column("ts_ms", sa.BigInteger(), nullable=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("sid", sa.BigInteger(), nullable=False),
    sa.Column("q", sa.String(16), nullable=False),
    sa.Column("flags", sa.Integer(), nullable=False),
    sa.Column("soc_pct", sa.Float(), nullable=True),
    sa.Column("p_dc_w", sa.Float(), nullable=True),
    sa.Column("p_ac_w", sa.Float(), nullable=True),
    sa.Column("m", JsonDoc, nullable=False),
    sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
)

tlm_seq_tracker = sa.Table(
    "tlm_seq_tracker",
    metadata,
    sa.Column("site_id", sa.String(32), primary_key=True),
    sa.Column("dev_id", sa.String(32), primary_key=True),
    sa.Column("epoch", sa.Integer(), nullable=False),
    sa.Column("contiguous_seq", sa.BigInteger(), nullable=False),
    sa.Column("contiguous_ts_ms", sa.BigInteger(), nullable=True),
    sa.Column("max_seq_seen", sa.BigInteger(), nullable=False),
    sa.Column("max_ts_ms", sa.BigInteger(), nullable=True),
    sa.Column("first_gap_seen_at_ms", sa.BigInteger(), nullable=True),
    sa.Column("backfill_requested_at_ms", sa.BigInteger(), nullable=True),
    sa.Column("backfill_attempts", sa.Integer(), nullable=False),
    sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
)

tlm_gaps = sa.Table(
    "tlm_gaps",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("site_id", sa.String(32), nullable=False),
    sa.Column("dev_id", sa.String(32), nullable=False),
    sa.Column("epoch", sa.Integer(), nullable=False),
    sa.Column("from_seq", sa.BigInteger(), nullable=False),
    sa.Column("to_seq", sa.BigInteger(), nullable=False),
    sa.Column("recorded_at_ms", sa.BigInteger(), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Index(None, "site_id", "dev_id"),
)

tlm_site_sessions = sa.Table(
    "tlm_site_sessions",
    metadata,
    sa.Column("site_id", sa.String(32), primary_key=True),
    sa.Column("grp", sa.String(32), nullable=False, comment="topic group"),
    sa.Column("sid", sa.BigInteger(), nullable=False, comment="current birth sid"),
    sa.Column("online", sa.Boolean(), nullable=False),
    sa.Column("birth_ts_ms", sa.BigInteger(), nullable=False),
    sa.Column("state_ts_ms", sa.BigInteger(), nullable=True),
    sa.Column("birth", JsonDoc, nullable=False),
    sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
)

tlm_counters = sa.Table(
    "tlm_counters",
    metadata,
    sa.Column("site_id", sa.String(32), primary_key=True),
    sa.Column("stored", sa.BigInteger(), nullable=False),
    sa.Column("duplicates", sa.BigInteger(), nullable=False),
    sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
)

tlm_events = sa.Table(
    "tlm_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("site_id", sa.String(32), nullable=False),
    sa.Column("ts_ms", sa.BigInteger(), nullable=False),
    sa.Column("sid", sa.BigInteger(), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("dev_id", sa.String(32), nullable=True),
    sa.Column("code", sa.String(256), nullable=True),
    sa.Column("detail", sa.Text(), nullable=True),
    sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
    sa.Index(None, "site_id", "ts_ms"),
)
