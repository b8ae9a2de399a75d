"""Build day-ahead bids (energy curves and ancillary-service offers) from schedules.

A bid set is what a scheduler pushes for one market and operating day: per site and
hour, an energy offer/bid curve of (MW, $/MWh) points from charging (MW < 0) to
discharging (MW > 0), non-decreasing in MW and price, and per ancillary service the
(MW, $/MW-h) blocks offered. The JSON layout is the API's ``BidSetIn`` (see
``docs/bids.md``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from dispatch.errors import DispatchInputError
from dispatch.markets import MarketRules, Product
from dispatch.result import Result
from dispatch.scenario import Scenario

logger = logging.getLogger(__name__)

PRODUCT_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
"""Shape of a bid's product name; the market rules say which products exist
(:func:`dispatch.bidcheck.rule_refusals`)."""
NOT_BID = frozenset({"capacity", "peak_shaving"})
"""Services that are never a bid's product."""

Point = tuple[float, float]
"""One (MW, price) pair of a curve or offer: MW, then $/MWh (energy) or $/MW-h (AS)."""


@dataclass(frozen=True, slots=True)
class Bid:
    """One bid: a site, a product, an hour and its (MW, price) points."""

    site_id: str
    """Site the bid is for."""
    product: str
    """``energy`` or an ancillary service of the market rules (``reg_up``, ``ecrs``, …)."""
    hour_ending: int
    """Hour ending of the operating day, 1-24 (25 on a long DST day)."""
    curve: tuple[Point, ...]
    """Energy: (MW, $/MWh) points, MW - = charge; AS: (MW, $/MW-h) blocks."""

    def to_json(self) -> dict[str, Any]:
        """Return the bid in the API's ``BidIn`` layout."""
        return {
            "site_id": self.site_id,
            "product": self.product,
            "hour_ending": self.hour_ending,
            "curve": [[mw, price] for mw, price in self.curve],
        }


@dataclass(frozen=True, slots=True)
class BidSet:
    """The bids of one market and operating day."""

    market: str
    """Market name (``ERCOT``)."""
    operating_day: dt.date
    """Operating day, market local."""
    bids: tuple[Bid, ...]
    """Every bid, ordered by site, hour and product."""
    note: str | None = None
    """Free text kept with the bid set (e.g. the schedule version it came from)."""
    meta: Mapping[str, Any] = field(default_factory=dict)
    """Extra header fields for exports (plan version, solver, resource ids)."""

    def to_payload(self) -> dict[str, Any]:
        """Return the bid set as the API's ``BidSetIn`` body."""
        out: dict[str, Any] = {"bids": [b.to_json() for b in self.bids]}
        if self.note is not None:
            out["note"] = self.note
        return out


def parse_bids(payload: Mapping[str, Any], source: str = "bid set") -> tuple[Bid, ...]:
    """Read the ``bids`` list of a bid-set JSON object.

    Parameters
    ----------
    payload
        A decoded ``BidSetIn`` object: ``{"bids": [{site_id, product, hour_ending,
        curve}], "note": …}``.
    source
        Name used in error messages.

    Returns
    -------
    tuple of Bid

    Raises
    ------
    DispatchInputError
        Naming the bid index and the field that is missing or malformed.
    """
    raw = payload.get("bids")
    if not isinstance(raw, list) or not raw:
        msg = f"{source}: bids must be a non-empty list"
        raise DispatchInputError(msg)
    out: list[Bid] = []
    for i, item in enumerate(raw):
        where = f"{source}: bids[{i}]"
        if not isinstance(item, Mapping):
            msg = f"{where} must be an object"
            raise DispatchInputError(msg)
        extra = sorted(set(item) - {"site_id", "product", "hour_ending", "curve"})
        if extra:
            msg = f"{where}: unknown field(s) {extra}"
            raise DispatchInputError(msg)
        site_id, product, hour, curve = (
            item.get(k) for k in ("site_id", "product", "hour_ending", "curve")
        )
        if not isinstance(site_id, str) or not site_id:
            msg = f"{where}.site_id={site_id!r} must be a non-empty string"
            raise DispatchInputError(msg)
        if (
            not isinstance(product, str)
            or not PRODUCT_PATTERN.match(product)
            or product in NOT_BID
        ):
            msg = (
                f"{where}.product={product!r} must be a product name (energy or an "
                "ancillary service of the market, e.g. reg_up)"
            )
            raise DispatchInputError(msg)
        if not isinstance(hour, int) or isinstance(hour, bool):
            msg = f"{where}.hour_ending={hour!r} must be an integer"
            raise DispatchInputError(msg)
        if not isinstance(curve, list) or not curve:
            msg = f"{where}.curve must be a non-empty list of [MW, price] pairs"
            raise DispatchInputError(msg)
        points: list[Point] = []
        for j, pair in enumerate(curve):
            ok = (
                isinstance(pair, list | tuple)
                and len(pair) == 2
                and all(
                    isinstance(v, int | float) and not isinstance(v, bool) for v in pair
                )
                and all(math.isfinite(float(v)) for v in pair)
            )
            if not ok:
                msg = f"{where}.curve[{j}]={pair!r} must be a [MW, price] pair of finite numbers"
                raise DispatchInputError(msg)
            points.append((float(pair[0]), float(pair[1])))
        out.append(Bid(site_id, str(product), hour, tuple(points)))
    return tuple(out)


