"""Build the demo's dispatch scenarios (day-ahead, intraday, perfect foresight) per market.

This is the demo's thin adapter for what the operations package (``fleet/ops``) is
building: fleet + forecasts + telemetered state -> a spec-format scenario. It uses only
the public domain helpers (``Site.scenario_site_fields``, ``Fleet.scenario_fleet_block``)
and the degradation cost model.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from dispatch.markets import load_market_rules
from dispatch.scenario import Scenario, parse_scenario
from fleet.demo.data import (
    AS_PRODUCTS,
    MARKET_TZ,
    SPIN_PRODUCT,
    SYSTEM_NODE,
    load_profile_mw,
)
from fleet.domain import Fleet, Site
from fleet.ops.scenario_builder import default_degradation_usd_per_mwh

logger = logging.getLogger(__name__)

INTERVAL_MINUTES = 15
"""The demo's dispatch interval [minutes] (real-time settlement interval)."""
PER_HOUR = 60 // INTERVAL_MINUTES
DA_SOC_MARGIN = 0.04
"""SoC margin the day-ahead plan keeps inside each site's window (fraction 0-1)."""


def degradation_curve_usd_per_mwh(site: Site) -> list[float]:
    """Return the site's segment costs: its override, else the aging model's [$/MWh]."""
    if site.degradation_usd_per_mwh is not None:
        return list(site.degradation_usd_per_mwh)
    return default_degradation_usd_per_mwh(site)


@dataclass(frozen=True, slots=True)
class MarketDay:
    """Everything fixed about one market's operating day in the demo."""

    market: str
    """Market name."""
    day: dt.date
    """Operating day, market local."""
    sites: tuple[Site, ...]
    """The market's sites taking part."""
    hours: pd.DatetimeIndex
    """UTC starts of the day's hours (the first ``n_hours`` of the day)."""
    btm_load_mw: dict[str, np.ndarray]
    """Behind-the-meter load per site and interval [MW]."""
    btm_tariff_usd_per_mwh: dict[str, np.ndarray]
    """Retail energy price per behind-the-meter site and interval [$/MWh]."""
    degradation: dict[str, list[float]]
    """Segment costs per site [$/MWh]."""
    poi_groups: list[dict[str, Any]] = field(default_factory=list)
    """The fleet's POI groups whose sites all take part (scenario layout)."""

    @property
    def intervals(self) -> int:
        """Dispatch intervals of the played period."""
        return len(self.hours) * PER_HOUR

    @property
    def start(self) -> pd.Timestamp:
        """UTC start of the played period."""
        return pd.Timestamp(self.hours[0])

    def interval_start(self, i: int) -> pd.Timestamp:
        """UTC start of interval ``i``."""
        return self.start + pd.Timedelta(minutes=INTERVAL_MINUTES * i)


def market_day(
    fleet: Fleet,
    sites: list[Site],
    market: str,
    day: dt.date,
    n_hours: int,
    data_dir: Path,
    hours_of_day: pd.DatetimeIndex,
) -> MarketDay:
    """Fix a market's day: its hours, BTM loads and tariffs, degradation curves."""
    hours = hours_of_day[:n_hours]
    n = len(hours) * PER_HOUR
    tz = ZoneInfo(MARKET_TZ[market])
    starts = pd.date_range(hours[0], periods=n, freq=f"{INTERVAL_MINUTES}min")
    local = starts.tz_convert(tz)
    loads: dict[str, np.ndarray] = {}
    tariffs: dict[str, np.ndarray] = {}
    for site in sites:
        if site.is_btm and site.tariff is not None:
            loads[site.id] = load_profile_mw(site, day, data_dir, INTERVAL_MINUTES, n)
            tariffs[site.id] = np.array(
                [
                    site.tariff.energy_price_usd_per_mwh(
                        month=t.month, weekday=t.weekday(), hour=t.hour
                    )
                    for t in local
                ]
            )
    ids = {s.id for s in sites}
    groups = [
        g for g in fleet.scenario_fleet_block()["poi_groups"] if set(g["sites"]) <= ids
    ]
    return MarketDay(
        market=market,
        day=day,
        sites=tuple(sites),
        hours=hours,
        btm_load_mw=loads,
        btm_tariff_usd_per_mwh=tariffs,
        degradation={s.id: degradation_curve_usd_per_mwh(s) for s in sites},
        poi_groups=groups,
    )


def price_node(md: MarketDay, node: str, product: str) -> str:
    """Return the node whose series carries ``product`` (ERCOT AS are system-wide)."""
    if product == "da_energy":
        return node
    return SYSTEM_NODE if md.market == "ERCOT" else node


