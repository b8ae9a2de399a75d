"""Tables of the unattended operating day, created by migration 0006.

Steps run, interval records, settlement, and the ingest workers' heartbeats.
"""

from __future__ import annotations

import sqlalchemy as sa

from fleet.store.tables import JsonDoc, UtcDateTime, _in, metadata

OPS_STEPS = ("forecast", "dayahead", "bids", "export", "awards", "intraday", "settle")
"""Steps of a market's operating day, in order."""
OPS_STATUSES = ("running", "done", "failed", "skipped")

ops_runs = sa.Table(
    "ops_runs",
    metadata,
    sa.Column("market", sa.String(16), primary_key=True),
    sa.Column("operating_day", sa.Date(), primary_key=True),
    sa.Column("step", sa.String(16), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("detail", JsonDoc, nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.CheckConstraint(_in("step", OPS_STEPS), name="step"),
    sa.CheckConstraint(_in("status", OPS_STATUSES), name="status"),
)

ops_intervals = sa.Table(
    "ops_intervals",
    metadata,
    sa.Column("market", sa.String(16), primary_key=True),
    sa.Column("operating_day", sa.Date(), primary_key=True),
    sa.Column("interval_index", sa.Integer(), primary_key=True),
    sa.Column("start_ts", UtcDateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("fallback", sa.String(64), nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column(
        "setpoints", JsonDoc, nullable=False, comment="site -> MW, + = discharge"
    ),
    sa.Column("stale", JsonDoc, nullable=False),
    sa.Column("awarded_mw", JsonDoc, nullable=False),
    sa.Column("held_mw", JsonDoc, nullable=False),
    sa.Column("shortfall_mw", JsonDoc, nullable=False),
    sa.Column("solve_seconds", sa.Float(), nullable=False),
    sa.Column("recorded_at", UtcDateTime(), nullable=False),
)

settlements = sa.Table(
    "settlements",
    metadata,
    sa.Column("market", sa.String(16), primary_key=True),
    sa.Column("operating_day", sa.Date(), primary_key=True),
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("item", sa.String(32), primary_key=True),
    sa.Column("amount_usd", sa.Float(), nullable=False),
    sa.Column("quantity", sa.Float(), nullable=True),
    sa.Column("unit", sa.String(16), nullable=True),
    sa.Column("detail", JsonDoc, nullable=True),
    sa.Column("settled_at", UtcDateTime(), nullable=False),
)

ingest_heartbeats = sa.Table(
    "ingest_heartbeats",
    metadata,
    sa.Column("client_id", sa.String(128), primary_key=True),
    sa.Column("host", sa.String(128), nullable=False),
    sa.Column("started_at_ms", sa.BigInteger(), nullable=False),
    sa.Column("last_seen_ms", sa.BigInteger(), nullable=False),
    sa.Column("last_commit_ms", sa.BigInteger(), nullable=True),
    sa.Column("received", sa.BigInteger(), nullable=False),
    sa.Column("stored", sa.BigInteger(), nullable=False),
    sa.Column("stopped", sa.Boolean(), nullable=False),
)
