"""Check a bid set against the market's rules and against what the fleet can deliver.

Two pure checks over a dispatch :class:`~dispatch.scenario.Scenario` (the sites' limits,
SoC at the start of the operating day and fixed commitments) and the bids:

- :func:`rule_refusals`: each bid on its own: known product the site is enrolled in,
  hour of the day, point/block counts, monotone curve, repeated prices or MW, price
  bounds, MW within the site's power and duration-qualified limits.
- :func:`delivery_refusals`: the bids of a site together, "if it all cleared": every
  ancillary-service MW offered (plus those already awarded) is awarded, and the energy
  position lies somewhere in the hour's energy curve (or at the awarded net MW). The
  check propagates the interval of reachable stored energy hour by hour (exact for
  this one-dimensional system) and reports the first site, hour and constraint that
  cannot be met.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from dispatch.bids import Bid, hourly, intervals_per_hour
from dispatch.markets import MarketRules
from dispatch.scenario import Scenario, Site

_TOL = 1e-6
_TOL_MWH = 5e-3
"""Energy tolerance of the delivery check [MWh] (bids carry MW to 1e-3)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a bid set is refused: the site, hour, product and the rule it breaks."""

    site_id: str
    """Site of the failing bid."""
    hour_ending: int | None
    """Hour ending (1-25) that fails; None for a site-wide problem."""
    product: str | None
    """Product that fails; None when the failure involves several."""
    rule: str
    """Short rule name, e.g. ``curve_monotone`` or ``energy_up_cover``."""
    message: str
    """The full, human-readable reason."""

    def __str__(self) -> str:
        return self.message


def _where(bid: Bid) -> str:
    return f"site {bid.site_id}, hour_ending {bid.hour_ending}, {bid.product}"


def _repeat_runs(values: list[float], limit: int) -> bool:
    run = 1
    for a, b in itertools.pairwise(values):
        run = run + 1 if a == b else 1
        if run > limit:
            return True
    return False


def up_limit_mw(site: Site, sustain_h: float) -> float:
    """Most MW of an upward reserve the site can carry for ``sustain_h`` hours [MW].

    Single ESR model: min(P_c + P_d, E·(soc_max - soc_min)·η_d / D) (B1, duration
    qualification).
    """
    # Single ESR model: up-reserve can be carried while charging (x + r <= P_d, x >= -P_c).
    power = site.discharge_mw + site.charge_mw
    usable = site.energy_mwh * (site.soc_max - site.soc_min)
    if sustain_h <= 0:
        return power
    return min(power, usable * site.eta_discharge / sustain_h)


def down_limit_mw(site: Site, sustain_h: float) -> float:
    """Most MW of Reg-Down the site can carry for ``sustain_h`` hours [MW].

    min(P_c + P_d, E·(soc_max - soc_min) / (η_c·D)).
    """
    power = site.discharge_mw + site.charge_mw
    usable = site.energy_mwh * (site.soc_max - site.soc_min)
    if sustain_h <= 0:
        return power
    return min(power, usable / (site.eta_charge * sustain_h))


def _on_grid(value: float, step: float) -> bool:
    return abs(value / step - round(value / step)) <= 1e-6


def _off_grid(bid: Bid, mw_step: float, price_step: float) -> str | None:
    """Describe the first MW or price that is not a multiple of the market's step."""
    for j, (mw, price) in enumerate(bid.curve, start=1):
        if not _on_grid(mw, mw_step):
            return (
                f"point {j}: {mw!r} MW is not a multiple of the market's {mw_step:g} MW"
            )
        if not _on_grid(price, price_step):
            return (
                f"point {j}: price {price!r} is not a multiple of the market's "
                f"{price_step:g}"
            )
    return None


