"""PostgreSQL monthly partitions, raw → 1 min → 15 min rollups and retention (both stores)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from fleet.errors import FleetInputError
from fleet.store import migrate
from fleet.store.engine import make_engine
from fleet.store.retention import (
    DAY_MS,
    MINUTE_MS,
    PARTITION_SCHEMA,
    RetentionPolicy,
    add_months_ms,
    apply_retention,
    ensure_partitions,
    list_partitions,
    month_start_ms,
    rollup,
    run_maintenance,
    tlm_agg_1m,
    tlm_agg_15m,
)
from fleet.store.telemetry_tables import tlm_measurements

NOW_MS = int(dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC).timestamp() * 1000)


@pytest.fixture
def engine(empty_db_url: str) -> Iterator[sa.Engine]:
    migrate.upgrade(empty_db_url)
    eng = make_engine(empty_db_url)
    yield eng
    eng.dispose()


def _rows(
    site: str, start_ms: int, count: int, step_ms: int = 1000, **m: float
) -> list[dict[str, object]]:
    rng = np.random.default_rng(len(site) + start_ms % 997)
    out = []
    for k in range(count):
        ts = start_ms + k * step_ms
        out.append(
            {
                "site_id": site,
                "dev_id": "bank1",
                "ts_ms": ts,
                "seq": k,
                "sid": 1,
                "hist": False,
                "q": "good" if k % 10 else "uncertain",
                "flags": 0,
                "payload_hash": f"{ts:032x}"[-32:],
                "received_at_ms": ts + 50,
                "soc_pct": float(m.get("soc_pct", 50.0) + rng.normal()),
                "p_dc_w": float(m.get("p_dc_w", 1e6) + 1e5 * rng.normal()),
                "p_ac_w": None if k % 7 == 0 else float(9e5 + k),
                "cell_t_max_c": float(25 + k % 13),
                "cell_v_min_v": float(3.2 - (k % 5) / 100),
            }
        )
    return out


def _insert(engine: sa.Engine, rows: list[dict[str, object]]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(tlm_measurements), rows)


def test_retention_policy_names_field_when_negative() -> None:
    with pytest.raises(FleetInputError, match="raw_days=-1"):
        RetentionPolicy(raw_days=-1)
    with pytest.raises(FleetInputError, match="months_ahead=99"):
        RetentionPolicy(months_ahead=99)


def test_month_arithmetic_crosses_year_when_adding_months() -> None:
    start = month_start_ms(NOW_MS)
    assert start == int(dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp() * 1000)
    assert add_months_ms(start, 2) == int(
        dt.datetime(2027, 1, 1, tzinfo=dt.UTC).timestamp() * 1000
    )
    assert add_months_ms(start, -11) == int(
        dt.datetime(2025, 12, 1, tzinfo=dt.UTC).timestamp() * 1000
    )


@pytest.mark.integration
def test_migrated_store_matches_metadata_when_partitioned(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = list(compare_metadata(context, migrate.full_metadata()))
    assert diff == []
    assert {"tlm_agg_1m", "tlm_agg_15m", "tlm_rollup_state"} <= set(
        migrate.full_metadata().tables
    )


@pytest.mark.integration
def test_measurements_are_range_partitioned_by_month_when_postgresql(
    engine: sa.Engine,
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("native partitioning is PostgreSQL-only")
    now = month_start_ms(NOW_MS)
    with engine.begin() as conn:
        ensure_partitions(conn, now_ms=NOW_MS)
        kinds = dict(
            conn.execute(
                sa.text(
                    "SELECT relname, relkind FROM pg_class WHERE relname IN "
                    "('tlm_measurements', 'tlm_agg_1m', 'tlm_agg_15m')"
                )
            ).all()
        )
        assert set(kinds.values()) == {"p"}
        parts = list_partitions(conn, "tlm_measurements")
    months = [p.start_ms for p in parts if p.start_ms is not None]
    assert now in months
    assert add_months_ms(now, 3) in months
    assert parts[-1].start_ms is None  # the DEFAULT partition catches the rest
    old = now - 3 * 365 * DAY_MS
    _insert(engine, _rows("tx-a", now + 5000, 2) + _rows("tx-a", old, 1))
    with engine.connect() as conn:
        where = dict(
            conn.execute(
                sa.text("SELECT ts_ms, tableoid::regclass::text FROM tlm_measurements")
            ).all()
        )
    assert where[now + 5000] == f"{PARTITION_SCHEMA}.tlm_measurements_y2026m11"
    assert where[old] == f"{PARTITION_SCHEMA}.tlm_measurements_default"


@pytest.mark.integration
def test_ensure_partitions_moves_default_rows_when_month_created(
    engine: sa.Engine,
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("native partitioning is PostgreSQL-only")
    future = add_months_ms(month_start_ms(NOW_MS), 9) + 1000
    _insert(engine, _rows("tx-a", future, 3))
    with engine.begin() as conn:
        created = ensure_partitions(
            conn, now_ms=future, months_ahead=0, months_behind=0
        )
    assert created == [
        "tlm_measurements_y2027m08",
        "tlm_agg_1m_y2027m08",
        "tlm_agg_15m_y2027m08",
    ]
    with engine.connect() as conn:
        homes = (
            conn.execute(
                sa.text(
                    "SELECT DISTINCT tableoid::regclass::text FROM tlm_measurements"
                )
            )
            .scalars()
            .all()
        )
        assert homes == [f"{PARTITION_SCHEMA}.tlm_measurements_y2027m08"]
        assert (
            conn.execute(sa.text("SELECT count(*) FROM tlm_measurements")).scalar() == 3
        )


@pytest.mark.integration
def test_upgrade_keeps_existing_rows_when_table_converted(empty_db_url: str) -> None:
    from alembic.script import ScriptDirectory

    previous = "0004"  # the revision that partitions tlm_measurements
    script = ScriptDirectory.from_config(migrate.alembic_config(empty_db_url))
    script_down = script.get_revision(previous).down_revision
    assert isinstance(script_down, str)
    migrate.upgrade(empty_db_url, script_down)
    eng = make_engine(empty_db_url)
    try:
        now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        _insert(eng, _rows("tx-a", now - 40 * DAY_MS, 5) + _rows("tx-b", now, 5))
        migrate.upgrade(empty_db_url)
        with eng.connect() as conn:
            assert (
                conn.execute(sa.text("SELECT count(*) FROM tlm_measurements")).scalar()
                == 10
            )
            if eng.dialect.name == "postgresql":
                homes = conn.execute(
                    sa.text("SELECT count(DISTINCT tableoid) FROM tlm_measurements")
                ).scalar()
                assert homes == 2
        _downgrade(empty_db_url, script_down)
        with eng.connect() as conn:
            assert (
                conn.execute(sa.text("SELECT count(*) FROM tlm_measurements")).scalar()
                == 10
            )
            if eng.dialect.name == "postgresql":
                kind = conn.execute(
                    sa.text(
                        "SELECT relkind FROM pg_class WHERE relname = 'tlm_measurements'"
                    )
                ).scalar()
                assert kind == "r"
        assert migrate.current(empty_db_url) == script_down
    finally:
        eng.dispose()


def _downgrade(url: str, revision: str) -> None:
    from alembic import command

    eng = make_engine(url)
    try:
        with eng.begin() as conn:
            config = migrate.alembic_config(url)
            config.attributes["connection"] = conn
            command.downgrade(config, revision)
    finally:
        eng.dispose()


def _raw_stats(
    rows: list[dict[str, object]], key: str, bucket_ms: int
) -> dict[tuple[str, int], float]:
    groups: dict[tuple[str, int], list[float]] = {}
    for row in rows:
        value = row[key]
        if value is not None:
            b = int(row["ts_ms"]) // bucket_ms * bucket_ms  # type: ignore[call-overload]
            groups.setdefault((str(row["site_id"]), b), []).append(float(value))  # type: ignore[arg-type]
    return {k: float(np.mean(v)) for k, v in groups.items()}


@pytest.mark.integration
def test_rollup_matches_raw_statistics_when_run_over_half_an_hour(
    engine: sa.Engine,
) -> None:
    start = NOW_MS - 45 * MINUTE_MS
    rows = _rows("tx-a", start, 1800) + _rows(
        "tx-b", start, 900, step_ms=2000, soc_pct=80.0
    )
    _insert(engine, rows)
    report = run_maintenance(engine, now_ms=NOW_MS, policy=RetentionPolicy())
    assert report.rows_1m == 60
    assert report.rows_15m == 4
    with engine.connect() as conn:
        agg1 = conn.execute(sa.select(tlm_agg_1m)).mappings().all()
        agg15 = conn.execute(sa.select(tlm_agg_15m)).mappings().all()
    expected_soc = _raw_stats(rows, "soc_pct", MINUTE_MS)
    for row in agg1:
        assert row["soc_pct_avg"] == pytest.approx(
            expected_soc[(row["site_id"], row["bucket_ms"])]
        )
    assert sum(r["n"] for r in agg1) == len(rows)
    assert sum(r["n_not_good"] for r in agg1) == sum(
        1 for r in rows if r["q"] != "good"
    )
    expected_15 = _raw_stats(rows, "p_ac_w", 15 * MINUTE_MS)
    for row in agg15:
        assert row["p_ac_w_avg"] == pytest.approx(
            expected_15[(row["site_id"], row["bucket_ms"])]
        )
        src = [
            r
            for r in rows
            if r["site_id"] == row["site_id"]
            and row["bucket_ms"] <= r["ts_ms"] < row["bucket_ms"] + 15 * MINUTE_MS
        ]  # type: ignore[operator]
        assert row["n"] == len(src)
        assert row["cell_t_max_c"] == max(r["cell_t_max_c"] for r in src)  # type: ignore[type-var]
        assert row["cell_v_min_v"] == min(r["cell_v_min_v"] for r in src)  # type: ignore[type-var]


@pytest.mark.integration
def test_rollup_absorbs_late_sample_when_rerun(engine: sa.Engine) -> None:
    start = NOW_MS - 30 * MINUTE_MS
    _insert(engine, _rows("tx-a", start, 60))
    run_maintenance(engine, now_ms=NOW_MS)
    late = _rows(
        "tx-a", start + 90_000, 1, soc_pct=10.0
    )  # a backfilled sample, 1.5 min in
    late[0]["seq"] = 999
    _insert(engine, late)
    report = run_maintenance(engine, now_ms=NOW_MS + MINUTE_MS)
    assert report.rows_1m >= 1
    with engine.connect() as conn:
        bucket = (
            conn.execute(
                sa.select(tlm_agg_1m).where(tlm_agg_1m.c.bucket_ms == start + MINUTE_MS)
            )
            .mappings()
            .one()
        )
        again = rollup(conn, level="1m", start_ms=start, end_ms=start + 2 * MINUTE_MS)
    assert bucket["n"] == 1  # the late sample alone falls in the second minute
    assert bucket["soc_pct_avg"] < 20
    assert again == 2


@pytest.mark.integration
def test_retention_keeps_raw_until_rolled_up_then_removes_it_when_expired(
    engine: sa.Engine,
) -> None:
    old = NOW_MS - 120 * DAY_MS
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            ensure_partitions(conn, now_ms=old, months_ahead=0, months_behind=0)
    _insert(
        engine, _rows("tx-a", old, 120) + _rows("tx-a", NOW_MS - 10 * MINUTE_MS, 60)
    )
    with engine.begin() as conn:
        dropped, deleted = apply_retention(
            conn, now_ms=NOW_MS, policy=RetentionPolicy()
        )
    assert (dropped, deleted) == ([], 0)  # nothing rolled up yet: nothing may go
    report = run_maintenance(engine, now_ms=NOW_MS)
    with engine.connect() as conn:
        raw = conn.execute(
            sa.select(sa.func.count()).select_from(tlm_measurements)
        ).scalar()
        agg_old = conn.execute(
            sa.select(sa.func.sum(tlm_agg_1m.c.n)).where(
                tlm_agg_1m.c.bucket_ms < NOW_MS - DAY_MS
            )
        ).scalar()
    assert raw == 60
    assert agg_old == 120
    if engine.dialect.name == "postgresql":
        assert "tlm_measurements_y2026m08" in report.dropped
    else:
        assert report.deleted_rows == 120


def test_rollup_names_field_when_level_unknown(tmp_path: object) -> None:
    eng = sa.create_engine("sqlite://")
    with eng.connect() as conn, pytest.raises(FleetInputError, match="level='5m'"):
        rollup(conn, level="5m", start_ms=0, end_ms=1)  # type: ignore[arg-type]
