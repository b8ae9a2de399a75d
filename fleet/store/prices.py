"""Store and read market price history (actuals): bulk idempotent insert, series read."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from fleet.store.dml import Bind, transaction, upsert
from fleet.store.tables import PRICE_UNITS, prices

logger = logging.getLogger(__name__)

PRICE_FRAME_COLUMNS = (
    "market",
    "node",
    "product",
    "ts",
    "interval_minutes",
    "price",
    "unit",
)
PRICE_KEY = ("market", "node", "product", "ts")


@dataclass(frozen=True, slots=True)
class PriceSeries:
    """Summary of one stored price series."""

    market: str
    """Market, e.g. ``ERCOT``."""
    node: str
    """Pricing node or ``SYSTEM`` for system-wide ancillary prices."""
    product: str
    """Product, e.g. ``da_energy``, ``rt_energy``, ``reg_up``."""
    unit: str
    """``usd_per_mwh`` (energy) or ``usd_per_mw`` (capacity, $/MW-h)."""
    interval_minutes: int
    """Interval length [min]."""
    count: int
    """Number of intervals stored."""
    first_ts: dt.datetime
    """Start of the first interval, UTC."""
    last_ts: dt.datetime
    """Start of the last interval, UTC."""


def insert_prices(
    bind: Bind,
    frame: pd.DataFrame,
    *,
    source: str | None = None,
    imported_at: dt.datetime | None = None,
) -> int:
    """Insert or update price rows in bulk; importing the same rows twice changes nothing.

    Parameters
    ----------
    bind
        Engine or connection (rows are written in one transaction).
    frame
        One row per interval with columns ``market, node, product, ts`` (aware, interval
        start), ``interval_minutes``, ``price`` (in ``unit``), ``unit`` and optionally
        ``source``. Rows are trusted: validate at the edge (``price_csv``).
    source
        Provenance stored with rows whose frame has no ``source`` column.
    imported_at
        Import time (aware); defaults to now, UTC.

    Returns
    -------
    int
        Rows written (inserted or updated).

    Raises
    ------
    ValueError
        When a column is missing, a timestamp is naive or a unit is unknown.
    """
    missing = [c for c in PRICE_FRAME_COLUMNS if c not in frame.columns]
    if missing:
        msg = f"price frame lacks column(s) {missing}; expected {list(PRICE_FRAME_COLUMNS)}"
        raise ValueError(msg)
    if frame.empty:
        return 0
    ts = pd.DatetimeIndex(frame["ts"])
    if ts.tz is None:
        msg = "price frame column 'ts' must be timezone-aware (UTC)"
        raise ValueError(msg)
    bad_units = sorted(set(frame["unit"].unique()) - set(PRICE_UNITS))
    if bad_units:
        msg = (
            f"price frame column 'unit' has {bad_units}; expected one of {PRICE_UNITS}"
        )
        raise ValueError(msg)
    stamp = imported_at or dt.datetime.now(dt.UTC)
    sources = (
        frame["source"].tolist() if "source" in frame.columns else [source] * len(frame)
    )
    rows = [
        {
            "market": market,
            "node": node,
            "product": product,
            "ts": when,
            "interval_minutes": minutes,
            "price": price,
            "unit": unit,
            "source": src,
            "imported_at": stamp,
        }
        for market, node, product, when, minutes, price, unit, src in zip(
            frame["market"].tolist(),
            frame["node"].tolist(),
            frame["product"].tolist(),
            ts.tz_convert("UTC").to_pydatetime().tolist(),
            frame["interval_minutes"].astype(int).tolist(),
            frame["price"].astype(float).tolist(),
            frame["unit"].tolist(),
            sources,
            strict=True,
        )
    ]
    with transaction(bind) as conn:
        written = upsert(conn, prices, rows, PRICE_KEY)
    logger.info("stored %d price rows", written)
    return written


def load_prices(
    bind: Bind,
    *,
    market: str,
    node: str,
    product: str,
    start: dt.datetime | pd.Timestamp | None = None,
    end: dt.datetime | pd.Timestamp | None = None,
) -> pd.Series:
    """Return one price series on a UTC DatetimeIndex of interval starts.

    Parameters
    ----------
    bind
        Engine or connection.
    market, node, product
        The series.
    start, end
        Optional window ``start <= ts < end`` (aware).

    Returns
    -------
    pandas.Series
        Prices named ``price_usd_per_mwh`` or ``price_usd_per_mw`` after the stored
        unit (``price`` when empty), index ``ts``; empty when nothing is stored.
    """
    query = (
        sa.select(prices.c.ts, prices.c.price, prices.c.unit)
        .where(
            prices.c.market == market,
            prices.c.node == node,
            prices.c.product == product,
        )
        .order_by(prices.c.ts)
    )
    if start is not None:
        query = query.where(prices.c.ts >= _aware(start, "start"))
    if end is not None:
        query = query.where(prices.c.ts < _aware(end, "end"))
    with transaction(bind) as conn:
        rows = conn.execute(query).all()
    index = pd.DatetimeIndex(pd.to_datetime([r.ts for r in rows], utc=True), name="ts")
    name = f"price_{rows[0].unit}" if rows else "price"
    return pd.Series([r.price for r in rows], index=index, name=name, dtype=float)


def list_series(bind: Bind) -> list[PriceSeries]:
    """Return every stored price series with its count and first/last interval."""
    query = (
        sa.select(
            prices.c.market,
            prices.c.node,
            prices.c.product,
            sa.func.min(prices.c.unit).label("unit"),
            sa.func.min(prices.c.interval_minutes).label("interval_minutes"),
            sa.func.count().label("count"),
            sa.func.min(prices.c.ts).label("first_ts"),
            sa.func.max(prices.c.ts).label("last_ts"),
        )
        .group_by(prices.c.market, prices.c.node, prices.c.product)
        .order_by(prices.c.market, prices.c.node, prices.c.product)
    )
    with transaction(bind) as conn:
        return [PriceSeries(**row._mapping) for row in conn.execute(query)]


def _aware(value: dt.datetime | pd.Timestamp, name: str) -> dt.datetime:
    if value.tzinfo is None:
        msg = f"{name}={value!s} must be timezone-aware (UTC)"
        raise ValueError(msg)
    out: dt.datetime = pd.Timestamp(value).tz_convert("UTC").to_pydatetime()
    return out
