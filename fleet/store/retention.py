"""Keep telemetry bounded: monthly partitions, raw → 1-minute → 15-minute rollups, retention.

Policy (the defaults of :class:`RetentionPolicy`, documented in ``deploy/README.md``):

=================  ==========================  =======================================
table              grain                       kept
=================  ==========================  =======================================
tlm_measurements   raw samples (1 s typical)   35 days (the ingest's ``too_old`` limit)
tlm_agg_1m         1-minute per site/device    400 days (13 months: year-on-year)
tlm_agg_15m        15-minute per site/device   15 years (LFP warranty term)
=================  ==========================  =======================================

Raw rows are never removed before they are rolled up: the retention cut-off of a level is
``min(now - kept, rolled-up watermark of the next level)``. Rollups are idempotent (each
bucket is recomputed from its sources and upserted), so late and backfilled samples are
absorbed by re-running over the late window.

On PostgreSQL the three tables are natively partitioned by month on their millisecond
time column (migration ``0004``); partitions live in the schema :data:`PARTITION_SCHEMA`
and expire by ``DROP TABLE`` of whole months, which costs no vacuum. A ``DEFAULT``
partition catches rows outside the created months; :func:`ensure_partitions` moves them
into a month when it creates that month. On SQLite the same jobs run with ``DELETE``.

Run it periodically (hourly) with ``python -m fleet.store.retention --db URL``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from fleet.errors import FleetInputError, StoreError
from fleet.store.engine import make_engine
from fleet.store.tables import metadata
from fleet.store.telemetry_tables import tlm_measurements

logger = logging.getLogger(__name__)

PARTITION_SCHEMA = "tlm_part"
"""PostgreSQL schema that holds the monthly partitions (kept out of the app schema)."""
MINUTE_MS = 60_000
QUARTER_HOUR_MS = 15 * MINUTE_MS
DAY_MS = 86_400_000
Level = Literal["1m", "15m"]


def _agg_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("site_id", sa.String(32), primary_key=True),
        sa.Column("dev_id", sa.String(32), primary_key=True),
        sa.Column(
            "bucket_ms", sa.BigInteger(), primary_key=True, comment="bucket start, UTC"
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


tlm_agg_1m = sa.Table(
    "tlm_agg_1m", metadata, *_agg_columns(), postgresql_partition_by="RANGE (bucket_ms)"
)
tlm_agg_15m = sa.Table(
    "tlm_agg_15m",
    metadata,
    *_agg_columns(),
    postgresql_partition_by="RANGE (bucket_ms)",
)
tlm_rollup_state = sa.Table(
    "tlm_rollup_state",
    metadata,
    sa.Column("level", sa.String(8), primary_key=True),
    sa.Column(
        "done_until_ms",
        sa.BigInteger(),
        nullable=False,
        comment="buckets before are final",
    ),
    sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
)

PARTITIONED: dict[str, str] = {
    "tlm_measurements": "ts_ms",
    "tlm_agg_1m": "bucket_ms",
    "tlm_agg_15m": "bucket_ms",
}
"""Partitioned tables (PostgreSQL) and their time column [ms since epoch, UTC]."""

_AVG = ("soc_pct", "p_dc_w", "p_ac_w", "v_dc_v")
_MIN = {"soc_pct_min": "soc_pct", "p_dc_w_min": "p_dc_w", "soh_pct_min": "soh_pct"}
_MAX = {"soc_pct_max": "soc_pct", "p_dc_w_max": "p_dc_w"}
_EXTREMES_MAX = ("cell_v_max_v", "cell_t_max_c")
_EXTREMES_MIN = ("cell_v_min_v", "cell_t_min_c")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long each level is kept and how rollups treat late data."""

    raw_days: int = 35
    """Raw samples kept [days]."""
    agg_1m_days: int = 400
    """1-minute rollups kept [days]."""
    agg_15m_days: int | None = 15 * 365
    """15-minute rollups kept [days]; None keeps them forever."""
    late_window_ms: int = 2 * 3_600_000
    """Closed buckets recomputed on every run to absorb late samples [ms]."""
    settle_ms: int = 2 * MINUTE_MS
    """Age a bucket's end must reach before it is rolled up [ms]."""
    months_ahead: int = 3
    """Monthly partitions created ahead of now (PostgreSQL)."""

    def __post_init__(self) -> None:
        for name in ("raw_days", "agg_1m_days", "late_window_ms", "settle_ms"):
            if getattr(self, name) < 0:
                msg = f"retention policy: {name}={getattr(self, name)} must be >= 0"
                raise FleetInputError(msg)
        if self.agg_15m_days is not None and self.agg_15m_days < 0:
            msg = f"retention policy: agg_15m_days={self.agg_15m_days} must be >= 0"
            raise FleetInputError(msg)
        if not 0 <= self.months_ahead <= 24:
            msg = f"retention policy: months_ahead={self.months_ahead} must be in 0..24"
            raise FleetInputError(msg)


