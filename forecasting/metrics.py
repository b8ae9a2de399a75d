"""Score point and quantile forecasts, including battery spread accuracy."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.errors import ForecastInputError


def _pair(
    actual: pd.Series | np.ndarray, forecast: pd.Series | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype=float)
    f = np.asarray(forecast, dtype=float)
    if a.shape != f.shape:
        msg = f"actual has shape {a.shape} but forecast has shape {f.shape}"
        raise ForecastInputError(msg)
    keep = ~(np.isnan(a) | np.isnan(f))
    return a[keep], f[keep]


def mae(actual: pd.Series | np.ndarray, forecast: pd.Series | np.ndarray) -> float:
    """Return the mean absolute error over pairs where both are present [unit of input]."""
    a, f = _pair(actual, forecast)
    return float(np.mean(np.abs(a - f))) if a.size else float("nan")


def rmse(actual: pd.Series | np.ndarray, forecast: pd.Series | np.ndarray) -> float:
    """Return the root mean squared error over pairs where both are present [unit of input]."""
    a, f = _pair(actual, forecast)
    return float(np.sqrt(np.mean((a - f) ** 2))) if a.size else float("nan")


def pinball(
    actual: pd.Series | np.ndarray, quantile: pd.Series | np.ndarray, alpha: float
) -> float:
    """Return the mean pinball (quantile) loss of a forecast of the ``alpha`` quantile.

    Parameters
    ----------
    actual, quantile
        Observed values and the forecast quantile [same unit].
    alpha
        Quantile level as a fraction, 0 < alpha < 1.

    Notes
    -----
    ``L = mean(max(alpha·(y - q), (alpha - 1)·(y - q)))``.
    """
    if not 0.0 < alpha < 1.0:
        msg = f"alpha={alpha} must be within (0, 1)"
        raise ForecastInputError(msg)
    a, q = _pair(actual, quantile)
    if not a.size:
        return float("nan")
    diff = a - q
    return float(np.mean(np.maximum(alpha * diff, (alpha - 1.0) * diff)))


def coverage(
    actual: pd.Series | np.ndarray,
    lower: pd.Series | np.ndarray,
    upper: pd.Series | np.ndarray,
) -> float:
    """Return the share (0-1) of actuals inside ``[lower, upper]``."""
    a = np.asarray(actual, dtype=float)
    lo = np.asarray(lower, dtype=float)
    hi = np.asarray(upper, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(lo) | np.isnan(hi))
    if not keep.any():
        return float("nan")
    inside = (a[keep] >= lo[keep]) & (a[keep] <= hi[keep])
    return float(np.mean(inside))


def daily_spread_correlation(
    actual: pd.Series, forecast: pd.Series, day: pd.Series
) -> float:
    """Return the Pearson correlation of forecast and actual daily max-min spread.

    Parameters
    ----------
    actual, forecast
        Hourly values [USD/MWh] on the same index.
    day
        The local operating day of each row (same index).
    """
    frame = pd.DataFrame({"a": actual, "f": forecast, "d": day}).dropna()
    if frame.empty:
        return float("nan")
    grouped = frame.groupby("d")
    spread = pd.DataFrame(
        {
            "a": grouped["a"].max() - grouped["a"].min(),
            "f": grouped["f"].max() - grouped["f"].min(),
        }
    )
    if len(spread) < 3 or spread["a"].std() == 0 or spread["f"].std() == 0:
        return float("nan")
    return float(np.corrcoef(spread["a"], spread["f"])[0, 1])


def top_bottom_hits(
    actual: pd.Series,
    forecast: pd.Series,
    day: pd.Series,
    *,
    k: int = 4,
    min_overlap: int = 3,
) -> tuple[float, float, float]:
    """Score how well a forecast picks each day's ``k`` highest and ``k`` lowest hours.

    Parameters
    ----------
    actual, forecast
        Hourly values on the same index.
    day
        The local operating day of each row.
    k
        Hours to pick at each end (4: a 4-hour battery's charge and discharge hours).
    min_overlap
        Hours (of ``k``) that must match at each end for a day to count as right.

    Returns
    -------
    tuple[float, float, float]
        ``(hit_rate, exact_rate, mean_overlap)``: the share of days on which at
        least ``min_overlap`` of the forecast top-k are actual top-k *and* at least
        ``min_overlap`` of the forecast bottom-k are actual bottom-k; the share of
        days on which both sets match exactly; and the mean overlap share (0-1)
        over both ends. Days with fewer than ``2·k`` complete hours are skipped.
    """
    frame = pd.DataFrame({"a": actual, "f": forecast, "d": day}).dropna()
    hits: list[bool] = []
    exact: list[bool] = []
    overlaps: list[float] = []
    for _, block in frame.groupby("d", sort=True):
        if len(block) < 2 * k:
            continue
        a = block["a"].to_numpy()
        f = block["f"].to_numpy()
        a_order = np.argsort(a, kind="stable")
        f_order = np.argsort(f, kind="stable")
        top_hit = len(set(a_order[-k:]) & set(f_order[-k:]))
        bottom_hit = len(set(a_order[:k]) & set(f_order[:k]))
        hits.append(top_hit >= min_overlap and bottom_hit >= min_overlap)
        exact.append(top_hit == k and bottom_hit == k)
        overlaps.append((top_hit + bottom_hit) / (2 * k))
    if not hits:
        return float("nan"), float("nan"), float("nan")
    return float(np.mean(hits)), float(np.mean(exact)), float(np.mean(overlaps))


def score_forecast(
    actual: pd.Series,
    p50: pd.Series,
    day: pd.Series,
    *,
    p10: pd.Series | None = None,
    p90: pd.Series | None = None,
) -> dict[str, float]:
    """Return every score of one forecast as a flat dict.

    Keys: ``mae``, ``rmse``, ``pinball_p10``, ``pinball_p50``, ``pinball_p90``,
    ``pinball_mean``, ``coverage_p10_p90`` (0-1), ``spread_corr``, ``top4_hit``,
    ``top4_exact``, ``top4_overlap`` (0-1), ``n_hours``, ``n_days``. Quantile scores
    are NaN for a point forecast.
    """
    scores: dict[str, float] = {
        "mae": mae(actual, p50),
        "rmse": rmse(actual, p50),
        "pinball_p50": pinball(actual, p50, 0.5),
    }
    if p10 is not None and p90 is not None:
        scores["pinball_p10"] = pinball(actual, p10, 0.1)
        scores["pinball_p90"] = pinball(actual, p90, 0.9)
        scores["pinball_mean"] = (
            scores["pinball_p10"] + scores["pinball_p50"] + scores["pinball_p90"]
        ) / 3
        scores["coverage_p10_p90"] = coverage(actual, p10, p90)
    else:
        for key in ("pinball_p10", "pinball_p90", "pinball_mean", "coverage_p10_p90"):
            scores[key] = float("nan")
    scores["spread_corr"] = daily_spread_correlation(actual, p50, day)
    hit, exact, overlap = top_bottom_hits(actual, p50, day)
    scores["top4_hit"] = hit
    scores["top4_exact"] = exact
    scores["top4_overlap"] = overlap
    valid = ~(pd.isna(actual) | pd.isna(p50))
    scores["n_hours"] = float(valid.sum())
    scores["n_days"] = float(pd.Series(day)[valid].nunique())
    return scores