def build_scenario(
    md: MarketDay,
    prices: dict[tuple[str, str], np.ndarray],
    *,
    first: int = 0,
    soc_initial: dict[str, float] | None = None,
    awards: dict[str, dict[str, np.ndarray]] | None = None,
    peak_so_far_mw: dict[str, float] | None = None,
    as_prices: bool = True,
    relax_terminal: bool = False,
    hourly: bool = False,
) -> Scenario:
    """Return the scenario of intervals ``first..`` of a market's day.

    Parameters
    ----------
    md
        The market's day.
    prices
        Hourly prices per (node, product) of the price data [$/MWh, $/MW-h]: the P50
        forecast for the day-ahead plan, the cleared prices otherwise.
    first
        First interval of the horizon (intraday re-solves start later in the day).
    soc_initial
        Telemetered SoC per site (fraction 0-1); the fleet file's otherwise.
    awards
        Ancillary-service awards per site and service (``reg_up``…) per interval [MW]:
        they become commitments (lower bounds) of the scenario.
    peak_so_far_mw
        Metered import peak already set per behind-the-meter site [MW].
    as_prices
        Pay ancillary services at ``prices`` (False once they are awarded: intraday
        holds the awards but sells no more).
    relax_terminal
        Let the horizon end anywhere in the SoC window (an intraday re-solve whose
        telemetered SoC and awards cannot reach the day's end-of-day SoC any more).
    hourly
        Hourly intervals, as the day-ahead market clears (``first`` counts hours
        then); its energy and ancillary-service MW are constant within each hour, so
        the bids made from it are exactly the plan. Behind-the-meter load and
        tariff are hourly means.
    """
    rules = load_market_rules(md.market)
    per = 1 if hourly else PER_HOUR
    minutes = 60 if hourly else INTERVAL_MINUTES
    n = len(md.hours) * per - first

    def series(hourly_values: np.ndarray) -> list[float]:
        values = np.repeat(np.asarray(hourly_values, dtype=float), per)
        return [round(float(v), 4) for v in values[first : first + n]]

    def fine(values: np.ndarray, digits: int) -> list[float]:
        arr = np.asarray(values, dtype=float)
        if hourly:
            arr = arr.reshape(-1, PER_HOUR).mean(axis=1)
        return [round(float(v), digits) for v in arr[first:]]

    markets: dict[str, dict[str, list[float]]] = {}
    for site in md.sites:
        if site.node in markets:
            continue
        if site.is_btm and not site.wholesale_services:
            markets[site.node] = {}
            continue
        entry = {"energy": series(prices[(site.node, "da_energy")])}
        if as_prices:
            for product in AS_PRODUCTS.get(md.market, ()):
                key = (price_node(md, site.node, product), product)
                if key in prices:
                    name = "spin" if product == SPIN_PRODUCT else product
                    entry[name] = series(prices[key])
        markets[site.node] = entry
    sites: list[dict[str, Any]] = []
    for site in md.sites:
        fields = site.scenario_site_fields()
        b = site.battery
        soc0 = (soc_initial or {}).get(site.id, b.soc_initial)
        fields["soc_initial"] = float(min(b.soc_max, max(b.soc_min, soc0)))
        fields["soc_final_min"] = (
            b.soc_min if relax_terminal else float(min(b.soc_initial, b.soc_max))
        )
        if hourly:
            # the day-ahead plan keeps a margin inside the SoC window: the real
            # battery tracks it within a few percent, and a plan on the edge would
            # leave the intraday re-solve no room to hold its awards
            lo = min(b.soc_min + DA_SOC_MARGIN, fields["soc_initial"])
            hi = max(b.soc_max - DA_SOC_MARGIN, fields["soc_initial"])
            fields["soc_min"], fields["soc_max"] = lo, hi
            fields["soc_final_min"] = min(max(fields["soc_final_min"], lo), hi)
        fields["degradation_usd_per_mwh"] = md.degradation[site.id]
        if site.is_btm and site.tariff is not None:
            fields["btm"] = {
                "load_mw": fine(md.btm_load_mw[site.id], 5),
                "energy_usd_per_mwh": fine(md.btm_tariff_usd_per_mwh[site.id], 4),
                "demand_usd_per_mw": site.tariff.demand_usd_per_mw_month,
                "peak_so_far_mw": float((peak_so_far_mw or {}).get(site.id, 0.0)),
                "export_allowed": site.tariff.export_allowed,
            }
        site_awards = (awards or {}).get(site.id)
        if site_awards:
            fields["commitments"] = {
                f"{service}_mw": [
                    _commitment_mw(float(v)) for v in site_awards[service][first:]
                ]
                for service in ("reg_up", "reg_down", "spin")
                if service in site_awards and site.has_service(service)
            }
        sites.append(fields)
    data: dict[str, Any] = {
        "schema": "bess-dispatch-scenario/1",
        "start": (md.start + pd.Timedelta(minutes=minutes * first))
        .isoformat()
        .replace("+00:00", "Z"),
        "interval_minutes": minutes,
        "intervals": n,
        "markets": markets,
        "regulation": {"deploy_up": rules.deploy_up, "deploy_down": rules.deploy_down},
        "reserve_duration_h": rules.reserve_duration_h,
        "sites": sites,
    }
    if md.poi_groups:
        data["fleet"] = {"poi_groups": md.poi_groups}
    return parse_scenario(data, source=f"demo {md.market} {md.day} from {first}")


COMMITMENT_SLACK_MW = 1e-3
"""Commitments sit this far below the award [MW]: awards are rounded to 1 kW in the
bids, and a bound rounded up past a tight power or energy limit would make the
re-solve infeasible."""


def _commitment_mw(award_mw: float) -> float:
    return max(0.0, math.floor((award_mw - COMMITMENT_SLACK_MW) * 1e4) / 1e4)


def baseline_bill_usd(md: MarketDay, site_id: str) -> float:
    """Return a behind-the-meter site's bill for the period without its battery [$]."""
    load = md.btm_load_mw[site_id]
    tariff = md.btm_tariff_usd_per_mwh[site_id]
    site = next(s for s in md.sites if s.id == site_id)
    demand = site.tariff.demand_usd_per_mw_month if site.tariff is not None else 0.0
    delta_h = INTERVAL_MINUTES / 60
    return float(np.sum(load * tariff) * delta_h + demand * max(0.0, float(load.max())))
