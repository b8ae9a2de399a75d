"""Train the price forecasters on the stored history and forecast the operating day."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fleet.demo.data import HISTORY_DAYS, local_day_hours
from fleet.ops.forecasts import NAIVE_VERSION, naive_quantiles
from fleet.store.forecasts import insert_price_forecasts
from fleet.store.prices import load_prices

if TYPE_CHECKING:
    import sqlalchemy as sa

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SeriesForecast:
    """The day's quantile forecast of one price series and the actual prices."""

    market: str
    """Market name."""
    node: str
    """Pricing node (``SYSTEM`` for ERCOT ancillary services)."""
    product: str
    """Product as in the price data (``da_energy``, ``reg_up``, …)."""
    hours: pd.DatetimeIndex
    """UTC starts of the day's hours."""
    p10: np.ndarray
    """Forecast 10 % quantile per hour [$/MWh or $/MW-h]."""
    p50: np.ndarray
    """Forecast median per hour [$/MWh or $/MW-h]."""
    p90: np.ndarray
    """Forecast 90 % quantile per hour [$/MWh or $/MW-h]."""
    actual: np.ndarray
    """Cleared price per hour (the real price of that day) [$/MWh or $/MW-h]."""
    model_version: str
    """Which model made it (``naive-…`` when the learned model could not)."""
    issue_time: pd.Timestamp
    """When the forecast counts as issued (D-1, before the day-ahead close), UTC."""

    @property
    def mae(self) -> float:
        """Mean absolute error of the median over the day [price unit]."""
        return float(np.mean(np.abs(self.p50 - self.actual)))


def forecast_series(
    engine: sa.Engine,
    *,
    market: str,
    node: str,
    product: str,
    day: dt.date,
    history_days: int = HISTORY_DAYS,
    max_iter: int = 80,
) -> SeriesForecast:
    """Fit the quantile forecaster on the stored history and forecast ``day``.

    The forecast is issued on D-1 before the day-ahead close; nothing known later is
    used. When the learned model cannot be fitted (too little history), a naive
    same-hour-of-last-week forecast stands in and its version says so.
    """
    hours = local_day_hours(day, market)
    start = hours[0] - pd.Timedelta(days=history_days + 16)
    history = load_prices(
        engine, market=market, node=node, product=product, start=start, end=hours[0]
    )
    actual_series = load_prices(
        engine,
        market=market,
        node=node,
        product=product,
        start=hours[0],
        end=hours[-1] + pd.Timedelta(hours=1),
    )
    actual = actual_series.reindex(hours).ffill().bfill().to_numpy(float)
    history = history.asfreq("h") if len(history) else history
    issue_time = hours[0] - pd.Timedelta(hours=15)
    try:
        from forecasting.price import PriceForecaster

        model = PriceForecaster(
            market=market,
            node=node,
            product=product,
            train_days=history_days,
            calibration_days=14,
            max_iter=max_iter,
        )
        issue_time = model.issue_time(day)
        model.fit(history, issue_time=issue_time)
        frame = model.predict(history, day).reindex(hours)
        if frame[["p10", "p50", "p90"]].isna().any().any():
            msg = "forecast has missing hours"
            raise ValueError(msg)
        p10, p50, p90 = (frame[c].to_numpy(float) for c in ("p10", "p50", "p90"))
        version = str(model.model_version_)
    except (ImportError, ValueError, KeyError) as exc:
        logger.warning(
            "%s %s %s: learned forecaster unavailable (%s); naive forecast",
            market,
            node,
            product,
            exc,
        )
        p10, p50, p90 = naive_quantiles(history, hours, issue_time)
        version = NAIVE_VERSION
    return SeriesForecast(
        market=market,
        node=node,
        product=product,
        hours=hours,
        p10=p10,
        p50=p50,
        p90=p90,
        actual=actual,
        model_version=version[:64],
        issue_time=issue_time,
    )


def store_forecast(engine: sa.Engine, fc: SeriesForecast) -> int:
    """Write a forecast to the store (the API's ``/v1/forecasts/prices``)."""
    unit = "usd_per_mwh" if fc.product.endswith("energy") else "usd_per_mw"
    frame = pd.DataFrame(
        {
            "market": fc.market,
            "node": fc.node,
            "product": fc.product,
            "ts": fc.hours,
            "issue_time": fc.issue_time,
            "model_version": fc.model_version,
            "p10": fc.p10,
            "p50": fc.p50,
            "p90": fc.p90,
            "unit": unit,
        }
    )
    return insert_price_forecasts(engine, frame)


def forecast_all(
    engine: sa.Engine,
    series: list[tuple[str, str, str]],
    days: dict[str, dt.date],
    *,
    on_done: Callable[[SeriesForecast], None] | None = None,
) -> dict[tuple[str, str, str], SeriesForecast]:
    """Forecast every (market, node, product) of ``series`` for its market's day."""
    out: dict[tuple[str, str, str], SeriesForecast] = {}
    for market, node, product in series:
        fc = forecast_series(
            engine, market=market, node=node, product=product, day=days[market]
        )
        store_forecast(engine, fc)
        out[(market, node, product)] = fc
        if on_done is not None:
            on_done(fc)
    return out
