"""Settle an operating day from metered telemetry: what the fleet earned and was charged.

One module for every caller (the operator, the API, the demo). Per front-of-meter site:

- ``da_energy``: day-ahead energy awards at the day-ahead price;
- ``rt_deviation``: (metered net power - energy award) per 15-minute interval at the
  real-time price of the site's node (the day-ahead price where the store has no
  real-time price, counted in the detail, never silently);
- one item per ancillary service of the market rules (``reg_up``, ``reg_down``,
  ``spin``, ``ecrs``, ``nonspin``, …): reserve awards at their clearing prices;
- ``as_shortfall``: the charge-back for awarded reserves not held, at
  ``shortfall_charge_factor`` x the product's clearing price (the market file). A site
  holds what its metered power and SoC allow: up capability
  ``min(P_dis(soc) - p, (E·soc - E_min)·η_d / D)``, down capability
  ``min(P_ch(soc) + p, (E_max - E·soc) / (η_c·D))``, D the award-weighted sustain
  duration of the direction's products in the interval, with the BMS foldback of the
  battery's power near the SoC limits, 0 without telemetry. Reserves are an
  obligation of the market participant (QSE), so the fleet's capability is pooled per
  direction before the shortfall is charged; each site's own deficit is in the detail;
- ``degradation``: metered discharge throughput at the site's segment costs (mean).

Per behind-the-meter site: ``btm_bill`` (the utility bill with the battery: energy at
the tariff on the metered import, plus the demand charge on the increase of the billing
cycle's peak), ``btm_baseline_bill`` (the same without the battery) and ``btm_savings``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from dispatch.markets import MarketRules
from fleet.domain import Battery, Fleet, Site
from fleet.ops.awards import latest_awards
from fleet.ops.btm import (
    billing_cycle_start,
    metered_load_and_import_mw,
    tariff_usd_per_mwh,
)
from fleet.ops.market import day_prices
from fleet.ops.metering import PCS_DEVICE, interval_mean_mw
from fleet.ops.scenario_builder import (
    default_degradation_usd_per_mwh,
    operating_day_hours,
    operating_day_start,
)
from fleet.store.dml import Bind, transaction
from fleet.store.ops_tables import settlements

logger = logging.getLogger(__name__)

SETTLEMENT_MINUTES = 15
"""Settlement interval of metered quantities [minutes]."""
INFORMATION_ITEMS = ("btm_bill", "btm_baseline_bill")
"""Items that describe the net rather than add to it: a behind-the-meter site's bills
with and without the battery (what the battery earns there is ``btm_savings``)."""


def net_usd(by_item: Mapping[str, float]) -> float:
    """Return the net value of settled items [$]: every item but :data:`INFORMATION_ITEMS`."""
    return float(sum(v for k, v in by_item.items() if k not in INFORMATION_ITEMS))


@dataclass(slots=True)
class DaySettlement:
    """One market's settled operating day."""

    market: str
    """Market name."""
    operating_day: dt.date
    """The day settled (market local)."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    """One row per site and item (the ``settlements`` table layout)."""
    awarded_mwh: dict[str, float] = field(default_factory=dict)
    """Per reserve product: awarded MW-h of the day."""
    shortfall_mwh: dict[str, float] = field(default_factory=dict)
    """Per reserve product: awarded MW-h not held by the fleet."""

    @property
    def total_usd(self) -> float:
        """Net of the day's items [$] (:func:`net_usd`)."""
        return net_usd(self.by_item())

    def by_item(self) -> dict[str, float]:
        """Sum per item over sites [$]."""
        out: dict[str, float] = {}
        for r in self.rows:
            out[r["item"]] = out.get(r["item"], 0.0) + float(r["amount_usd"])
        return out


def _hourly_to_grid(values: np.ndarray, per_hour: int) -> np.ndarray:
    return np.repeat(np.asarray(values, dtype=float), per_hour)