def intervals_per_hour(scn: Scenario) -> int:
    """Scenario intervals in one hour (the scenario must tile hours exactly).

    Raises
    ------
    DispatchInputError
        When ``interval_minutes`` does not divide 60 or the horizon is not whole hours.
    """
    k = 60.0 / scn.interval_minutes
    if abs(k - round(k)) > 1e-9 or scn.intervals % round(k):
        msg = (
            f"scenario interval_minutes={scn.interval_minutes:g} and intervals="
            f"{scn.intervals} must tile whole hours for hourly bids"
        )
        raise DispatchInputError(msg)
    return round(k)


def hourly(values: Sequence[float] | np.ndarray, per_hour: int) -> np.ndarray:
    """Return hourly means of an interval series [same unit]."""
    arr = np.asarray(values, dtype=float)
    return arr.reshape(-1, per_hour).mean(axis=1)


def step_decimals(step: float) -> int:
    """Decimals needed to print multiples of ``step`` exactly (0.1 → 1, 0.01 → 2)."""
    text = f"{step:.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def floor_to(value: float, step: float) -> float:
    """Round ``value`` down to a multiple of ``step``, printed without float noise.

    A value within 1e-6 steps of a multiple counts as that multiple (so 15.53 stays
    15.53 although ``15.53 / 0.01`` is 1552.9999…).
    """
    return round(math.floor(value / step + 1e-6) * step, step_decimals(step))


def ceil_to(value: float, step: float) -> float:
    """Round ``value`` up to a multiple of ``step`` (see :func:`floor_to`)."""
    return round(math.ceil(value / step - 1e-6) * step, step_decimals(step))


def round_to(value: float, step: float) -> float:
    """Round ``value`` to the nearest multiple of ``step``."""
    return round(round(value / step) * step, step_decimals(step))


def _tidy_curve(
    points: list[Point], rules: MarketRules, lo_mw: float, hi_mw: float
) -> tuple[Point, ...]:
    """Round to the market's steps, sort by price, merge equal prices or MW, thin."""
    floor, cap = rules.price_floor_usd_per_mwh, rules.price_cap_usd_per_mwh
    mw_step, price_step = rules.curve_mw_step, rules.curve_price_step
    pts = sorted(
        (
            (
                min(hi_mw, max(lo_mw, round_to(mw, mw_step))),
                floor_to(min(cap, max(floor, p)), price_step),
            )
            for mw, p in points
        ),
        key=lambda t: (t[1], t[0]),
    )
    out: list[Point] = []
    running = -math.inf
    for mw, p in pts:
        mw = max(mw, running)
        running = mw
        if out and out[-1][0] == mw:
            # Same MW at a higher price adds nothing to a step curve: keep the first.
            continue
        if out and out[-1][1] == p:
            # Same price, more MW: the larger quantity replaces the smaller.
            out[-1] = (mw, p)
            continue
        out.append((mw, p))
    while len(out) > rules.curve_max_points:
        # Drop the interior point whose MW step to its neighbour is smallest.
        gaps = [out[i + 1][0] - out[i - 1][0] for i in range(1, len(out) - 1)]
        drop = 1 + int(np.argmin(gaps))
        del out[drop]
    return tuple(out)


def energy_range(
    min_mw: float, max_mw: float, rules: MarketRules
) -> tuple[float, float]:
    """Return the curve's MW range on the market's MW grid, inside ``min_mw..max_mw``.

    The ends are rounded inwards (``min_mw`` up, ``max_mw`` down) so every quantity
    on the curve stays deliverable; a range narrower than one step collapses to the
    grid point nearest its middle [MW].
    """
    step = rules.curve_mw_step
    lo, hi = ceil_to(min_mw, step), floor_to(max_mw, step)
    if lo > hi:
        lo = hi = round_to((min_mw + max_mw) / 2, step)
    return lo, hi


