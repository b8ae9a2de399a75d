"""The forecast step of the operating day: fit on stored prices, forecast D, store it.

The day-ahead plan reads stored forecasts (:func:`fleet.ops.dayahead.stored_forecast_prices`);
this step makes them from the stored price history, issued on D-1 before the day-ahead
close with nothing later used. ``method="model"`` fits the quantile gradient-boosting
forecaster of :mod:`forecasting.price`; ``"naive"`` (and the fallback when the model
cannot be fitted, e.g. too little history) is the median of the same hour over the
7 days before the issue time, with the 10 %/90 % quantiles of those days.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from dispatch.markets import MarketRules
from fleet.domain import Fleet
from fleet.errors import FleetInputError
from fleet.ops.scenario_builder import operating_day_hours, operating_day_start
from fleet.store.dml import Bind
from fleet.store.forecasts import insert_price_forecasts
from fleet.store.prices import load_prices

logger = logging.getLogger(__name__)

NAIVE_VERSION = "naive-same-hour-7d"
"""Model version stored with the naive forecast."""
MODEL_VERSION_MAX = 64
"""Longest model version the store keeps (``price_forecasts.model_version``)."""
HISTORY_DAYS = 120
"""Days of price history the model is fitted on."""
Method = Literal["model", "naive"]


@dataclass(frozen=True, slots=True)
class SeriesForecast:
    """One price series forecast for one operating day."""

    market: str
    """Market name."""
    node: str
    """Pricing node (the AS node for ancillary services)."""
    product: str
    """Series name in the price data (``da_energy``, ``reg_up``, ``rrs_spin``, …)."""
    hours: pd.DatetimeIndex
    """UTC starts of the operating day's hours (23, 24 or 25)."""
    p10: np.ndarray
    """10 % quantile per hour [$/MWh or $/MW-h]."""
    p50: np.ndarray
    """Median per hour [$/MWh or $/MW-h]."""
    p90: np.ndarray
    """90 % quantile per hour [$/MWh or $/MW-h]."""
    model_version: str
    """Which model made it (at most :data:`MODEL_VERSION_MAX` characters)."""
    issue_time: pd.Timestamp
    """When the forecast counts as issued (D-1, before the day-ahead close), UTC."""


def forecast_series_needed(fleet: Fleet, rules: MarketRules) -> list[tuple[str, str]]:
    """Return the (node, series) pairs the market's day-ahead plan reads.

    Energy at every site's node (front- and behind-the-meter: a BTM site's node is not
    priced in its bill, but the AS it may sell are), and each modeled AS product that
    has a price series, at the market's AS node.
    """
    sites = [s for s in fleet.sites if s.market.value == rules.name]
    energy = rules.series_of("energy") or "da_energy"
    out: list[tuple[str, str]] = [
        (node, energy) for node in sorted({s.node for s in sites if s.is_fom})
    ]
    for product in rules.reserve_products:
        if product.price_series is None:
            continue
        as_nodes = sorted({rules.as_node(s.node, product.name) for s in sites})
        out.extend((node, product.price_series) for node in as_nodes)
    return list(dict.fromkeys(out))


def issue_time_of(rules: MarketRules, operating_day: dt.date) -> pd.Timestamp:
    """Return the issue time of D's forecast: one hour before the day-ahead close (UTC)."""
    close = dt.datetime.combine(
        operating_day - dt.timedelta(days=1),
        rules.day_ahead_close_local,
        tzinfo=ZoneInfo(rules.timezone),
    )
    return pd.Timestamp(close - dt.timedelta(hours=1)).tz_convert("UTC")


