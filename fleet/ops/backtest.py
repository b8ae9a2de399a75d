"""Replay real prices day by day: DA plan, RT re-dispatch, two-settlement, bounds, baselines.

For each operating day D of the period (``docs/backtest.md`` has the definitions):

1. forecasts of D's day-ahead energy and AS prices, issued on D-1 as they would have
   been (only data known at the issue time);
2. the day-ahead plan of the market's front-of-meter sites at the P50 forecast: its
   net power is the DA energy position, its reserves the AS awards (a price taker);
3. real-time re-dispatch with the intraday engine (:class:`IntradayDispatcher`) every
   hour, at an RT price forecast made from what is known then, AS awards held;
4. two-settlement: DA position at DA prices, awards at DA AS prices, metered deviation
   at RT prices (hours without an RT price follow the DA position and are excluded);
5. the bounds: hindsight over both settlements (same physics and rules) and the DA-only
   perfect foresight;
6. baselines: a static AS offer, TB2/TB4 energy windows, and the same engine with
   ``naive_average`` forecasts.

Behind-the-meter sites are replayed day after day with the billing month's metered peak
carried across days; bill savings are reported per site and billing month.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dispatch.markets import MarketRules, load_market_rules
from dispatch.result import Result
from dispatch.scenario import Commitments, Scenario
from dispatch.solve import SolveOptions, solve
from dispatch.status import SolveStatus
from dispatch.twosettle import (
    TwoSettlementPlan,
    TwoSettlementValue,
    clear_linked_offers,
    stochastic_plan,
    two_settlement,
)
from fleet.domain import Fleet, Service, Site
from fleet.errors import FleetInputError
from fleet.ops.btm import LOOKBACK_DAYS, billing_cycle_start, btm_inputs
from fleet.ops.intraday import IntradayConfig, IntradayDispatcher
from fleet.ops.loads import read_load_profile
from fleet.ops.metering import LOAD_DEVICE, PCS_DEVICE, write_metered
from fleet.ops.scenario_builder import (
    ScenarioInputs,
    SiteState,
    build_scenario,
    operating_day_hours,
    operating_day_start,
)
from fleet.ops.settlement import (
    SETTLEMENT_MINUTES,
    DaySettlement,
    reserve_capability,
    reserve_held,
    settle_day,
    shortfall_rows,
)
from fleet.store import migrate
from fleet.store.dml import Bind
from fleet.store.engine import make_engine
from forecasting.baselines import (
    BASELINE_NAMES,
    baseline_forecasts,
    rt_premium_forecast,
    rt_spread_scenarios,
)
from forecasting.data import clean_series, read_price_csv

logger = logging.getLogger(__name__)

PERFECT = "perfect"
"""The reference forecaster that knows the day's actual DA prices (hindsight)."""
FORECASTERS: tuple[str, ...] = ("model", "model_mean", *BASELINE_NAMES, PERFECT)
"""Forecasters the backtest can issue day-ahead prices with: ``model`` plans at the
quantile model's P50, ``model_mean`` at its expected value from the three quantiles
(Swanson's rule, 0.3·P10 + 0.4·P50 + 0.3·P90: a price taker's expected revenue is linear
in the price, so the mean, not the median, is the price to plan at). ``perfect`` plans
at the actual DA prices of the day (energy and AS): not a strategy but the ceiling of
what any day-ahead price forecast can earn through this engine, so its
``value_of_forecast_usd`` is the value of perfect information."""
SWANSON_WEIGHTS: tuple[float, float, float] = (0.3, 0.4, 0.3)
"""Weights of P10, P50, P90 in the expected value of ``model_mean``."""
NAIVE = "naive_average"
"""The forecaster the value of a forecast is measured against."""
AS_OFFERS: tuple[str, ...] = ("linked", "fixed")
DA_PLANS: tuple[str, ...] = ("price_taker", "two_settlement", "stochastic")
"""How the day-ahead position is planned (:class:`BacktestOptions`)."""
BASELINES: tuple[str, ...] = ("static_as", "tb2", "tb4", "naive_forecast")
"""Baselines every strategy is compared against (``docs/backtest.md``)."""
DEFAULT_PRICE_FILES: tuple[str, ...] = (
    "ercot_da_spp/ercot_da_spp_hubs_lz_2021_2025.csv.gz",
    "ercot_rt_da_hourly_15sp_2024_2026/ercot_rt_da_hourly_15sp_2024_2026.csv.gz",
    "ercot_as_mcpc/ercot_dam_as_mcpc_2022_2025.csv.gz",
    "ercot_rt_da_hourly_15sp_2024_2026/ercot_dam_as_mcpc_hourly_2024_2026.csv.gz",
)
"""Price files read from the shared data folder when ``--prices`` is not given."""
STATIC_AS_UP_SHARE = 0.6
"""Static AS offer: share of discharge power offered as reg-up when spin is also
offered (the rest is spin); all of it as reg-up otherwise."""
RT_SPREAD_DECAY = 0.6
"""RT forecast: the last known (RT - DA) spread decays by this factor per hour ahead
(fixed a priori, not tuned)."""
OPTS = SolveOptions(mip_rel_gap=1e-6, time_limit_s=60.0)
HINDSIGHT_OPTS = SolveOptions(mip_rel_gap=1e-4, time_limit_s=120.0)
STOCH_OPTS = SolveOptions(mip_rel_gap=1e-4, time_limit_s=60.0)
"""The hindsight bound is the solver's proven upper bound (within 0.01 % of the
optimum); an exact gap costs ~5x the time on sites sharing a POI."""


@dataclass(frozen=True, slots=True)
class BacktestOptions:
    """How the backtest runs."""

    market: str = "ERCOT"
    """Market whose sites are replayed."""
    forecaster: str = NAIVE
    """``model`` (quantile gradient boosting) or a naive baseline name."""
    refit_days: int = 28
    """Days between refits of the model forecaster."""
    workers: int = 1
    """Worker processes for the day solves (1: in this process)."""
    site_ids: tuple[str, ...] = ()
    """Only these sites (empty: all of the market's sites)."""
    realtime: bool = True
    """Re-dispatch in real time (False: the metered schedule is the DA position)."""
    load_dir: Path | None = None
    """Folder of the behind-the-meter load data sets (None: no BTM replay)."""
    rt_spread_decay: float = RT_SPREAD_DECAY
    """Hourly decay of the last known RT - DA spread in the RT forecast (0-1)."""
    da_plan: str = "price_taker"
    """``price_taker``: plan at the DA forecast and meter it; ``two_settlement``: plan
    the DA position, awards and the RT schedule together at the DA forecast and the
    expected RT premium (:func:`forecasting.baselines.rt_premium_forecast`)."""
    premium_days: int = 14
    """Days in the median of the expected RT premium."""
    as_offers: str = "linked"
    """``linked``: the plan's upward reserves are one offer block per site and hour,
    linked across the upward products and awarded to the mix that pays most at the
    actual clearing prices (:func:`dispatch.twosettle.clear_linked_offers`);
    ``fixed``: each product's planned MW is awarded as planned (a self-schedule)."""
    scenario_days: int = 30
    """``stochastic``: past days whose RT - DA spreads are the RT scenarios."""
    spread_scale: float = 1.0
    """``stochastic``: factor on the scenarios' spread around its hourly mean (the
    scenario schedules know their whole path, the RT re-dispatch does not)."""
    hindsight: str = "exact"
    """``exact``: the MILP's proven bound (0.01 % gap); ``relaxed``: the LP relaxation,
    a valid but looser bound (0.1-0.7 %), 20-60x faster (for long fleet runs)."""


@dataclass(frozen=True, slots=True)
class DayInputs:
    """Everything one day's solves need (plain data, picklable)."""

    day: dt.date
    """Operating day."""
    hours: int
    """Hours of the day (23-25)."""
    forecast: Mapping[str, Mapping[str, list[float]]]
    """Per node, per scenario product: P50 forecast [$/MWh, $/MW-h]."""
    actual: Mapping[str, Mapping[str, list[float]]]
    """Per node, per scenario product: actual DA prices (0 in dark hours)."""
    rt_energy: Mapping[str, list[float]]
    """Per node: actual real-time energy prices, hourly [$/MWh], NaN where missing."""
    dark_hours: tuple[int, ...] = ()
    """Hours without an actual DA price: nothing is traded (net power 0)."""
    naive: Mapping[str, Mapping[str, list[float]]] | None = None
    """Per node: the ``naive_average`` forecast (when the strategy uses another)."""
    rt_spread_before: Mapping[str, float] = field(default_factory=dict)
    """Per node: RT - DA of the previous day's last hour [$/MWh] (0 when unknown)."""
    rt_premium: Mapping[str, list[float]] = field(default_factory=dict)
    """Per node: expected RT - DA per hour as issued on D-1 [$/MWh] (empty: 0)."""
    rt_scenarios: Mapping[str, list[list[float]]] = field(default_factory=dict)
    """Per node: past RT - DA spread paths of the day's hours as issued on D-1
    [$/MWh] (0 where unknown; empty unless the DA plan is ``stochastic``)."""


