"""Load forecasts for behind-the-meter sites, with daily and monthly peaks first-class."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecasting.errors import ForecastInputError
from forecasting.price import QuantileForecaster


class LoadForecaster(QuantileForecaster):
    """Quantile forecaster of a site's hourly metered load [kW].

    Metered load is known once its interval has ended, like a real-time price, so
    the lags of D-1 at or after the issue hour are not used.

    Parameters
    ----------
    site_id
        The site whose load is forecast.
    tz
        Site local time zone (calendar features and operating days).
    **params
        Model parameters of :class:`~forecasting.price.QuantileForecaster`.
    """

    def __init__(
        self, *, site_id: str = "site", tz: str = "America/Chicago", **params: Any
    ) -> None:
        params.pop("product", None)
        super().__init__(tz=tz, product="load", **params)
        self.site_id = site_id

    def get_params(self) -> dict[str, Any]:
        """Return the constructor parameters (scikit-learn contract)."""
        params = super().get_params()
        params.pop("product")
        return {"site_id": self.site_id, **params}

    def _version(self) -> str:
        return f"{self.site_id}-{super()._version()}"


def read_load_csv(path: str | Path, *, site: str) -> pd.Series:
    """Read one site's load from a CSV with ``timestamp_utc, site, load_kw``.

    Returns
    -------
    pandas.Series
        Load [kW] on a UTC DatetimeIndex, sorted (duplicates kept for cleaning).

    Raises
    ------
    ForecastInputError
        When the file or a column is missing, or the site has no rows.
    """
    csv_path = Path(path)
    if not csv_path.is_file():
        msg = f"--load: file {csv_path} does not exist"
        raise ForecastInputError(msg)
    frame = pd.read_csv(csv_path)
    missing = [
        c for c in ("timestamp_utc", "site", "load_kw") if c not in frame.columns
    ]
    if missing:
        msg = f"{csv_path}: missing column(s) {missing}"
        raise ForecastInputError(msg)
    rows = frame[frame["site"] == site]
    if rows.empty:
        known = sorted(frame["site"].unique().tolist())
        msg = f"--site: no rows for site {site!r} in {csv_path}; known: {known}"
        raise ForecastInputError(msg)
    series = pd.Series(
        pd.to_numeric(rows["load_kw"], errors="coerce").to_numpy(float),
        index=pd.DatetimeIndex(pd.to_datetime(rows["timestamp_utc"], utc=True)),
        name=site,
    )
    return series.sort_index(kind="stable")


def daily_peaks(forecast: pd.DataFrame, *, tz: str) -> pd.DataFrame:
    """Return each local day's forecast peak: what peak shaving plans against.

    Parameters
    ----------
    forecast
        Hourly ``p10, p50, p90`` [kW] on a UTC index (optionally ``actual``).
    tz
        Site time zone defining the day.

    Returns
    -------
    pandas.DataFrame
        Index: local day; columns ``peak_p50_kw`` (max of the hourly P50),
        ``peak_p90_kw`` (max of the hourly P90, a cautious planning peak),
        ``peak_hour_utc`` (hour of the P50 peak) and, when ``actual`` is present,
        ``actual_peak_kw`` and ``actual_peak_hour_utc``.
    """
    missing = [c for c in ("p50", "p90") if c not in forecast.columns]
    if missing:
        msg = f"forecast: missing column(s) {missing}"
        raise ForecastInputError(msg)
    local_day = pd.DatetimeIndex(forecast.index).tz_convert(tz).date
    grouped = forecast.groupby(local_day)
    out = pd.DataFrame(
        {
            "peak_p50_kw": grouped["p50"].max(),
            "peak_p90_kw": grouped["p90"].max(),
            "peak_hour_utc": grouped["p50"].idxmax(),
        }
    )
    if "actual" in forecast.columns and forecast["actual"].notna().any():
        actual = forecast["actual"].dropna()
        by_day = actual.groupby(pd.DatetimeIndex(actual.index).tz_convert(tz).date)
        out["actual_peak_kw"] = by_day.max()
        out["actual_peak_hour_utc"] = by_day.idxmax()
    out.index.name = "day"
    return out


def monthly_peak(
    observed: pd.Series, forecast: pd.DataFrame, *, tz: str, month: dt.date
) -> dict[str, float]:
    """Return the billing-month peak expected by the end of ``month`` [kW].

    The monthly demand charge is set by the month's highest interval, so the
    expected monthly peak is the larger of what was already metered this month and
    the forecast peaks of the rest of the month.

    Parameters
    ----------
    observed
        Metered load [kW] on a UTC index (only values already known).
    forecast
        Hourly ``p50, p90`` [kW] for the remaining hours of the month.
    tz
        Site time zone defining the month.
    month
        Any date in the billing month.

    Returns
    -------
    dict[str, float]
        ``observed_peak_kw`` (NaN when none yet), ``forecast_peak_p50_kw``,
        ``forecast_peak_p90_kw``, ``expected_peak_kw`` (max of observed and P50)
        and ``cautious_peak_kw`` (max of observed and P90).
    """
    start = pd.Timestamp(month.replace(day=1)).tz_localize(tz)
    end = start + pd.offsets.MonthBegin(1)
    in_month = observed[(observed.index >= start) & (observed.index < end)].dropna()
    fc = forecast[(forecast.index >= start) & (forecast.index < end)]
    seen = float(in_month.max()) if len(in_month) else float("nan")
    p50 = float(fc["p50"].max()) if len(fc) else float("nan")
    p90 = float(fc["p90"].max()) if len(fc) else float("nan")
    return {
        "observed_peak_kw": seen,
        "forecast_peak_p50_kw": p50,
        "forecast_peak_p90_kw": p90,
        "expected_peak_kw": float(np.nanmax([seen, p50])),
        "cautious_peak_kw": float(np.nanmax([seen, p90])),
    }


def peak_scores(peaks: pd.DataFrame) -> dict[str, float]:
    """Score daily peak forecasts from :func:`daily_peaks` (with actuals).

    Returns
    -------
    dict[str, float]
        ``peak_mae_kw``, ``peak_mape`` (fraction), ``peak_hour_within_1h`` (share of
        days whose forecast peak hour is within one hour of the actual one) and
        ``p90_peak_covers`` (share of days with actual peak <= P90 peak).
    """
    frame = peaks.dropna(subset=["actual_peak_kw"])
    if frame.empty:
        nan = float("nan")
        return {
            "peak_mae_kw": nan,
            "peak_mape": nan,
            "peak_hour_within_1h": nan,
            "p90_peak_covers": nan,
        }
    err = (frame["peak_p50_kw"] - frame["actual_peak_kw"]).abs()
    hour_gap = (
        pd.DatetimeIndex(frame["peak_hour_utc"])
        - pd.DatetimeIndex(frame["actual_peak_hour_utc"])
    ).total_seconds().to_numpy() / 3600.0
    return {
        "peak_mae_kw": float(err.mean()),
        "peak_mape": float((err / frame["actual_peak_kw"].abs()).mean()),
        "peak_hour_within_1h": float(np.mean(np.abs(hour_gap) <= 1.0)),
        "p90_peak_covers": float(
            np.mean(frame["actual_peak_kw"] <= frame["peak_p90_kw"])
        ),
    }
