"""Store price and load forecasts with their issue time, horizon and model version."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pandas as pd
import sqlalchemy as sa

from fleet.errors import FleetInputError
from fleet.store.dml import Bind, transaction, upsert
from fleet.store.tables import PRICE_UNITS, load_forecasts, price_forecasts

logger = logging.getLogger(__name__)

PRICE_FORECAST_KEY = ("market", "node", "product", "ts", "issue_time", "model_version")
LOAD_FORECAST_KEY = ("site_id", "ts", "issue_time", "model_version")


def insert_price_forecasts(bind: Bind, frame: pd.DataFrame) -> int:
    """Insert or update price forecast rows in bulk; return the rows written.

    Parameters
    ----------
    bind
        Engine or connection.
    frame
        Columns ``market, node, product, ts`` (aware, interval start),
        ``issue_time`` (aware), ``model_version``, ``p50`` and optionally ``p10``,
        ``p90`` (in ``unit``), ``unit`` (default ``usd_per_mwh``) and ``horizon_h``
        (default ``ts - issue_time`` in hours).
    """
    rows = _rows(
        frame,
        required=(*PRICE_FORECAST_KEY, "p50"),
        optional={"p10": None, "p90": None, "unit": "usd_per_mwh"},
    )
    bad_units = sorted({r["unit"] for r in rows} - set(PRICE_UNITS))
    if bad_units:
        msg = f"price forecast column 'unit' has {bad_units}; expected one of {PRICE_UNITS}"
        raise ValueError(msg)
    _check_lengths(price_forecasts, rows)
    with transaction(bind) as conn:
        return upsert(conn, price_forecasts, rows, PRICE_FORECAST_KEY)


def insert_load_forecasts(bind: Bind, frame: pd.DataFrame) -> int:
    """Insert or update site load forecast rows in bulk; return the rows written.

    ``frame`` has ``site_id, ts, issue_time, model_version, p50_mw`` and optionally
    ``p10_mw``, ``p90_mw`` [MW] and ``horizon_h``.
    """
    rows = _rows(
        frame,
        required=(*LOAD_FORECAST_KEY, "p50_mw"),
        optional={"p10_mw": None, "p90_mw": None},
    )
    _check_lengths(load_forecasts, rows)
    with transaction(bind) as conn:
        return upsert(conn, load_forecasts, rows, LOAD_FORECAST_KEY)


def load_price_forecast(
    bind: Bind,
    *,
    market: str,
    node: str,
    product: str,
    model_version: str | None = None,
    issue_time: dt.datetime | None = None,
    as_of: dt.datetime | None = None,
) -> pd.DataFrame:
    """Return one issued price forecast: ``p10, p50, p90`` on a UTC index of ``ts``.

    Parameters
    ----------
    bind
        Engine or connection.
    market, node, product
        The series forecast.
    model_version
        Only this model's forecasts (any model when None).
    issue_time
        The exact issue to read; when None, the newest issue (at or before
        ``as_of`` when given, which keeps backtests free of look-ahead).
    as_of
        Latest issue time allowed when ``issue_time`` is None.

    Returns
    -------
    pandas.DataFrame
        Columns ``p10, p50, p90, horizon_h``; ``attrs`` carry ``issue_time``,
        ``model_version`` and ``unit``. Empty when nothing matches.
    """
    where = [
        price_forecasts.c.market == market,
        price_forecasts.c.node == node,
        price_forecasts.c.product == product,
    ]
    return _load(
        bind,
        price_forecasts,
        where,
        ["p10", "p50", "p90", "horizon_h"],
        model_version=model_version,
        issue_time=issue_time,
        as_of=as_of,
    )


def load_load_forecast(
    bind: Bind,
    *,
    site_id: str,
    model_version: str | None = None,
    issue_time: dt.datetime | None = None,
    as_of: dt.datetime | None = None,
) -> pd.DataFrame:
    """Return one issued load forecast: ``p10_mw, p50_mw, p90_mw`` on a UTC index."""
    return _load(
        bind,
        load_forecasts,
        [load_forecasts.c.site_id == site_id],
        ["p10_mw", "p50_mw", "p90_mw", "horizon_h"],
        model_version=model_version,
        issue_time=issue_time,
        as_of=as_of,
    )


def _load(
    bind: Bind,
    table: sa.Table,
    where: list[Any],
    columns: list[str],
    *,
    model_version: str | None,
    issue_time: dt.datetime | None,
    as_of: dt.datetime | None,
) -> pd.DataFrame:
    if model_version is not None:
        where = [*where, table.c.model_version == model_version]
    with transaction(bind) as conn:
        if issue_time is None:
            pick = sa.select(table.c.issue_time, table.c.model_version).where(*where)
            if as_of is not None:
                pick = pick.where(table.c.issue_time <= as_of)
            chosen = conn.execute(
                pick.order_by(table.c.issue_time.desc(), table.c.model_version).limit(1)
            ).first()
            if chosen is None:
                return _frame([], columns, None, None, None)
            issue_time, model_version = chosen.issue_time, chosen.model_version
            where = [*where, table.c.model_version == model_version]
        query = (
            sa.select(table)
            .where(*where, table.c.issue_time == issue_time)
            .order_by(table.c.ts)
        )
        rows = list(conn.execute(query).all())
    unit = rows[0].unit if rows and "unit" in table.c else None
    version = rows[0].model_version if rows else model_version
    return _frame(rows, columns, issue_time, version, unit)


def _frame(
    rows: list[Any],
    columns: list[str],
    issue_time: dt.datetime | None,
    model_version: str | None,
    unit: str | None,
) -> pd.DataFrame:
    index = pd.DatetimeIndex(pd.to_datetime([r.ts for r in rows], utc=True), name="ts")
    frame = pd.DataFrame(
        {c: [getattr(r, c) for r in rows] for c in columns}, index=index, dtype=float
    )
    frame.attrs.update(issue_time=issue_time, model_version=model_version, unit=unit)
    return frame


def _rows(
    frame: pd.DataFrame,
    *,
    required: tuple[str, ...],
    optional: dict[str, Any],
) -> list[dict[str, Any]]:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        msg = f"forecast frame lacks column(s) {missing}; required {list(required)}"
        raise ValueError(msg)
    data = frame.copy()
    for column in ("ts", "issue_time"):
        stamps = pd.DatetimeIndex(data[column])
        if stamps.tz is None:
            msg = f"forecast frame column {column!r} must be timezone-aware (UTC)"
            raise ValueError(msg)
        data[column] = stamps.tz_convert("UTC")
    if "horizon_h" not in data.columns:
        data["horizon_h"] = (
            data["ts"] - data["issue_time"]
        ).dt.total_seconds() / 3600.0
    for column, default in optional.items():
        if column not in data.columns:
            data[column] = default
    names = [*required, *optional, "horizon_h"]
    data = data[names]
    ts = pd.DatetimeIndex(data["ts"]).to_pydatetime()
    issued = pd.DatetimeIndex(data["issue_time"]).to_pydatetime()
    data = data.astype(object).where(data.notna(), None)
    data["ts"] = ts
    data["issue_time"] = issued
    return [dict(zip(names, row, strict=True)) for row in data.itertuples(index=False)]


def _check_lengths(table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Refuse text longer than its column (SQLite would store it, PostgreSQL refuses).

    Raises
    ------
    FleetInputError
        Naming the table, column, value and the column's length.
    """
    limits = {
        c.name: c.type.length
        for c in table.columns
        if isinstance(c.type, sa.String) and c.type.length is not None
    }
    for row in rows:
        for name, limit in limits.items():
            value = row.get(name)
            if isinstance(value, str) and len(value) > limit:
                msg = (
                    f"{table.name}.{name}={value!r} has {len(value)} characters; "
                    f"at most {limit} fit"
                )
                raise FleetInputError(msg)