def _award_series(
    frame: pd.DataFrame, site_id: str, product: str, start: dt.datetime, hours: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return hourly awarded MW and clearing price of one site and product."""
    mw = np.zeros(hours)
    price = np.full(hours, np.nan)
    rows = frame[(frame["site_id"] == site_id) & (frame["product"] == product)]
    for r in rows.itertuples(index=False):
        h = round((pd.Timestamp(r.ts).to_pydatetime() - start).total_seconds() / 3600)
        if 0 <= h < hours:
            mw[h] = float(r.award_mw)
            price[h] = (
                float(r.price)
                if r.price is not None and not pd.isna(r.price)
                else np.nan
            )
    return mw, price


def _row(
    rules: MarketRules,
    day: dt.date,
    site_id: str,
    item: str,
    amount: float,
    quantity: float | None,
    unit: str | None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "market": rules.name,
        "operating_day": day,
        "site_id": site_id,
        "item": item,
        "amount_usd": round(float(amount), 2),
        "quantity": None if quantity is None else round(float(quantity), 4),
        "unit": unit,
        "detail": detail or {},
    }


def settle_day(
    bind: Bind, fleet: Fleet, rules: MarketRules, operating_day: dt.date
) -> DaySettlement:
    """Settle ``operating_day`` of the market from stored awards, prices and telemetry."""
    start = operating_day_start(rules, operating_day)
    hours = operating_day_hours(rules, operating_day)
    k = 60 // SETTLEMENT_MINUTES
    n = hours * k
    dt_h = SETTLEMENT_MINUTES / 60
    awards = latest_awards(bind, rules, operating_day)
    out = DaySettlement(rules.name, operating_day)
    energy_series = rules.series_of("energy") or "da_energy"
    rt_series = rules.product("energy").rt_price_series
    capability: dict[str, dict[str, np.ndarray]] = {}
    as_award: dict[str, dict[str, np.ndarray]] = {}
    as_price: dict[str, dict[str, np.ndarray]] = {}
    for site in (s for s in fleet.sites if s.market.value == rules.name):
        if site.is_btm:
            out.rows.extend(_settle_btm(bind, rules, site, operating_day, start, n))
            continue
        p_mw = interval_mean_mw(
            bind,
            site_id=site.id,
            dev_id=PCS_DEVICE,
            start=start,
            intervals=n,
            interval_minutes=SETTLEMENT_MINUTES,
        ).to_numpy()
        soc = (
            interval_mean_mw(
                bind,
                site_id=site.id,
                dev_id=None,
                start=start,
                intervals=n,
                interval_minutes=SETTLEMENT_MINUTES,
                column="soc_pct",
            ).to_numpy()
            / 100.0
        )
        missing = int(np.isnan(p_mw).sum())
        e_award, da_price = _award_series(awards, site.id, "energy", start, hours)
        da = day_prices(
            bind, rules, operating_day, node=site.node, series=energy_series
        )
        da_price = np.where(np.isnan(da_price), da, da_price)
        out.rows.append(
            _row(
                rules,
                operating_day,
                site.id,
                "da_energy",
                float(np.nansum(e_award * da_price)),
                float(e_award.sum()),
                "mwh",
            )
        )
        rt = (
            day_prices(
                bind,
                rules,
                operating_day,
                node=site.node,
                series=rt_series,
                minutes=SETTLEMENT_MINUTES,
            )
            if rt_series
            else np.full(n, np.nan)
        )
        rt_missing = int(np.isnan(rt).sum())
        rt = np.where(np.isnan(rt), _hourly_to_grid(da_price, k), rt)
        metered = np.where(np.isnan(p_mw), _hourly_to_grid(e_award, k), p_mw)
        deviation = metered - _hourly_to_grid(e_award, k)
        out.rows.append(
            _row(
                rules,
                operating_day,
                site.id,
                "rt_deviation",
                float(np.nansum(deviation * rt) * dt_h),
                float(deviation.sum() * dt_h),
                "mwh",
                {
                    "metered_missing_intervals": missing,
                    "rt_missing_intervals": rt_missing,
                    "rt_series": rt_series,
                },
            )
        )
        capability[site.id] = reserve_capability(site.battery, p_mw, soc)
        as_award[site.id] = {}
        as_price[site.id] = {}
        for product in rules.reserve_services:
            mw, price = _award_series(awards, site.id, product, start, hours)
            if not mw.any():
                continue
            as_award[site.id][product] = _hourly_to_grid(mw, k)
            as_price[site.id][product] = _hourly_to_grid(np.nan_to_num(price), k)
            out.rows.append(
                _row(
                    rules,
                    operating_day,
                    site.id,
                    product,
                    float(np.sum(mw * np.nan_to_num(price))),
                    float(mw.sum()),
                    "mw_h",
                )
            )
        discharged = float(np.sum(np.clip(np.nan_to_num(p_mw), 0.0, None)) * dt_h)
        cost = float(
            np.mean(
                site.degradation_usd_per_mwh or default_degradation_usd_per_mwh(site)
            )
        )
        out.rows.append(
            _row(
                rules,
                operating_day,
                site.id,
                "degradation",
                -discharged * cost,
                discharged,
                "mwh",
                {"usd_per_mwh": cost},
            )
        )
    out.rows.extend(
        shortfall_rows(rules, operating_day, capability, as_award, as_price, out, dt_h)
    )
    return out


def reserve_capability(
    battery: Battery, p_mw: np.ndarray, soc: np.ndarray
) -> dict[str, np.ndarray]:
    """Return what a site can hold per interval, per direction.

    From its metered net power ``p_mw`` (+ = discharge) and SoC (0-1): the power
    headroom ``up = P_dis(soc) - p`` and ``down = P_ch(soc) + p`` [MW], with the BMS
    foldback near the SoC limits, and the energy behind it ``up_mwh = (E·soc -
    E_min)·η_d`` and ``down_mwh = (E_max - E·soc)/η_c`` [MWh]; a reserve of sustain
    duration D holds ``min(up, up_mwh / D)`` (:func:`shortfall_rows`). All 0 where
    either reading is missing (NaN).
    """
    b = battery
    e_mwh, e_min, e_max = (
        b.energy_mwh,
        b.energy_mwh * b.soc_min,
        b.energy_mwh * b.soc_max,
    )
    p_mw = np.asarray(p_mw, dtype=float)
    soc = np.asarray(soc, dtype=float)
    have = ~np.isnan(p_mw) & ~np.isnan(soc)
    p0 = np.nan_to_num(p_mw)
    s0 = np.nan_to_num(soc)
    p_dis = np.minimum(b.discharge_mw, b.discharge_mw * s0 / b.discharge_taper_soc)
    p_ch = np.minimum(b.charge_mw, b.charge_mw * (1 - s0) / (1 - b.charge_taper_soc))
    return {
        "up": np.where(have, np.maximum(p_dis - p0, 0.0), 0.0),
        "down": np.where(have, np.maximum(p_ch + p0, 0.0), 0.0),
        "up_mwh": np.where(
            have, np.maximum(0.0, e_mwh * s0 - e_min) * b.eta_discharge, 0.0
        ),
        "down_mwh": np.where(
            have, np.maximum(0.0, e_max - e_mwh * s0) / b.eta_charge, 0.0
        ),
    }


def reserve_held(
    capability: Mapping[str, np.ndarray],
    direction: str,
    awards: Mapping[str, np.ndarray],
    sustain_h: Mapping[str, float],
) -> np.ndarray:
    """Return the MW a site holds in ``direction`` per interval for ``awards``.

    ``min(headroom, energy / D)`` with D the awards' MW-weighted sustain duration (the
    longest of them where nothing is awarded); ``capability`` as
    :func:`reserve_capability` returns it, ``awards`` per product [MW], ``sustain_h``
    per product [h].
    """
    n = len(capability[direction])
    total = sum(awards.values(), np.zeros(n))
    weighted = sum((sustain_h[p] * a for p, a in awards.items()), np.zeros(n))
    longest = max((sustain_h[p] for p in awards), default=0.0)
    d = np.divide(weighted, total, out=np.full(n, longest), where=total > 0)
    held_mw: np.ndarray = np.minimum(
        capability[direction], capability[f"{direction}_mwh"] / np.maximum(d, 1e-9)
    )
    return held_mw


def shortfall_rows(
    rules: MarketRules,
    day: dt.date,
    capability: dict[str, dict[str, np.ndarray]],
    as_award: dict[str, dict[str, np.ndarray]],
    as_price: dict[str, dict[str, np.ndarray]],
    out: DaySettlement,
    dt_h: float,
) -> list[dict[str, Any]]:
    """Pool the fleet's capability per direction, charge what the awards exceed.

    Parameters
    ----------
    capability
        Per site: ``up`` and ``down`` MW held per interval (:func:`reserve_capability`).
    as_award, as_price
        Per site and reserve product: awarded MW and clearing price [$/MW-h] per
        interval (products not awarded are absent).
    out
        Receives the awarded and shortfall MW-h per product.
    dt_h
        Interval length [h].

    Returns
    -------
    list
        ``as_shortfall_up`` / ``as_shortfall_down`` rows per site that is short: the
        charge (negative) at ``shortfall_charge_factor`` x the clearing price.
    """
    rows: list[dict[str, Any]] = []
    sites = list(as_award)
    if not sites:
        return rows
    n = len(next(iter(capability.values()))["up"]) if capability else 0
    sustain = {str(p.service): p.sustain_h for p in rules.reserve_products}

    def held(site: str, direction: str, awards: Mapping[str, np.ndarray]) -> np.ndarray:
        """MW the site holds in ``direction`` for awards of these durations."""
        own = capability.get(site)
        if own is None:
            return np.zeros(n)
        return reserve_held(own, direction, awards, sustain)

    for direction in ("up", "down"):
        products = [
            str(p.service) for p in rules.reserve_products if p.direction == direction
        ]
        award = {
            p: sum((as_award[s].get(p, np.zeros(n)) for s in sites), np.zeros(n))
            for p in products
        }
        total = sum(award.values(), np.zeros(n))
        # The fleet's pooled capability at the fleet's award mix of durations.
        cap = sum((held(s, direction, award) for s in capability), np.zeros(n))
        short = np.maximum(0.0, total - cap)
        for p in products:
            out.awarded_mwh[p] = float(award[p].sum() * dt_h)
            share = np.divide(award[p], total, out=np.zeros(n), where=total > 0)
            out.shortfall_mwh[p] = float((short * share).sum() * dt_h)
        # Charge per site in proportion to its own deficit.
        deficit = {
            s: np.maximum(
                0.0,
                sum((as_award[s].get(p, np.zeros(n)) for p in products), np.zeros(n))
                - held(
                    s,
                    direction,
                    {p: as_award[s][p] for p in products if p in as_award[s]},
                ),
            )
            for s in sites
        }
        deficit_total = sum(deficit.values(), np.zeros(n))
        for s in sites:
            site_short = np.divide(
                deficit[s] * short,
                deficit_total,
                out=np.zeros(n),
                where=deficit_total > 0,
            )
            if not site_short.any():
                continue
            own = sum((as_award[s].get(p, np.zeros(n)) for p in products), np.zeros(n))
            charge = 0.0
            for p in products:
                if p not in as_award[s]:
                    continue
                part = np.divide(as_award[s][p], own, out=np.zeros(n), where=own > 0)
                charge += float(
                    np.sum(site_short * part * as_price[s][p])
                    * dt_h
                    * rules.shortfall_charge_factor
                )
            rows.append(
                _row(
                    rules,
                    day,
                    s,
                    f"as_shortfall_{direction}",
                    -charge,
                    float(site_short.sum() * dt_h),
                    "mw_h",
                    {"own_deficit_mwh": float(deficit[s].sum() * dt_h)},
                )
            )
    return rows


def _settle_btm(
    bind: Bind,
    rules: MarketRules,
    site: Site,
    day: dt.date,
    start: dt.datetime,
    n: int,
) -> list[dict[str, Any]]:
    """Bill a behind-the-meter site's day with and without its battery."""
    dt_h = SETTLEMENT_MINUTES / 60
    day_load, day_import = metered_load_and_import_mw(
        bind, site, start, n, SETTLEMENT_MINUTES
    )
    load, imports = day_load.to_numpy(), day_import.to_numpy()
    tariff = np.asarray(tariff_usd_per_mwh(site, start, n, SETTLEMENT_MINUTES))
    missing = int(np.isnan(load).sum())
    load = np.nan_to_num(load)
    imports = np.where(np.isnan(imports), load, imports)
    cycle = billing_cycle_start(site, start)
    before_n = int((start - cycle).total_seconds() // (SETTLEMENT_MINUTES * 60))
    prior_import = prior_load = 0.0
    if before_n > 0:
        prev_load, prev = metered_load_and_import_mw(
            bind, site, cycle, before_n, SETTLEMENT_MINUTES
        )
        prior_import = float(np.nanmax(prev.to_numpy())) if prev.notna().any() else 0.0
        prior_load = (
            float(np.nanmax(prev_load.to_numpy())) if prev_load.notna().any() else 0.0
        )
    demand = site.tariff.demand_usd_per_mw_month if site.tariff is not None else 0.0
    exports_ok = site.tariff is not None and site.tariff.export_allowed
    billed = imports if exports_ok else np.maximum(imports, 0.0)
    bill_energy = float(np.sum(billed * tariff) * dt_h)
    bill_demand = demand * max(0.0, float(imports.max()) - prior_import)
    base_energy = float(np.sum(load * tariff) * dt_h)
    base_demand = demand * max(0.0, float(load.max()) - prior_load)
    cycle_label = cycle.astimezone(dt.UTC).date().isoformat()
    detail = {
        "billing_cycle_start": cycle_label,
        "energy_usd": round(bill_energy, 2),
        "demand_usd": round(bill_demand, 2),
        "peak_import_mw": round(float(imports.max()), 4),
        "peak_before_mw": round(prior_import, 4),
        "metered_missing_intervals": missing,
    }
    base_detail = {
        "billing_cycle_start": cycle_label,
        "energy_usd": round(base_energy, 2),
        "demand_usd": round(base_demand, 2),
        "peak_load_mw": round(float(load.max()), 4),
    }
    bill = bill_energy + bill_demand
    base = base_energy + base_demand
    return [
        _row(
            rules,
            day,
            site.id,
            "btm_bill",
            -bill,
            float(billed.sum() * dt_h),
            "mwh",
            detail,
        ),
        _row(
            rules,
            day,
            site.id,
            "btm_baseline_bill",
            -base,
            float(load.sum() * dt_h),
            "mwh",
            base_detail,
        ),
        _row(
            rules,
            day,
            site.id,
            "btm_savings",
            base - bill,
            None,
            None,
            {"billing_cycle_start": cycle_label},
        ),
    ]


def store_settlement(bind: Bind, day: DaySettlement, *, now: dt.datetime) -> int:
    """Replace the day's stored settlement rows; return how many were written."""
    with transaction(bind) as conn:
        conn.execute(
            sa.delete(settlements).where(
                settlements.c.market == day.market,
                settlements.c.operating_day == day.operating_day,
            )
        )
        if day.rows:
            conn.execute(
                sa.insert(settlements), [{**r, "settled_at": now} for r in day.rows]
            )
    return len(day.rows)


def load_settlements(
    bind: Bind,
    *,
    market: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    site_id: str | None = None,
) -> pd.DataFrame:
    """Return stored settlement rows, ordered by day, site and item."""
    query = sa.select(settlements).order_by(
        settlements.c.operating_day, settlements.c.site_id, settlements.c.item
    )
    if market is not None:
        query = query.where(settlements.c.market == market)
    if start is not None:
        query = query.where(settlements.c.operating_day >= start)
    if end is not None:
        query = query.where(settlements.c.operating_day <= end)
    if site_id is not None:
        query = query.where(settlements.c.site_id == site_id)
    with transaction(bind) as conn:
        rows = conn.execute(query).mappings().all()
    return pd.DataFrame([dict(r) for r in rows])
