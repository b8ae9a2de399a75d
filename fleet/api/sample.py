"""Write a simulated fleet's telemetry, schedule and awards into a store.

Used by the dashboard's end-to-end test, the API benchmark and local demos: it writes
what the ingest worker and the day-ahead cycle would write, with plausible numbers
(a sinusoidal daily cycle), through the same tables.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterator, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from fleet.api.queries import dt_to_ms, market_timezone
from fleet.domain import Site
from fleet.store.dml import upsert
from fleet.store.tables import awards, schedule_intervals, schedules
from fleet.store.telemetry_tables import (
    tlm_counters,
    tlm_latest,
    tlm_measurements,
    tlm_site_sessions,
)

AGGREGATE_DEV = "site"


def _soc(site_index: int, t_s: float) -> float:
    """Return a plausible SoC (0-1) for a site at time t (daily cycle)."""
    phase = 2 * math.pi * (t_s / 86400.0) + site_index * 0.7
    return 0.5 + 0.35 * math.sin(phase)


def _power_mw(site: Site, site_index: int, t_s: float) -> float:
    """Return the net power [MW] that produces :func:`_soc` (derivative), + discharge."""
    phase = 2 * math.pi * (t_s / 86400.0) + site_index * 0.7
    dsoc_per_h = 0.35 * math.cos(phase) * 2 * math.pi / 24.0
    mw = -dsoc_per_h * site.battery.energy_mwh
    return max(-site.battery.charge_mw, min(site.battery.discharge_mw, mw))


def telemetry_rows(
    sites: Sequence[Site], *, start: dt.datetime, end: dt.datetime, step_s: int
) -> Iterator[list[dict[str, Any]]]:
    """Yield batches of ``tlm_measurements`` rows for every site, every ``step_s``."""
    start_ms = dt_to_ms(start)
    end_ms = dt_to_ms(end)
    received = dt_to_ms(dt.datetime.now(dt.UTC))
    batch: list[dict[str, Any]] = []
    for i, site in enumerate(sites):
        for seq, ts_ms in enumerate(range(start_ms, end_ms, step_s * 1000), start=1):
            t_s = ts_ms / 1000.0
            soc = _soc(i, t_s)
            p_w = _power_mw(site, i, t_s) * 1e6
            batch.append(
                {
                    "site_id": site.id,
                    "dev_id": AGGREGATE_DEV,
                    "ts_ms": ts_ms,
                    "seq": seq,
                    "sid": 1,
                    "hist": False,
                    "q": "good",
                    "flags": 0,
                    "payload_hash": hashlib.md5(
                        f"{site.id}{ts_ms}".encode(), usedforsecurity=False
                    ).hexdigest(),
                    "received_at_ms": received,
                    "soc_pct": round(soc * 100, 2),
                    "soh_pct": 97.5,
                    "p_dc_w": p_w,
                    "p_ac_w": p_w * 0.98,
                    "v_dc_v": 1300.0,
                    "i_dc_a": p_w / 1300.0,
                    "cell_v_max_v": 3.34,
                    "cell_v_min_v": 3.31,
                    "cell_t_max_c": 30.0,
                    "cell_t_min_c": 25.0,
                }
            )
            if len(batch) >= 5000:
                yield batch
                batch = []
    if batch:
        yield batch


def write_telemetry(
    conn: sa.Connection,
    sites: Sequence[Site],
    *,
    start: dt.datetime,
    end: dt.datetime,
    step_s: int,
) -> int:
    """Write measurements for [start, end) and the latest state; return rows written."""
    total = 0
    for batch in telemetry_rows(sites, start=start, end=end, step_s=step_s):
        conn.execute(sa.insert(tlm_measurements), batch)
        total += len(batch)
    last_ms = dt_to_ms(end) - step_s * 1000
    for i, site in enumerate(sites):
        write_state(conn, site, i, ts=dt.datetime.fromtimestamp(last_ms / 1e3, dt.UTC))
    upsert(
        conn,
        tlm_counters,
        [
            {
                "site_id": s.id,
                "stored": total // max(1, len(sites)),
                "duplicates": 0,
                "updated_at_ms": last_ms,
            }
            for s in sites
        ],
        ["site_id"],
    )
    return total


def write_state(
    conn: sa.Connection,
    site: Site,
    site_index: int,
    *,
    ts: dt.datetime,
    online: bool = True,
    soc: float | None = None,
) -> None:
    """Upsert a site's latest state and session (what the ingest worker keeps)."""
    ts_ms = dt_to_ms(ts)
    t_s = ts_ms / 1000.0
    value = _soc(site_index, t_s) if soc is None else soc
    p_w = _power_mw(site, site_index, t_s) * 1e6
    now_ms = dt_to_ms(dt.datetime.now(dt.UTC))
    upsert(
        conn,
        tlm_latest,
        [
            {
                "site_id": site.id,
                "dev_id": AGGREGATE_DEV,
                "ts_ms": ts_ms,
                "seq": 1,
                "sid": 1,
                "q": "good",
                "flags": 0,
                "soc_pct": round(value * 100, 2),
                "p_dc_w": p_w,
                "p_ac_w": p_w * 0.98,
                "m": {"soc_pct": round(value * 100, 2), "soh_pct": 97.5},
                "updated_at_ms": now_ms,
            }
        ],
        ["site_id", "dev_id"],
    )
    upsert(
        conn,
        tlm_site_sessions,
        [
            {
                "site_id": site.id,
                "grp": str(site.market).lower(),
                "sid": 1,
                "online": online,
                "birth_ts_ms": ts_ms,
                "state_ts_ms": ts_ms,
                "birth": {"sid": 1},
                "updated_at_ms": now_ms,
            }
        ],
        ["site_id"],
    )


