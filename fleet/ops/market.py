"""The market port: where bids go and awards come from.

``ReplayMarket`` is the market where no ISO is connected (backtests, demos, a lab): it
clears an accepted bid set at the day's real day-ahead prices found in the store — an
energy curve at its node's price (the resource is a price taker), an AS block in full
when the product's real clearing price is at or above its offer price; a market with
a linked upward offer (ERCOT) clears each linked block (:func:`dispatch.bids.
linked_up_blocks`, the blocks the export writes) to the upward product that pays most
at or above its offer price, as the backtest does. ``IsoMarket``
is a connected ISO: bids are exported as the market's submission files (and pushed by
the operator's adapter), awards arrive through ``bessfleet awards push`` or the API;
the operator waits for them until the day starts.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import Literal, Protocol

import numpy as np
import pandas as pd

from dispatch.bids import Bid, BidSet, linked_up_blocks, parse_bids
from dispatch.markets import MarketRules
from fleet.domain import Fleet
from fleet.errors import FleetInputError
from fleet.ops.awards import AwardIn, AwardSetIn, latest_awards
from fleet.ops.scenario_builder import operating_day_hours, operating_day_start
from fleet.store.bids import StoredBidSet
from fleet.store.dml import Bind
from fleet.store.prices import load_prices

logger = logging.getLogger(__name__)


class Market(Protocol):
    """What the operator needs from a market."""

    name: str
    """``replay`` or ``iso``."""

    def awards(
        self, bind: Bind, fleet: Fleet, rules: MarketRules, bid_set: StoredBidSet
    ) -> AwardSetIn | None:
        """Return the awards of an accepted bid set (None: not yet known)."""
        ...


def day_prices(
    bind: Bind,
    rules: MarketRules,
    operating_day: dt.date,
    *,
    node: str,
    series: str,
    minutes: int = 60,
) -> np.ndarray:
    """Return a stored price series over the operating day on a ``minutes`` grid.

    Missing intervals are NaN (the caller decides what a gap means).
    """
    start = operating_day_start(rules, operating_day)
    n = operating_day_hours(rules, operating_day) * 60 // minutes
    index = pd.date_range(start, periods=n, freq=f"{minutes}min")
    raw = load_prices(
        bind,
        market=rules.name,
        node=node,
        product=series,
        start=index[0],
        end=index[-1] + pd.Timedelta(minutes=minutes),
    )
    if raw.empty:
        return np.full(n, np.nan)
    raw = raw[~raw.index.duplicated()]
    values = raw.resample(f"{minutes}min").mean().reindex(index)
    if minutes < 60 and values.isna().all():
        values = raw.reindex(index, method="ffill")
    out: np.ndarray = values.to_numpy(float)
    return out


def cleared_mw(curve: Sequence[tuple[float, float]], price: float) -> float:
    """Return the MW an energy curve clears at ``price`` (+ discharge, - charge).

    Points are (MW, $/MWh), non-decreasing in both: the resource sells up to the
    largest MW whose price is at or below the clearing price; below the first point's
    price it takes the first point (its deepest charge).
    """
    taken = [mw for mw, p in curve if p <= price]
    return float(max(taken)) if taken else float(curve[0][0])


def clear_at_prices(
    bid_set: BidSet,
    rules: MarketRules,
    *,
    energy_usd_per_mwh: Mapping[str, Sequence[float] | np.ndarray],
    as_usd_per_mw: Mapping[str, Mapping[str, Sequence[float] | np.ndarray]],
    version: int,
    enrolled: Mapping[str, Collection[str]] | None = None,
) -> AwardSetIn:
    """Clear a bid set at given hourly prices.

    Parameters
    ----------
    bid_set
        The accepted bids.
    rules
        The market.
    energy_usd_per_mwh
        Per site: the day-ahead energy price of each hour.
    as_usd_per_mw
        Per site, per AS product: the clearing price of each hour (a product without
        a price series is not awarded).
    version
        The bid set's version (the award set answers it).
    enrolled
        Per site: the products it is enrolled in; a linked upward block is also
        offered to those that need no longer a sustain and deploy no more
        (:func:`dispatch.bids.link_blocks`; None: only the products bid that hour).

    Notes
    -----
    Upward products of the market's linked offer (``offer_group = "up"``) are cleared
    as blocks: each block of :func:`dispatch.bids.linked_up_blocks` goes whole to the
    product with the highest clearing price among those priced at or above the
    block's offer price for it (ties: the longest sustain duration, then a product
    bid that hour, i.e. the block's own product), so no MW is awarded twice and the awards pass the nested limits of
    :mod:`fleet.ops.awards`.
    """
    start = operating_day_start(rules, bid_set.operating_day)
    # Only a market with a linked upward offer (ERCOT's export columns) links them.
    up = [
        p
        for p in rules.products
        if rules.up_offer_columns and p.offer_group == "up" and p.modeled
    ]
    linked = {p.name for p in up}
    sustain = {p.name: p.sustain_h for p in up}
    deploy = {p.name: rules.deploy_of(p.name) for p in up}
    held: dict[str, dict[str, dict[int, Bid]]] = defaultdict(lambda: defaultdict(dict))
    awards: list[AwardIn] = []

    def award(site_id: str, product: str, h: int, mw: float, price: float) -> None:
        unit: Literal["usd_per_mwh", "usd_per_mw"] = (
            "usd_per_mwh" if product == "energy" else "usd_per_mw"
        )
        awards.append(
            AwardIn(
                site_id=site_id,
                ts=start + dt.timedelta(hours=h),
                product=product,
                award_mw=round(mw, 6),
                price=round(price, 6),
                unit=unit,
            )
        )

    def as_price(site_id: str, product: str, h: int) -> float:
        series = as_usd_per_mw.get(site_id, {}).get(product)
        return float(series[h]) if series is not None else math.nan

    for bid in bid_set.bids:
        h = bid.hour_ending - 1
        if bid.product == "energy":
            price = float(energy_usd_per_mwh[bid.site_id][h])
            if np.isfinite(price):
                award(bid.site_id, "energy", h, cleared_mw(bid.curve, price), price)
            continue
        if bid.product in linked:
            held[bid.site_id][bid.product][bid.hour_ending] = bid
            continue
        price = as_price(bid.site_id, bid.product, h)
        mw = math.fsum(q for q, p in bid.curve if p <= price)
        if np.isfinite(price) and mw > 0:
            award(bid.site_id, bid.product, h, mw, price)
    for site_id, by_product in held.items():
        hours = sorted({hour for bids in by_product.values() for hour in bids})
        allowed = None if enrolled is None else enrolled.get(site_id)
        for hour in hours:
            h = hour - 1
            got: dict[str, float] = defaultdict(float)
            for mw, offers in linked_up_blocks(up, by_product, hour, allowed, deploy):
                takers = [
                    (price, sustain[name], hour in by_product.get(name, {}), name)
                    for name, offer in offers.items()
                    if (price := as_price(site_id, name, h)) >= offer
                ]
                if takers:
                    got[max(takers)[-1]] += mw
            for name, mw in got.items():
                award(site_id, name, h, mw, as_price(site_id, name, h))
    return AwardSetIn(version=version, awards=awards)


class ReplayMarket:
    """Clears accepted bids at the real day-ahead prices stored for the day."""

    name = "replay"

    def awards(
        self, bind: Bind, fleet: Fleet, rules: MarketRules, bid_set: StoredBidSet
    ) -> AwardSetIn | None:
        """Clear the bid set; raise FleetInputError when the day's prices are missing."""
        day = bid_set.operating_day
        parsed = BidSet(
            market=rules.name,
            operating_day=day,
            bids=parse_bids(bid_set.payload),
        )
        sites = {str(s.id): s for s in fleet.sites if s.market.value == rules.name}
        energy_series = rules.series_of("energy") or "da_energy"
        energy: dict[str, np.ndarray] = {}
        as_prices: dict[str, dict[str, np.ndarray]] = {}
        cache: dict[tuple[str, str], np.ndarray] = {}

        def series(node: str, name: str) -> np.ndarray:
            if (node, name) not in cache:
                cache[(node, name)] = day_prices(
                    bind, rules, day, node=node, series=name
                )
            return cache[(node, name)]

        for sid in {b.site_id for b in parsed.bids}:
            site = sites.get(sid)
            if site is None:
                continue
            energy[sid] = series(site.node, energy_series)
            if np.isnan(energy[sid]).all():
                msg = (
                    f"replay market {rules.name} {day}: no stored {energy_series} "
                    f"prices at {site.node} to clear {sid}'s bids"
                )
                raise FleetInputError(msg)
            as_prices[sid] = {}
            for product in rules.reserve_products:
                if product.price_series is None:
                    continue
                as_prices[sid][product.name] = series(
                    rules.as_node(site.node, product.name), product.price_series
                )
        return clear_at_prices(
            parsed,
            rules,
            energy_usd_per_mwh=energy,
            as_usd_per_mw=as_prices,
            version=bid_set.version,
            enrolled={
                sid: {
                    p.name
                    for p in rules.reserve_products
                    if str(p.service) in {str(v) for v in site.services}
                }
                for sid, site in sites.items()
            },
        )


class IsoMarket:
    """A connected ISO: awards are those pushed for the bid set's version, if any."""

    name = "iso"

    def awards(
        self, bind: Bind, fleet: Fleet, rules: MarketRules, bid_set: StoredBidSet
    ) -> AwardSetIn | None:
        """Return the pushed awards of the bid set's day (None: none pushed yet)."""
        del fleet
        frame = latest_awards(bind, rules, bid_set.operating_day)
        if frame.empty:
            return None
        awards = [
            AwardIn(
                site_id=str(r.site_id),
                ts=pd.Timestamp(r.ts).to_pydatetime(),
                product=str(r.product),
                award_mw=float(r.award_mw),
                price=None if pd.isna(r.price) else float(r.price),
                unit=str(r.unit),
            )
            for r in frame.itertuples(index=False)
        ]
        return AwardSetIn(version=int(frame["version"].max()), awards=awards)
