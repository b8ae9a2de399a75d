from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from fleet.store import prices
from fleet.store.tables import prices as prices_table

UTC = dt.UTC


def _frame(
    values: list[float], *, node: str = "HB_HOUSTON", start: str = "2024-01-01T06:00Z"
) -> pd.DataFrame:
    ts = pd.date_range(start, periods=len(values), freq="15min", tz="UTC")
    return pd.DataFrame(
        {
            "market": "ERCOT",
            "node": node,
            "product": "rt_energy",
            "ts": ts,
            "interval_minutes": 15,
            "price": values,
            "unit": "usd_per_mwh",
        }
    )


def test_load_prices_returns_inserted_series_when_round_tripped(
    engine: sa.Engine,
) -> None:
    frame = _frame([10.0, -5.5, 3000.25, 0.0])
    assert prices.insert_prices(engine, frame, source="unit-test") == 4
    series = prices.load_prices(
        engine, market="ERCOT", node="HB_HOUSTON", product="rt_energy"
    )
    assert series.name == "price_usd_per_mwh"
    assert str(series.index.tz) == "UTC"
    assert series.index.name == "ts"
    pd.testing.assert_series_equal(
        series,
        pd.Series(
            [10.0, -5.5, 3000.25, 0.0],
            index=pd.DatetimeIndex(frame["ts"], name="ts"),
            name="price_usd_per_mwh",
        ),
        check_freq=False,
    )


def test_insert_prices_keeps_row_count_when_run_twice(engine: sa.Engine) -> None:
    prices.insert_prices(engine, _frame([1.0, 2.0, 3.0]))
    prices.insert_prices(engine, _frame([1.0, 2.5, 3.0]))
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(prices_table)).scalar()
            == 3
        )
    series = prices.load_prices(
        engine, market="ERCOT", node="HB_HOUSTON", product="rt_energy"
    )
    assert series.tolist() == [1.0, 2.5, 3.0]


def test_load_prices_returns_window_when_start_and_end_given(engine: sa.Engine) -> None:
    prices.insert_prices(engine, _frame([1.0, 2.0, 3.0, 4.0]))
    series = prices.load_prices(
        engine,
        market="ERCOT",
        node="HB_HOUSTON",
        product="rt_energy",
        start=dt.datetime(
            2024, 1, 1, 0, 15, tzinfo=dt.timezone(dt.timedelta(hours=-6))
        ),
        end=pd.Timestamp("2024-01-01T06:45Z"),
    )
    assert series.tolist() == [2.0, 3.0]


def test_load_prices_returns_empty_series_when_nothing_stored(
    engine: sa.Engine,
) -> None:
    series = prices.load_prices(
        engine, market="ERCOT", node="NOPE", product="rt_energy"
    )
    assert series.empty
    assert str(series.index.tz) == "UTC"


def test_load_prices_raises_when_start_is_naive(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match=r"start=.* timezone-aware"):
        prices.load_prices(
            engine,
            market="ERCOT",
            node="X",
            product="rt_energy",
            start=dt.datetime(2024, 1, 1),
        )


def test_insert_prices_raises_naming_column_when_missing(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['unit'\]"):
        prices.insert_prices(engine, _frame([1.0]).drop(columns="unit"))


def test_insert_prices_raises_when_ts_is_naive(engine: sa.Engine) -> None:
    frame = _frame([1.0]).assign(ts=pd.Timestamp("2024-01-01T00:00"))
    with pytest.raises(ValueError, match="'ts' must be timezone-aware"):
        prices.insert_prices(engine, frame)


def test_insert_prices_raises_when_unit_unknown(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="usd_per_kwh"):
        prices.insert_prices(engine, _frame([1.0]).assign(unit="usd_per_kwh"))


def test_list_series_reports_count_and_span_when_two_series_stored(
    engine: sa.Engine,
) -> None:
    prices.insert_prices(engine, _frame([1.0, 2.0, 3.0], node="HB_WEST"))
    prices.insert_prices(
        engine, _frame([1.0], node="HB_NORTH", start="2025-02-01T00:00Z")
    )
    listed = prices.list_series(engine)
    assert [(s.node, s.count) for s in listed] == [("HB_NORTH", 1), ("HB_WEST", 3)]
    west = listed[1]
    assert west.first_ts == dt.datetime(2024, 1, 1, 6, 0, tzinfo=UTC)
    assert west.last_ts == dt.datetime(2024, 1, 1, 6, 30, tzinfo=UTC)
    assert (west.unit, west.interval_minutes) == ("usd_per_mwh", 15)