def _bid_refusal(
    bid: Bid, site: Site | None, rules: MarketRules, hours: int
) -> Refusal | None:
    def refuse(rule: str, text: str) -> Refusal:
        return Refusal(
            bid.site_id, bid.hour_ending, bid.product, rule, f"{_where(bid)}: {text}"
        )

    if not 1 <= bid.hour_ending <= hours:
        return refuse(
            "hour", f"hour_ending={bid.hour_ending} is outside 1..{hours} of the day"
        )
    names = {p.name for p in rules.modeled_products}
    if bid.product not in names:
        return refuse(
            "product", f"product is not offered in {rules.name} ({sorted(names)})"
        )
    if site is not None and not site.enrolled(bid.product):
        return refuse(
            "enrolment", f"site is not enrolled in {bid.product} ({site.services})"
        )
    mws = [mw for mw, _ in bid.curve]
    prices = [p for _, p in bid.curve]
    if bid.product == "energy":
        if not rules.curve_min_points <= len(bid.curve) <= rules.curve_max_points:
            return refuse(
                "curve_points",
                f"{len(bid.curve)} points; {rules.name} takes "
                f"{rules.curve_min_points} to {rules.curve_max_points}",
            )
        off = _off_grid(bid, rules.curve_mw_step, rules.curve_price_step)
        if off is not None:
            return refuse("precision", off)
        for j in range(1, len(bid.curve)):
            if mws[j] < mws[j - 1] - _TOL or prices[j] < prices[j - 1] - _TOL:
                return refuse(
                    "curve_monotone",
                    f"point {j + 1} ({mws[j]:g} MW, {prices[j]:g} $/MWh) is below point "
                    f"{j} ({mws[j - 1]:g} MW, {prices[j - 1]:g} $/MWh): the curve must "
                    "be non-decreasing in MW and price",
                )
        limit = rules.curve_max_repeats
        if _repeat_runs(mws, limit) or _repeat_runs(prices, limit):
            return refuse(
                "curve_repeats",
                f"more than {limit} consecutive points at the same MW or price",
            )
        lo, hi = rules.price_floor_usd_per_mwh, rules.price_cap_usd_per_mwh
        bad = [p for p in prices if not lo <= p <= hi]
        if bad:
            return refuse(
                "price_bounds",
                f"price {bad[0]:g} $/MWh is outside [{lo:g}, {hi:g}] $/MWh",
            )
        if site is None:
            return None
        if mws[0] < -site.charge_mw - _TOL or mws[-1] > site.discharge_mw + _TOL:
            return refuse(
                "power_limit",
                f"curve spans {mws[0]:g}..{mws[-1]:g} MW beyond the site's "
                f"-{site.charge_mw:g}..{site.discharge_mw:g} MW",
            )
        return None
    if len(bid.curve) > rules.as_max_blocks:
        return refuse(
            "as_blocks",
            f"{len(bid.curve)} blocks; {rules.name} allows at most {rules.as_max_blocks}",
        )
    off = _off_grid(bid, rules.as_mw_step, rules.as_price_step)
    if off is not None:
        return refuse("precision", off)
    if any(mw < 0 for mw in mws):
        return refuse("as_quantity", "a block has negative MW")
    if any(b < a - _TOL for a, b in itertools.pairwise(prices)):
        return refuse("as_monotone", "block prices must be non-decreasing")
    cap = rules.as_price_cap_usd_per_mw
    if any(not 0 <= p <= cap for p in prices):
        return refuse("price_bounds", f"block price outside [0, {cap:g}] $/MW-h")
    if site is None:
        return None
    product = rules.product(bid.product)
    sustain = product.sustain_h
    total = math.fsum(mws)
    limit_mw = (
        down_limit_mw(site, sustain)
        if product.direction == "down"
        else up_limit_mw(site, sustain)
    )
    if total > limit_mw + _TOL:
        return refuse(
            "as_limit",
            f"{total:g} MW offered exceeds the site's {limit_mw:g} MW (power and "
            f"{sustain:g} h sustain from {site.energy_mwh:g} MWh)",
        )
    return None


def rule_refusals(
    bids: Iterable[Bid], scn: Scenario | None, rules: MarketRules
) -> list[Refusal]:
    """Return every bid that breaks a market rule or a site limit, one refusal each.

    Parameters
    ----------
    bids
        The bids of one market and operating day.
    scn
        The operating day's scenario (sites, intervals tiling the day's hours); None
        checks only the market's curve rules (no site limits, hours 1-25).
    rules
        The market's rules.

    Returns
    -------
    list of Refusal
        Empty when every bid keeps the rules. Duplicate (site, product, hour) and
        unknown sites are refused too.
    """
    hours = 25 if scn is None else scn.intervals // intervals_per_hour(scn)
    sites = {} if scn is None else {s.id: s for s in scn.sites}
    out: list[Refusal] = []
    seen: set[tuple[str, str, int]] = set()
    for bid in bids:
        key = (bid.site_id, bid.product, bid.hour_ending)
        if scn is not None and bid.site_id not in sites:
            out.append(
                Refusal(
                    bid.site_id,
                    bid.hour_ending,
                    bid.product,
                    "site",
                    f"{_where(bid)}: site is not in the fleet",
                )
            )
            continue
        if key in seen:
            out.append(
                Refusal(
                    bid.site_id,
                    bid.hour_ending,
                    bid.product,
                    "duplicate",
                    f"{_where(bid)}: more than one bid for this site, product and hour",
                )
            )
            continue
        seen.add(key)
        refusal = _bid_refusal(bid, sites.get(bid.site_id), rules, hours)
        if refusal is not None:
            out.append(refusal)
    return out


