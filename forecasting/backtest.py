"""Rolling-origin backtest of a forecaster against the naive baselines."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from forecasting.baselines import BASELINE_NAMES, baseline_forecasts
from forecasting.errors import ForecastInputError
from forecasting.features import local_days
from forecasting.metrics import score_forecast
from forecasting.price import QuantileForecaster

logger = logging.getLogger(__name__)

FORECAST_COLUMNS: tuple[str, ...] = (
    "timestamp_utc",
    "issue_time_utc",
    "p10",
    "p50",
    "p90",
    "actual",
)
"""Columns of the backtest CSV (the issue's contract), baselines follow them."""


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """Every forecast of a rolling-origin backtest and its scores."""

    forecasts: pd.DataFrame
    """One row per hour: :data:`FORECAST_COLUMNS`, ``horizon_h``, ``model_version``,
    ``day`` (local operating day) and one column per baseline."""
    scores: pd.DataFrame
    """One row per method (``model`` then the baselines), columns of
    :func:`forecasting.metrics.score_forecast`."""
    n_refits: int
    """How many times the model was fitted."""
    fit_seconds: float
    """Total wall time spent fitting [s] (reported, never asserted)."""


def rolling_backtest(
    y: pd.Series,
    make_forecaster: Callable[[], QuantileForecaster],
    *,
    start: dt.date | str,
    end: dt.date | str,
    refit_days: int = 7,
    clock: Callable[[], float] | None = None,
    exog: Mapping[str, pd.Series] | None = None,
) -> BacktestResult:
    """Forecast every operating day of ``[start, end]`` as it would have been issued.

    For each day D the forecast is issued on D-1 at the forecaster's issue hour. The
    model is refitted every ``refit_days`` days on what was known at that day's
    issue time (trailing ``train_days`` window), then forecasts D from the history
    known at D's issue time. Baselines are computed from the same known history.

    Parameters
    ----------
    y
        Hourly history on a UTC DatetimeIndex (cleaned: missing = NaN).
    make_forecaster
        Returns a fresh, unfitted forecaster (called at each refit).
    start, end
        First and last local operating day (inclusive).
    refit_days
        Days between refits (>= 1).
    clock
        Optional monotonic clock [s] used only to report fit time
        (e.g. ``time.perf_counter``); the library never reads a clock itself.
    exog
        Other nodes' series for a forecaster with ``cross_nodes`` (passed to its
        ``fit`` and ``predict``, which keep only what is known at each issue time).

    Returns
    -------
    BacktestResult

    Raises
    ------
    ForecastInputError
        When ``end`` is before ``start``, ``refit_days`` < 1, or the period has no
        actual values.
    """
    if refit_days < 1:
        msg = f"refit_days={refit_days} must be >= 1"
        raise ForecastInputError(msg)
    days = local_days(start, end)
    probe = make_forecaster()
    tz, product, issue_hour = probe.tz, probe.product, probe.issue_hour
    first_hour = probe.hours(days[0])[0]
    last_hour = probe.hours(days[-1])[-1]
    in_period = y[(y.index >= first_hour) & (y.index <= last_hour)]
    if in_period.dropna().empty:
        msg = (
            f"--start/--end: no actual values between {days[0]} and {days[-1]} "
            f"(data covers {y.index.min()} to {y.index.max()})"
        )
        raise ForecastInputError(msg)
    model: QuantileForecaster | None = None
    fit_seconds = 0.0
    n_refits = 0
    parts: list[pd.DataFrame] = []
    # One OpenMP thread: per-tree thread sync of tiny predictions costs more than it
    # gains, and badly so on a shared machine.
    with threadpool_limits(limits=probe.n_threads, user_api="openmp"):
        for i, day in enumerate(days):
            if i % refit_days == 0 or model is None:
                t0 = clock() if clock else 0.0
                model = make_forecaster().fit(
                    y, issue_time=probe.issue_time(day), exog=exog
                )
                fit_seconds += (clock() - t0) if clock else 0.0
                n_refits += 1
            forecast = model.predict(y, day, exog)
            forecast["model_version"] = model.model_version_
            forecast["day"] = day
            parts.append(forecast)
    frame = pd.concat(parts)
    base = baseline_forecasts(y, days, tz=tz, product=product, issue_hour=issue_hour)
    frame = frame.join(base)
    frame["actual"] = y.reindex(frame.index).to_numpy(float)
    frame.index.name = "timestamp_utc"
    frame = frame.reset_index()
    ordered = [*FORECAST_COLUMNS, "horizon_h", "model_version", "day", *BASELINE_NAMES]
    frame = frame[ordered]
    return BacktestResult(
        forecasts=frame,
        scores=score_table(frame),
        n_refits=n_refits,
        fit_seconds=fit_seconds,
    )


def score_table(forecasts: pd.DataFrame) -> pd.DataFrame:
    """Score the model and each baseline column of a backtest frame.

    Returns
    -------
    pandas.DataFrame
        Index ``method`` (``model``, then :data:`BASELINE_NAMES`), score columns,
        plus ``mae_vs_best_baseline`` (fractional MAE reduction of each method
        relative to the best baseline; positive = better).
    """
    rows: dict[str, dict[str, float]] = {
        "model": score_forecast(
            forecasts["actual"],
            forecasts["p50"],
            forecasts["day"],
            p10=forecasts["p10"],
            p90=forecasts["p90"],
        )
    }
    for name in BASELINE_NAMES:
        rows[name] = score_forecast(
            forecasts["actual"], forecasts[name], forecasts["day"]
        )
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "method"
    best = float(table.loc[list(BASELINE_NAMES), "mae"].min())
    table["mae_vs_best_baseline"] = 1.0 - table["mae"] / best if best > 0 else np.nan
    return table


def write_forecasts_csv(result: BacktestResult, path: str | Path) -> Path:
    """Write every forecast of a backtest to CSV (ISO UTC timestamps with ``Z``)."""
    out = result.forecasts.copy()
    for col in ("timestamp_utc", "issue_time_utc"):
        out[col] = pd.DatetimeIndex(out[col]).strftime("%Y-%m-%dT%H:%M:%SZ")
    target = Path(path)
    out.to_csv(target, index=False)
    return target


def plot_backtest(
    result: BacktestResult, path: str | Path, *, title: str = "", tz: str = "UTC"
) -> Path:
    """Plot forecast vs actual (last 14 days, P10-P90 band) and MAE by local hour.

    Parameters
    ----------
    result
        Output of :func:`rolling_backtest`.
    path
        PNG file to write.
    title
        Figure title.
    tz
        Local time zone for the hour-of-day axis.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = result.forecasts
    stamps = pd.DatetimeIndex(frame["timestamp_utc"])
    last = stamps.max()
    window = stamps >= last - pd.Timedelta(days=14)
    fig, (ax_ts, ax_hour) = plt.subplots(2, 1, figsize=(11, 7.5))
    sub = frame[np.asarray(window)]
    sub_t = stamps[np.asarray(window)].tz_convert(tz).tz_localize(None)
    ax_ts.fill_between(
        sub_t, sub["p10"], sub["p90"], color="tab:blue", alpha=0.25, label="P10-P90"
    )
    ax_ts.plot(sub_t, sub["p50"], color="tab:blue", lw=1.2, label="P50 forecast")
    ax_ts.plot(sub_t, sub["actual"], color="black", lw=1.0, label="actual")
    ax_ts.plot(
        sub_t,
        sub["persistence"],
        color="tab:orange",
        lw=0.8,
        ls="--",
        label="persistence",
    )
    ax_ts.set_ylabel("price")
    ax_ts.set_title(f"{title} — last 14 days of the backtest (local time)")
    ax_ts.legend(loc="upper left", fontsize=8)
    hours = stamps.tz_convert(tz).hour
    by_hour = (
        pd.DataFrame(
            {
                "model": (frame["p50"] - frame["actual"]).abs().to_numpy(),
                **{
                    name: (frame[name] - frame["actual"]).abs().to_numpy()
                    for name in ("persistence", "seasonal_naive", "naive_average")
                },
                "hour": np.asarray(hours),
            }
        )
        .groupby("hour")
        .mean()
    )
    for col in by_hour.columns:
        ax_hour.plot(by_hour.index, by_hour[col], marker="o", ms=3, label=col)
    ax_hour.set_xlabel("local hour of day")
    ax_hour.set_ylabel("MAE")
    ax_hour.set_title("absolute error by hour of day (whole backtest)")
    ax_hour.legend(fontsize=8)
    fig.tight_layout()
    target = Path(path)
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target