def energy_curve(
    *,
    plan_points: Sequence[Point],
    min_mw: float,
    max_mw: float,
    energy_value_usd_per_mwh: float,
    eta_charge: float,
    eta_discharge: float,
    degradation_usd_per_mwh: Sequence[float],
    rules: MarketRules,
) -> tuple[Point, ...]:
    """Return a monotone energy offer/bid curve for one site and hour.

    Parameters
    ----------
    plan_points
        (net MW, price) pairs from schedules solved at different price forecasts
        (e.g. P50 first, then P10, P90): at that price the plan wanted that net power
        [MW, $/MWh]. The first pair anchors the curve: the curve clears that quantity
        (to the market's MW step) at that price.
    min_mw, max_mw
        Net power range left to energy by the power limits and the ancillary-service
        offers: ``reg_down - charge_mw`` to ``discharge_mw - reg_up - spin`` [MW].
    energy_value_usd_per_mwh
        Marginal value μ of stored energy in the hour (dual of the energy balance)
        [$/MWh].
    eta_charge, eta_discharge
        One-way efficiencies (0-1).
    degradation_usd_per_mwh
        Segment costs δ_1..δ_K, shallow to deep [$/MWh].
    rules
        The market's curve rules (point limit, price floor and cap, MW and price
        steps).

    Returns
    -------
    tuple of (MW, $/MWh)
        2 to ``rules.curve_max_points`` points from ``min_mw`` to ``max_mw`` (rounded
        inwards to the MW step), non-decreasing in MW and price, no two consecutive
        points at the same MW or price; MW on the market's MW step and prices on its
        price step. When the range is a single quantity q (every MW of headroom went
        to ancillary services) the curve is ``[(q, floor), (q, cap)]``: q at any
        price.

    Notes
    -----
    Below the charge price η_c·μ the site buys at full charge power; at the charge
    price it stops charging (0 MW); the k-th of K degradation segments is offered at
    (μ + δ_k)/η_d, each for 1/K of the discharge range (spec B2, "Turning the
    optimiser into curves"). The scenario points place the quantities in between, so
    the curve clears the planned quantity at the forecast price: points at a lower
    price than the anchor never offer more MW than it, points at a higher price never
    less. Points are sorted by price, MW made non-decreasing, equal prices or MW
    merged and the curve thinned to the market's point limit. Prices are rounded
    down to the price step (the anchor still clears at the forecast price).
    """
    lo_mw, hi_mw = energy_range(min_mw, max_mw, rules)
    floor, cap = rules.price_floor_usd_per_mwh, rules.price_cap_usd_per_mwh
    if hi_mw - lo_mw < rules.curve_mw_step / 2:
        return ((lo_mw, floor_to(floor, rules.curve_price_step)), (hi_mw, cap))
    step = rules.curve_price_step
    mu = energy_value_usd_per_mwh
    charge_price = eta_charge * mu
    discharge_price = (mu + max(degradation_usd_per_mwh)) / eta_discharge
    prices = [p for _, p in plan_points]
    lowest = min([charge_price, *prices]) - 1.0
    highest = max([discharge_price, *prices]) + 1.0
    # The first plan point anchors the curve: it must clear the planned quantity at
    # the forecast price, so no other point may cross it.
    x0, p0 = min(hi_mw, max(lo_mw, plan_points[0][0])), plan_points[0][1]

    def keep_side(mw: float, p: float) -> Point:
        mw = min(hi_mw, max(lo_mw, mw))
        if p < p0:
            return min(mw, x0), min(p, p0 - step)
        if p > p0:
            return max(mw, x0), max(p, p0 + step)
        return x0, p

    points: list[Point] = [(lo_mw, lowest), (hi_mw, highest)]
    points += [keep_side(mw, p) for mw, p in plan_points]
    points.append(keep_side(lo_mw, min(charge_price, min(prices)) - step))
    if lo_mw < 0 < hi_mw:
        points.append(keep_side(0.0, charge_price))
    if hi_mw > 0:
        base = max(0.0, lo_mw)
        segments = sorted(degradation_usd_per_mwh)
        for k, delta in enumerate(segments, start=1):
            share = base + (hi_mw - base) * k / len(segments)
            points.append(keep_side(share, (mu + delta) / eta_discharge))
    return _tidy_curve(points, rules, lo_mw, hi_mw)