@dataclass(frozen=True, slots=True)
class DayRow:
    """One day of the backtest (all money in USD, net of degradation unless named)."""

    day: str
    """Operating day (ISO)."""
    status: str
    """``ok`` or why the day was skipped."""
    hours: int = 0
    """Hours of the operating day (23, 24 or 25)."""
    revenue_usd: dict[str, float] = field(default_factory=dict)
    """Realized revenue: ``da_energy``, ``ancillary``, ``rt_deviation`` [$]."""
    degradation_usd: float = 0.0
    """Degradation cost of the metered schedule (positive number)."""
    net_usd: float = 0.0
    """Realized two-settlement value: revenue minus degradation."""
    day_ahead_usd: float = 0.0
    """The DA plan settled at DA prices only (the old single-settlement figure)."""
    da_only_perfect_foresight_usd: float = 0.0
    """Optimum of the same model at the actual DA prices."""
    hindsight_usd: float = 0.0
    """Optimum over both settlements with DA and RT prices known."""
    baselines_usd: dict[str, float] = field(default_factory=dict)
    """Two-settlement value of each baseline of :data:`BASELINES`."""
    rt_missing_hours: int = 0
    """Hours without an RT price (excluded from the RT figure)."""
    dark_hours: int = 0
    """Hours without an actual DA price (not traded)."""
    as_awarded_mwh: dict[str, float] = field(default_factory=dict)
    """Per reserve product: awarded MW-h."""
    as_shortfall_by_product_mwh: dict[str, float] = field(default_factory=dict)
    """Per reserve product: awarded MW-h not held (the settlement's rule)."""
    as_shortfall_mwh: float = 0.0
    """Awarded reserve not held, all products [MW-h]."""
    as_shortfall_usd: float = 0.0
    """Charge for it: ``shortfall_charge_factor`` x the DA AS price [$]."""
    rt_fallbacks: int = 0
    """Real-time steps that needed a fallback of the intraday engine."""
    ancillary_by_product_usd: dict[str, float] = field(default_factory=dict)
    """``ancillary`` per product of the market rules (``reg_up``, ``ecrs``, …) [$]."""
    awarded_mw_h: dict[str, float] = field(default_factory=dict)
    """Reserve awarded per product [MW-h]."""
    solve_seconds: float = 0.0
    """Wall time of the day's solves [s]."""


@dataclass(frozen=True, slots=True)
class BtmMonth:
    """Bill of one behind-the-meter site over one billing month (within the window)."""

    site_id: str
    """Site."""
    billing_month: str
    """First day of the billing cycle (ISO)."""
    days: int
    """Days of the cycle replayed."""
    bill_without_battery_usd: float
    """Energy + demand charge of the load alone [$]."""
    bill_with_battery_usd: float
    """Energy + demand charge of the metered import [$]."""
    savings_usd: float
    """Bill without minus bill with the battery [$]."""
    peak_without_mw: float
    """Highest 15-minute import of the load alone [MW]."""
    peak_with_mw: float
    """Highest metered 15-minute import [MW]."""
    energy_without_usd: float = 0.0
    """Energy part of the bill without the battery [$]."""
    demand_without_usd: float = 0.0
    """Demand charge without the battery: on the cycle's peak load [$]."""
    energy_with_usd: float = 0.0
    """Energy part of the bill with the battery [$]."""
    demand_with_usd: float = 0.0
    """Demand charge with the battery: on the cycle's peak import [$]."""


@dataclass(frozen=True, slots=True)
class BacktestReport:
    """The backtest's totals and its days."""

    start: dt.date
    """First operating day."""
    end: dt.date
    """Last operating day."""
    market: str
    """Market replayed."""
    sites: tuple[str, ...]
    """Front-of-meter sites replayed."""
    forecaster: str
    """Forecaster used for the day-ahead solve."""
    days: tuple[DayRow, ...]
    """One row per day."""
    seconds: float
    """Wall time of the whole backtest [s]."""
    btm: tuple[BtmMonth, ...] = ()
    """Behind-the-meter bills per site and billing month."""
    btm_sites: tuple[str, ...] = ()
    """Behind-the-meter sites replayed."""
    as_offers: str = "linked"
    """How the reserves were offered (:attr:`BacktestOptions.as_offers`)."""
    da_plan: str = "price_taker"
    """How the DA position and offers were planned (:attr:`BacktestOptions.da_plan`)."""

    @property
    def ok_days(self) -> list[DayRow]:
        """Days that were replayed (not skipped)."""
        return [d for d in self.days if d.status == "ok"]

    def totals(self) -> dict[str, Any]:
        """Return the JSON contract: values, bounds, captures, baselines, data gaps."""
        ok = self.ok_days
        revenue: dict[str, float] = {}
        baselines: dict[str, float] = {}
        by_product: dict[str, float] = {}
        awarded: dict[str, float] = {}
        for row in ok:
            for key, value in row.revenue_usd.items():
                revenue[key] = revenue.get(key, 0.0) + value
            for key, value in row.ancillary_by_product_usd.items():
                by_product[key] = by_product.get(key, 0.0) + value
            for key, value in row.awarded_mw_h.items():
                awarded[key] = awarded.get(key, 0.0) + value
            for key, value in row.baselines_usd.items():
                baselines[key] = baselines.get(key, 0.0) + value
        net = math.fsum(d.net_usd for d in ok)
        da = math.fsum(d.day_ahead_usd for d in ok)
        pf = math.fsum(d.da_only_perfect_foresight_usd for d in ok)
        hs = math.fsum(d.hindsight_usd for d in ok)

        def ratio(a: float, b: float) -> float | None:
            return round(a / b, 4) if b > 0 else None

        naive = baselines.get("naive_forecast")
        out: dict[str, Any] = {
            "market": self.market,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "sites": list(self.sites),
            "forecaster": self.forecaster,
            "as_offers": self.as_offers,
            "da_plan": self.da_plan,
            "days_replayed": len(ok),
            "days_skipped": len(self.days) - len(ok),
            "hours_replayed": sum(d.hours for d in ok),
            "revenue_usd": {k: round(v, 2) for k, v in sorted(revenue.items())},
            "ancillary_by_product_usd": {k: round(v, 2) for k, v in by_product.items()},
            "awarded_mw_h": {k: round(v, 3) for k, v in awarded.items()},
            "degradation_usd": round(math.fsum(d.degradation_usd for d in ok), 2),
            "net_usd": round(net, 2),
            "hindsight_usd": round(hs, 2),
            "capture_vs_hindsight": ratio(net, hs),
            "hindsight_gap_top10_days_share": _top_share(ok, 10),
            "da_only_perfect_foresight_usd": round(pf, 2),
            "capture_vs_da_only": ratio(net, pf),
            "day_ahead_usd": round(da, 2),
            "day_ahead_capture_vs_da_only": ratio(da, pf),
            "baselines": {k: round(baselines.get(k, 0.0), 2) for k in BASELINES},
            "value_over_baselines": {
                k: ratio(net, baselines[k]) for k in BASELINES if k in baselines
            },
            "value_of_forecast_usd": None
            if naive is None
            else round(net - naive, 2) + 0.0,
            "rt_missing_hours": sum(d.rt_missing_hours for d in ok),
            "rt_missing_days": [d.day for d in ok if d.rt_missing_hours],
            "dark_hours": sum(d.dark_hours for d in ok),
            "as_awarded_mwh": round(
                math.fsum(math.fsum(d.as_awarded_mwh.values()) for d in ok), 3
            ),
            "as_awarded_by_product_mwh": _by_product(ok, "as_awarded_mwh"),
            "as_shortfall_mwh": round(math.fsum(d.as_shortfall_mwh for d in ok), 3),
            "as_shortfall_by_product_mwh": _by_product(
                ok, "as_shortfall_by_product_mwh"
            ),
            "as_shortfall_usd": round(math.fsum(d.as_shortfall_usd for d in ok), 2),
            "rt_fallbacks": sum(d.rt_fallbacks for d in ok),
            "seconds": round(self.seconds, 2),
        }
        if self.btm_sites:
            out["btm_sites"] = list(self.btm_sites)
            out["btm_bill_savings_usd"] = round(
                math.fsum(m.savings_usd for m in self.btm), 2
            )
            out["btm_bills"] = [asdict(m) for m in self.btm]
        return out

    def to_json(self) -> dict[str, Any]:
        """Return the totals plus the per-day rows."""
        return {**self.totals(), "days": [asdict(d) for d in self.days]}


def _top_share(days: Sequence[DayRow], k: int) -> float | None:
    """Share of Σ (hindsight - realized) that the ``k`` days with the largest gap hold."""
    gaps = sorted((d.hindsight_usd - d.net_usd for d in days), reverse=True)
    total = math.fsum(gaps)
    return round(math.fsum(gaps[:k]) / total, 4) if total > 0 else None


