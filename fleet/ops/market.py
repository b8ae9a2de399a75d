"""The market port: where bids go and awards come from.

``ReplayMarket`` is the market where no ISO is connected (backtests, demos, a lab): it
clears an accepted bid set at the day's real day-ahead prices found in the store — an
energy curve at its node's price (the resource is a price taker), an AS block in full
when the product's real clearing price is at or above its offer price. ``IsoMarket``
is a connected ISO: bids are exported as the market's submission files (and pushed by
the operator's adapter), awards arrive through ``bessfleet awards push`` or the API;
the operator waits for them until the day starts.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

import numpy as np
import pandas as pd

from dispatch.bids import BidSet, parse_bids
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
    """
    start = operating_day_start(rules, bid_set.operating_day)
    awards: list[AwardIn] = []
    for bid in bid_set.bids:
        h = bid.hour_ending - 1
        ts = start + dt.timedelta(hours=h)
        if bid.product == "energy":
            price = float(energy_usd_per_mwh[bid.site_id][h])
            if not np.isfinite(price):
                continue
            mw = cleared_mw(bid.curve, price)
            unit: Literal["usd_per_mwh", "usd_per_mw"] = "usd_per_mwh"
        else:
            series = as_usd_per_mw.get(bid.site_id, {}).get(bid.product)
            if series is None or not np.isfinite(series[h]):
                continue
            price = float(series[h])
            mw = float(sum(q for q, p in bid.curve if p <= price))
            unit = "usd_per_mw"
            if mw <= 0:
                continue
        awards.append(
            AwardIn(
                site_id=bid.site_id,
                ts=ts,
                product=bid.product,
                award_mw=round(mw, 6),
                price=round(price, 6),
                unit=unit,
            )
        )
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
