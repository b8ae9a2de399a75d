"""Aggregation of per-device telemetry into a site's state and resampled history."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from fleet.api import queries
from fleet.store.engine import make_engine
from fleet.store.telemetry_tables import tlm_latest, tlm_measurements


def _row(dev: str, ts_ms: int, **m: float | None) -> dict[str, object]:
    return {
        "dev_id": dev,
        "ts_ms": ts_ms,
        "q": "good",
        "soc_pct": m.get("soc_pct"),
        "p_dc_w": m.get("p_dc_w"),
        "p_ac_w": m.get("p_ac_w"),
        "m": {"soh_pct": m["soh_pct"]} if m.get("soh_pct") is not None else {},
    }


def test_aggregate_state_uses_banks_for_soc_and_pcs_for_power_when_no_site_device() -> (
    None
):
    rows = [
        _row("bank1", 1000, soc_pct=60.0, p_dc_w=-2.0e6, soh_pct=97.0),
        _row("bank2", 1200, soc_pct=40.0, p_dc_w=-1.0e6, soh_pct=95.0),
        _row("pcs1", 1100, p_ac_w=-2.9e6),
    ]
    state = queries.aggregate_state(rows, online=True)
    assert state.soc == pytest.approx(0.5)
    assert state.power_mw == pytest.approx(-2.9)
    assert state.soh == pytest.approx(0.95)
    assert state.ts_ms == 1200
    assert state.online is True


def test_aggregate_state_prefers_site_device_when_present() -> None:
    rows = [
        _row("site", 1000, soc_pct=70.0, p_ac_w=5.0e6),
        _row("bank1", 1000, soc_pct=10.0, p_dc_w=1.0e6),
    ]
    state = queries.aggregate_state(rows, online=None)
    assert state.soc == pytest.approx(0.7)
    assert state.power_mw == pytest.approx(5.0)


def test_aggregate_state_is_empty_when_no_rows() -> None:
    state = queries.aggregate_state([], online=False)
    assert (state.soc, state.power_mw, state.ts_ms, state.online) == (
        None,
        None,
        None,
        False,
    )


def test_telemetry_buckets_average_per_device_then_combine_when_bank_and_pcs(
    migrated_db_url: str,
) -> None:
    engine = make_engine(migrated_db_url)
    base = {
        "seq": 1,
        "sid": 1,
        "hist": False,
        "q": "good",
        "flags": 0,
        "payload_hash": "x",
        "received_at_ms": 0,
        "soc_pct": None,
        "p_dc_w": None,
        "p_ac_w": None,
    }
    rows = []
    for i, ts in enumerate(range(0, 120_000, 10_000)):
        rows.append(
            {
                **base,
                "site_id": "s1",
                "dev_id": "bank1",
                "ts_ms": ts + 3,
                "seq": i,
                "soc_pct": 50.0 + i,
                "p_dc_w": -1.0e6,
            }
        )
        rows.append(
            {
                **base,
                "site_id": "s1",
                "dev_id": "pcs1",
                "ts_ms": ts + 7,
                "seq": i,
                "p_ac_w": -0.9e6 if ts < 60_000 else 0.9e6,
            }
        )
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(tlm_measurements), rows)
            conn.execute(
                sa.insert(tlm_latest),
                [
                    {
                        "site_id": "s1",
                        "dev_id": d,
                        "ts_ms": 110_000,
                        "seq": 1,
                        "sid": 1,
                        "q": "good",
                        "flags": 0,
                        "m": {},
                        "updated_at_ms": 0,
                    }
                    for d in ("bank1", "pcs1")
                ],
            )
        with engine.connect() as conn:
            buckets = queries.telemetry_buckets(
                conn, site_id="s1", start_ms=0, end_ms=120_000, bucket_ms=60_000
            )
            only_bank = queries.telemetry_buckets(
                conn,
                site_id="s1",
                start_ms=0,
                end_ms=120_000,
                bucket_ms=60_000,
                dev="bank1",
            )
    finally:
        engine.dispose()
    assert [b.ts_ms for b in buckets] == [0, 60_000]
    assert buckets[0].soc == pytest.approx(0.525)
    assert buckets[1].soc == pytest.approx(0.585)
    assert buckets[0].power_mw == pytest.approx(-0.9)
    assert buckets[1].power_mw == pytest.approx(0.9)
    assert buckets[0].samples == 12
    assert only_bank[0].power_mw == pytest.approx(-1.0)
