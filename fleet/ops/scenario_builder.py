"""Build the dispatch scenario of a market's sites from fleet, prices, state and costs."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from dispatch.markets import MarketRules
from dispatch.scenario import Commitments, Scenario, parse_scenario
from fleet.domain import Fleet, Site
from fleet.errors import FleetInputError
from fleet.ops.btm import BtmInputs
from fleet.ops.degradation_costs import model_segment_costs_usd_per_mwh

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SiteState:
    """What telemetry says about a site when a scenario is built."""

    soc: float | None = None
    """Latest state of charge (0-1); None: the fleet file's ``soc_initial``."""
    soh: float = 1.0
    """State of health: usable energy as a fraction of the fleet file's (0-1)."""
    available: bool = True
    """False when the site is offline, stale or out of service."""
    power_fraction: float = 1.0
    """Share of rated charge/discharge power allowed (0-1): the health policy's derate
    for a site with an open critical alert (``fleet.health.dispatch_limits``)."""


@dataclass(frozen=True, slots=True)
class ScenarioInputs:
    """Everything a scenario is built from, besides the fleet."""

    start: dt.datetime
    """First interval start (aware)."""
    interval_minutes: int
    """Interval length [minutes]."""
    intervals: int
    """Number of intervals."""
    prices: Mapping[str, Mapping[str, Sequence[float]]]
    """Per node, per product of the market's ``price_products`` (``energy`` [$/MWh],
    then each ancillary service [$/MW-h]), one value per interval."""
    states: Mapping[str, SiteState] = field(default_factory=dict)
    """Per site id; missing sites are available at their fleet-file SoC."""
    commitments: Mapping[str, Commitments] = field(default_factory=dict)
    """Per site id: awards already fixed (see :mod:`fleet.ops.awards`)."""
    soc_final_min: Mapping[str, float] = field(default_factory=dict)
    """Per site id: terminal SoC floor (0-1); default: the fleet file's ``soc_initial``."""
    btm: Mapping[str, BtmInputs] = field(default_factory=dict)
    """Per behind-the-meter site id: load forecast, tariff and the month's peak; a
    behind-the-meter site without an entry is left out of the scenario."""


def operating_day_start(rules: MarketRules, operating_day: dt.date) -> dt.datetime:
    """Local midnight of ``operating_day`` in the market's time zone, as UTC."""
    tz = ZoneInfo(rules.timezone)
    local = dt.datetime.combine(operating_day, dt.time(), tzinfo=tz)
    return local.astimezone(dt.UTC)


def operating_day_hours(rules: MarketRules, operating_day: dt.date) -> int:
    """Hours of the operating day (23, 24 or 25 on DST days)."""
    start = operating_day_start(rules, operating_day)
    end = operating_day_start(rules, operating_day + dt.timedelta(days=1))
    return round((end - start).total_seconds() / 3600)


def default_degradation_usd_per_mwh(site: Site, n_segments: int = 4) -> list[float]:
    """Segment costs of a site without an override, from the degradation model [$/MWh].

    The model at the site's warranty duty (:mod:`fleet.ops.degradation_costs`).
    """
    return model_segment_costs_usd_per_mwh(site, n_segments)


def site_fields(
    site: Site,
    state: SiteState,
    *,
    rules: MarketRules | None = None,
    degradation: Sequence[float] | None = None,
    soc_final_min: float | None = None,
    btm: BtmInputs | None = None,
) -> dict[str, Any]:
    """Return the scenario ``sites[]`` entry of a site (``btm`` for behind the meter).

    SoH scales the energy; an unavailable site gets zero power (it keeps its SoC).
    The SoC is clipped into ``[soc_min, soc_max]`` (telemetry may read just outside).
    With ``rules``, the site's ancillary services are checked against the market's.

    Raises
    ------
    FleetInputError
        When the site lists an ancillary service ``rules`` does not carry.
    """
    fields = site.scenario_site_fields(
        products=rules.reserve_services if rules is not None else None
    )
    fields["energy_mwh"] = fields["energy_mwh"] * state.soh
    lo, hi = fields["soc_min"], fields["soc_max"]
    soc = fields["soc_initial"] if state.soc is None else state.soc
    fields["soc_initial"] = float(min(hi, max(lo, soc)))
    final = site.battery.soc_initial if soc_final_min is None else soc_final_min
    fields["soc_final_min"] = float(min(hi, max(lo, final)))
    fraction = min(1.0, max(0.0, state.power_fraction))
    fields["charge_mw"] = fields["charge_mw"] * fraction
    fields["discharge_mw"] = fields["discharge_mw"] * fraction
    if not state.available or fraction == 0.0:
        fields["charge_mw"] = 0.0
        fields["discharge_mw"] = 0.0
        fields["soc_final_min"] = min(fields["soc_final_min"], fields["soc_initial"])
    if "degradation_usd_per_mwh" not in fields:
        fields["degradation_usd_per_mwh"] = list(
            degradation
            if degradation is not None
            else default_degradation_usd_per_mwh(site)
        )
    fields["services"] = [s for s in fields["services"] if s != "capacity"]
    if rules is not None:
        own = {"energy", "capacity", "peak_shaving", *rules.reserve_services}
        unknown = sorted({str(x) for x in site.services} - own)
        if unknown:
            msg = (
                f"site {site.id}: services {unknown} are not products of market "
                f"{rules.name} (its ancillary services: {list(rules.reserve_services)})"
            )
            raise FleetInputError(msg)
    if btm is not None and site.tariff is not None:
        fields["btm"] = {
            "load_mw": list(btm.load_mw),
            "energy_usd_per_mwh": list(btm.energy_usd_per_mwh),
            "demand_usd_per_mw": site.tariff.demand_usd_per_mw_month,
            "peak_so_far_mw": max(0.0, btm.peak_so_far_mw),
            "export_allowed": site.tariff.export_allowed,
        }
    return fields