@dataclass(frozen=True, slots=True)
class Partition:
    """One monthly partition of a partitioned table."""

    table: str
    """Parent table."""
    name: str
    """Partition table name (in :data:`PARTITION_SCHEMA`)."""
    start_ms: int | None
    """Inclusive lower bound [ms]; None for the DEFAULT partition."""
    end_ms: int | None
    """Exclusive upper bound [ms]; None for the DEFAULT partition."""


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    """What one :func:`run_maintenance` did."""

    partitions_created: tuple[str, ...]
    """Partitions created (PostgreSQL)."""
    rows_1m: int
    """1-minute buckets written."""
    rows_15m: int
    """15-minute buckets written."""
    dropped: tuple[str, ...]
    """Partitions dropped whole (PostgreSQL)."""
    deleted_rows: int
    """Rows deleted row by row (SQLite, and PostgreSQL DEFAULT partitions)."""


# --- months ---------------------------------------------------------------------------


def month_start_ms(ts_ms: int) -> int:
    """Return the start of the UTC month containing ``ts_ms`` [ms]."""
    t = dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC)
    return int(dt.datetime(t.year, t.month, 1, tzinfo=dt.UTC).timestamp() * 1000)


def add_months_ms(month_ms: int, months: int) -> int:
    """Return the start of the month ``months`` after the month starting at ``month_ms``."""
    t = dt.datetime.fromtimestamp(month_ms / 1000, tz=dt.UTC)
    index = t.year * 12 + (t.month - 1) + months
    start = dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC)
    return int(start.timestamp() * 1000)


def partition_name(table: str, month_ms: int) -> str:
    """Return the partition name of ``table`` for the month starting at ``month_ms``."""
    t = dt.datetime.fromtimestamp(month_ms / 1000, tz=dt.UTC)
    return f"{table}_y{t.year:04d}m{t.month:02d}"


# --- partitions (PostgreSQL) ----------------------------------------------------------

_BOUND = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


def list_partitions(conn: sa.Connection, table: str) -> list[Partition]:
    """Return the partitions of ``table``, DEFAULT last (empty list on SQLite)."""
    if conn.dialect.name != "postgresql":
        return []
    rows = conn.execute(
        sa.text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent "
            "JOIN pg_namespace pn ON pn.oid = p.relnamespace "
            "WHERE p.relname = :table AND pn.nspname = current_schema() "
            "ORDER BY c.relname"
        ),
        {"table": table},
    ).all()
    out = []
    default = None
    for name, bound in rows:
        match = _BOUND.search(bound or "")
        if match:
            out.append(Partition(table, name, int(match.group(1)), int(match.group(2))))
        else:
            default = Partition(table, name, None, None)
    out.sort(key=lambda p: p.start_ms or 0)
    return [*out, default] if default else out