def write_schedule(
    conn: sa.Connection,
    sites: Sequence[Site],
    *,
    market: str,
    operating_day: dt.date,
    version: int = 1,
    interval_minutes: int = 15,
    created_at: dt.datetime | None = None,
) -> int:
    """Write a schedule (result JSON and intervals) for a market's sites; return its id."""
    tz = ZoneInfo(market_timezone(market))
    start = dt.datetime.combine(operating_day, dt.time(), tzinfo=tz).astimezone(dt.UTC)
    count = 24 * 60 // interval_minutes
    chosen = [(i, s) for i, s in enumerate(sites) if str(s.market) == market]
    delta_h = interval_minutes / 60.0
    revenue = {
        "energy": 0.0,
        "reg_up": 0.0,
        "reg_down": 0.0,
        "spin": 0.0,
        "capacity": 0.0,
        "degradation": 0.0,
    }
    rows = []
    result_sites: dict[str, Any] = {}
    for i, site in chosen:
        series: dict[str, list[float]] = {
            "charge_mw": [],
            "discharge_mw": [],
            "reg_up_mw": [],
            "reg_down_mw": [],
            "spin_mw": [],
            "soc": [],
        }
        for k in range(count):
            ts = start + dt.timedelta(minutes=interval_minutes * k)
            t_s = ts.timestamp()
            p = _power_mw(site, i, t_s)
            reg = 0.1 * site.battery.discharge_mw
            row: dict[str, Any] = {
                "ts": ts,
                "site_id": site.id,
                "charge_mw": max(0.0, -p),
                "discharge_mw": max(0.0, p),
                "reg_up_mw": reg,
                "reg_down_mw": reg,
                "spin_mw": 0.0,
                "soc": _soc(i, t_s + interval_minutes * 60),
                "energy_value_usd_per_mwh": None,
            }
            rows.append(row)
            for key in series:
                series[key].append(float(row[key]))
            price = 30.0 + 25.0 * math.sin(2 * math.pi * (k / count) - 1.0)
            revenue["energy"] += price * p * delta_h
            revenue["reg_up"] += 8.0 * reg * delta_h
            revenue["reg_down"] += 5.0 * reg * delta_h
            revenue["degradation"] -= 4.0 * max(0.0, p) * delta_h
        result_sites[site.id] = {**series, "capacity_mw": 0.0}
    objective = sum(revenue.values())
    result = {
        "schema": "bess-dispatch-result/1",
        "status": "optimal",
        "objective_usd": objective,
        "revenue_usd": revenue,
        "solve": {"seconds": 1.23, "mip_gap": 0.0, "solver": "highs"},
        "sites": result_sites,
    }
    schedule_id = conn.execute(
        sa.insert(schedules)
        .values(
            market=market,
            operating_day=operating_day,
            version=version,
            created_at=created_at or dt.datetime.now(dt.UTC),
            status="optimal",
            objective_usd=objective,
            solve_path="sample",
            scenario={"interval_minutes": interval_minutes, "intervals": count},
            result=result,
        )
        .returning(schedules.c.id)
    ).scalar_one()
    for row in rows:
        row["schedule_id"] = schedule_id
    if rows:
        conn.execute(sa.insert(schedule_intervals), rows)
    return int(schedule_id)


def write_awards(
    conn: sa.Connection,
    sites: Sequence[Site],
    *,
    market: str,
    operating_day: dt.date,
    version: int = 1,
) -> int:
    """Write hourly energy awards for a market's sites; return rows written."""
    tz = ZoneInfo(market_timezone(market))
    start = dt.datetime.combine(operating_day, dt.time(), tzinfo=tz).astimezone(dt.UTC)
    now = dt.datetime.now(dt.UTC)
    rows = []
    for i, site in enumerate(sites):
        if str(site.market) != market:
            continue
        for h in range(24):
            ts = start + dt.timedelta(hours=h)
            rows.append(
                {
                    "market": market,
                    "operating_day": operating_day,
                    "version": version,
                    "site_id": site.id,
                    "ts": ts,
                    "product": "energy",
                    "award_mw": round(_power_mw(site, i, ts.timestamp()), 3),
                    "price": 35.0,
                    "unit": "usd_per_mwh",
                    "received_at": now,
                }
            )
    if rows:
        conn.execute(sa.insert(awards), rows)
    return len(rows)
