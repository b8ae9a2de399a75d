"""Awards: read pushed award sets, store them, and turn them into fixed commitments."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from dispatch.bidcheck import down_limit_mw, up_limit_mw
from dispatch.bids import Bid, BidSet, link_blocks, linked_limits, parse_bids
from dispatch.markets import MarketRules, Product
from dispatch.scenario import Commitments, Scenario
from fleet.domain import Fleet
from fleet.errors import FleetInputError
from fleet.ops.scenario_builder import operating_day_start
from fleet.store.bids import (
    StoredBidSet,
    delete_awards,
    get_bid_set,
    load_awards,
    save_awards,
)
from fleet.store.dml import Bind, transaction

logger = logging.getLogger(__name__)

NOT_DISPATCHED = frozenset({"capacity"})
"""Products an award may be for that dispatch does not carry (skipped as commitments);
every other product is ``energy`` or an ancillary service of the market rules."""


class AwardIn(BaseModel):
    """One awarded quantity: site, interval start, product, MW and clearing price."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    site_id: str = Field(min_length=1, max_length=64)
    ts: AwareDatetime
    product: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    """``energy`` or an ancillary service of the market rules (checked by
    :func:`award_refusals`)."""
    award_mw: float = Field(ge=-10000, le=10000)
    price: float | None = Field(default=None, ge=-10000, le=100000)
    unit: Literal["usd_per_mwh", "usd_per_mw"]


