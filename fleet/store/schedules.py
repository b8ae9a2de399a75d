"""Store day-ahead schedules as numbered versions per market and operating day."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

from fleet.errors import StoreError
from fleet.store import audit
from fleet.store.dml import CHUNK_ROWS, Bind, transaction
from fleet.store.tables import schedule_intervals, schedules

logger = logging.getLogger(__name__)

INTERVAL_REQUIRED = ("site_id", "ts", "charge_mw", "discharge_mw")
#: Optional interval columns and the value stored when a frame lacks them.
INTERVAL_OPTIONAL: dict[str, float | None] = {
    "soc": None,
    "energy_value_usd_per_mwh": None,
}
SPEC_RESERVES = ("reg_up", "reg_down", "spin")
"""Reserve products that also have their own ``<product>_mw`` column (the spec's)."""


@dataclass(frozen=True, slots=True)
class StoredSchedule:
    """One stored schedule version (without its intervals)."""

    id: int
    """Row id; key of the schedule's intervals."""
    market: str
    """Market the schedule is for."""
    operating_day: dt.date
    """Operating (trade) day, market-local date."""
    version: int
    """1, 2, … per (market, operating_day)."""
    created_at: dt.datetime
    """When it was stored, UTC."""
    status: str
    """Solve status (``optimal``, ``feasible``, ``fallback``, …)."""
    objective_usd: float | None
    """Objective value [USD]."""
    solve_path: str | None
    """How it was solved (e.g. ``lp``, ``milp``, ``decomposed``)."""
    scenario: dict[str, Any] | None
    """The scenario solved (spec format, JSON)."""
    result: dict[str, Any] | None
    """The result (spec format, JSON)."""


def save_schedule(
    bind: Bind,
    *,
    market: str,
    operating_day: dt.date,
    status: str,
    scenario: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
    objective_usd: float | None = None,
    solve_path: str | None = None,
    intervals: pd.DataFrame | None = None,
    actor: str | None = None,
    created_at: dt.datetime | None = None,
) -> int:
    """Store a schedule as the next version for its market and day; return the version.

    Versions never change once written: a new plan is a new version.

    Parameters
    ----------
    bind
        Engine or connection (one transaction for the schedule, its intervals and
        the audit entry).
    market, operating_day
        What the schedule is for.
    status, objective_usd, solve_path
        Solve outcome.
    scenario, result
        JSON documents kept with the schedule.
    intervals
        Per-site, per-interval plan with columns ``site_id``, ``ts`` (aware),
        ``charge_mw``, ``discharge_mw``, optionally one ``<product>_mw`` column per
        reserve product (``reg_up_mw``, ``ecrs_mw``, … [MW]; any product, no
        migration needed), ``soc`` (fraction 0-1) and ``energy_value_usd_per_mwh``.
    actor
        When given, an audit entry ``schedule.save`` is written by this actor.
    created_at
        Defaults to now, UTC.

    Returns
    -------
    int
        The version stored: 1 for the first schedule of the market and day, then 2, …
        (read it back with :func:`get_schedule`).

    Raises
    ------
    ValueError
        When ``intervals`` lacks a required column or has a naive ``ts``.
    StoreError
        When another writer took the same version at the same time.
    """
    rows = _interval_rows(intervals) if intervals is not None else []
    values: dict[str, Any] = {
        "market": market,
        "operating_day": operating_day,
        "status": status,
        "scenario": scenario,
        "result": result,
        "objective_usd": objective_usd,
        "solve_path": solve_path,
        "created_at": created_at or dt.datetime.now(dt.UTC),
    }
    try:
        with transaction(bind) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    sa.select(
                        sa.func.pg_advisory_xact_lock(
                            sa.func.hashtext(sa.bindparam("k"))
                        )
                    ),
                    {"k": f"schedules:{market}:{operating_day.isoformat()}"},
                )
            version = (
                conn.execute(
                    sa.select(
                        sa.func.coalesce(sa.func.max(schedules.c.version), 0)
                    ).where(
                        schedules.c.market == market,
                        schedules.c.operating_day == operating_day,
                    )
                ).scalar_one()
                + 1
            )
            schedule_id = conn.execute(
                sa.insert(schedules)
                .values(version=version, **values)
                .returning(schedules.c.id)
            ).scalar_one()
            for row in rows:
                row["schedule_id"] = schedule_id
            for start in range(0, len(rows), CHUNK_ROWS):
                conn.execute(
                    sa.insert(schedule_intervals), rows[start : start + CHUNK_ROWS]
                )
            if actor is not None:
                audit.record(
                    conn,
                    actor=actor,
                    action="schedule.save",
                    object_type="schedule",
                    object_id=f"{market}/{operating_day.isoformat()}/v{version}",
                    detail={
                        "schedule_id": schedule_id,
                        "status": status,
                        "intervals": len(rows),
                    },
                )
    except sa.exc.IntegrityError as exc:
        msg = f"schedule {market}/{operating_day} was written concurrently: {exc.orig}"
        raise StoreError(msg) from exc
    logger.info("stored schedule %s/%s version %d", market, operating_day, version)
    return int(version)


