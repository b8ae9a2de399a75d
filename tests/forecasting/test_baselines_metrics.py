"""Baselines on tiny hand-made series; metrics on hand-checked numbers."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from forecasting.baselines import baseline_forecasts, rt_premium_forecast
from forecasting.errors import ForecastInputError
from forecasting.metrics import (
    coverage,
    daily_spread_correlation,
    mae,
    pinball,
    rmse,
    score_forecast,
    top_bottom_hits,
)

TZ = "UTC"


def _series(days: int) -> pd.Series:
    idx = pd.date_range("2024-01-01", periods=24 * days, freq="h", tz="UTC")
    day = np.repeat(np.arange(days), 24)
    hour = np.tile(np.arange(24), days)
    return pd.Series(100.0 * day + hour, index=idx)


def test_baselines_equal_yesterday_and_last_week_when_series_is_hand_made() -> None:
    y = _series(15)
    base = baseline_forecasts(y, [dt.date(2024, 1, 15)], tz=TZ, product="da_energy")
    assert len(base) == 24
    assert base["persistence"].tolist() == [1300.0 + h for h in range(24)]
    assert base["seasonal_naive"].tolist() == [700.0 + h for h in range(24)]
    assert base["naive_average"].tolist() == [1000.0 + h for h in range(24)]


def test_persistence_uses_two_days_ago_for_late_hours_when_product_is_realtime() -> (
    None
):
    y = _series(15)
    base = baseline_forecasts(
        y, [dt.date(2024, 1, 15)], tz=TZ, product="rt_energy", issue_hour=9
    )
    expected = [1300.0 + h if h < 9 else 1200.0 + h for h in range(24)]
    assert base["persistence"].tolist() == expected


def test_naive_average_uses_the_one_present_when_week_ago_missing() -> None:
    y = _series(15)
    y[(y.index >= "2024-01-08") & (y.index < "2024-01-09")] = np.nan
    base = baseline_forecasts(y, [dt.date(2024, 1, 15)], tz=TZ, product="da_energy")
    assert base["seasonal_naive"].isna().all()
    assert base["naive_average"].tolist() == base["persistence"].tolist()


def test_median_7d_is_the_same_hour_median_of_the_last_week_when_hand_made() -> None:
    y = _series(15)
    y[(y.index >= "2024-01-12") & (y.index < "2024-01-13")] += (
        10_000.0  # one outlier day
    )
    base = baseline_forecasts(y, [dt.date(2024, 1, 15)], tz=TZ, product="da_energy")
    # D-1..D-7 are days 13..7 (100*day + hour); the median is day 10, the outlier
    # day cannot move it.
    assert base["median_7d"].tolist() == [1000.0 + h for h in range(24)]


def test_median_7d_uses_d2_to_d8_for_late_hours_when_product_is_realtime() -> None:
    y = _series(15)
    base = baseline_forecasts(
        y, [dt.date(2024, 1, 15)], tz=TZ, product="rt_energy", issue_hour=9
    )
    expected = [1000.0 + h if h < 9 else 900.0 + h for h in range(24)]
    assert base["median_7d"].tolist() == expected


def test_rt_premium_is_the_median_spread_and_ignores_d1_when_issued() -> None:
    idx = pd.date_range("2024-01-01", periods=24 * 20, freq="h", tz="UTC")
    da = pd.Series(50.0, index=idx)
    rt = pd.Series(50.0 + np.where(idx.hour == 18, 12.0, -3.0), index=idx)
    day = dt.date(2024, 1, 20)
    base = rt_premium_forecast(da, rt, [day], tz=TZ, window_days=14)
    assert base.iloc[18] == pytest.approx(12.0)
    assert base.iloc[3] == pytest.approx(-3.0)
    rt_changed = rt.copy()
    rt_changed[(idx >= "2024-01-19") & (idx < "2024-01-21")] = 9999.0  # D-1 and D
    again = rt_premium_forecast(da, rt_changed, [day], tz=TZ, window_days=14)
    pd.testing.assert_series_equal(base, again)


def test_point_metrics_match_hand_computation_when_small_arrays() -> None:
    actual = np.array([1.0, 2.0, 3.0, np.nan])
    forecast = np.array([2.0, 2.0, 1.0, 5.0])
    assert mae(actual, forecast) == pytest.approx(1.0)
    assert rmse(actual, forecast) == pytest.approx(np.sqrt(5 / 3))


def test_pinball_matches_hand_computation_when_quantile_is_p10() -> None:
    # y-q = [2, -2]: losses 0.1*2 = 0.2 and (0.1-1)*(-2) = 1.8 -> mean 1.0
    assert pinball([3.0, 1.0], [1.0, 3.0], 0.1) == pytest.approx(1.0)
    assert pinball([3.0, 1.0], [1.0, 3.0], 0.5) == pytest.approx(1.0)
    with pytest.raises(ForecastInputError, match="alpha"):
        pinball([1.0], [1.0], 1.5)


def test_coverage_counts_bounds_inclusive_when_on_edges() -> None:
    assert (
        coverage([1.0, 2.0, 5.0, 0.0], [1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0])
        == 0.5
    )


def test_metrics_raise_naming_shapes_when_lengths_differ() -> None:
    with pytest.raises(ForecastInputError, match="shape"):
        mae([1.0, 2.0], [1.0])


def test_top_bottom_hits_scores_exact_and_partial_days_when_hand_made() -> None:
    idx = pd.RangeIndex(24 * 2)
    day = pd.Series(np.repeat([0, 1], 24), index=idx)
    a_day = np.arange(24, dtype=float)
    actual = pd.Series(np.concatenate([a_day, a_day]), index=idx)
    f_bad = a_day.copy()
    f_bad[[20, 21]] = [-1.0, -2.0]  # two actual top-4 hours forecast as lowest
    forecast = pd.Series(np.concatenate([a_day, f_bad]), index=idx)
    hit, exact, overlap = top_bottom_hits(actual, forecast, day)
    assert exact == 0.5
    assert hit == 0.5
    # day 0: 8/8; day 1: top 2/4, bottom 2/4 -> 4/8
    assert overlap == pytest.approx((1.0 + 0.5) / 2)


def test_spread_correlation_is_one_when_forecast_spread_scales_actual() -> None:
    idx = pd.RangeIndex(24 * 3)
    day = pd.Series(np.repeat([0, 1, 2], 24), index=idx)
    actual = pd.Series(
        np.tile(np.arange(24.0), 3) * np.repeat([1, 2, 3], 24), index=idx
    )
    assert daily_spread_correlation(actual, actual * 0.5 + 7, day) == pytest.approx(1.0)


def test_score_forecast_leaves_quantile_scores_nan_when_point_forecast() -> None:
    idx = pd.RangeIndex(24)
    day = pd.Series(0, index=idx)
    actual = pd.Series(np.arange(24.0), index=idx)
    scores = score_forecast(actual, actual + 1.0, day)
    assert scores["mae"] == pytest.approx(1.0)
    assert np.isnan(scores["coverage_p10_p90"])
    assert scores["n_days"] == 1.0