def _committed(site: Site, product: str, k: int, hours: int) -> np.ndarray:
    com = site.commitments
    series = com.award(product) if com is not None else None
    if series is None:
        return np.zeros(hours)
    return np.asarray(series, dtype=float).reshape(hours, k).max(axis=1)


def _net_fixed(site: Site, k: int, hours: int) -> list[float | None]:
    com = site.commitments
    if com is None or com.net_mw is None:
        return [None] * hours
    out: list[float | None] = []
    for h in range(hours):
        vals = [v for v in com.net_mw[h * k : (h + 1) * k] if v is not None]
        out.append(float(np.mean(vals)) if vals else None)
    return out


def _energy_step(x_mw: float, eta_c: float, eta_d: float) -> float:
    """Change of stored energy over one hour at net power ``x_mw`` [MWh]."""
    return -eta_c * x_mw if x_mw < 0 else -x_mw / eta_d


def _site_delivery(
    site: Site, bids: list[Bid], scn: Scenario, rules: MarketRules
) -> Refusal | None:
    k = intervals_per_hour(scn)
    hours = scn.intervals // k
    products = {p.name: p for p in rules.reserve_products}
    offered: dict[str, np.ndarray] = {p: np.zeros(hours) for p in products}
    q_lo = np.zeros(hours)
    q_hi = np.zeros(hours)
    for bid in bids:
        h = bid.hour_ending - 1
        if bid.product == "energy":
            q_lo[h] = bid.curve[0][0]
            q_hi[h] = bid.curve[-1][0]
        else:
            offered[bid.product][h] += math.fsum(mw for mw, _ in bid.curve)
    for product in products:
        offered[product] = offered[product] + _committed(site, product, k, hours)
    fixed = _net_fixed(site, k, hours)
    ups = [p for p in products if products[p].direction == "up"]
    downs = [p for p in products if products[p].direction == "down"]
    deploy = {r.name: r.deploy for r in scn.reserves}
    e_mwh = site.energy_mwh
    e_min, e_max = e_mwh * site.soc_min, e_mwh * site.soc_max
    ec, ed = site.eta_charge, site.eta_discharge
    lo = hi = e_mwh * site.soc_initial

    def refuse(h: int, product: str | None, rule: str, text: str) -> Refusal:
        return Refusal(
            site.id,
            h + 1,
            product,
            rule,
            f"site {site.id}, hour_ending {h + 1}: {text} if all bids cleared",
        )

    def sustain(names: list[str], h: int) -> float:
        return math.fsum(products[p].sustain_h * offered[p][h] for p in names)

    for h in range(hours):
        ru = math.fsum(offered[p][h] for p in ups)
        rd = math.fsum(offered[p][h] for p in downs)
        up_names = "+".join(p for p in ups if offered[p][h] > 0) or "up reserves"
        dn_names = "+".join(p for p in downs if offered[p][h] > 0) or "down reserves"
        top_up = max(ups, key=lambda p: offered[p][h]) if ups else None
        top_dn = max(downs, key=lambda p: offered[p][h]) if downs else None
        up_need = sustain(ups, h) / ed
        dn_need = sustain(downs, h) * ec
        band_lo, band_hi = e_min + up_need, e_max - dn_need
        if band_lo > band_hi + _TOL_MWH:
            return refuse(
                h,
                None,
                "energy_band",
                f"reserves need {up_need:.3f} MWh above soc_min and {dn_need:.3f} MWh "
                f"of room below soc_max, more than the {e_max - e_min:.3f} MWh band",
            )
        fixed_h = fixed[h]
        x_lo, x_hi = (
            (float(q_lo[h]), float(q_hi[h])) if fixed_h is None else (fixed_h, fixed_h)
        )
        x_lo = max(x_lo, rd - site.charge_mw)
        x_hi = min(x_hi, site.discharge_mw - ru)
        if x_lo > x_hi + _TOL:
            return refuse(
                h,
                None,
                "power_headroom",
                f"{up_names}={ru:g} MW and {dn_names}={rd:g} MW leave no net power "
                f"within the energy bid/award ({q_lo[h]:g}..{q_hi[h]:g} MW) and the "
                f"site's -{site.charge_mw:g}..{site.discharge_mw:g} MW",
            )
        # Start of the hour: stored energy must cover the reserves.
        if hi < band_lo - _TOL_MWH:
            return refuse(
                h,
                top_up,
                "energy_up_cover",
                f"{up_names}={ru:g} MW for their sustain duration need "
                f"{band_lo:.3f} MWh stored, but at most {hi:.3f} MWh can be",
            )
        if lo > band_hi + _TOL_MWH:
            return refuse(
                h,
                top_dn,
                "energy_down_room",
                f"{dn_names}={rd:g} MW for its sustain duration needs stored energy "
                f"<= {band_hi:.3f} MWh, but at least {lo:.3f} MWh remain",
            )
        lo, hi = max(lo, band_lo), min(hi, band_hi)
        drift = math.fsum(ec * deploy.get(p, 0.0) * offered[p][h] for p in downs)
        drift -= math.fsum(deploy.get(p, 0.0) * offered[p][h] for p in ups) / ed
        new_lo = lo + _energy_step(x_hi, ec, ed) + drift
        new_hi = hi + _energy_step(x_lo, ec, ed) + drift
        new_lo, new_hi = max(new_lo, e_min), min(new_hi, e_max)
        if new_lo > new_hi + _TOL_MWH:
            return refuse(
                h,
                "energy",
                "energy_limits",
                "the energy bid cannot keep SoC within limits",
            )
        # End of the hour: the same reserves must still be covered.
        if new_hi < band_lo - _TOL_MWH:
            return refuse(
                h,
                top_up,
                "energy_up_cover",
                f"{up_names}={ru:g} MW need {band_lo:.3f} MWh stored at the end "
                f"of the hour, but at most {new_hi:.3f} MWh can be",
            )
        if new_lo > band_hi + _TOL_MWH:
            return refuse(
                h,
                top_dn,
                "energy_down_room",
                f"{dn_names}={rd:g} MW needs stored energy <= {band_hi:.3f} MWh at the "
                f"end of the hour, but at least {new_lo:.3f} MWh remain",
            )
        lo, hi = max(new_lo, band_lo), min(new_hi, band_hi)
    return None