def with_energy_prices(
    scn: Scenario, energy: Mapping[str, Sequence[float]]
) -> Scenario:
    """Return ``scn`` with the energy price series of the given nodes replaced [$/MWh]."""
    markets = dict(scn.markets)
    for node, series in energy.items():
        markets[node] = markets[node].model_copy(update={"energy": list(series)})
    return scn.model_copy(update={"markets": markets})


def _as_offer_price(
    product: str, scn: Scenario, rules: MarketRules, degradation: Sequence[float]
) -> float:
    """Least AS price worth the expected wear of deployment [$/MW-h] (spec B2)."""
    beta = next((r.deploy for r in scn.reserves if r.name == product), 0.0)
    return ceil_to(beta * min(degradation), rules.as_price_step)


def build_bids(
    scn: Scenario,
    result: Result,
    rules: MarketRules,
    operating_day: dt.date,
    *,
    alternatives: Sequence[tuple[Scenario, Result]] = (),
    note: str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> BidSet:
    """Turn a day-ahead schedule into the bid set of one market and operating day.

    Parameters
    ----------
    scn, result
        The day-ahead scenario (P50 prices, intervals tiling the operating day from
        its first hour) and its optimal result (with ``energy_value_usd_per_mwh``).
    rules
        The market's rules (point and block limits, price bounds).
    operating_day
        The operating day the scenario covers.
    alternatives
        The same scenario solved at other price forecasts (e.g. P10, P90); each adds
        one (net MW, price) point per site and hour to the energy curve.
    note, meta
        Kept with the bid set.

    Returns
    -------
    BidSet
        Per site enrolled in energy: one energy curve per hour; per AS product the
        site is enrolled in and the plan carries: one block of the planned MW per
        hour. A bid set built from a feasible schedule passes
        :func:`dispatch.bidcheck.check_bid_set`.

    Raises
    ------
    DispatchInputError
        When the result has no schedule or lacks a site.
    """
    if not result.sites:
        msg = f"result status={result.status}: no schedule to bid from"
        raise DispatchInputError(msg)
    k = intervals_per_hour(scn)
    bids: list[Bid] = []
    plans = [(scn, result), *alternatives]
    for site in scn.sites:
        if site.is_btm:
            continue
        if site.id not in result.sites:
            msg = f"result lacks site {site.id!r}"
            raise DispatchInputError(msg)
        sched = result.sites[site.id]
        hours = scn.intervals // k
        # AS offers on the market's MW grid, rounded down: offering less reserve
        # than planned is always deliverable; the energy range uses the same MW.
        offers = {
            res.name: np.array(
                [
                    floor_to(v, rules.as_mw_step) if site.enrolled(res.name) else 0.0
                    for v in hourly(sched.reserve(res.name), k)
                ]
            )
            for res in scn.reserves
        }
        up = sum((offers[r.name] for r in scn.reserves if r.up), np.zeros(hours))
        down = sum((offers[r.name] for r in scn.reserves if not r.up), np.zeros(hours))
        mu = (
            hourly(sched.energy_value_usd_per_mwh, k)
            if sched.energy_value_usd_per_mwh is not None
            else np.zeros(hours)
        )
        nets: list[tuple[np.ndarray, np.ndarray]] = []
        for alt_scn, alt_res in plans:
            alt = alt_res.sites.get(site.id)
            if alt is None:
                continue
            net = hourly(alt.discharge_mw, k) - hourly(alt.charge_mw, k)
            price = alt_scn.markets[site.node].energy or [0.0] * scn.intervals
            nets.append((net, hourly(price, k)))
        for h in range(hours):
            if site.enrolled("energy"):
                curve = energy_curve(
                    plan_points=[(float(n[h]), float(p[h])) for n, p in nets],
                    min_mw=float(down[h]) - site.charge_mw,
                    max_mw=site.discharge_mw - float(up[h]),
                    energy_value_usd_per_mwh=float(mu[h]),
                    eta_charge=site.eta_charge,
                    eta_discharge=site.eta_discharge,
                    degradation_usd_per_mwh=site.degradation_usd_per_mwh,
                    rules=rules,
                )
                bids.append(Bid(site.id, "energy", h + 1, curve))
            for product in scn.reserve_names:
                mw_offer = float(offers[product][h])
                if mw_offer <= 0.0:
                    continue
                offer = _as_offer_price(
                    product, scn, rules, site.degradation_usd_per_mwh
                )
                bids.append(Bid(site.id, product, h + 1, ((mw_offer, offer),)))
    logger.info(
        "built %d bids for %s %s from %d plan(s)",
        len(bids),
        rules.name,
        operating_day,
        len(plans),
    )
    return BidSet(
        market=rules.name,
        operating_day=operating_day,
        bids=tuple(bids),
        note=note,
        meta=dict(meta or {}),
    )


class Linkable(Protocol):
    """What the linked-offer rule reads of a product (a market product or a reserve)."""

    @property
    def name(self) -> str:
        """Product name."""
        ...

    @property
    def sustain_h(self) -> float:
        """Sustain duration [h]."""
        ...


LinkedBlock = tuple[float, dict[str, float]]
"""One linked upward offer block: its MW and the offer price per product it may go to."""


def link_blocks(
    offered: Mapping[str, tuple[float, float]],
    up: Sequence[Linkable],
    allowed: Collection[str],
    deploy: Mapping[str, float],
) -> list[LinkedBlock]:
    """Group planned upward MW into linked offer blocks (ERCOT, spec markets.md B2).

    Parameters
    ----------
    offered
        Per upward product planned this hour: (MW > 0, offer price).
    up
        The market's upward products of the linked offer, in its order.
    allowed
        Products a block may also be offered to (the site's enrolment).
    deploy
        Expected deployed fraction per product (regulation > 0).

    Returns
    -------
    list of (MW, {product: price})
        One block per (sustain duration, deployed fraction) class of the planned
        products, longest duration first. A block goes to its own products and to every
        allowed product that needs no longer a sustain **and** deploys no larger a
        fraction (spin and ECRS blocks never become regulation, a regulation-up block
        may become spin), so whichever mix the market awards, each MW needs no more
        stored energy, for cover or for deployment, than the plan set aside. A product
        keeps its own offer price; one not planned asks the block's highest price.
    """
    classes = sorted(
        {(p.sustain_h, deploy.get(p.name, 0.0)) for p in up if p.name in offered},
        reverse=True,
    )
    blocks: list[LinkedBlock] = []
    for d, a in classes:
        members = [
            p.name
            for p in up
            if p.name in offered and (p.sustain_h, deploy.get(p.name, 0.0)) == (d, a)
        ]
        top = max(offered[n][1] for n in members)
        prices = {
            p.name: offered[p.name][1] if p.name in offered else top
            for p in up
            if (p.name in offered or p.name in allowed)
            and p.sustain_h <= d
            and deploy.get(p.name, 0.0) <= a
        }
        blocks.append((math.fsum(offered[n][0] for n in members), prices))
    return blocks


def linked_limits(
    blocks: Sequence[LinkedBlock], names: Sequence[str] | None = None
) -> list[tuple[tuple[str, ...], float]]:
    """Return, for every set S of products, the most MW S may be awarded.

    ``names``: the products to consider (default: the blocks' products; a product no
    block is offered to gets 0).

    An award mix can be carried by the blocks (each MW of a block to one product it is
    offered to) if and only if, for every S, the MW awarded to S is at most the MW of
    the blocks offered to any product of S (Hall's condition for a transport from
    blocks to products). The whole set comes first, then smaller sets.
    """
    names = sorted(names or {n for _, prices in blocks for n in prices})
    out = []
    for size in range(len(names), 0, -1):
        for group in itertools.combinations(names, size):
            limit = math.fsum(
                mw for mw, prices in blocks if any(n in prices for n in group)
            )
            out.append((group, limit))
    return out


def linked_up_blocks(
    up: Sequence[Product],
    by_product: Mapping[str, Mapping[int, Bid]],
    hour: int,
    enrolled: Collection[str] | None,
    deploy: Mapping[str, float],
) -> list[LinkedBlock]:
    """Return one hour's linked upward offer blocks of a site's bids (:func:`link_blocks`).

    ``enrolled``: the products the site is enrolled in (None: the products bid this
    hour). A bid's MW are its positive quantities, its price the highest of them.
    """
    offered: dict[str, tuple[float, float]] = {}
    for p in up:
        bid = by_product.get(p.name, {}).get(hour)
        if bid is None:
            continue
        mw = math.fsum(q for q, _ in bid.curve if q > 0)
        if mw > 0:
            offered[p.name] = (mw, max(price for q, price in bid.curve if q > 0))
    return link_blocks(offered, up, set(enrolled or ()), deploy)


@dataclass(frozen=True, slots=True)
class PlanHour:
    """One site and hour of the plan as a market's operating plan (COP) reports it."""

    site_id: str
    """Site."""
    hour_ending: int
    """Hour ending of the operating day (1-25)."""
    online: bool
    """Whether the site is available (any charge or discharge power)."""
    hsl_mw: float
    """High sustained limit: the discharge power [MW]."""
    lsl_mw: float
    """Low sustained limit: minus the charge power (ESR single model) [MW]."""
    soc_hb_mwh: float
    """Planned stored energy at the beginning of the hour [MWh]."""
    min_soc_mwh: float
    """Least stored energy the site may hold (soc_min·E) [MWh]."""
    max_soc_mwh: float
    """Most stored energy the site may hold (soc_max·E) [MWh]."""
    net_mw: float
    """Planned net power, + discharge (the hour's mean) [MW]."""
    reserves_mw: Mapping[str, float]
    """Planned ancillary services per product (the hour's mean, rounded down) [MW]."""


def plan_hours(
    scn: Scenario, result: Result, rules: MarketRules
) -> tuple[PlanHour, ...]:
    """Return the day's plan per front-of-meter site and hour, on the market's grid.

    Parameters
    ----------
    scn, result
        The day-ahead scenario (intervals tiling whole hours) and its result.
    rules
        The market: MW grid (``as_mw_step``) and products.

    Returns
    -------
    tuple of PlanHour
        Ordered by site, then hour. Stored energy is rounded to the MW grid's
        decimals with the planned SoC kept inside ``[min_soc_mwh, max_soc_mwh]``.

    Raises
    ------
    DispatchInputError
        When the result has no schedule for a site or the intervals do not tile
        hours.
    """
    k = intervals_per_hour(scn)
    hours = scn.intervals // k
    step = rules.as_mw_step
    digits = step_decimals(step)
    out: list[PlanHour] = []
    for site in scn.sites:
        if site.is_btm:
            continue
        sched = result.sites.get(site.id)
        if sched is None:
            msg = f"result lacks site {site.id!r}"
            raise DispatchInputError(msg)
        e_min = ceil_to(site.energy_mwh * site.soc_min, step)
        e_max = floor_to(site.energy_mwh * site.soc_max, step)
        net = hourly(sched.discharge_mw, k) - hourly(sched.charge_mw, k)
        reserves = {
            p.name: hourly(sched.reserve(str(p.service)), k)
            for p in rules.reserve_products
        }
        for h in range(hours):
            soc = round(site.energy_mwh * sched.soc[h * k], digits)
            out.append(
                PlanHour(
                    site_id=site.id,
                    hour_ending=h + 1,
                    online=site.charge_mw > 0 or site.discharge_mw > 0,
                    hsl_mw=floor_to(site.discharge_mw, step),
                    lsl_mw=-floor_to(site.charge_mw, step),
                    soc_hb_mwh=min(e_max, max(e_min, soc)),
                    min_soc_mwh=e_min,
                    max_soc_mwh=e_max,
                    net_mw=round_to(float(net[h]), step),
                    reserves_mw={
                        name: floor_to(float(v[h]), step)
                        for name, v in reserves.items()
                    },
                )
            )
    return tuple(out)


def export_json(
    bid_set: BidSet, rules: MarketRules, resource_ids: Mapping[str, str]
) -> dict[str, Any]:
    """Return the documented JSON export of a bid set (``docs/bids.md``)."""
    resources: dict[str, dict[str, Any]] = {}
    for site_id, group in itertools.groupby(bid_set.bids, key=lambda b: b.site_id):
        entry = resources.setdefault(
            site_id,
            {
                "site_id": site_id,
                "resource_id": resource_ids.get(site_id, site_id),
                "hours": {},
            },
        )
        for bid in group:
            hour = entry["hours"].setdefault(
                str(bid.hour_ending), {"energy_curve": None, "as_offers": {}}
            )
            pts = [[mw, p] for mw, p in bid.curve]
            if bid.product == "energy":
                hour["energy_curve"] = pts
            else:
                hour["as_offers"][rules.product(bid.product).code] = pts
    return {
        "schema": "bessfleet-bids/1",
        "market": bid_set.market,
        "operating_day": bid_set.operating_day.isoformat(),
        "timezone": rules.timezone,
        "note": bid_set.note,
        **{str(k): v for k, v in bid_set.meta.items()},
        "resources": list(resources.values()),
        "bids": [b.to_json() for b in bid_set.bids],
    }
