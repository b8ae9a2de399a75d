"""The record of the operating day: which steps ran, and what each interval did."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pandas as pd
import sqlalchemy as sa

from fleet.ops.intraday import IntervalReport
from fleet.store.dml import Bind, transaction
from fleet.store.ops_tables import ops_intervals, ops_runs

logger = logging.getLogger(__name__)


def step_status(bind: Bind, market: str, day: dt.date, step: str) -> str | None:
    """Return the stored status of a step (None: never run)."""
    query = sa.select(ops_runs.c.status).where(
        ops_runs.c.market == market,
        ops_runs.c.operating_day == day,
        ops_runs.c.step == step,
    )
    with transaction(bind) as conn:
        return conn.execute(query).scalar()


def mark_step(
    bind: Bind,
    market: str,
    day: dt.date,
    step: str,
    status: str,
    *,
    now: dt.datetime,
    detail: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Record a step's new status (``running`` counts an attempt)."""
    key = (
        (ops_runs.c.market == market)
        & (ops_runs.c.operating_day == day)
        & (ops_runs.c.step == step)
    )
    with transaction(bind) as conn:
        row = conn.execute(sa.select(ops_runs.c.attempts).where(key)).first()
        finished = None if status == "running" else now
        if row is None:
            conn.execute(
                sa.insert(ops_runs).values(
                    market=market,
                    operating_day=day,
                    step=step,
                    status=status,
                    started_at=now,
                    finished_at=finished,
                    attempts=1,
                    detail=detail,
                    error=error,
                )
            )
            return
        values: dict[str, Any] = {
            "status": status,
            "finished_at": finished,
            "error": error,
        }
        if detail is not None:
            values["detail"] = detail
        if status == "running":
            values["started_at"] = now
            values["attempts"] = int(row.attempts) + 1
        conn.execute(sa.update(ops_runs).where(key).values(**values))


def load_runs(
    bind: Bind, *, market: str | None = None, day: dt.date | None = None
) -> pd.DataFrame:
    """Return the stored step records, newest day first."""
    query = sa.select(ops_runs).order_by(
        ops_runs.c.operating_day.desc(), ops_runs.c.market, ops_runs.c.started_at
    )
    if market is not None:
        query = query.where(ops_runs.c.market == market)
    if day is not None:
        query = query.where(ops_runs.c.operating_day == day)
    with transaction(bind) as conn:
        return pd.DataFrame([dict(r) for r in conn.execute(query).mappings()])


def record_interval(
    bind: Bind, market: str, day: dt.date, report: IntervalReport, *, now: dt.datetime
) -> None:
    """Store (or replace) what one intraday step did."""
    row = {
        "market": market,
        "operating_day": day,
        "interval_index": report.index,
        "start_ts": report.start,
        "status": report.status,
        "fallback": report.fallback,
        "version": report.version[:32],
        "setpoints": {k: round(v, 6) for k, v in report.setpoints_mw.items()},
        "stale": list(report.stale),
        "awarded_mw": report.awarded_mw,
        "held_mw": report.held_mw,
        "shortfall_mw": report.shortfall_mw,
        "solve_seconds": round(report.solve_seconds, 4),
        "recorded_at": now,
    }
    with transaction(bind) as conn:
        conn.execute(
            sa.delete(ops_intervals).where(
                ops_intervals.c.market == market,
                ops_intervals.c.operating_day == day,
                ops_intervals.c.interval_index == report.index,
            )
        )
        conn.execute(sa.insert(ops_intervals).values(**row))


def load_intervals(bind: Bind, *, market: str, day: dt.date) -> pd.DataFrame:
    """Return the day's intraday step records in interval order."""
    query = (
        sa.select(ops_intervals)
        .where(ops_intervals.c.market == market, ops_intervals.c.operating_day == day)
        .order_by(ops_intervals.c.interval_index)
    )
    with transaction(bind) as conn:
        return pd.DataFrame([dict(r) for r in conn.execute(query).mappings()])


def done_intervals(bind: Bind, market: str, day: dt.date) -> set[int]:
    """Return the interval indices of the day already commanded."""
    query = sa.select(ops_intervals.c.interval_index).where(
        ops_intervals.c.market == market, ops_intervals.c.operating_day == day
    )
    with transaction(bind) as conn:
        return {int(i) for (i,) in conn.execute(query)}