def _by_product(days: Sequence[DayRow], name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for d in days:
        for product, mwh in getattr(d, name).items():
            out[product] = out.get(product, 0.0) + mwh
    return {p: round(v, 3) for p, v in sorted(out.items())}


def default_price_files(shared_data_dir: Path) -> list[Path]:
    """Return the shared data files the backtest reads by default."""
    return [shared_data_dir / name for name in DEFAULT_PRICE_FILES]


def read_prices(paths: Sequence[Path], market: str) -> pd.DataFrame:
    """Read and concatenate price CSVs of the normalized layout for one market.

    Raises
    ------
    FleetInputError
        When no file is given or a file is missing or malformed (naming it).
    """
    if not paths:
        msg = "--prices: no price file given"
        raise FleetInputError(msg)
    frames = []
    for path in paths:
        try:
            frames.append(read_price_csv(path, market=market))
        except ValueError as exc:
            raise FleetInputError(str(exc)) from None
    return pd.concat(frames, ignore_index=True)


def _series(frame: pd.DataFrame, node: str, product: str) -> pd.Series | None:
    rows = frame[(frame["node"] == node) & (frame["product"] == product)]
    rows = rows.drop_duplicates("timestamp_utc")
    if rows.empty:
        return None
    series = pd.Series(
        rows["price"].to_numpy(float), index=pd.DatetimeIndex(rows["timestamp_utc"])
    ).sort_index(kind="stable")
    cleaned, _ = clean_series(series)
    return cleaned


def _forecast(
    y: pd.Series,
    days: list[dt.date],
    *,
    method: str,
    tz: str,
    product: str,
    refit_days: int,
    clock: Callable[[], float] | None,
) -> pd.Series:
    """P50 forecast of ``y`` for every hour of ``days``, issued on D-1.

    ``perfect`` returns ``y`` itself: the day's actual prices, known only in hindsight.
    """
    if method == PERFECT:
        return y
    if method in ("model", "model_mean"):
        from forecasting.backtest import rolling_backtest
        from forecasting.price import PriceForecaster

        def make() -> PriceForecaster:
            return PriceForecaster(tz=tz, product=product)

        result = rolling_backtest(
            y, make, start=days[0], end=days[-1], refit_days=refit_days, clock=clock
        )
        frame = result.forecasts
        values = frame["p50"].to_numpy(float)
        if method == "model_mean":
            w10, w50, w90 = SWANSON_WEIGHTS
            values = (
                w10 * frame["p10"].to_numpy(float)
                + w50 * values
                + w90 * frame["p90"].to_numpy(float)
            )
        return pd.Series(values, index=pd.DatetimeIndex(frame["timestamp_utc"]))
    base = baseline_forecasts(y, days, tz=tz, product=product)
    return base[method]


def _fill(values: np.ndarray) -> np.ndarray | None:
    """Fill forecast gaps with the day's mean; None when all are missing."""
    if not np.isfinite(values).any():
        return None
    return np.where(np.isfinite(values), values, np.nanmean(values))


def prepare_days(
    fleet: Fleet,
    prices: pd.DataFrame,
    start: dt.date,
    end: dt.date,
    options: BacktestOptions,
    clock: Callable[[], float] | None = None,
) -> list[DayInputs | DayRow]:
    """Issue the forecasts and cut the actual prices into one input per day.

    Every local hour of the day is kept (23, 24 or 25). An hour without an actual DA
    price is a dark hour (not traded); a day whose DA prices are all missing is
    skipped. Missing RT hours stay missing (NaN): they are counted, never filled.

    Returns
    -------
    list
        Per day: a :class:`DayInputs`, or a skipped :class:`DayRow`.

    Raises
    ------
    FleetInputError
        When the period is empty, a forecaster name is unknown or a node has no
        price series.
    """
    if end < start:
        msg = f"--end={end} is before --start={start}"
        raise FleetInputError(msg)
    if options.forecaster not in FORECASTERS:
        msg = f"--forecaster={options.forecaster!r} must be one of {list(FORECASTERS)}"
        raise FleetInputError(msg)
    if options.hindsight not in ("exact", "relaxed"):
        msg = f"--hindsight={options.hindsight!r} must be 'exact' or 'relaxed'"
        raise FleetInputError(msg)
    if options.as_offers not in AS_OFFERS:
        msg = f"--as-offers={options.as_offers!r} must be one of {list(AS_OFFERS)}"
        raise FleetInputError(msg)
    if options.da_plan not in DA_PLANS:
        msg = f"--da-plan={options.da_plan!r} must be one of {list(DA_PLANS)}"
        raise FleetInputError(msg)
    rules = load_market_rules(options.market)
    sites = _sites(fleet, rules, options.site_ids)
    nodes = sorted({s.node for s in sites})
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    first = operating_day_start(rules, start - dt.timedelta(days=1))
    last = operating_day_start(rules, end + dt.timedelta(days=1))
    hours_index = pd.date_range(first, last, freq="h", inclusive="left")
    methods = [options.forecaster]
    if options.forecaster != NAIVE:
        methods.append(NAIVE)
    actual: dict[tuple[str, str], pd.Series] = {}
    forecast: dict[tuple[str, str, str], pd.Series] = {}
    # Ancillary services, their price series and price nodes: the market rules.
    as_series = {
        str(p.service): p.price_series
        for p in rules.reserve_products
        if p.price_series is not None
    }
    keys = [(node, "energy", "da_energy") for node in nodes]
    keys += list(
        dict.fromkeys(
            (rules.as_node(node, svc), svc, prod)
            for node in nodes
            for svc, prod in as_series.items()
        )
    )
    for node, svc, product in keys:
        y = _series(prices, node, product)
        if y is None:
            if svc == "energy":
                msg = f"--prices: no {options.market} da_energy series for node {node}"
                raise FleetInputError(msg)
            logger.warning("no %s prices: %s is priced at 0", product, svc)
            continue
        actual[(node, svc)] = y.reindex(hours_index)
        for method in methods:
            fc = _forecast(
                y,
                days,
                method=method,
                tz=rules.timezone,
                product=product,
                refit_days=options.refit_days,
                clock=clock,
            )
            forecast[(method, node, svc)] = fc.reindex(hours_index)
        logger.info("forecast %s/%s for %d days", node, product, len(days))
    rt: dict[str, pd.Series] = {}
    for node in nodes:
        series = _series(prices, node, "rt_energy")
        rt[node] = (
            series.reindex(hours_index)
            if series is not None
            else pd.Series(np.nan, index=hours_index)
        )
    premium: dict[str, pd.Series] = {}
    scen: dict[str, pd.DataFrame] = {}
    for node in nodes if options.da_plan in ("stochastic", "two_settlement") else ():
        da_y = _series(prices, node, "da_energy")
        rt_y = _series(prices, node, "rt_energy")
        if da_y is None or rt_y is None:
            continue
        if options.da_plan == "stochastic":
            scen[node] = rt_spread_scenarios(
                da_y, rt_y, days, tz=rules.timezone, window_days=options.scenario_days
            )
        else:
            premium[node] = rt_premium_forecast(
                da_y, rt_y, days, tz=rules.timezone, window_days=options.premium_days
            )
    out: list[DayInputs | DayRow] = []
    for day in days:
        lo = operating_day_start(rules, day)
        n = operating_day_hours(rules, day)
        idx = pd.date_range(lo, periods=n, freq="h")
        dark = np.zeros(n, dtype=bool)
        for node in nodes:
            dark |= ~np.isfinite(actual[(node, "energy")].reindex(idx).to_numpy(float))
        # An AS series the day has no price for at all (e.g. ECRS before it
        # existed) is left out and priced at 0; one missing some hours darkens them.
        absent: set[tuple[str, str]] = set()
        for node in nodes:
            for svc in as_series:
                key = (rules.as_node(node, svc), svc)
                if key not in actual:
                    continue
                values = actual[key].reindex(idx).to_numpy(float)
                if not np.isfinite(values).any():
                    absent.add(key)
                    continue
                dark |= ~np.isfinite(values)
        if dark.all():
            out.append(
                DayRow(day=day.isoformat(), status="no actual DA prices", hours=n)
            )
            continue
        cut: dict[str, dict[str, dict[str, list[float]]]] = {m: {} for m in methods}
        day_act: dict[str, dict[str, list[float]]] = {}
        missing = None
        for node in nodes:
            day_act[node] = {}
            for method in methods:
                cut[method][node] = {}
            for svc in ("energy", *as_series):
                key = (
                    (node, svc) if svc == "energy" else (rules.as_node(node, svc), svc)
                )
                if key not in actual or key in absent:
                    continue
                act = actual[key].reindex(idx).to_numpy(float)
                day_act[node][svc] = [float(v) for v in np.where(dark, 0.0, act)]
                for method in methods:
                    fc = _fill(forecast[(method, *key)].reindex(idx).to_numpy(float))
                    if fc is None:
                        missing = f"no {svc} forecast"
                        break
                    cut[method][node][svc] = [float(v) for v in np.where(dark, 0.0, fc)]
        if missing:
            out.append(DayRow(day=day.isoformat(), status=missing, hours=n))
            continue
        day_rt: dict[str, list[float]] = {}
        day_premium: dict[str, list[float]] = {}
        day_scen: dict[str, list[list[float]]] = {}
        before: dict[str, float] = {}
        for node in nodes:
            values = rt[node].reindex(idx).to_numpy(float)
            values = np.where(dark, np.nan, values)
            day_rt[node] = [float(v) for v in values]
            prev = lo - dt.timedelta(hours=1)
            spread = rt[node].get(prev, np.nan) - actual[(node, "energy")].get(
                prev, np.nan
            )
            before[node] = float(spread) if np.isfinite(spread) else 0.0
            if node in premium:
                values = premium[node].reindex(idx).to_numpy(float)
                values = np.where(dark | ~np.isfinite(values), 0.0, values)
                day_premium[node] = [float(v) for v in values]
            if node in scen:
                values = scen[node].reindex(columns=idx).to_numpy(float)
                values = np.where(dark[None, :] | ~np.isfinite(values), 0.0, values)
                day_scen[node] = [[float(v) for v in row] for row in values]
        out.append(
            DayInputs(
                day=day,
                hours=n,
                forecast=cut[options.forecaster],
                actual=day_act,
                rt_energy=day_rt,
                dark_hours=tuple(int(i) for i in np.flatnonzero(dark)),
                naive=cut[NAIVE] if options.forecaster != NAIVE else None,
                rt_spread_before=before,
                rt_premium=day_premium,
                rt_scenarios=day_scen,
            )
        )
    return out


def _sites(
    fleet: Fleet, rules: MarketRules, site_ids: Sequence[str], *, btm: bool = False
) -> list[Site]:
    market = [s for s in fleet.sites if s.market.value == rules.name]
    if site_ids:
        unknown = sorted(set(site_ids) - {s.id for s in market})
        if unknown:
            msg = (
                f"--site: {unknown} not {rules.name} sites of the fleet "
                f"(have {[s.id for s in market]})"
            )
            raise FleetInputError(msg)
        market = [s for s in market if s.id in site_ids]
    sites = [s for s in market if s.is_btm == btm]
    if not sites and not btm and not any(s.is_btm for s in market):
        msg = f"the fleet has no front-of-meter {rules.name} site"
        raise FleetInputError(msg)
    return sites


def fixed_plan(
    scn: Scenario, result: Result, *, keep_services: bool = False
) -> Scenario:
    """Return ``scn`` with every site's schedule fixed to ``result``'s.

    Net power is fixed per interval; AS awards are fixed by dropping the services
    and committing the planned MW (a service the site is not enrolled in has its
    variable bounded above by the commitment). The model then only re-optimizes the
    segment assignment of degradation, so the objective is the plan's value.
    """
    sites = []
    for site in scn.sites:
        sched = result.sites[site.id]
        net = [d - c for c, d in zip(sched.charge_mw, sched.discharge_mw, strict=True)]
        com = Commitments(
            reserves_mw={p: list(sched.reserve(p)) for p in scn.reserve_names},
            net_mw=list(net),
        )
        services = list(site.services) if keep_services else ["energy"]
        sites.append(
            site.model_copy(
                update={
                    "commitments": com,
                    "services": services,
                    "soc_final_min": site.soc_min,
                }
            )
        )
    return scn.model_copy(update={"sites": sites})


def _net_of(result: Result, site_id: str) -> list[float]:
    sched = result.sites[site_id]
    return [d - c for c, d in zip(sched.charge_mw, sched.discharge_mw, strict=True)]


def plan_of(
    result: Result, rt_net: Mapping[str, Sequence[float]] | None = None
) -> TwoSettlementPlan:
    """Return the DA position and awards of a solved plan; metered = ``rt_net`` or DA."""
    da = {sid: _net_of(result, sid) for sid in result.sites}
    return TwoSettlementPlan(
        da_net_mw=da,
        reserves_mw={
            sid: {p: list(v) for p, v in s.reserves_mw.items()}
            for sid, s in result.sites.items()
        },
        rt_net_mw=dict(rt_net) if rt_net is not None else da,
    )


def static_as_plan(scn: Scenario) -> TwoSettlementPlan:
    """Return the static AS offer: the same reserve MW every hour, no energy, no forecast.

    Per site: reg-up ``STATIC_AS_UP_SHARE`` of the discharge power and spin the rest
    (all reg-up without spin); reg-down sized so the expected deployment is
    energy-neutral, a_dn·η_c·rd = a_up·ru/η_d, within the charge power; all scaled
    down when the start SoC cannot sustain them for the reserve duration, and
    together within a shared POI's limits.
    """
    a_up, a_dn = scn.regulation.deploy_up, scn.regulation.deploy_down
    sustain = {r.name: r.sustain_h for r in scn.reserves}
    n = scn.intervals
    out: dict[str, tuple[float, float, float]] = {}
    for site in scn.sites:
        has = {svc: site.enrolled(svc) for svc in ("reg_up", "reg_down", "spin")}
        p_d, p_c = site.discharge_mw, site.charge_mw
        ec, ed = site.eta_charge, site.eta_discharge
        ru = p_d * (STATIC_AS_UP_SHARE if has["spin"] else 1.0) if has["reg_up"] else 0
        spn = p_d - ru if has["spin"] else 0.0
        rd = 0.0
        if has["reg_down"]:
            rd = p_c if a_dn <= 0 or ru == 0 else ru * a_up / (a_dn * ec * ed)
            if rd > p_c:
                ru = ru * p_c / rd
                rd = p_c
        if ru > 0 and not has["reg_down"] and a_up > 0:
            ru = 0.0  # reg-up alone would drain the battery every hour
        e0 = site.energy_mwh * site.soc_initial
        lo, hi = site.energy_mwh * site.soc_min, site.energy_mwh * site.soc_max
        factor = 1.0
        up_mwh = (sustain["reg_up"] * ru + sustain["spin"] * spn) / ed
        if up_mwh > 0:
            factor = min(factor, (e0 - lo) / up_mwh)
        if sustain["reg_down"] > 0 and rd > 0:
            factor = min(factor, (hi - e0) / (sustain["reg_down"] * ec * rd))
        factor = max(0.0, factor) * (1 - 1e-9)
        out[site.id] = (ru * factor, rd * factor, spn * factor)
    # Sites sharing a POI scale their offers by one factor so the group's limits hold.
    for group in scn.fleet.poi_groups if scn.fleet is not None else []:
        members = [sid for sid in group.sites if sid in out]
        up = sum(out[sid][0] + out[sid][2] for sid in members)
        down = sum(out[sid][1] for sid in members)
        factor = min(
            1.0,
            group.export_mw / up if up > 0 else 1.0,
            group.import_mw / down if down > 0 else 1.0,
        ) * (1 - 1e-9)
        for sid in members:
            out[sid] = tuple(v * factor for v in out[sid])  # type: ignore[assignment]
    zero = {sid: [0.0] * n for sid in out}
    return TwoSettlementPlan(
        da_net_mw=zero,
        reserves_mw={
            sid: {"reg_up": [v[0]] * n, "reg_down": [v[1]] * n, "spin": [v[2]] * n}
            for sid, v in out.items()
        },
        rt_net_mw=zero,
    )


def window_scenario(scn: Scenario, hours: int, dark: Sequence[int] = ()) -> Scenario:
    """Energy-only ``scn`` trading only in the TB-``hours`` windows (hindsight of DA).

    The ``hours`` cheapest and the ``hours`` dearest hours of each node's actual DA
    prices (dark hours excluded) are the windows; net power is 0 elsewhere, the whole
    SoC range is usable inside them.
    """
    sites = []
    for site in scn.sites:
        lam = np.asarray(scn.markets[site.node].energy, dtype=float)
        order = [i for i in np.argsort(lam, kind="stable") if i not in set(dark)]
        open_ = set(order[:hours]) | set(order[-hours:])
        net: list[float | None] = [
            None if i in open_ else 0.0 for i in range(scn.intervals)
        ]
        sites.append(
            site.model_copy(
                update={"services": ["energy"], "commitments": Commitments(net_mw=net)}
            )
        )
    return scn.model_copy(update={"sites": sites})


def rt_forecast(
    da: Sequence[float],
    rt: Sequence[float],
    hour: int,
    spread_before: float,
    *,
    decay: float = RT_SPREAD_DECAY,
    premium: Sequence[float] | None = None,
) -> list[float]:
    """RT price forecast for hours ``hour``… of the day, made at the start of ``hour``.

    Known then: the day's DA prices, the premium expected on D-1 and the RT prices of
    the hours before ``hour``. The forecast is DA plus the premium plus the last known
    surprise (RT - DA - premium), decaying by ``decay`` per hour ahead. Missing RT
    hours do not count as known.
    """
    da_arr = np.asarray(da, dtype=float)
    base = da_arr + (np.asarray(premium, dtype=float) if premium else 0.0)
    spread = spread_before
    for i in range(hour - 1, -1, -1):
        if np.isfinite(rt[i]):
            spread = float(rt[i] - base[i]) * decay ** (hour - 1 - i)
            break
    ahead = np.arange(1, len(da_arr) - hour + 1)
    return [float(v) for v in base[hour:] + spread * decay**ahead]


def _energy_only(fleet: Fleet, ids: Sequence[str]) -> Fleet:
    """Return the fleet of the sites ``ids`` only, enrolled in energy only."""
    sites = [
        s.model_copy(update={"services": [Service.ENERGY]})
        for s in fleet.sites
        if s.id in ids
    ]
    groups = [
        g
        for g in fleet.poi_groups
        if all(s.id in ids for s in fleet.sites if s.poi.group == g.name)
    ]
    return fleet.model_copy(update={"sites": sites, "poi_groups": groups})


def realtime_redispatch(
    fleet: Fleet,
    rules: MarketRules,
    inputs: DayInputs,
    plan: TwoSettlementPlan,
    site_ids: Sequence[str],
    *,
    decay: float = RT_SPREAD_DECAY,
) -> tuple[
    dict[str, list[float]],
    dict[str, list[float]],
    int,
    dict[str, dict[str, list[float]]] | None,
]:
    """Re-dispatch the day hourly with the intraday engine at the RT forecast.

    The simulated plant follows each setpoint for the hour. AS awards are held as
    fixed commitments; hours without an RT price follow the DA position. Reserve the
    engine reports as not covered is a shortfall, charged back at the hour's DA price
    of the product (the award's payment is returned).

    Returns
    -------
    tuple
        Metered net power per site and hour [MW], the plant's SoC at each hour's
        start per site (0-1), the number of steps that needed a fallback, and the
        reserves the plant held per site, product and hour where the engine gave part
        of an award up (an RT price worth more than the award; None when every award
        was held). Held is judged from the metered power and SoC as the settlement
        judges the meters (:func:`held_reserves`, :func:`reserve_shortfall`); only
        held regulation is deployed.
    """
    per = 4
    grid = inputs.hours * per
    rt_missing = {
        node: ~np.isfinite(np.asarray(v, dtype=float))
        for node, v in inputs.rt_energy.items()
    }
    sites = {str(s.id): s for s in fleet.sites if s.id in site_ids}
    awards: dict[str, Commitments] = {}
    for sid, site in sites.items():
        pos = plan.da_net_mw[sid]
        net: list[float | None] = [
            float(pos[i // per]) if rt_missing[site.node][i // per] else None
            for i in range(grid)
        ]
        awards[sid] = Commitments(
            reserves_mw={
                p: [float(series[i // per]) for i in range(grid)]
                for p, series in plan.reserves_mw.get(sid, {}).items()
            },
            net_mw=net,
        )
    soc = {sid: s.battery.soc_initial for sid, s in sites.items()}
    clock_ms = [0]
    hour = [0]

    def prices(
        start: dt.datetime, n: int, minutes: int
    ) -> dict[str, dict[str, list[float]]]:
        del start, minutes
        out = {}
        for node in inputs.rt_energy:
            fc = rt_forecast(
                inputs.actual[node]["energy"],
                inputs.rt_energy[node],
                hour[0],
                inputs.rt_spread_before.get(node, 0.0),
                decay=decay,
                premium=inputs.rt_premium.get(node),
            )
            out[node] = {"energy": fc[:n]}
            # The day's AS clearing prices (known since D-1) set the engine's price
            # of giving an award up, as the operator's price source does.
            for product in rules.reserve_services:
                cleared = inputs.actual[node].get(product)
                if cleared is not None:
                    rest = [float(v) for v in np.nan_to_num(cleared[hour[0] :])]
                    out[node][product] = rest[:n]
        return out

    dispatcher = IntradayDispatcher(
        _energy_only(fleet, list(sites)),
        rules,
        inputs.day,
        prices=prices,
        states=lambda: {sid: (clock_ms[0], v) for sid, v in soc.items()},
        awards=awards,
        config=IntradayConfig(
            interval_minutes=15,
            model_interval_minutes=60,
            solve_time_limit_s=30.0,
            # the replayed plant follows its plan's energy and keeps the settlement's
            # sustain rule exactly (no planning margin)
            hold_energy_awards=True,
            sustain_margin=0.0,
            stale_after_s=7200.0,
        ),
    )
    metered = {sid: [0.0] * inputs.hours for sid in sites}
    soc_start = {sid: [0.0] * inputs.hours for sid in sites}
    held = {
        sid: {p: [float(v) for v in series] for p, series in awarded.items()}
        for sid, awarded in plan.reserves_mw.items()
        if sid in sites
    }
    gave_up = False
    fallbacks = 0
    for h in range(inputs.hours):
        now = dispatcher.interval_start(h * per)
        clock_ms[0] = int(now.timestamp() * 1000)
        hour[0] = h
        report = dispatcher.step(now)
        if report.fallback != "none" or report.status not in ("optimal", "feasible"):
            fallbacks += 1
        for sid, site in sites.items():
            p = report.setpoints_mw.get(sid, float(plan.da_net_mw[sid][h]))
            soc_start[sid][h] = soc[sid]
            awarded = _at(held.get(sid, {}), h)
            kept = held_reserves(site, rules, awarded, p, soc[sid])
            for product, mw in kept.items():
                if mw < awarded[product] - 1e-6:
                    held[sid][product][h] = mw
                    gave_up = True
            soc[sid] = _plant_soc(site, rules, kept, p, soc[sid])
            metered[sid][h] = p
    return metered, soc_start, fallbacks, (held if gave_up else None)


def held_reserves(
    site: Site, rules: MarketRules, awarded: Mapping[str, float], p: float, soc: float
) -> dict[str, float]:
    """Return the part of an hour's awards a site holds at net power ``p`` and ``soc``.

    Per direction the site holds what the settlement's rule allows
    (:func:`fleet.ops.settlement.reserve_held`); when the awards exceed it, each
    product keeps its pro-rata share [MW].
    """
    cap = reserve_capability(site.battery, np.array([p]), np.array([soc]))
    sustain = {str(r.service): r.sustain_h for r in rules.reserve_products}
    out = dict(awarded)
    for direction in ("up", "down"):
        products = [
            str(r.service)
            for r in rules.reserve_products
            if r.direction == direction and str(r.service) in awarded
        ]
        total = math.fsum(awarded[k] for k in products)
        if total <= 0:
            continue
        awards = {k: np.array([awarded[k]]) for k in products}
        limit = float(reserve_held(cap, direction, awards, sustain)[0])
        if total > limit + 1e-6:
            for k in products:
                out[k] = awarded[k] * max(0.0, limit) / total
    return out


def _plant_soc(
    site: Site,
    rules: MarketRules,
    held: Mapping[str, float],
    p: float,
    soc: float,
) -> float:
    """SoC after an hour at net power ``p`` with the held regulation deployed."""
    b = site.battery
    ru = held.get("reg_up", 0.0)
    rd = held.get("reg_down", 0.0)
    c, d = max(-p, 0.0), max(p, 0.0)
    de = (
        b.eta_charge * (c + rules.deploy_down * rd)
        - (d + rules.deploy_up * ru) / b.eta_discharge
    )
    e = soc * b.energy_mwh + de
    return min(b.soc_max, max(b.soc_min, e / b.energy_mwh))


@dataclass(frozen=True, slots=True)
class Shortfall:
    """Reserve awarded and not held over a day, judged as the settlement judges it."""

    awarded_mwh: dict[str, float] = field(default_factory=dict)
    """Per reserve product: awarded MW-h."""
    shortfall_mwh: dict[str, float] = field(default_factory=dict)
    """Per reserve product: awarded MW-h the fleet did not hold."""
    charge_usd: float = 0.0
    """The charge for it (positive) [$]."""

    @property
    def total_mwh(self) -> float:
        """Shortfall over all products [MW-h]."""
        return math.fsum(self.shortfall_mwh.values())


def reserve_shortfall(
    fleet: Fleet,
    rules: MarketRules,
    inputs: DayInputs,
    plan: TwoSettlementPlan,
    metered: Mapping[str, Sequence[float]],
    soc_start: Mapping[str, Sequence[float]],
) -> Shortfall:
    """Judge the day's awards against the metered path, as the settlement does.

    Per site and hour the reserve held up and down follows from the metered power
    and the SoC at the hour's start (:func:`fleet.ops.settlement.reserve_capability`);
    the fleet's capability is pooled per direction and what the awards exceed is
    charged at ``shortfall_charge_factor`` x the product's DA clearing price
    (:func:`fleet.ops.settlement.shortfall_rows`, the rule of ``settle_day``).
    """
    sites = {s.id: s for s in fleet.sites if s.id in metered}
    capability: dict[str, dict[str, np.ndarray]] = {}
    as_award: dict[str, dict[str, np.ndarray]] = {}
    as_price: dict[str, dict[str, np.ndarray]] = {}
    for sid, site in sites.items():
        capability[sid] = reserve_capability(
            site.battery,
            np.asarray(metered[sid], dtype=float),
            np.asarray(soc_start[sid], dtype=float),
        )
        as_award[sid] = {}
        as_price[sid] = {}
        held = plan.reserves_mw.get(sid, {})
        for product in rules.reserve_services:
            mw = np.asarray(held.get(product, ()), dtype=float)
            if not mw.any():
                continue
            as_award[sid][product] = mw
            as_price[sid][product] = _cleared(inputs, site.node, product, len(mw))
    out = DaySettlement(rules.name, inputs.day)
    rows = shortfall_rows(rules, inputs.day, capability, as_award, as_price, out, 1.0)
    return Shortfall(
        awarded_mwh={p: round(v, 6) for p, v in out.awarded_mwh.items()},
        shortfall_mwh={p: round(v, 6) for p, v in out.shortfall_mwh.items()},
        charge_usd=-math.fsum(float(r["amount_usd"]) for r in rows),
    )


def _cleared(inputs: DayInputs, node: str, product: str, n: int) -> np.ndarray:
    """Return the day's DA clearing price of a reserve product at ``node`` (0: unknown)."""
    price = inputs.actual[node].get(product, [0.0] * n)
    out: np.ndarray = np.nan_to_num(np.asarray(price, dtype=float))
    return out


def _at(series: Mapping[str, Sequence[float]], h: int) -> dict[str, float]:
    """Return each product's value in hour ``h``."""
    return {k: float(v[h]) for k, v in series.items()}


def da_plan_soc(
    fleet: Fleet, rules: MarketRules, plan: TwoSettlementPlan, hours: int
) -> dict[str, list[float]]:
    """Return the plant's SoC at each hour's start when it follows the DA position."""
    out: dict[str, list[float]] = {}
    for site in fleet.sites:
        if site.id not in plan.da_net_mw:
            continue
        soc = site.battery.soc_initial
        trace = []
        for h in range(hours):
            trace.append(soc)
            p = float(plan.da_net_mw[site.id][h])
            held = _at(plan.reserves_mw.get(site.id, {}), h)
            soc = _plant_soc(site, rules, held, p, soc)
        out[site.id] = trace
    return out


def _dark_commitments(
    ids: Sequence[str], hours: int, dark: Sequence[int]
) -> dict[str, Commitments]:
    if not dark:
        return {}
    net: list[float | None] = [0.0 if i in set(dark) else None for i in range(hours)]
    return {sid: Commitments(net_mw=net) for sid in ids}


def _strategy(
    fleet: Fleet,
    rules: MarketRules,
    options: BacktestOptions,
    inputs: DayInputs,
    scn_fc: Scenario,
    scn_act: Scenario,
    ids: Sequence[str],
) -> tuple[TwoSettlementPlan, TwoSettlementValue, Shortfall, int] | str:
    """Plan the DA position and awards, re-dispatch in RT, settle both markets."""
    if options.da_plan == "two_settlement":
        expected = {
            node: [
                float(v) + p
                for v, p in zip(
                    scn_fc.markets[node].energy or [0.0] * scn_fc.intervals,
                    list(inputs.rt_premium.get(node) or [0.0] * scn_fc.intervals),
                    strict=True,
                )
            ]
            for node in scn_fc.markets
        }
        joint = two_settlement(scn_fc, expected, options=HINDSIGHT_OPTS)
        if joint.status not in ("optimal", "feasible"):
            return f"plan {joint.status}: {joint.reason}"
        da_plan = TwoSettlementPlan(
            da_net_mw=joint.da_net_mw,
            reserves_mw=joint.reserves_mw,
            rt_net_mw=joint.da_net_mw,
        )
    elif options.da_plan == "stochastic":
        paths = {}
        for node in scn_fc.markets:
            level = np.asarray(
                scn_fc.markets[node].energy or [0.0] * scn_fc.intervals, dtype=float
            )
            dev = np.asarray(
                inputs.rt_scenarios.get(node) or [[0.0] * scn_fc.intervals]
            )
            dev = options.spread_scale * (dev - dev.mean(axis=0))
            paths[node] = [[float(v) for v in level + row] for row in dev]
        stoch = stochastic_plan(scn_fc, paths, options=STOCH_OPTS)
        if stoch.status not in ("optimal", "feasible"):
            return f"plan {stoch.status}: {stoch.reason}"
        da_plan = TwoSettlementPlan(
            da_net_mw=stoch.da_net_mw,
            reserves_mw=stoch.reserves_mw,
            rt_net_mw=stoch.da_net_mw,
        )
    else:
        plan = solve(scn_fc, OPTS)
        if plan.status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            return f"plan {plan.status}: {plan.reason}"
        da_plan = plan_of(plan)
    if options.as_offers == "linked":
        cleared = clear_linked_offers(scn_act, da_plan, options=OPTS)
        if isinstance(cleared, str):
            logger.warning("%s: %s; awarded as planned", inputs.day, cleared)
        else:
            da_plan = cleared
    fallbacks = 0
    metered_plan = da_plan
    if options.realtime:
        metered, soc_start, fallbacks, held = realtime_redispatch(
            fleet, rules, inputs, da_plan, ids, decay=options.rt_spread_decay
        )
        metered_plan = dataclasses.replace(da_plan, rt_net_mw=metered, held_mw=held)
    else:
        metered = {sid: list(v) for sid, v in da_plan.da_net_mw.items()}
        soc_start = da_plan_soc(fleet, rules, da_plan, inputs.hours)
    shortfall = reserve_shortfall(fleet, rules, inputs, da_plan, metered, soc_start)
    # The metered path is settled as it happened: the BMS foldback is a planning
    # limit, not a rule of the settlement.
    settle_scn = scn_act.model_copy(
        update={
            "sites": [s.model_copy(update={"foldback": None}) for s in scn_act.sites]
        }
    )
    value = two_settlement(
        settle_scn, inputs.rt_energy, plan=metered_plan, options=OPTS
    )
    if value.status not in ("optimal", "feasible") and metered_plan is not da_plan:
        # The re-dispatched path cannot be settled even with the awards it gave up
        # not held: the day settles on its day-ahead plan, counted as a fallback.
        logger.warning(
            "%s: re-dispatched path not settleable (%s); day-ahead plan settled",
            inputs.day,
            value.reason,
        )
        fallbacks += 1
        metered_plan = da_plan
        value = two_settlement(settle_scn, inputs.rt_energy, plan=da_plan, options=OPTS)
        metered = {sid: list(v) for sid, v in da_plan.da_net_mw.items()}
        soc_start = da_plan_soc(fleet, rules, da_plan, inputs.hours)
        shortfall = reserve_shortfall(fleet, rules, inputs, da_plan, metered, soc_start)
    if value.status not in ("optimal", "feasible"):
        return f"settlement {value.status}: {value.reason}"
    if metered_plan.held_mw is not None:
        shortfall = _with_unheld(rules, inputs, scn_act, metered_plan, value, shortfall)
    return da_plan, value, shortfall, fallbacks


def _with_unheld(
    rules: MarketRules,
    inputs: DayInputs,
    scn: Scenario,
    plan: TwoSettlementPlan,
    value: TwoSettlementValue,
    shortfall: Shortfall,
) -> Shortfall:
    """Add what the settled path held less than ``plan.held_mw`` to the shortfall.

    The capability rule (:func:`held_reserves`) and the model's energy cover differ in
    detail; where the model's path held less, the rest was neither deployed nor held
    and is charged back like any shortfall.
    """
    factor = rules.shortfall_charge_factor
    mwh = dict(shortfall.shortfall_mwh)
    charge = shortfall.charge_usd
    nodes = {s.id: s.node for s in scn.sites}
    for sid, products in (plan.held_mw or {}).items():
        for product, series in products.items():
            got = value.held_mw.get(sid, {}).get(product)
            if got is None:
                continue
            gap = np.maximum(
                np.asarray(series, dtype=float) - np.asarray(got, dtype=float), 0.0
            )
            gap[gap < 1e-6] = 0.0
            if not gap.any():
                continue
            price = _cleared(inputs, nodes[sid], product, len(gap))
            mwh[product] = round(mwh.get(product, 0.0) + float(gap.sum()), 6)
            charge += factor * float(np.dot(gap, price))
    return dataclasses.replace(shortfall, shortfall_mwh=mwh, charge_usd=charge)


def run_day(fleet: Fleet, options: BacktestOptions, inputs: DayInputs) -> DayRow:
    """Replay one operating day: plan, re-dispatch, settle, bounds, baselines.

    Parameters
    ----------
    fleet
        The fleet.
    options
        Market, site selection, real-time re-dispatch on or off.
    inputs
        The day's forecasts and actual prices.

    Returns
    -------
    DayRow
    """
    t0 = time.perf_counter()
    rules = load_market_rules(options.market)
    sites = _sites(fleet, rules, options.site_ids)
    ids = [s.id for s in sites]
    start = operating_day_start(rules, inputs.day)
    dark = _dark_commitments(ids, inputs.hours, inputs.dark_hours)
    day = inputs.day.isoformat()

    def scenario(prices: Mapping[str, Mapping[str, list[float]]]) -> Scenario:
        return build_scenario(
            fleet,
            rules,
            ScenarioInputs(
                start=start,
                interval_minutes=60,
                intervals=inputs.hours,
                prices=prices,
                commitments=dark,
            ),
            site_ids=ids,
        )

    scn_act = scenario(inputs.actual)
    got = _strategy(
        fleet, rules, options, inputs, scenario(inputs.forecast), scn_act, ids
    )
    if isinstance(got, str):
        return DayRow(day, got, inputs.hours)
    da_plan, value, shortfall, fallbacks = got
    da_prices = {
        node: list(scn_act.markets[node].energy or [0.0] * scn_act.intervals)
        for node in scn_act.markets
    }
    settled = two_settlement(scn_act, da_prices, plan=da_plan, options=OPTS)
    perfect = solve(scn_act, OPTS)
    hindsight = two_settlement(
        scn_act,
        inputs.rt_energy,
        options=HINDSIGHT_OPTS,
        relax=options.hindsight == "relaxed",
    )
    for name, status, reason in (
        ("settle", settled.status, settled.reason),
        ("perfect", perfect.status, perfect.reason),
        ("hindsight", hindsight.status, hindsight.reason),
    ):
        if status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            return DayRow(day, f"{name} {status}: {reason}", inputs.hours)
    baselines: dict[str, float] = {}
    static = two_settlement(
        scn_act, inputs.rt_energy, plan=static_as_plan(scn_act), options=OPTS
    )
    if static.status in ("optimal", "feasible"):
        baselines["static_as"] = static.objective_usd
    else:
        logger.warning("%s: static AS offer %s: %s", day, static.status, static.reason)
    for k in (2, 4):
        tb = solve(window_scenario(scn_act, k, inputs.dark_hours), OPTS)
        if tb.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            val = two_settlement(
                scn_act, inputs.rt_energy, plan=plan_of(tb), options=OPTS
            )
            if val.status in ("optimal", "feasible"):
                baselines[f"tb{k}"] = val.objective_usd
    if inputs.naive is None:
        baselines["naive_forecast"] = value.objective_usd - shortfall.charge_usd
    else:
        naive = _strategy(
            fleet, rules, options, inputs, scenario(inputs.naive), scn_act, ids
        )
        if isinstance(naive, str):
            logger.warning("%s: naive-forecast baseline: %s", day, naive)
        else:
            baselines["naive_forecast"] = naive[1].objective_usd - naive[2].charge_usd
    return DayRow(
        day=day,
        status="ok",
        hours=inputs.hours,
        revenue_usd={
            "da_energy": value.da_energy_usd,
            "ancillary": value.as_usd,
            "rt_deviation": value.rt_deviation_usd,
        },
        degradation_usd=value.degradation_usd,
        net_usd=value.objective_usd - shortfall.charge_usd,
        day_ahead_usd=settled.objective_usd,
        da_only_perfect_foresight_usd=float(perfect.objective_usd or 0.0),
        hindsight_usd=hindsight.bound_usd,
        baselines_usd=baselines,
        rt_missing_hours=int(
            max(
                np.sum(~np.isfinite(np.asarray(v, dtype=float)))
                for v in inputs.rt_energy.values()
            )
        )
        - len(inputs.dark_hours),
        dark_hours=len(inputs.dark_hours),
        as_awarded_mwh=shortfall.awarded_mwh,
        as_shortfall_by_product_mwh=shortfall.shortfall_mwh,
        as_shortfall_mwh=shortfall.total_mwh,
        as_shortfall_usd=shortfall.charge_usd,
        rt_fallbacks=fallbacks,
        ancillary_by_product_usd=dict(value.as_by_product_usd),
        awarded_mw_h={
            p: math.fsum(
                math.fsum(series)
                for held in da_plan.reserves_mw.values()
                for q, series in held.items()
                if q == p
            )
            for p in scn_act.reserve_names
        },
        solve_seconds=time.perf_counter() - t0,
    )


def load_day_mw(
    series: pd.Series, day: dt.date, starts: pd.DatetimeIndex
) -> np.ndarray:
    """Return the load of ``day`` on the local interval ``starts`` [MW].

    The data set's day is the same weekday nearest to the same day of the year; its
    values are step-held onto the intervals (NaN → the day's mean).
    """
    available = sorted(set(series.index.date))
    target = day.timetuple().tm_yday
    candidates = [d for d in available if d.weekday() == day.weekday()] or available
    source = min(candidates, key=lambda d: abs(d.timetuple().tm_yday - target))
    values = series[series.index.date == source]
    minutes = np.asarray(values.index.hour * 60 + values.index.minute, dtype=float)
    grid = np.asarray(starts.hour * 60 + starts.minute, dtype=float)
    pos = np.clip(np.searchsorted(minutes, grid, side="right") - 1, 0, len(values) - 1)
    mw = values.to_numpy(float)[pos]
    fill = float(np.nanmean(mw)) if np.isfinite(mw).any() else 0.0
    out: np.ndarray = np.nan_to_num(mw, nan=fill)
    return out


def run_btm(
    fleet: Fleet,
    rules: MarketRules,
    sites: Sequence[Site],
    start: dt.date,
    end: dt.date,
    load_dir: Path,
    *,
    store: Bind | None = None,
) -> list[BtmMonth]:
    """Replay behind-the-meter sites day after day through the operations engine.

    A store (``store``, else a temporary SQLite one) is the replay's meter: each day
    the site is planned as in production (:func:`fleet.ops.btm.btm_inputs`: the load
    forecast from the metered load of the last 14 days, the tariff, the billing
    cycle's metered peak so far; :func:`fleet.ops.scenario_builder.build_scenario`
    on a 15-minute grid from the SoC the day before ended at); the simulated plant
    follows the plan against the actual load (the site's data set) within its SoC
    limits and without exporting when the tariff forbids it, and its meters (load
    ``meter1``, battery ``pcs1``) are stored; the day is settled by
    :func:`fleet.ops.settlement.settle_day` (``btm_bill``, ``btm_baseline_bill``,
    ``btm_savings``: the energy at the tariff and the demand charge on what the day
    adds to the cycle's peak). The days of a billing cycle add up to its bill: the
    demand charge is on the cycle's highest 15-minute import across its days.

    The 14 days before ``start`` are metered without the battery so that the first
    day's forecast has a history; when ``start`` is inside a billing cycle, only the
    days before that cycle are (the bill counts the window's days only), and the
    first day without a history is planned on the site's load profile, as a new site
    is.
    """
    if store is None:
        with tempfile.TemporaryDirectory(prefix="bessfleet-btm-") as tmp:
            url = f"sqlite:///{Path(tmp) / 'replay.sqlite'}"
            migrate.upgrade(url)
            engine = make_engine(url)
            try:
                return run_btm(fleet, rules, sites, start, end, load_dir, store=engine)
            finally:
                engine.dispose()
    out: list[BtmMonth] = []
    per = 60 // SETTLEMENT_MINUTES
    for site in sites:
        if site.tariff is None:
            logger.warning("site %s: no tariff, not replayed", site.id)
            continue
        series = read_load_profile(site, load_dir, rules.timezone)
        one = fleet.model_copy(update={"sites": [site], "poi_groups": []})
        # The load history the first days' forecast looks back on, metered without
        # the battery; never inside the window's first billing cycle.
        history_to = billing_cycle_start(site, operating_day_start(rules, start))
        for back in range(LOOKBACK_DAYS, 0, -1):
            d = start - dt.timedelta(days=back)
            t0 = operating_day_start(rules, d)
            if operating_day_start(rules, d + dt.timedelta(days=1)) > history_to:
                break
            n = operating_day_hours(rules, d) * per
            starts = pd.date_range(t0, periods=n, freq="15min")
            write_metered(
                store,
                site_id=site.id,
                dev_id=LOAD_DEVICE,
                start=t0,
                interval_minutes=SETTLEMENT_MINUTES,
                p_mw=load_day_mw(series, d, starts.tz_convert(rules.timezone)),
            )
        soc = site.battery.soc_initial
        rows: list[dict[str, Any]] = []
        day = start
        while day <= end:
            t0 = operating_day_start(rules, day)
            n = operating_day_hours(rules, day) * per
            starts = pd.date_range(t0, periods=n, freq="15min").tz_convert(
                rules.timezone
            )
            actual = load_day_mw(series, day, starts)
            btm = btm_inputs(
                store, site, t0, n, SETTLEMENT_MINUTES, now=t0, data_dir=load_dir
            )
            scn = build_scenario(
                one,
                rules,
                ScenarioInputs(
                    start=t0,
                    interval_minutes=SETTLEMENT_MINUTES,
                    intervals=n,
                    prices={},
                    states={site.id: SiteState(soc=soc)},
                    btm={site.id: btm},
                ),
                site_ids=[site.id],
            )
            result = solve(scn, OPTS)
            if result.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
                plan = np.asarray(_net_of(result, site.id))
            else:
                logger.warning(
                    "btm %s %s: %s, battery idle", site.id, day, result.reason
                )
                plan = np.zeros(n)
            battery, soc_trace, soc = _btm_plant(
                site, plan, actual, soc, SETTLEMENT_MINUTES / 60
            )
            write_metered(
                store,
                site_id=site.id,
                dev_id=LOAD_DEVICE,
                start=t0,
                interval_minutes=SETTLEMENT_MINUTES,
                p_mw=actual,
            )
            write_metered(
                store,
                site_id=site.id,
                dev_id=PCS_DEVICE,
                start=t0,
                interval_minutes=SETTLEMENT_MINUTES,
                p_mw=battery,
                soc=soc_trace,
            )
            rows.extend(settle_day(store, one, rules, day).rows)
            day += dt.timedelta(days=1)
        out.extend(btm_months(site.id, rows))
    return out


def _btm_plant(
    site: Site, plan: np.ndarray, load: np.ndarray, soc: float, dt_h: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Follow a behind-the-meter plan against the actual load (the simulated plant).

    Returns the battery's net power per interval [MW] (+ = discharge), the SoC at
    each interval's start and the SoC at the end.
    """
    b = site.battery
    export_ok = site.tariff is not None and site.tariff.export_allowed
    power = np.empty(len(plan))
    trace = np.empty(len(plan))
    for i, planned in enumerate(plan):
        trace[i] = soc
        p = float(planned)
        if not export_ok:
            p = min(p, float(load[i]))
        e = soc * b.energy_mwh
        if p >= 0:
            p = min(p, max(0.0, e - b.soc_min * b.energy_mwh) * b.eta_discharge / dt_h)
            e -= dt_h * p / b.eta_discharge
        else:
            room = max(0.0, b.soc_max * b.energy_mwh - e)
            p = -min(-p, room / (dt_h * b.eta_charge))
            e -= dt_h * p * b.eta_charge
        soc = e / b.energy_mwh
        power[i] = p
    return power, trace, soc


def btm_months(site_id: str, rows: Sequence[Mapping[str, Any]]) -> list[BtmMonth]:
    """Add a site's settled days (``btm_*`` rows) up per billing cycle.

    Each day's ``btm_bill`` charges demand only on what that day adds to the cycle's
    peak, so the days of a cycle sum to the energy plus the demand charge on the
    cycle's highest 15-minute import.
    """
    months: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["site_id"] != site_id or not str(r["item"]).startswith("btm_"):
            continue
        detail = r["detail"]
        m = months.setdefault(
            str(detail["billing_cycle_start"]),
            dict.fromkeys(("days", "e0", "d0", "e1", "d1", "p0", "p1", "savings"), 0.0),
        )
        if r["item"] == "btm_bill":
            m["days"] += 1
            m["e1"] += detail["energy_usd"]
            m["d1"] += detail["demand_usd"]
            m["p1"] = max(m["p1"], detail["peak_import_mw"])
        elif r["item"] == "btm_baseline_bill":
            m["e0"] += detail["energy_usd"]
            m["d0"] += detail["demand_usd"]
            m["p0"] = max(m["p0"], detail["peak_load_mw"])
        elif r["item"] == "btm_savings":
            m["savings"] += float(r["amount_usd"])
    return [
        BtmMonth(
            site_id=site_id,
            billing_month=key,
            days=int(m["days"]),
            bill_without_battery_usd=round(m["e0"] + m["d0"], 2),
            bill_with_battery_usd=round(m["e1"] + m["d1"], 2),
            savings_usd=round(m["savings"], 2),
            peak_without_mw=round(m["p0"], 4),
            peak_with_mw=round(m["p1"], 4),
            energy_without_usd=round(m["e0"], 2),
            demand_without_usd=round(m["d0"], 2),
            energy_with_usd=round(m["e1"], 2),
            demand_with_usd=round(m["d1"], 2),
        )
        for key, m in sorted(months.items())
    ]


def run_backtest(
    fleet: Fleet,
    prices: pd.DataFrame,
    start: dt.date,
    end: dt.date,
    options: BacktestOptions | None = None,
    *,
    executor: Executor | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> BacktestReport:
    """Replay ``[start, end]`` (operating days, inclusive) for the market's sites.

    Parameters
    ----------
    fleet
        The fleet (its sites in ``options.market`` are replayed).
    prices
        Long price frame (:func:`read_prices`): DA energy per node, AS at ``SYSTEM``,
        RT energy per node when available.
    start, end
        First and last operating day.
    options
        Market, forecaster, refit cadence, sites, load data folder.
    executor
        Runs the independent front-of-meter days in parallel when given.
    clock
        Monotonic clock for the reported wall time [s].

    Returns
    -------
    BacktestReport
    """
    options = options or BacktestOptions()
    t0 = clock()
    rules = load_market_rules(options.market)
    sites = _sites(fleet, rules, options.site_ids)
    btm_sites = _sites(fleet, rules, options.site_ids, btm=True)
    if end < start:
        msg = f"--end={end} is before --start={start}"
        raise FleetInputError(msg)
    rows: tuple[DayRow, ...] = ()
    if sites:
        prepared = prepare_days(fleet, prices, start, end, options, clock)
        todo = [p for p in prepared if isinstance(p, DayInputs)]
        if executor is None:
            done = [run_day(fleet, options, p) for p in todo]
        else:
            n = len(todo)
            done = list(executor.map(run_day, [fleet] * n, [options] * n, todo))
        by_day = {row.day: row for row in done}
        rows = tuple(
            by_day[p.day.isoformat()] if isinstance(p, DayInputs) else p
            for p in prepared
        )
    btm: list[BtmMonth] = []
    if btm_sites and options.load_dir is not None:
        btm = run_btm(fleet, rules, btm_sites, start, end, options.load_dir)
    return BacktestReport(
        start=start,
        end=end,
        market=rules.name,
        sites=tuple(s.id for s in sites),
        forecaster=options.forecaster,
        days=rows,
        seconds=clock() - t0,
        btm=tuple(btm),
        btm_sites=tuple(s.id for s in btm_sites) if options.load_dir else (),
        as_offers=options.as_offers,
        da_plan=options.da_plan,
    )


def write_outputs(report: BacktestReport, out_dir: Path) -> dict[str, Path]:
    """Write ``backtest_days.csv``, ``backtest.json`` and ``backtest_daily.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for d in report.days:
        row: dict[str, Any] = {
            "day": d.day,
            "status": d.status,
            "hours": d.hours,
            **{f"revenue_{k}_usd": v for k, v in d.revenue_usd.items()},
            "degradation_usd": d.degradation_usd,
            "net_usd": d.net_usd,
            "hindsight_usd": d.hindsight_usd,
            "da_only_perfect_foresight_usd": d.da_only_perfect_foresight_usd,
            "day_ahead_usd": d.day_ahead_usd,
            **{f"baseline_{k}_usd": v for k, v in d.baselines_usd.items()},
            "rt_missing_hours": d.rt_missing_hours,
            "dark_hours": d.dark_hours,
            "as_awarded_mwh": math.fsum(d.as_awarded_mwh.values()),
            "as_shortfall_mwh": d.as_shortfall_mwh,
            "as_shortfall_usd": d.as_shortfall_usd,
            "rt_fallbacks": d.rt_fallbacks,
        }
        rows.append(row)
    csv_path = out_dir / "backtest_days.csv"
    pd.DataFrame(rows).to_csv(csv_path, index=False)
    paths = {"csv": csv_path}
    if report.btm:
        btm_path = out_dir / "backtest_btm_bills.csv"
        pd.DataFrame([asdict(m) for m in report.btm]).to_csv(btm_path, index=False)
        paths["btm_csv"] = btm_path
    json_path = out_dir / "backtest.json"
    json_path.write_text(json.dumps(report.to_json(), indent=1) + "\n")
    png_path = out_dir / "backtest_daily.png"
    _plot(report, png_path)
    return {**paths, "json": json_path, "png": png_path}


def _plot(report: BacktestReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = report.ok_days
    days = pd.to_datetime([d.day for d in ok])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    series = {
        "strategy (two-settlement, realized)": [d.net_usd for d in ok],
        "hindsight (DA + RT known)": [d.hindsight_usd for d in ok],
        "DA-only perfect foresight": [d.da_only_perfect_foresight_usd for d in ok],
        "static AS offer": [d.baselines_usd.get("static_as", 0.0) for d in ok],
    }
    for label, values in series.items():
        ax1.plot(days, values, label=label, lw=0.8)
        ax2.plot(days, np.cumsum(values) / 1e3, label=label)
    ax1.set_ylabel("net revenue per day [$]")
    ax2.set_ylabel("cumulative [k$]")
    totals = report.totals()
    ratio = totals["capture_vs_hindsight"]
    ax1.set_title(
        f"{report.market} backtest {report.start}..{report.end}, "
        f"{len(report.sites)} site(s); capture vs hindsight "
        f"{'n/a' if ratio is None else f'{100 * ratio:.1f}%'}"
    )
    ax1.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
