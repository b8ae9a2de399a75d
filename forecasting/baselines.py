"""Naive baselines every forecaster is measured against."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd

from forecasting.features import (
    build_features,
    daily_matrix,
    is_realtime,
    target_index,
)
from forecasting.types import ISSUE_HOUR_LOCAL

BASELINE_NAMES: tuple[str, ...] = (
    "persistence",
    "seasonal_naive",
    "naive_average",
    "median_7d",
)
"""Names of the baselines, in the column order of :func:`baseline_forecasts`."""


def baseline_forecasts(
    series: pd.Series,
    days: Iterable[dt.date],
    *,
    tz: str,
    product: str,
    issue_hour: int = ISSUE_HOUR_LOCAL,
) -> pd.DataFrame:
    """Return the naive point forecasts for every hour of ``days``.

    - ``persistence``: the same local hour yesterday (D-1). For real-time products,
      D-1 hours at or after the issue hour are not known at issue time, so the same
      hour of D-2 is used for them.
    - ``seasonal_naive``: the same local hour a week ago (D-7).
    - ``naive_average``: the mean of the two (whichever exists when one is missing).
    - ``median_7d``: the median of the same local hour over the last seven days
      known at issue time (D-1..D-7; D-2..D-8 for real-time hours not yet known).

    Parameters
    ----------
    series
        Hourly history on a UTC DatetimeIndex [USD/MWh, USD/MW-h or kW].
    days
        Local operating days to forecast.
    tz, product, issue_hour
        As in :func:`forecasting.features.build_features`.

    Returns
    -------
    pandas.DataFrame
        UTC index (the hours of ``days``), columns :data:`BASELINE_NAMES`.
    """
    feats = build_features(series, days, tz=tz, product=product, issue_hour=issue_hour)
    median = _median_7d(
        series, feats.index, tz=tz, product=product, issue_hour=issue_hour
    )
    persistence = feats["lag_d1"].fillna(feats["lag_d2"])
    seasonal = feats["lag_d7"]
    stacked = np.vstack([persistence.to_numpy(float), seasonal.to_numpy(float)])
    with np.errstate(all="ignore"):
        counts = np.sum(~np.isnan(stacked), axis=0)
        sums = np.nansum(stacked, axis=0)
        average = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return pd.DataFrame(
        {
            "persistence": persistence.to_numpy(float),
            "seasonal_naive": seasonal.to_numpy(float),
            "naive_average": average,
            "median_7d": median,
        },
        index=feats.index,
    )


def _lag_matrix(
    series: pd.Series, index: pd.DatetimeIndex, tz: str, lags: Iterable[int]
) -> np.ndarray:
    """Values at the same local hour ``k`` days before each of ``index`` (k in lags)."""
    matrix = daily_matrix(series, tz)
    local = index.tz_convert(tz)
    day = local.normalize().tz_localize(None)
    hour = np.asarray(local.hour)
    out = []
    for k in lags:
        rows = matrix.reindex(day - pd.Timedelta(days=k)).to_numpy(float)
        out.append(rows[np.arange(len(index)), hour] if len(index) else np.zeros(0))
    return np.vstack(out) if out else np.zeros((0, len(index)))


def _median_7d(
    series: pd.Series,
    index: pd.DatetimeIndex,
    *,
    tz: str,
    product: str,
    issue_hour: int,
) -> np.ndarray:
    recent = _lag_matrix(series, index, tz, range(1, 8))
    if is_realtime(product):
        # D-1 hours at or after the issue hour are not known yet: use D-2..D-8 there.
        late = np.asarray(index.tz_convert(tz).hour) >= issue_hour
        shifted = _lag_matrix(series, index, tz, range(2, 9))
        recent = np.where(late[None, :], shifted, recent)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        out: np.ndarray = np.nanmedian(recent, axis=0)
    return out


def rt_spread_scenarios(
    da: pd.Series,
    rt: pd.Series,
    days: Iterable[dt.date],
    *,
    tz: str,
    window_days: int = 30,
) -> pd.DataFrame:
    """Return past RT - DA spread paths as scenarios for every hour of ``days``.

    Row k is the spread at the same local hour k + 2 days before (D-2 … D-1-window):
    issued on D-1 before the day-ahead close, the RT prices of D-2 are all known, those
    of D-1 are not. A missing hour is NaN.

    Parameters
    ----------
    da, rt
        Hourly DA and RT energy prices of one node on a UTC index [USD/MWh].
    days
        Local operating days to forecast.
    tz
        Market time zone.
    window_days
        Past days, one scenario each.

    Returns
    -------
    pandas.DataFrame
        ``window_days`` rows (lag 2 first), one column per UTC hour of ``days``.
    """
    index = target_index(days, tz)
    spread = (rt - da.reindex(rt.index)).dropna()
    lags = _lag_matrix(spread, index, tz, range(2, 2 + window_days))
    return pd.DataFrame(lags, columns=index, index=range(2, 2 + window_days))


def rt_premium_forecast(
    da: pd.Series,
    rt: pd.Series,
    days: Iterable[dt.date],
    *,
    tz: str,
    window_days: int = 14,
) -> pd.Series:
    """Return the expected RT - DA spread for every hour of ``days`` [USD/MWh].

    The median of the same local hour's (RT - DA) over ``window_days`` days ending
    on D-2: issued on D-1 before the day-ahead close, the RT prices of D-2 are all
    known, those of D-1 are not.

    Parameters
    ----------
    da, rt
        Hourly DA and RT energy prices of one node on a UTC index [USD/MWh].
    days
        Local operating days to forecast.
    tz
        Market time zone.
    window_days
        Days in the median.

    Returns
    -------
    pandas.Series
        UTC index (the hours of ``days``); NaN where no spread is known.
    """
    paths = rt_spread_scenarios(da, rt, days, tz=tz, window_days=window_days)
    index, lags = paths.columns, paths.to_numpy(float)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        values = (
            np.nanmedian(lags, axis=0) if len(lags) else np.full(len(index), np.nan)
        )
    return pd.Series(values, index=index)
