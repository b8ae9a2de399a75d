"""Simulated market clearing (awards at the day's real prices) and settlement."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dispatch.bids import AS_PRODUCTS, BidSet
from fleet.demo.planning import INTERVAL_MINUTES, PER_HOUR, MarketDay, baseline_bill_usd
from forecasting.degradation.costs import CostInputs, schedule_wear

logger = logging.getLogger(__name__)

SERVICES = ("reg_up", "reg_down", "spin")


def cleared_mw(curve: tuple[tuple[float, float], ...], price: float) -> float:
    """Return the MW an energy curve clears at ``price`` (+ discharge, - charge).

    The curve's points are (MW, $/MWh), non-decreasing in both: the resource sells
    up to the largest MW whose price is at or below the clearing price; below the
    first point's price it takes the first point (its deepest charge).
    """
    taken = [mw for mw, p in curve if p <= price]
    return float(max(taken)) if taken else float(curve[0][0])


@dataclass(slots=True)
class Awards:
    """Awards of one market's day, hourly and per interval."""

    frame: pd.DataFrame
    """Rows for ``fleet.store.bids.save_awards`` (one per site, hour, product)."""
    energy_mw: dict[str, np.ndarray] = field(default_factory=dict)
    """Cleared energy per site and hour [MW] (+ discharge)."""
    service_mw: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    """Ancillary-service awards per site, service and interval [MW]."""


def clear_bids(
    bid_set: BidSet,
    md: MarketDay,
    actual: dict[tuple[str, str], np.ndarray],
    version: int,
    as_node: dict[str, str],
) -> Awards:
    """Clear a bid set against the day's real prices.

    Energy curves clear at the real day-ahead price of the site's node; an
    ancillary-service block is awarded in full when the real clearing price is at or
    above its offer price (a price-taker's award).

    Parameters
    ----------
    bid_set
        The accepted bids.
    md
        The market's day.
    actual
        Real hourly prices per (node, product of the price data).
    version
        Award version (the bid set's).
    as_node
        Price node per service for the market (``SYSTEM`` in ERCOT).
    """
    product_series = {"reg_up": "reg_up", "reg_down": "reg_down", "spin": "rrs_spin"}
    site_node: dict[str, str] = {s.id: s.node for s in md.sites}
    rows = []
    hours = md.hours
    n_hours = len(hours)
    energy: dict[str, np.ndarray] = {}
    service: dict[str, dict[str, np.ndarray]] = {}
    for bid in bid_set.bids:
        h = bid.hour_ending - 1
        if not 0 <= h < n_hours:
            continue
        if bid.product == "energy":
            price = float(actual[(site_node[bid.site_id], "da_energy")][h])
            mw = cleared_mw(bid.curve, price)
            energy.setdefault(bid.site_id, np.zeros(n_hours))[h] = mw
            unit = "usd_per_mwh"
        else:
            key = (as_node[bid.product], product_series[bid.product])
            price = float(actual[key][h]) if key in actual else 0.0
            mw = sum(m for m, p in bid.curve if p <= price)
            per_site = service.setdefault(bid.site_id, {})
            per_site.setdefault(bid.product, np.zeros(n_hours))[h] = mw
            unit = "usd_per_mw"
        rows.append(
            {
                "market": md.market,
                "operating_day": md.day,
                "version": version,
                "site_id": bid.site_id,
                "ts": hours[h],
                "product": bid.product,
                "award_mw": round(mw, 4),
                "price": round(price, 4),
                "unit": unit,
            }
        )
    per_interval = {
        sid: {name: np.repeat(values, PER_HOUR) for name, values in products.items()}
        for sid, products in service.items()
    }
    return Awards(frame=pd.DataFrame(rows), energy_mw=energy, service_mw=per_interval)


