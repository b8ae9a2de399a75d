"""Naive baselines every forecaster is measured against."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd

from forecasting.features import build_features
from forecasting.types import ISSUE_HOUR_LOCAL

BASELINE_NAMES: tuple[str, ...] = ("persistence", "seasonal_naive", "naive_average")
"""Names of the baselines, in the column order of :func:`baseline_forecasts`."""


def baseline_forecasts(
    series: pd.Series,
    days: Iterable[dt.date],
    *,
    tz: str,
    product: str,
    issue_hour: int = ISSUE_HOUR_LOCAL,
) -> pd.DataFrame:
    """Return the three naive point forecasts for every hour of ``days``.

    - ``persistence``: the same local hour yesterday (D-1). For real-time products,
      D-1 hours at or after the issue hour are not known at issue time, so the same
      hour of D-2 is used for them.
    - ``seasonal_naive``: the same local hour a week ago (D-7).
    - ``naive_average``: the mean of the two (whichever exists when one is missing).

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
        },
        index=feats.index,
    )
