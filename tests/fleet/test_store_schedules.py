from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from fleet.store import audit, schedules

DAY = dt.date(2026, 6, 1)


def _intervals() -> pd.DataFrame:
    ts = pd.date_range("2026-06-01T05:00Z", periods=3, freq="h")
    return pd.DataFrame(
        {
            "site_id": ["tx-a"] * 3 + ["tx-b"] * 3,
            "ts": list(ts) * 2,
            "charge_mw": [5.0, 0.0, 0.0, 1.0, 0.0, 0.0],
            "discharge_mw": [0.0, 0.0, 10.0, 0.0, 2.0, 0.0],
            "reg_up_mw": [0.0, 3.0, 0.0, 0.0, 0.0, 1.0],
            "soc": [0.6, 0.6, 0.1, 0.55, 0.5, 0.5],
        }
    )


def test_save_schedule_numbers_versions_when_saved_repeatedly(
    engine: sa.Engine,
) -> None:
    first = schedules.save_schedule(
        engine, market="ERCOT", operating_day=DAY, status="optimal", objective_usd=100.0
    )
    second = schedules.save_schedule(
        engine, market="ERCOT", operating_day=DAY, status="feasible"
    )
    other_day = schedules.save_schedule(
        engine,
        market="ERCOT",
        operating_day=DAY + dt.timedelta(days=1),
        status="optimal",
    )
    other_market = schedules.save_schedule(
        engine, market="CAISO", operating_day=DAY, status="optimal"
    )
    assert (first, second, other_day, other_market) == (1, 2, 1, 1)
    assert schedules.list_versions(engine, market="ERCOT", operating_day=DAY) == [1, 2]
    latest = schedules.latest_schedule(engine, market="ERCOT", operating_day=DAY)
    assert latest is not None
    assert (latest.version, latest.status) == (2, "feasible")
    v1 = schedules.get_schedule(engine, market="ERCOT", operating_day=DAY, version=1)
    assert v1 is not None
    assert v1.objective_usd == 100.0


def test_latest_schedule_returns_none_when_nothing_stored(engine: sa.Engine) -> None:
    assert schedules.latest_schedule(engine, market="ERCOT", operating_day=DAY) is None


def test_save_schedule_round_trips_json_and_intervals_when_given(
    engine: sa.Engine,
) -> None:
    scenario = {
        "format": 1,
        "sites": [{"id": "tx-a"}],
        "nested": {"list": [1, 2.5, None]},
    }
    version = schedules.save_schedule(
        engine,
        market="ERCOT",
        operating_day=DAY,
        status="optimal",
        scenario=scenario,
        result={"status": "optimal"},
        solve_path="lp",
        intervals=_intervals(),
    )
    loaded = schedules.get_schedule(
        engine, market="ERCOT", operating_day=DAY, version=version
    )
    assert loaded is not None
    assert loaded.scenario == scenario
    assert loaded.created_at.tzinfo is not None
    frame = schedules.load_intervals(engine, schedule_id=loaded.id, site_id="tx-a")
    assert frame["ts"].dt.tz is not None
    assert frame["discharge_mw"].tolist() == [0.0, 0.0, 10.0]
    assert frame["reg_up_mw"].tolist() == [0.0, 3.0, 0.0]
    assert frame["spin_mw"].tolist() == [0.0, 0.0, 0.0]
    assert frame["energy_value_usd_per_mwh"].isna().all()
    assert len(schedules.load_intervals(engine, schedule_id=loaded.id)) == 6


def test_save_schedule_writes_audit_entry_when_actor_given(engine: sa.Engine) -> None:
    schedules.save_schedule(
        engine, market="ERCOT", operating_day=DAY, status="optimal", actor="key-42"
    )
    [entry] = audit.list_entries(engine, object_type="schedule")
    assert (entry.actor, entry.action, entry.object_id) == (
        "key-42",
        "schedule.save",
        "ERCOT/2026-06-01/v1",
    )


def test_save_schedule_stores_nothing_when_intervals_invalid(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match=r"lack column\(s\) \['discharge_mw'\]"):
        schedules.save_schedule(
            engine,
            market="ERCOT",
            operating_day=DAY,
            status="optimal",
            intervals=_intervals().drop(columns="discharge_mw"),
        )
    naive = _intervals().assign(ts=pd.Timestamp("2026-06-01T05:00"))
    with pytest.raises(ValueError, match="'ts' must be timezone-aware"):
        schedules.save_schedule(
            engine, market="ERCOT", operating_day=DAY, status="optimal", intervals=naive
        )
    assert schedules.list_versions(engine, market="ERCOT", operating_day=DAY) == []