class AwardSetIn(BaseModel):
    """An award file: the bid version it answers and its awards (API layout)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1)
    awards: list[AwardIn] = Field(min_length=1, max_length=20000)


def read_award_file(path: Path) -> AwardSetIn:
    """Read and validate an award JSON file.

    Raises
    ------
    FleetFileError
        Naming the file and the first bad field.
    """
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        msg = f"{path}: award file not found"
        raise FleetInputError(msg) from None
    except json.JSONDecodeError as exc:
        msg = (
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        )
        raise FleetInputError(msg) from None
    try:
        return AwardSetIn.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = f"{path}: {loc}: {err['msg']}"
        raise FleetInputError(msg) from None


@dataclass(frozen=True, slots=True)
class AwardRefusal:
    """Why one award (or the whole award set) is refused."""

    index: int | None
    """Index of the award in ``awards`` (None: the award set as a whole)."""
    field: str
    """Field at fault (``award_mw``, ``ts``, ``site_id``, ``unit``, ``version``, …)."""
    message: str
    """Human-readable reason naming the site, product and hour."""


class AwardRefusedError(FleetInputError):
    """An award set that fails :func:`check_awards`; ``refusals`` lists every reason."""

    def __init__(self, refusals: Sequence[AwardRefusal]) -> None:
        self.refusals = list(refusals)
        more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
        super().__init__(f"{refusals[0].message}{more}")


_TOL_MW = 1e-6


def award_refusals(
    award_set: AwardSetIn,
    rules: MarketRules,
    operating_day: dt.date,
    scn: Scenario,
    bid_set: StoredBidSet | None,
) -> list[AwardRefusal]:
    """Return every reason to refuse an award set (empty: store it).

    Parameters
    ----------
    award_set
        The awards received.
    rules
        The market: products, units, sustain durations.
    operating_day
        The day the awards are for.
    scn
        The day's check scenario (:func:`fleet.ops.bids.check_scenario`): each site's
        power, energy, SoC window and efficiencies.
    bid_set
        The stored bid set of ``award_set.version`` (None when there is none).

    Returns
    -------
    list of AwardRefusal
        In order: per award the site, the interval (an hour of the day), the product
        and its unit, the sign, the site's power and duration-qualified limit, the
        offered MW (AS) or the curve's MW range (energy); then the bid set itself
        (stored and accepted); then per site and hour the awards together against
        the power headroom and the energy band.
    """
    where_set = f"{rules.name} {operating_day} version={award_set.version}"
    unanswered: AwardRefusal | None = None
    if bid_set is None:
        unanswered = AwardRefusal(
            None,
            "version",
            f"no bid set {where_set}: awards answer a stored, accepted bid set",
        )
    elif bid_set.status != "accepted":
        unanswered = AwardRefusal(
            None,
            "version",
            f"bid set {where_set} was {bid_set.status}, not accepted: "
            f"{bid_set.refusal_reason}",
        )
    bids = (
        {}
        if bid_set is None or unanswered is not None
        else {
            (b.site_id, b.product, b.hour_ending): b
            for b in parse_bids(bid_set.payload)
        }
    )
    sites = {s.id: s for s in scn.sites}
    products = {p.name: p for p in rules.modeled_products}
    # ERCOT links the upward products in one offer (fleet.ops.export writes the
    # blocks): an award may move MW between them within the blocks' limits.
    linked = bool(rules.up_offer_columns)
    up_products = [p for p in rules.modeled_products if p.offer_group == "up"]
    start = operating_day_start(rules, operating_day)
    hours = scn.intervals
    out: list[AwardRefusal] = []
    seen: set[tuple[str, int, str]] = set()
    per_hour: dict[tuple[str, int], dict[str, float]] = {}
    for i, award in enumerate(award_set.awards):
        ts = award.ts.astimezone(dt.UTC)
        offset_h = (ts - start) / dt.timedelta(hours=1)
        hour = int(offset_h) + 1 if offset_h >= 0 else 0
        where = (
            f"awards[{i}]: site {award.site_id}, {award.product}, hour_ending {hour}"
        )

        def refuse(field: str, text: str, *, index: int = i, at: str = where) -> None:
            out.append(AwardRefusal(index, field, f"{at}: {text}"))

        site = sites.get(award.site_id)
        if site is None:
            refuse(
                "site_id",
                f"site_id={award.site_id!r} is not a {rules.name} site of the fleet",
            )
            continue
        if not 0 <= offset_h < hours or offset_h != int(offset_h):
            refuse(
                "ts",
                f"ts={award.ts.isoformat()} is not the start of an hour of operating "
                f"day {operating_day} ({rules.timezone})",
            )
            continue
        key = (award.site_id, hour, award.product)
        if key in seen:
            refuse("product", "duplicate site_id/ts/product")
            continue
        seen.add(key)
        product = products.get(award.product)
        if product is None:
            refuse(
                "product", f"product is not a {rules.name} product ({sorted(products)})"
            )
            continue
        unit = "usd_per_mwh" if product.sustain_h == 0 else "usd_per_mw"
        if award.unit != unit:
            refuse("unit", f"unit={award.unit!r}; {award.product} is priced in {unit}")
            continue
        mw = award.award_mw
        if product.sustain_h > 0:
            if mw < 0:
                refuse("award_mw", f"award_mw={mw:g} must be >= 0")
                continue
            limit = (
                down_limit_mw(site, product.sustain_h)
                if product.direction == "down"
                else up_limit_mw(site, product.sustain_h)
            )
            if mw > limit + _TOL_MW:
                refuse(
                    "award_mw",
                    f"award_mw={mw:g} exceeds the site's {limit:g} MW (power "
                    f"{site.charge_mw:g}+{site.discharge_mw:g} MW, {product.sustain_h:g} h "
                    f"sustain from {site.energy_mwh:g} MWh)",
                )
                continue
        elif not -site.charge_mw - _TOL_MW <= mw <= site.discharge_mw + _TOL_MW:
            refuse(
                "award_mw",
                f"award_mw={mw:g} is outside the site's -{site.charge_mw:g}.."
                f"{site.discharge_mw:g} MW",
            )
            continue
        if unanswered is not None:
            per_hour.setdefault((award.site_id, hour), {})[award.product] = mw
            continue
        bid = bids.get((award.site_id, award.product, hour))
        if linked and product.offer_group == "up":
            # Linked upward blocks: the award may go to any product of a block the
            # site offered this hour; the blocks' limits are checked below.
            if not any((award.site_id, p.name, hour) in bids for p in up_products):
                refuse("product", f"bid set {where_set} offered no upward block here")
                continue
            if not site.enrolled(award.product):
                refuse("product", f"site is not enrolled in {award.product}")
                continue
            per_hour.setdefault((award.site_id, hour), {})[award.product] = mw
            continue
        if bid is None:
            refuse("product", f"bid set {where_set} offered no {award.product} here")
            continue
        if product.sustain_h > 0:
            offered = math.fsum(q for q, _ in bid.curve)
            if mw > offered + _TOL_MW:
                refuse(
                    "award_mw", f"award_mw={mw:g} exceeds the {offered:g} MW offered"
                )
                continue
        else:
            lo, hi = bid.curve[0][0], bid.curve[-1][0]
            if not lo - _TOL_MW <= mw <= hi + _TOL_MW:
                refuse(
                    "award_mw",
                    f"award_mw={mw:g} is outside the bid curve's {lo:g}..{hi:g} MW",
                )
                continue
        per_hour.setdefault((award.site_id, hour), {})[award.product] = mw
    if unanswered is not None:
        out.append(unanswered)
    sustain = {name: p.sustain_h for name, p in products.items()}
    ups = {name for name, p in products.items() if p.direction == "up"}
    downs = {name for name, p in products.items() if p.direction == "down"}
    energy = next(name for name, p in products.items() if p.sustain_h == 0)
    for (site_id, hour), awarded in sorted(per_hour.items()):
        site = sites[site_id]
        at = f"site {site_id}, hour_ending {hour}"
        if linked and bids:
            out += _linked_refusals(awarded, bids, site_id, hour, up_products, rules)
        up = math.fsum(mw for name, mw in awarded.items() if name in ups)
        down = math.fsum(mw for name, mw in awarded.items() if name in downs)
        x = awarded.get(energy)
        if x is not None and x + up > site.discharge_mw + _TOL_MW:
            out.append(
                AwardRefusal(
                    None,
                    "award_mw",
                    f"{at}: energy {x:g} MW + upward reserves {up:g} MW exceed the "
                    f"site's {site.discharge_mw:g} MW discharge",
                )
            )
        if x is not None and down - x > site.charge_mw + _TOL_MW:
            out.append(
                AwardRefusal(
                    None,
                    "award_mw",
                    f"{at}: downward reserves {down:g} MW with energy {x:g} MW exceed "
                    f"the site's {site.charge_mw:g} MW charge",
                )
            )
        up_mwh = math.fsum(
            sustain[name] * mw / site.eta_discharge
            for name, mw in awarded.items()
            if name in ups
        )
        down_mwh = math.fsum(
            sustain[name] * mw * site.eta_charge
            for name, mw in awarded.items()
            if name in downs
        )
        band = site.energy_mwh * (site.soc_max - site.soc_min)
        if up_mwh + down_mwh > band + 1e-3:
            out.append(
                AwardRefusal(
                    None,
                    "award_mw",
                    f"{at}: reserves need {up_mwh:.3f} MWh above soc_min and "
                    f"{down_mwh:.3f} MWh below soc_max for their sustain durations, "
                    f"more than the site's {band:.3f} MWh band",
                )
            )
    return out


def _linked_refusals(
    awarded: Mapping[str, float],
    bids: Mapping[tuple[str, str, int], Bid],
    site_id: str,
    hour: int,
    up: Sequence[Product],
    rules: MarketRules,
) -> list[AwardRefusal]:
    """Refuse upward awards the hour's linked blocks cannot hold.

    The blocks are those the export writes (:func:`dispatch.bids.link_blocks`): a
    block may go to a product that needs no longer a sustain and deploys no more than
    its own. The awards fit when, for every set of products, the MW awarded to them is
    at most the MW of the blocks offered to any of them (:func:`dispatch.bids.
    linked_limits`); the first set that does not fit is named, the whole set first.
    """
    offered: dict[str, tuple[float, float]] = {}
    for p in up:
        bid = bids.get((site_id, p.name, hour))
        mw = math.fsum(q for q, _ in bid.curve if q > 0) if bid is not None else 0.0
        if mw > 0:
            offered[p.name] = (mw, 0.0)
    deploy = {p.name: rules.deploy_of(p.name) for p in up}
    blocks = link_blocks(offered, up, {p.name for p in up}, deploy)
    names = {p.name for p in up if awarded.get(p.name, 0.0) > 0}
    every = tuple(sorted({n for _, prices in blocks for n in prices} | names))
    for group, limit in linked_limits(blocks, every):
        got = math.fsum(awarded.get(n, 0.0) for n in group)
        if got > limit + _TOL_MW:
            what = (
                "upward reserves"
                if group == every
                else f"{', '.join(group)} (upward, by sustain and deployment)"
            )
            listed = ", ".join(n for n in group if awarded.get(n, 0.0) > 0)
            return [
                AwardRefusal(
                    None,
                    "award_mw",
                    f"site {site_id}, {listed}, hour_ending {hour}: {what} awarded "
                    f"{got:g} MW exceed the {limit:g} MW of the linked blocks offered",
                )
            ]
    return []


def check_awards(
    bind: Bind,
    award_set: AwardSetIn,
    rules: MarketRules,
    operating_day: dt.date,
    fleet: Fleet,
) -> None:
    """Refuse awards that answer no accepted bid set or that the fleet cannot deliver.

    This is the one award check: the CLI (``awards push``) and the API call it.

    Raises
    ------
    AwardRefusedError
        With every :class:`AwardRefusal`; the message names the award index, site,
        product, hour and field of the first.
    """
    from fleet.ops.bids import check_scenario

    market_sites = [s for s in fleet.sites if s.market.value == rules.name]
    bid_set = get_bid_set(
        bind, market=rules.name, operating_day=operating_day, version=award_set.version
    )
    if not market_sites:
        refusal = AwardRefusal(None, "site_id", f"the fleet has no {rules.name} site")
        raise AwardRefusedError([refusal])
    scn = check_scenario(
        fleet.model_copy(update={"sites": market_sites}), rules, operating_day
    )
    refusals = award_refusals(award_set, rules, operating_day, scn, bid_set)
    if refusals:
        logger.warning(
            "award set %s %s v%d refused: %s",
            rules.name,
            operating_day,
            award_set.version,
            refusals[0].message,
        )
        raise AwardRefusedError(refusals)


def store_awards(
    bind: Bind, award_set: AwardSetIn, rules: MarketRules, operating_day: dt.date
) -> int:
    """Save an award set (after :func:`check_awards`); return the rows written.

    The rows of that version already stored are replaced (as the API does).
    """
    frame = pd.DataFrame(
        [
            {
                "market": rules.name,
                "operating_day": operating_day,
                "version": award_set.version,
                "site_id": a.site_id,
                "ts": a.ts.astimezone(dt.UTC),
                "product": a.product,
                "award_mw": a.award_mw,
                "price": a.price,
                "unit": a.unit,
            }
            for a in award_set.awards
        ]
    )
    with transaction(bind) as conn:
        delete_awards(
            conn,
            market=rules.name,
            operating_day=operating_day,
            version=award_set.version,
        )
        return save_awards(conn, frame)


def awards_from_bids(
    bid_set: BidSet, rules: MarketRules, prices: Mapping[str, Sequence[float]]
) -> AwardSetIn:
    """Clear a bid set at given energy prices (a simulated market, for tests and demos).

    Parameters
    ----------
    bid_set
        The bids.
    rules
        The market.
    prices
        Per site: the clearing energy price of each hour [$/MWh]. The awarded MW is
        the curve's MW at that price (step reading: the last point at or below the
        price, the first point below all). Every AS offer is awarded in full.

    Returns
    -------
    AwardSetIn
        Version 1, one award per bid.
    """
    start = operating_day_start(rules, bid_set.operating_day)
    awards = []
    for bid in bid_set.bids:
        ts = start + dt.timedelta(hours=bid.hour_ending - 1)
        if bid.product == "energy":
            price = prices[bid.site_id][bid.hour_ending - 1]
            below = [mw for mw, p in bid.curve if p <= price]
            mw = below[-1] if below else bid.curve[0][0]
            unit: Literal["usd_per_mwh", "usd_per_mw"] = "usd_per_mwh"
        else:
            mw = float(sum(q for q, _ in bid.curve))
            unit = "usd_per_mw"
        awards.append(
            AwardIn.model_validate(
                {
                    "site_id": bid.site_id,
                    "ts": ts,
                    "product": bid.product,
                    "award_mw": mw,
                    "unit": unit,
                }
            )
        )
    return AwardSetIn(version=1, awards=awards)


def commitments_from_awards(
    awards: pd.DataFrame | Sequence[AwardIn],
    *,
    start: dt.datetime,
    interval_minutes: float,
    intervals: int,
    award_minutes: float = 60.0,
) -> dict[str, Commitments]:
    """Turn awards into per-site commitments on a scenario's interval grid.

    Parameters
    ----------
    awards
        Stored awards (columns ``site_id, ts, product, award_mw``) or parsed ones.
    start, interval_minutes, intervals
        The scenario's grid (aware start).
    award_minutes
        Length of an award's interval (60 for an hourly day-ahead market) [minutes].

    Returns
    -------
    dict
        Per site: ``net_mw`` fixed where an energy award covers the interval (None
        elsewhere) and, per awarded ancillary service, its lower bounds (0 where
        nothing is awarded).
    """
    if isinstance(awards, pd.DataFrame):
        rows = [
            (
                str(r.site_id),
                pd.Timestamp(r.ts).to_pydatetime(),
                str(r.product),
                float(r.award_mw),
            )
            for r in awards.itertuples(index=False)
        ]
    else:
        rows = [(a.site_id, a.ts, a.product, a.award_mw) for a in awards]
    first = start.astimezone(dt.UTC)
    grid = [
        first + i * dt.timedelta(minutes=interval_minutes) for i in range(intervals)
    ]
    per_site: dict[str, dict[str, list[float | None]]] = {}
    for site_id, ts, product, mw in rows:
        if product in NOT_DISPATCHED:
            continue
        lo = ts.astimezone(dt.UTC)
        hi = lo + dt.timedelta(minutes=award_minutes)
        covered = [i for i, t in enumerate(grid) if lo <= t < hi]
        if not covered:
            continue
        entry = per_site.setdefault(site_id, {"energy": [None] * intervals})
        series = entry.setdefault(product, [0.0] * intervals)
        for i in covered:
            series[i] = mw
    out: dict[str, Commitments] = {}
    for site_id, entry in per_site.items():
        net = entry.pop("energy")
        out[site_id] = Commitments(
            net_mw=net if any(v is not None for v in net) else None,
            reserves_mw={
                product: [float(v or 0.0) for v in series]
                for product, series in entry.items()
            },
        )
    return out


def latest_awards(
    bind: Bind, rules: MarketRules, operating_day: dt.date
) -> pd.DataFrame:
    """Return the newest version's awards of the market and day (empty when none)."""
    frame = load_awards(bind, market=rules.name, operating_day=operating_day)
    if frame.empty:
        return frame
    newest = frame["version"].max()
    return frame[frame["version"] == newest].reset_index(drop=True)


def awards_payload(award_set: AwardSetIn) -> dict[str, Any]:
    """Return the award set as JSON (the API's ``AwardSetIn`` body)."""
    return award_set.model_dump(mode="json", exclude_none=True)