def build_scenario(
    fleet: Fleet,
    rules: MarketRules,
    inputs: ScenarioInputs,
    *,
    site_ids: Sequence[str] | None = None,
    degradation: Mapping[str, Sequence[float]] | None = None,
) -> Scenario:
    """Build the dispatch scenario of the market's sites.

    Front-of-meter sites are always in; a behind-the-meter site is in when
    ``inputs.btm`` has its load, tariff and peak (its node needs no prices: its energy
    is billed at the tariff).

    Parameters
    ----------
    fleet
        The fleet (limits, services, nodes).
    rules
        The market (reserve duration, regulation deployment).
    inputs
        Horizon, prices, site states, commitments and terminal SoC.
    site_ids
        Only these sites (default: every site of the market that can be planned).
    degradation
        Per site id: segment costs [$/MWh] overriding the degradation model's.

    Returns
    -------
    Scenario

    Raises
    ------
    FleetInputError
        When no site is left, a node has no prices, or a price series has the wrong
        length.
    """
    sites = [
        s
        for s in fleet.sites
        if s.market.value == rules.name
        and (s.id in inputs.btm if s.is_btm else True)
        and (site_ids is None or s.id in site_ids)
    ]
    if not sites:
        msg = f"fleet {fleet.name!r} has no {rules.name} site to dispatch"
        raise FleetInputError(msg)
    markets: dict[str, dict[str, list[float]]] = {}
    fom_nodes = {s.node for s in sites if s.is_fom}
    for node in sorted({s.node for s in sites}):
        if node not in inputs.prices and node not in fom_nodes:
            # Only behind-the-meter sites here: billed at their tariff, no AS sold.
            markets[node] = {"energy": [0.0] * inputs.intervals}
            continue
        if node not in inputs.prices:
            msg = f"node {node}: no prices (have {sorted(inputs.prices)})"
            raise FleetInputError(msg)
        series: dict[str, list[float]] = {}
        for product, values in inputs.prices[node].items():
            if product not in rules.price_products:
                msg = (
                    f"node {node}: unknown price product {product!r}; "
                    f"{rules.name} has {list(rules.price_products)}"
                )
                raise FleetInputError(msg)
            arr = np.asarray(values, dtype=float)
            if arr.shape != (inputs.intervals,) or not np.isfinite(arr).all():
                msg = (
                    f"node {node}, {product}: {arr.size} prices with "
                    f"{int((~np.isfinite(arr)).sum())} missing; expected "
                    f"{inputs.intervals} finite values"
                )
                raise FleetInputError(msg)
            series[product] = [float(v) for v in arr]
        markets[node] = series
    entries = []
    for site in sites:
        entry = site_fields(
            site,
            inputs.states.get(site.id, SiteState()),
            rules=rules,
            degradation=(degradation or {}).get(site.id),
            soc_final_min=inputs.soc_final_min.get(site.id),
            btm=inputs.btm.get(site.id),
        )
        com = inputs.commitments.get(site.id)
        if com is not None:
            entry["commitments"] = com.model_dump(exclude_none=True)
        entries.append(entry)
    data: dict[str, Any] = {
        "schema": "bess-dispatch-scenario/1",
        "start": inputs.start.astimezone(dt.UTC).isoformat(),
        "interval_minutes": inputs.interval_minutes,
        "intervals": inputs.intervals,
        "markets": markets,
        "regulation": {"deploy_up": rules.deploy_up, "deploy_down": rules.deploy_down},
        "reserve_duration_h": rules.reserve_duration_h,
        "products": rules.scenario_products(),
        "sites": entries,
    }
    ids = {s.id for s in sites}
    groups = [
        g
        for g in fleet.scenario_fleet_block()["poi_groups"]
        if g["sites"] and set(g["sites"]) <= ids  # a group of another market: none here
    ]
    if groups:
        data["fleet"] = {"poi_groups": groups}
    return parse_scenario(data, source=f"{rules.name} scenario")