def ensure_partitions(
    conn: sa.Connection, *, now_ms: int, months_ahead: int = 3, months_behind: int = 1
) -> list[str]:
    """Create the monthly partitions around ``now_ms`` that do not exist yet.

    Rows that already sit in the DEFAULT partition for a month being created are moved
    into the new partition in the same transaction (PostgreSQL refuses to create a
    partition whose range has rows in DEFAULT).

    Parameters
    ----------
    conn
        Connection in a transaction.
    now_ms
        The present [ms since epoch, UTC].
    months_ahead, months_behind
        Months to cover after and before the current one.

    Returns
    -------
    list of str
        Names of the partitions created (empty on SQLite).
    """
    if conn.dialect.name != "postgresql":
        return []
    created = []
    first = add_months_ms(month_start_ms(now_ms), -months_behind)
    months = [add_months_ms(first, k) for k in range(months_behind + months_ahead + 1)]
    for table, column in PARTITIONED.items():
        existing = {p.start_ms for p in list_partitions(conn, table)}
        for start in months:
            if start in existing:
                continue
            created.append(_create_month(conn, table, column, start))
    if created:
        logger.info("created partitions %s", ", ".join(created))
    return created


def _create_month(conn: sa.Connection, table: str, column: str, start: int) -> str:
    end = add_months_ms(start, 1)
    name = partition_name(table, start)
    default = f"{PARTITION_SCHEMA}.{table}_default"
    qualified = f"{PARTITION_SCHEMA}.{name}"
    in_default = conn.execute(
        sa.text(
            f"SELECT count(*) FROM {default} WHERE {column} >= :a AND {column} < :b"
        ),
        {"a": start, "b": end},
    ).scalar_one()
    if in_default:
        conn.execute(sa.text(f"ALTER TABLE {table} DETACH PARTITION {default}"))
        conn.execute(sa.text(f"CREATE TABLE {qualified} (LIKE {table} INCLUDING ALL)"))
        conn.execute(
            sa.text(
                f"WITH moved AS (DELETE FROM {default} WHERE {column} >= :a AND "
                f"{column} < :b RETURNING *) INSERT INTO {qualified} SELECT * FROM moved"
            ),
            {"a": start, "b": end},
        )
        conn.execute(
            sa.text(
                f"ALTER TABLE {table} ATTACH PARTITION {qualified} "
                f"FOR VALUES FROM ({start}) TO ({end})"
            )
        )
        conn.execute(sa.text(f"ALTER TABLE {table} ATTACH PARTITION {default} DEFAULT"))
        logger.info("moved %d rows of %s from DEFAULT into %s", in_default, table, name)
    else:
        conn.execute(
            sa.text(
                f"CREATE TABLE {qualified} PARTITION OF {table} "
                f"FOR VALUES FROM ({start}) TO ({end})"
            )
        )
    return name


# --- rollups --------------------------------------------------------------------------


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    msg = f"retention supports sqlite and postgresql, not {conn.dialect.name}"
    raise StoreError(msg)


