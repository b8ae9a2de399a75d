"""Partition telemetry by month on PostgreSQL; add the 1-minute and 15-minute rollups.

Revision ID: 0004
Revises: 0005
Create Date: 2026-11-29

PostgreSQL: ``tlm_measurements`` becomes a natively partitioned table
(``PARTITION BY RANGE (ts_ms)``, one partition per UTC month in the schema
``tlm_part``, plus a DEFAULT partition); the existing rows are copied over. The rollup
tables ``tlm_agg_1m`` and ``tlm_agg_15m`` are partitioned the same way on ``bucket_ms``.
SQLite: the same rollup tables, unpartitioned; ``tlm_measurements`` is left as it is.
Partitions for later months are created by ``fleet.store.retention.ensure_partitions``.
Hand-written to match ``fleet/store/retention.py`` as of this revision.
"""

from __future__ import annotations

import datetime as dt
import time

import sqlalchemy as sa
from alembic import op

# The rollup tables are declared in fleet/store/retention.py, a module that
# migrate.TABLE_MODULES does not list yet; importing it here registers them on the shared
# MetaData whenever the migrations are loaded, so metadata comparisons see them.
import fleet.store.retention  # noqa: F401

revision = "0004"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = "tlm_part"
PARTITIONED = {
    "tlm_measurements": "ts_ms",
    "tlm_agg_1m": "bucket_ms",
    "tlm_agg_15m": "bucket_ms",
}
MONTHS_BEHIND = 24
"""Months of existing raw data given their own partition (older rows go to DEFAULT)."""
MONTHS_AHEAD = 3


def _agg_columns() -> list[sa.Column]:
    return [
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("dev_id", sa.String(length=32), nullable=False),
        sa.Column(
            "bucket_ms", sa.BigInteger(), nullable=False, comment="bucket start, UTC"
        ),
        sa.Column(
            "n", sa.Integer(), nullable=False, comment="raw samples in the bucket"
        ),
        sa.Column("n_not_good", sa.Integer(), nullable=False),
        sa.Column("soc_pct_avg", sa.Float(), nullable=True),
        sa.Column("soc_pct_min", sa.Float(), nullable=True),
        sa.Column("soc_pct_max", sa.Float(), nullable=True),
        sa.Column("soh_pct_min", sa.Float(), nullable=True),
        sa.Column("p_dc_w_avg", sa.Float(), nullable=True),
        sa.Column("p_dc_w_min", sa.Float(), nullable=True),
        sa.Column("p_dc_w_max", sa.Float(), nullable=True),
        sa.Column("p_ac_w_avg", sa.Float(), nullable=True),
        sa.Column("v_dc_v_avg", sa.Float(), nullable=True),
        sa.Column(
            "cell_v_max_v", sa.Float(), nullable=True, comment="max over the bucket"
        ),
        sa.Column(
            "cell_v_min_v", sa.Float(), nullable=True, comment="min over the bucket"
        ),
        sa.Column(
            "cell_t_max_c", sa.Float(), nullable=True, comment="max over the bucket"
        ),
        sa.Column(
            "cell_t_min_c", sa.Float(), nullable=True, comment="min over the bucket"
        ),
    ]


def _month_start(ts_ms: int) -> dt.datetime:
    t = dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC)
    return dt.datetime(t.year, t.month, 1, tzinfo=dt.UTC)


def _add_months(month: dt.datetime, months: int) -> dt.datetime:
    index = month.year * 12 + month.month - 1 + months
    return dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC)


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def _create_partitions(table: str, first: dt.datetime, last: dt.datetime) -> None:
    op.execute(f"CREATE TABLE {SCHEMA}.{table}_default PARTITION OF {table} DEFAULT")
    month = first
    while month <= last:
        name = f"{table}_y{month.year:04d}m{month.month:02d}"
        upper = _add_months(month, 1)
        op.execute(
            f"CREATE TABLE {SCHEMA}.{name} PARTITION OF {table} "
            f"FOR VALUES FROM ({_ms(month)}) TO ({_ms(upper)})"
        )
        month = upper


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    extra = {"postgresql_partition_by": "RANGE (bucket_ms)"} if postgres else {}
    for name in ("tlm_agg_1m", "tlm_agg_15m"):
        op.create_table(
            name,
            *_agg_columns(),
            sa.PrimaryKeyConstraint(
                "site_id", "dev_id", "bucket_ms", name=op.f(f"pk_{name}")
            ),
            **extra,
        )
    op.create_table(
        "tlm_rollup_state",
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column(
            "done_until_ms",
            sa.BigInteger(),
            nullable=False,
            comment="buckets before are final",
        ),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("level", name=op.f("pk_tlm_rollup_state")),
    )
    if not postgres:
        return

    bind = op.get_bind()
    now_month = _month_start(time.time_ns() // 1_000_000)
    last = _add_months(now_month, MONTHS_AHEAD)
    oldest = bind.execute(sa.text("SELECT min(ts_ms) FROM tlm_measurements")).scalar()
    floor = _add_months(now_month, -MONTHS_BEHIND)
    first = _add_months(now_month, -1)
    if oldest is not None:
        first = max(floor, min(first, _month_start(int(oldest))))

    op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    op.execute("ALTER TABLE tlm_measurements RENAME TO tlm_measurements_unpartitioned")
    op.execute(
        "ALTER TABLE tlm_measurements_unpartitioned "
        "RENAME CONSTRAINT pk_tlm_measurements TO pk_tlm_measurements_unpartitioned"
    )
    op.execute(
        "ALTER INDEX ix_tlm_measurements_site_id "
        "RENAME TO ix_tlm_measurements_unpartitioned_site_id"
    )
    op.execute(
        "CREATE TABLE tlm_measurements (LIKE tlm_measurements_unpartitioned "
        "INCLUDING DEFAULTS INCLUDING COMMENTS INCLUDING STORAGE INCLUDING CONSTRAINTS) "
        "PARTITION BY RANGE (ts_ms)"
    )
    op.execute(
        "ALTER TABLE tlm_measurements "
        "ADD CONSTRAINT pk_tlm_measurements PRIMARY KEY (site_id, dev_id, ts_ms)"
    )
    op.create_index(
        op.f("ix_tlm_measurements_site_id"),
        "tlm_measurements",
        ["site_id", "dev_id", "seq"],
    )
    for table in PARTITIONED:
        _create_partitions(table, first, last)
    op.execute(
        "INSERT INTO tlm_measurements SELECT * FROM tlm_measurements_unpartitioned"
    )
    op.execute("DROP TABLE tlm_measurements_unpartitioned")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(
            "CREATE TABLE tlm_measurements_plain (LIKE tlm_measurements "
            "INCLUDING DEFAULTS INCLUDING COMMENTS INCLUDING STORAGE INCLUDING CONSTRAINTS)"
        )
        op.execute("INSERT INTO tlm_measurements_plain SELECT * FROM tlm_measurements")
        op.execute("DROP TABLE tlm_measurements")  # drops its partitions too
        op.execute("ALTER TABLE tlm_measurements_plain RENAME TO tlm_measurements")
        op.execute(
            "ALTER TABLE tlm_measurements "
            "ADD CONSTRAINT pk_tlm_measurements PRIMARY KEY (site_id, dev_id, ts_ms)"
        )
        op.create_index(
            op.f("ix_tlm_measurements_site_id"),
            "tlm_measurements",
            ["site_id", "dev_id", "seq"],
        )
    op.drop_table("tlm_rollup_state")
    op.drop_table("tlm_agg_15m")
    op.drop_table("tlm_agg_1m")
    if postgres:
        op.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