def delivery_refusals(
    bids: Iterable[Bid], scn: Scenario, rules: MarketRules
) -> list[Refusal]:
    """Return, per site, the first hour at which the bids could not all be delivered.

    Parameters
    ----------
    bids
        Bids that passed :func:`rule_refusals`.
    scn
        The operating day's scenario: limits, ``soc_initial`` at the start of the day,
        ``commitments`` already awarded (added to the offers; a fixed ``net_mw``
        replaces the energy curve's range).
    rules
        Sustain durations per product and expected regulation deployment.

    Returns
    -------
    list of Refusal
        One per site that fails (its first failing hour), empty when deliverable.

    Notes
    -----
    With hourly steps (Δ = 1 h), every reserve r_k awarded in full (up products U,
    down products D, sustain D_k and deployed fraction a_k from the market rules and
    the scenario) and an energy position x in the curve's range [q_lo, q_hi]:

        x + Σ_U r_k ≤ P_d,   -x + Σ_D r_k ≤ P_c
        E·soc_min + Σ_U D_k·r_k/η_d ≤ e ≤ E·soc_max - Σ_D D_k·η_c·r_k   at both ends
        e_{h+1} = e_h - Δ·(x/η_d if x ≥ 0 else η_c·x) + Δ·(η_c·Σ_D a_k·r_k - Σ_U a_k·r_k/η_d)

    The set of reachable e is an interval; it is propagated and intersected with the
    band each hour.
    """
    by_site: dict[str, list[Bid]] = defaultdict(list)
    for bid in bids:
        by_site[bid.site_id].append(bid)
    out: list[Refusal] = []
    for site in scn.sites:
        if site.id not in by_site and site.commitments is None:
            continue
        refusal = _site_delivery(site, by_site.get(site.id, []), scn, rules)
        if refusal is not None:
            out.append(refusal)
    return out


def check_bid_set(
    bids: Iterable[Bid], scn: Scenario, rules: MarketRules
) -> list[Refusal]:
    """Run the rule check, then (when it passes) the delivery check.

    Returns
    -------
    list of Refusal
        Empty when the bid set is accepted.
    """
    bids = list(bids)
    refusals = rule_refusals(bids, scn, rules)
    if refusals:
        return refusals
    return delivery_refusals(bids, scn, rules)


__all__ = [
    "Refusal",
    "check_bid_set",
    "delivery_refusals",
    "down_limit_mw",
    "hourly",
    "rule_refusals",
    "up_limit_mw",
]
