"""Sample price scenarios from quantile forecasts, reproducibly from a seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from forecasting.errors import ForecastInputError

_Z90 = float(norm.ppf(0.9))


def price_scenarios(
    quantiles: pd.DataFrame,
    *,
    n_scenarios: int,
    rng: np.random.Generator,
    hour_correlation: float = 0.8,
) -> pd.DataFrame:
    """Draw equally likely price paths consistent with a P10/P50/P90 forecast.

    Each path draws a Gaussian AR(1) series across the hours (correlation
    ``hour_correlation`` between consecutive hours, so a day is high or low as a
    whole) and maps it to a price with a two-piece normal through the quantiles:
    P50 at z = 0, P10 at z = -1.2816 and P90 at z = +1.2816, each side with its
    own spread, so skewed forecasts give skewed scenarios.

    Parameters
    ----------
    quantiles
        Columns ``p10, p50, p90`` on a UTC index [USD/MWh or USD/MW-h].
    n_scenarios
        Number of paths (>= 1).
    rng
        Random generator (the caller owns the seed: same seed, same scenarios).
    hour_correlation
        Lag-1 correlation of the latent Gaussian across hours, in [0, 1).

    Returns
    -------
    pandas.DataFrame
        Index as ``quantiles``, one column per scenario ``s0 … s{n-1}``;
        ``attrs["probability"]`` is ``1 / n_scenarios``.

    Raises
    ------
    ForecastInputError
        When a column is missing, ``n_scenarios`` < 1 or the correlation is out of range.
    """
    missing = [c for c in ("p10", "p50", "p90") if c not in quantiles.columns]
    if missing:
        msg = f"quantiles: missing column(s) {missing}"
        raise ForecastInputError(msg)
    if n_scenarios < 1:
        msg = f"n_scenarios={n_scenarios} must be >= 1"
        raise ForecastInputError(msg)
    if not 0.0 <= hour_correlation < 1.0:
        msg = f"hour_correlation={hour_correlation} must be within [0, 1)"
        raise ForecastInputError(msg)
    n_hours = len(quantiles)
    shocks = rng.standard_normal((n_scenarios, n_hours))
    z = np.empty_like(shocks)
    if n_hours:
        z[:, 0] = shocks[:, 0]
        scale = np.sqrt(1.0 - hour_correlation**2)
        for i in range(1, n_hours):
            z[:, i] = hour_correlation * z[:, i - 1] + scale * shocks[:, i]
    p10 = quantiles["p10"].to_numpy(float)
    p50 = quantiles["p50"].to_numpy(float)
    p90 = quantiles["p90"].to_numpy(float)
    lower_sigma = np.maximum(p50 - p10, 0.0) / _Z90
    upper_sigma = np.maximum(p90 - p50, 0.0) / _Z90
    paths = np.where(z < 0, p50 + z * lower_sigma, p50 + z * upper_sigma)
    out = pd.DataFrame(
        paths.T, index=quantiles.index, columns=[f"s{k}" for k in range(n_scenarios)]
    )
    out.attrs["probability"] = 1.0 / n_scenarios
    return out