@dataclass(slots=True)
class Settlement:
    """What the fleet earned and spent over the played period."""

    revenue_usd: dict[str, float] = field(default_factory=dict)
    """Wholesale revenue by service [$] (energy at the real price of each interval,
    ancillary services on the awarded MW the plan kept)."""
    btm_savings_usd: float = 0.0
    """Behind-the-meter bill savings against the same sites without batteries [$]."""
    degradation_usd: float = 0.0
    """Cycle-aging cost of the metered SoC paths (rainflow, the aging model) [$]."""
    as_shortfall_mwh: float = 0.0
    """Awarded ancillary service the executed plan did not hold [MW-h]."""
    charged_mwh: float = 0.0
    """Energy charged, metered [MWh]."""
    discharged_mwh: float = 0.0
    """Energy discharged, metered [MWh]."""
    per_site_usd: dict[str, float] = field(default_factory=dict)
    """Net value per site (revenue or savings, less degradation) [$]."""

    @property
    def net_usd(self) -> float:
        """Revenue plus savings less degradation [$]."""
        return (
            sum(self.revenue_usd.values()) + self.btm_savings_usd - self.degradation_usd
        )


def _filled(path: np.ndarray) -> np.ndarray:
    idx = np.arange(len(path))
    ok = np.isfinite(path)
    if not ok.any():
        return np.zeros_like(path)
    out: np.ndarray = np.interp(idx, idx[ok], path[ok])
    return out


def settle(
    settlement: Settlement,
    md: MarketDay,
    actual: dict[tuple[str, str], np.ndarray],
    as_node: dict[str, str],
    export_mwh: dict[str, np.ndarray],
    import_mwh: dict[str, np.ndarray],
    soc_path: dict[str, np.ndarray],
    awards: Awards,
    held_mw: dict[str, dict[str, np.ndarray]],
) -> None:
    """Add one market's day to ``settlement`` from the metered energy per interval.

    Energy settles at the real day-ahead price of each interval (deviations from the
    day-ahead award settle at the same price, so the award itself cancels out).
    """
    product_series = {"reg_up": "reg_up", "reg_down": "reg_down", "spin": "rrs_spin"}
    delta_h = INTERVAL_MINUTES / 60
    n = md.intervals
    for site in md.sites:
        sid = site.id
        exp, imp = export_mwh[sid][:n], import_mwh[sid][:n]
        settlement.charged_mwh += float(imp.sum())
        settlement.discharged_mwh += float(exp.sum())
        value = 0.0
        if site.is_btm and site.tariff is not None:
            grid = md.btm_load_mw[sid] - (exp - imp) / delta_h
            tau = md.btm_tariff_usd_per_mwh[sid]
            bill = float(np.sum(tau * grid) * delta_h) + (
                site.tariff.demand_usd_per_mw_month * max(0.0, float(grid.max()))
            )
            savings = baseline_bill_usd(md, sid) - bill
            settlement.btm_savings_usd += savings
            value += savings
        else:
            lam = np.repeat(actual[(site.node, "da_energy")], 4)[:n]
            energy = float(np.sum((exp - imp) * lam))
            settlement.revenue_usd["energy"] = (
                settlement.revenue_usd.get("energy", 0.0) + energy
            )
            value += energy
        for service in AS_PRODUCTS:
            award = awards.service_mw.get(sid, {}).get(service)
            if award is None:
                continue
            held = held_mw.get(sid, {}).get(service, np.zeros(n))[:n]
            # held within the commitment slack counts as held
            kept = np.minimum(award[:n], held + 2e-3)
            settlement.as_shortfall_mwh += float(np.sum(award[:n] - kept) * delta_h)
            key = (as_node[service], product_series[service])
            price = np.repeat(actual.get(key, np.zeros(len(md.hours))), 4)[:n]
            usd = float(np.sum(kept * price) * delta_h)
            settlement.revenue_usd[service] = (
                settlement.revenue_usd.get(service, 0.0) + usd
            )
            value += usd
        b = site.battery
        wear = schedule_wear(
            np.clip(_filled(soc_path[sid][: n + 1]), 0.0, 1.0),
            delta_h,
            CostInputs(
                energy_mwh=b.energy_mwh,
                replacement_cost_usd_per_kwh=b.replacement_cost_usd_per_kwh,
                soc_min=b.soc_min,
                soc_max=b.soc_max,
                eta_discharge=b.eta_discharge,
            ),
        )
        settlement.degradation_usd += wear.cycle_usd
        value -= wear.cycle_usd
        settlement.per_site_usd[sid] = value


def operating_day_label(days: dict[str, dt.date]) -> str:
    """Return ``ERCOT 2026-02-13, CAISO 2020-12-31`` style text."""
    return ", ".join(f"{m} {d.isoformat()}" for m, d in sorted(days.items()))