def _rollup_select(level: Level, start_ms: int, end_ms: int) -> sa.Select[Any]:
    if level == "1m":
        src = tlm_measurements
        bucket = (src.c.ts_ms // MINUTE_MS) * MINUTE_MS
        time_col = src.c.ts_ms
        cols: list[sa.ColumnElement[Any]] = [
            sa.func.count().label("n"),
            sa.func.sum(sa.case((src.c.q != "good", 1), else_=0)).label("n_not_good"),
            *(sa.func.avg(src.c[name]).label(f"{name}_avg") for name in _AVG),
            *(sa.func.min(src.c[col]).label(out) for out, col in _MIN.items()),
            *(sa.func.max(src.c[col]).label(out) for out, col in _MAX.items()),
            *(sa.func.max(src.c[name]).label(name) for name in _EXTREMES_MAX),
            *(sa.func.min(src.c[name]).label(name) for name in _EXTREMES_MIN),
        ]
    else:
        src = tlm_agg_1m
        bucket = (src.c.bucket_ms // QUARTER_HOUR_MS) * QUARTER_HOUR_MS
        time_col = src.c.bucket_ms

        def wavg(name: str) -> sa.ColumnElement[Any]:
            avg = src.c[f"{name}_avg"]
            weight = sa.case((avg.is_not(None), src.c.n), else_=None)
            return (sa.func.sum(avg * src.c.n) / sa.func.sum(weight)).label(
                f"{name}_avg"
            )

        cols = [
            sa.func.sum(src.c.n).label("n"),
            sa.func.sum(src.c.n_not_good).label("n_not_good"),
            *(wavg(name) for name in _AVG),
            *(sa.func.min(src.c[out]).label(out) for out in _MIN),
            *(sa.func.max(src.c[out]).label(out) for out in _MAX),
            *(sa.func.max(src.c[name]).label(name) for name in _EXTREMES_MAX),
            *(sa.func.min(src.c[name]).label(name) for name in _EXTREMES_MIN),
        ]
    return (
        sa.select(src.c.site_id, src.c.dev_id, bucket.label("bucket_ms"), *cols)
        .where(time_col >= start_ms, time_col < end_ms)
        .group_by(src.c.site_id, src.c.dev_id, bucket)
    )


def rollup(conn: sa.Connection, *, level: Level, start_ms: int, end_ms: int) -> int:
    """Recompute the ``level`` buckets in ``[start_ms, end_ms)`` and upsert them.

    ``1m`` reads raw samples, ``15m`` reads 1-minute buckets (averages weighted by the
    sample count). Bounds are rounded outwards to whole buckets, so a bucket is always
    computed from all of its sources; re-running is idempotent.

    Parameters
    ----------
    conn
        Connection in a transaction.
    level : {"1m", "15m"}
        The level to write.
    start_ms, end_ms
        Time range [ms since epoch, UTC].

    Returns
    -------
    int
        Buckets written.

    Raises
    ------
    FleetInputError
        For an unknown level or ``end_ms < start_ms``.
    """
    if level not in ("1m", "15m"):
        msg = f"level={level!r} must be '1m' or '15m'"
        raise FleetInputError(msg)
    if end_ms < start_ms:
        msg = f"end_ms={end_ms} must be >= start_ms={start_ms}"
        raise FleetInputError(msg)
    width = MINUTE_MS if level == "1m" else QUARTER_HOUR_MS
    start = (start_ms // width) * width
    end = -(-end_ms // width) * width
    target = tlm_agg_1m if level == "1m" else tlm_agg_15m
    select = _rollup_select(level, start, end)
    names = [c.name for c in select.selected_columns]
    stmt = _insert(conn, target).from_select(names, select)
    stmt = stmt.on_conflict_do_update(
        index_elements=["site_id", "dev_id", "bucket_ms"],
        set_={
            n: stmt.excluded[n]
            for n in names
            if n not in ("site_id", "dev_id", "bucket_ms")
        },
    )
    # rowcount of INSERT … SELECT is not reliable across drivers; count what returns
    written = len(conn.execute(stmt.returning(target.c.bucket_ms)).all())
    logger.debug("rollup %s [%d, %d): %d buckets", level, start, end, written)
    return written


def _watermark(conn: sa.Connection, level: Level) -> int | None:
    value = conn.execute(
        sa.select(tlm_rollup_state.c.done_until_ms).where(
            tlm_rollup_state.c.level == level
        )
    ).scalar_one_or_none()
    return None if value is None else int(value)


def _set_watermark(conn: sa.Connection, level: Level, value: int, now_ms: int) -> None:
    stmt = _insert(conn, tlm_rollup_state).values(
        level=level, done_until_ms=value, updated_at_ms=now_ms
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["level"],
            set_={"done_until_ms": value, "updated_at_ms": now_ms},
        )
    )


def _earliest(conn: sa.Connection, level: Level) -> int | None:
    col = tlm_measurements.c.ts_ms if level == "1m" else tlm_agg_1m.c.bucket_ms
    value = conn.execute(sa.select(sa.func.min(col))).scalar_one_or_none()
    return None if value is None else int(value)


def rollup_pending(
    conn: sa.Connection, *, level: Level, now_ms: int, policy: RetentionPolicy
) -> int:
    """Roll up everything closed since the watermark (minus the late window); move it."""
    width = MINUTE_MS if level == "1m" else QUARTER_HOUR_MS
    end = ((now_ms - policy.settle_ms) // width) * width
    if level == "15m":
        done_1m = _watermark(conn, "1m")
        end = min(end, ((done_1m or 0) // width) * width)
    mark = _watermark(conn, level)
    start = _earliest(conn, level) if mark is None else mark - policy.late_window_ms
    if start is None or end <= start:
        return 0
    written = rollup(conn, level=level, start_ms=start, end_ms=end)
    _set_watermark(conn, level, max(end, mark or end), now_ms)
    return written


# --- retention ------------------------------------------------------------------------


def _cutoffs(
    conn: sa.Connection, now_ms: int, policy: RetentionPolicy
) -> dict[str, int | None]:
    done_1m = _watermark(conn, "1m") or 0
    done_15m = _watermark(conn, "15m") or 0
    return {
        "tlm_measurements": min(now_ms - policy.raw_days * DAY_MS, done_1m),
        "tlm_agg_1m": min(now_ms - policy.agg_1m_days * DAY_MS, done_15m),
        "tlm_agg_15m": None
        if policy.agg_15m_days is None
        else now_ms - policy.agg_15m_days * DAY_MS,
    }


def apply_retention(
    conn: sa.Connection, *, now_ms: int, policy: RetentionPolicy
) -> tuple[list[str], int]:
    """Remove what the policy no longer keeps; return (dropped partitions, deleted rows).

    PostgreSQL drops the monthly partitions that lie wholly before the cut-off (a month
    is kept until its last day expires) and deletes expired rows from the DEFAULT
    partition; SQLite deletes the expired rows.
    """
    dropped: list[str] = []
    deleted = 0
    for table, cutoff in _cutoffs(conn, now_ms, policy).items():
        if cutoff is None:
            continue
        column = PARTITIONED[table]
        if conn.dialect.name == "postgresql":
            for part in list_partitions(conn, table):
                if part.end_ms is not None and part.end_ms <= cutoff:
                    conn.execute(sa.text(f"DROP TABLE {PARTITION_SCHEMA}.{part.name}"))
                    dropped.append(part.name)
            target = f"{PARTITION_SCHEMA}.{table}_default"
        else:
            target = table
        result = conn.execute(
            sa.text(f"DELETE FROM {target} WHERE {column} < :cutoff"),
            {"cutoff": cutoff},
        )
        deleted += max(0, int(result.rowcount))
    if dropped or deleted:
        logger.info("retention: dropped %s, deleted %d rows", dropped, deleted)
    return dropped, deleted


def run_maintenance(
    engine: sa.Engine,
    *,
    now_ms: int | None = None,
    policy: RetentionPolicy | None = None,
) -> MaintenanceReport:
    """Create partitions, roll up raw → 1 min → 15 min, then apply retention.

    Each step commits on its own, so an interrupted run resumes where it stopped.

    Parameters
    ----------
    engine
        Engine of a store migrated to head.
    now_ms
        The present [ms since epoch, UTC]; the wall clock when None.
    policy
        Retention and rollup settings (the documented defaults when None).
    """
    policy = policy or RetentionPolicy()
    now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    with engine.begin() as conn:
        created = ensure_partitions(conn, now_ms=now, months_ahead=policy.months_ahead)
    with engine.begin() as conn:
        rows_1m = rollup_pending(conn, level="1m", now_ms=now, policy=policy)
    with engine.begin() as conn:
        rows_15m = rollup_pending(conn, level="15m", now_ms=now, policy=policy)
    with engine.begin() as conn:
        dropped, deleted = apply_retention(conn, now_ms=now, policy=policy)
    return MaintenanceReport(tuple(created), rows_1m, rows_15m, tuple(dropped), deleted)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one maintenance pass (for cron / a Kubernetes CronJob); return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m fleet.store.retention")
    parser.add_argument("--db", help="store URL (default: $BESSFLEET_DATABASE_URL)")
    parser.add_argument("--raw-days", type=int, default=RetentionPolicy().raw_days)
    parser.add_argument(
        "--agg-1m-days", type=int, default=RetentionPolicy().agg_1m_days
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    from fleet.config import Settings
    from fleet.store.migrate import require_head

    url = args.db or Settings().database_url
    try:
        policy = RetentionPolicy(raw_days=args.raw_days, agg_1m_days=args.agg_1m_days)
        require_head(url)
        engine = make_engine(url)
        try:
            report = run_maintenance(engine, policy=policy)
        finally:
            engine.dispose()
    except (FleetInputError, StoreError, sa.exc.SQLAlchemyError) as exc:
        logger.error("maintenance failed: %s", exc)
        return 1
    logger.info("maintenance done: %s", report)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
