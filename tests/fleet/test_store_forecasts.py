from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from fleet.store import forecasts

ISSUE_1 = pd.Timestamp("2026-05-31T15:00Z")
ISSUE_2 = pd.Timestamp("2026-05-31T21:00Z")


def _price_forecast(
    issue: pd.Timestamp, level: float, model: str = "gbm-1"
) -> pd.DataFrame:
    ts = pd.date_range("2026-06-01T05:00Z", periods=3, freq="h")
    return pd.DataFrame(
        {
            "market": "ERCOT",
            "node": "HB_WEST",
            "product": "da_energy",
            "ts": ts,
            "issue_time": issue,
            "model_version": model,
            "p10": [level - 5, level - 5, None],
            "p50": [level, level + 1, level + 2],
            "p90": [level + 5, level + 6, level + 7],
        }
    )


def test_load_price_forecast_returns_newest_issue_when_no_issue_given(
    engine: sa.Engine,
) -> None:
    assert forecasts.insert_price_forecasts(engine, _price_forecast(ISSUE_1, 20.0)) == 3
    forecasts.insert_price_forecasts(engine, _price_forecast(ISSUE_2, 30.0))
    frame = forecasts.load_price_forecast(
        engine, market="ERCOT", node="HB_WEST", product="da_energy"
    )
    assert frame["p50"].tolist() == [30.0, 31.0, 32.0]
    assert list(frame.columns) == ["p10", "p50", "p90", "horizon_h"]
    assert str(frame.index.tz) == "UTC"
    assert frame["horizon_h"].tolist() == [8.0, 9.0, 10.0]
    assert frame.attrs == {
        "issue_time": ISSUE_2.to_pydatetime(),
        "model_version": "gbm-1",
        "unit": "usd_per_mwh",
    }
    assert pd.isna(frame["p10"].iloc[2])


def test_load_price_forecast_ignores_later_issues_when_as_of_given(
    engine: sa.Engine,
) -> None:
    forecasts.insert_price_forecasts(engine, _price_forecast(ISSUE_1, 20.0))
    forecasts.insert_price_forecasts(engine, _price_forecast(ISSUE_2, 30.0))
    as_of = dt.datetime(2026, 5, 31, 18, 0, tzinfo=dt.UTC)
    frame = forecasts.load_price_forecast(
        engine, market="ERCOT", node="HB_WEST", product="da_energy", as_of=as_of
    )
    assert frame["p50"].tolist() == [20.0, 21.0, 22.0]
    early = forecasts.load_price_forecast(
        engine,
        market="ERCOT",
        node="HB_WEST",
        product="da_energy",
        as_of=as_of - dt.timedelta(days=1),
    )
    assert early.empty


def test_load_price_forecast_selects_model_when_versions_differ(
    engine: sa.Engine,
) -> None:
    forecasts.insert_price_forecasts(
        engine, _price_forecast(ISSUE_1, 20.0, model="naive")
    )
    forecasts.insert_price_forecasts(
        engine, _price_forecast(ISSUE_1, 25.0, model="gbm-1")
    )
    frame = forecasts.load_price_forecast(
        engine,
        market="ERCOT",
        node="HB_WEST",
        product="da_energy",
        model_version="naive",
        issue_time=ISSUE_1.to_pydatetime(),
    )
    assert frame["p50"].tolist() == [20.0, 21.0, 22.0]


def test_insert_price_forecasts_raises_when_issue_time_naive(engine: sa.Engine) -> None:
    frame = _price_forecast(ISSUE_1, 20.0).assign(
        issue_time=pd.Timestamp("2026-05-31T15:00")
    )
    with pytest.raises(ValueError, match="'issue_time' must be timezone-aware"):
        forecasts.insert_price_forecasts(engine, frame)


def test_load_load_forecast_round_trips_when_inserted(engine: sa.Engine) -> None:
    frame = pd.DataFrame(
        {
            "site_id": "tx-a",
            "ts": pd.date_range("2026-06-01T05:00Z", periods=2, freq="15min"),
            "issue_time": ISSUE_1,
            "model_version": "load-1",
            "p50_mw": [1.5, 1.7],
        }
    )
    assert forecasts.insert_load_forecasts(engine, frame) == 2
    assert forecasts.insert_load_forecasts(engine, frame) == 2
    loaded = forecasts.load_load_forecast(engine, site_id="tx-a")
    assert loaded["p50_mw"].tolist() == [1.5, 1.7]
    assert loaded["p10_mw"].isna().all()
    assert loaded.attrs["unit"] is None