def latest_schedule(
    bind: Bind, *, market: str, operating_day: dt.date
) -> StoredSchedule | None:
    """Return the newest schedule version for the market and day, or None."""
    return get_schedule(bind, market=market, operating_day=operating_day)


def get_schedule(
    bind: Bind, *, market: str, operating_day: dt.date, version: int | None = None
) -> StoredSchedule | None:
    """Return one schedule version (the newest when ``version`` is None), or None."""
    query = (
        sa.select(schedules)
        .where(schedules.c.market == market, schedules.c.operating_day == operating_day)
        .order_by(schedules.c.version.desc())
        .limit(1)
    )
    if version is not None:
        query = query.where(schedules.c.version == version)
    with transaction(bind) as conn:
        row = conn.execute(query).first()
    return None if row is None else StoredSchedule(**row._mapping)


def list_versions(bind: Bind, *, market: str, operating_day: dt.date) -> list[int]:
    """Return the stored versions for the market and day, oldest first."""
    query = (
        sa.select(schedules.c.version)
        .where(schedules.c.market == market, schedules.c.operating_day == operating_day)
        .order_by(schedules.c.version)
    )
    with transaction(bind) as conn:
        return [int(v) for v in conn.execute(query).scalars()]


def load_intervals(
    bind: Bind, *, schedule_id: int, site_id: str | None = None
) -> pd.DataFrame:
    """Return a schedule's intervals (one row per site and interval, ``ts`` UTC).

    Reserves come back as one ``<product>_mw`` column per product stored (always
    ``reg_up_mw``, ``reg_down_mw`` and ``spin_mw``; 0 where a row lacks a product).
    """
    query = (
        sa.select(schedule_intervals)
        .where(schedule_intervals.c.schedule_id == schedule_id)
        .order_by(schedule_intervals.c.site_id, schedule_intervals.c.ts)
    )
    if site_id is not None:
        query = query.where(schedule_intervals.c.site_id == site_id)
    with transaction(bind) as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(
        [r._mapping for r in rows], columns=[c.name for c in schedule_intervals.c]
    )
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    stored = [r if isinstance(r, dict) else {} for r in frame["reserves"]]
    products = list(dict.fromkeys(p for row in stored for p in row))
    for product in products:
        column = f"{product}_mw"
        values = [row.get(product) for row in stored]
        if column in frame.columns:
            frame[column] = [
                float(v) if v is not None else float(old)
                for v, old in zip(values, frame[column], strict=True)
            ]
        else:
            frame[column] = [float(v or 0.0) for v in values]
    return frame.drop(columns=["schedule_id", "reserves"])


def reserve_columns(frame: pd.DataFrame) -> dict[str, str]:
    """Return product -> ``<product>_mw`` column of a schedule-interval frame."""
    fixed = {"charge_mw", "discharge_mw"}
    return {
        str(c).removesuffix("_mw"): str(c)
        for c in frame.columns
        if str(c).endswith("_mw") and c not in fixed
    }


def _interval_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    missing = [c for c in INTERVAL_REQUIRED if c not in frame.columns]
    if missing:
        msg = f"schedule intervals lack column(s) {missing}; required {list(INTERVAL_REQUIRED)}"
        raise ValueError(msg)
    ts = pd.DatetimeIndex(frame["ts"])
    if ts.tz is None:
        msg = "schedule intervals column 'ts' must be timezone-aware (UTC)"
        raise ValueError(msg)
    data = frame.assign(ts=ts.tz_convert("UTC").to_pydatetime())
    for column, default in INTERVAL_OPTIONAL.items():
        if column not in data.columns:
            data[column] = default
    reserves = reserve_columns(data)
    for product in SPEC_RESERVES:
        if product not in reserves:
            data[f"{product}_mw"] = 0.0
    cols = list(reserves.items())
    data["reserves"] = [
        {p: float(row[i]) for i, (p, _) in enumerate(cols)}
        for row in data[[c for _, c in cols]].itertuples(index=False)
    ]
    spec = [f"{p}_mw" for p in SPEC_RESERVES]
    data = data[[*INTERVAL_REQUIRED, *spec, *INTERVAL_OPTIONAL, "reserves"]].astype(
        object
    )
    data = data.where(data.notna(), None)
    return [
        dict(zip(data.columns, row, strict=True))
        for row in data.itertuples(index=False)
    ]