def naive_quantiles(
    history: pd.Series, hours: pd.DatetimeIndex, issue_time: pd.Timestamp
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return P10/P50/P90 from the same hour of the 7 days before ``issue_time``."""
    known = history[history.index < issue_time].dropna()
    p10, p50, p90 = [], [], []
    for hour in hours:
        lags = [hour - pd.Timedelta(days=k) for k in range(1, 8)]
        vals = known.reindex(lags).dropna().to_numpy(float)
        if vals.size == 0:
            vals = known.tail(24).to_numpy(float) if len(known) else np.zeros(1)
        p10.append(np.quantile(vals, 0.1))
        p50.append(np.median(vals))
        p90.append(np.quantile(vals, 0.9))
    return np.array(p10), np.array(p50), np.array(p90)


def forecast_series(
    bind: Bind,
    rules: MarketRules,
    *,
    node: str,
    product: str,
    operating_day: dt.date,
    method: Method = "model",
    history_days: int = HISTORY_DAYS,
) -> SeriesForecast:
    """Forecast one stored price series for ``operating_day`` (issued on D-1).

    Raises
    ------
    FleetInputError
        When the store has no history of the series before the issue time.
    """
    n = operating_day_hours(rules, operating_day)
    hours = pd.date_range(
        operating_day_start(rules, operating_day), periods=n, freq="h"
    )
    issue = issue_time_of(rules, operating_day)
    history = load_prices(
        bind,
        market=rules.name,
        node=node,
        product=product,
        start=hours[0] - pd.Timedelta(days=history_days + 16),
        end=issue,
    )
    if history.empty:
        msg = (
            f"{rules.name} {node} {product}: no stored prices before "
            f"{issue.isoformat()} to forecast {operating_day} from; import them with "
            "`bessfleet prices import`"
        )
        raise FleetInputError(msg)
    history = history[~history.index.duplicated()].resample("h").mean()
    version = NAIVE_VERSION
    frame = None
    if method == "model":
        try:
            from forecasting.price import PriceForecaster

            model = PriceForecaster(
                market=rules.name,
                node=node,
                product=product,
                train_days=history_days,
                calibration_days=14,
                max_iter=80,
            )
            model.fit(history, issue_time=model.issue_time(operating_day))
            frame = model.predict(history, operating_day).reindex(hours)
            if frame[["p10", "p50", "p90"]].isna().to_numpy().any():
                frame = None
                logger.warning(
                    "%s %s %s: model forecast has missing hours; naive forecast",
                    rules.name,
                    node,
                    product,
                )
            else:
                version = str(model.model_version_)
        except (ValueError, KeyError) as exc:
            logger.warning(
                "%s %s %s: model cannot be fitted (%s); naive forecast",
                rules.name,
                node,
                product,
                exc,
            )
    if frame is None:
        p10, p50, p90 = naive_quantiles(history, hours, issue)
    else:
        p10, p50, p90 = (frame[c].to_numpy(float) for c in ("p10", "p50", "p90"))
    return SeriesForecast(
        market=rules.name,
        node=node,
        product=product,
        hours=hours,
        p10=p10,
        p50=p50,
        p90=p90,
        model_version=short_version(version),
        issue_time=issue,
    )


def short_version(version: str) -> str:
    """Fit a model version into the store's column, keeping it unique and readable."""
    if len(version) <= MODEL_VERSION_MAX:
        return version
    import hashlib

    digest = hashlib.sha1(version.encode()).hexdigest()[:10]
    return f"{version[: MODEL_VERSION_MAX - 11]}~{digest}"


def store_forecast(bind: Bind, fc: SeriesForecast) -> int:
    """Write a forecast to the store (read back by the day-ahead plan and the API)."""
    unit = "usd_per_mwh" if fc.product.endswith("energy") else "usd_per_mw"
    frame = pd.DataFrame(
        {
            "market": fc.market,
            "node": fc.node,
            "product": fc.product,
            "ts": fc.hours,
            "issue_time": fc.issue_time,
            "model_version": fc.model_version,
            "horizon_h": (fc.hours - fc.issue_time) / pd.Timedelta(hours=1),
            "p10": fc.p10,
            "p50": fc.p50,
            "p90": fc.p90,
            "unit": unit,
        }
    )
    return insert_price_forecasts(bind, frame)


def refresh_forecasts(
    bind: Bind,
    fleet: Fleet,
    rules: MarketRules,
    operating_day: dt.date,
    *,
    method: Method = "model",
    series: Sequence[tuple[str, str]] | None = None,
) -> list[SeriesForecast]:
    """Forecast and store every series the market's day-ahead plan of D reads.

    Returns
    -------
    list of SeriesForecast
        One per (node, series) forecast; a series with no stored history is skipped
        with a warning (an AS series: priced at 0 by the plan), except energy, whose
        absence raises.
    """
    out = []
    energy = rules.series_of("energy") or "da_energy"
    for node, product in series or forecast_series_needed(fleet, rules):
        try:
            fc = forecast_series(
                bind,
                rules,
                node=node,
                product=product,
                operating_day=operating_day,
                method=method,
            )
        except FleetInputError:
            if product == energy:
                raise
            logger.warning(
                "%s %s %s: no history, not forecast", rules.name, node, product
            )
            continue
        store_forecast(bind, fc)
        out.append(fc)
    logger.info(
        "forecasts %s %s: %d series (%s)",
        rules.name,
        operating_day,
        len(out),
        ", ".join(sorted({f.model_version for f in out})),
    )
    return out
