"""Pushed bids: check a bid set against the market rules and the fleet, then store it.

``check_bid_set(market, operating_day, payload)`` is the hook the API's ``PUT
/v1/markets/{market}/bids/{operating_day}`` calls (``fleet/api/routers/markets.py``);
given ``engine=`` it also checks delivery against the stored fleet and telemetry.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from dispatch.bidcheck import Refusal, rule_refusals
from dispatch.bidcheck import check_bid_set as check_bids
from dispatch.bids import parse_bids
from dispatch.errors import DispatchInputError
from dispatch.markets import MarketRules, load_market_rules
from dispatch.scenario import Commitments, Scenario
from fleet.domain import Fleet, Site
from fleet.errors import FleetInputError
from fleet.ops.dayahead import latest_site_states
from fleet.ops.scenario_builder import (
    ScenarioInputs,
    SiteState,
    build_scenario,
    operating_day_hours,
    operating_day_start,
)
from fleet.store.bids import StoredBidSet, save_bid_set
from fleet.store.dml import Bind, transaction
from fleet.store.schedules import latest_schedule
from fleet.store.sites import load_site_configs
from fleet.store.tables import bid_sets

logger = logging.getLogger(__name__)


def check_scenario(
    fleet: Fleet,
    rules: MarketRules,
    operating_day: dt.date,
    *,
    states: Mapping[str, SiteState] | None = None,
    commitments: Mapping[str, Commitments] | None = None,
) -> Scenario:
    """Return the scenario a bid set is checked against (limits, SoC, commitments).

    Prices do not matter to the check and are zero.
    """
    start = operating_day_start(rules, operating_day)
    hours = operating_day_hours(rules, operating_day)
    nodes = {s.node for s in fleet.sites if s.market.value == rules.name}
    zero = {node: {p: [0.0] * hours for p in rules.price_products} for node in nodes}
    return build_scenario(
        fleet,
        rules,
        ScenarioInputs(
            start=start,
            interval_minutes=60,
            intervals=hours,
            prices=zero,
            states=dict(states or {}),
            commitments=dict(commitments or {}),
        ),
    )


def bid_set_refusals(
    fleet: Fleet | None,
    rules: MarketRules,
    operating_day: dt.date,
    payload: Mapping[str, Any],
    *,
    states: Mapping[str, SiteState] | None = None,
    commitments: Mapping[str, Commitments] | None = None,
) -> list[Refusal]:
    """Return why a pushed bid set is refused (empty: accept it).

    Parameters
    ----------
    fleet
        The fleet; None checks only the market's curve rules.
    rules
        The market.
    operating_day
        The day the bids are for.
    payload
        The bid set JSON (API ``BidSetIn`` layout).
    states
        Site SoC at the start of the day, availability (default: the fleet file's SoC).
    commitments
        Awards already fixed for the day.

    Raises
    ------
    DispatchInputError
        When the payload is malformed (naming the bid and field).
    """
    bids = parse_bids(payload)
    if fleet is None:
        return rule_refusals(bids, None, rules)
    scn = check_scenario(
        fleet, rules, operating_day, states=states, commitments=commitments
    )
    return check_bids(bids, scn, rules)


def fleet_from_store(bind: Bind, market: str) -> Fleet | None:
    """Return the market's stored sites as a fleet (None when the store has none)."""
    configs = load_site_configs(bind, market=market)
    if not configs:
        return None
    sites = [Site.model_validate(c) for c in configs]
    return Fleet.model_construct(name="store", sites=sites, poi_groups=[])


def planned_start_states(
    bind: Bind, rules: MarketRules, operating_day: dt.date
) -> dict[str, SiteState]:
    """Return the site states the newest stored schedule of the day was planned from.

    That is the best estimate of the SoC at the start of the operating day (telemetry
    at bidding time is a day earlier); the SoH (energy) and power derate of the plan
    come along, so that a bid check sees the same sites as the plan that made the bids.
    Empty when no schedule is stored.
    """
    stored = latest_schedule(bind, market=rules.name, operating_day=operating_day)
    if stored is None or not stored.scenario:
        return {}
    fleet = fleet_from_store(bind, rules.name)
    rated = {str(s.id): s.battery for s in fleet.sites} if fleet is not None else {}
    out: dict[str, SiteState] = {}
    for site in stored.scenario.get("sites", []):
        sid = str(site["id"])
        battery = rated.get(sid)
        soh, power = 1.0, 1.0
        if battery is not None and battery.energy_mwh > 0:
            soh = min(1.0, float(site["energy_mwh"]) / battery.energy_mwh)
        if battery is not None and battery.discharge_mw > 0:
            power = min(1.0, float(site["discharge_mw"]) / battery.discharge_mw)
        out[sid] = SiteState(
            soc=float(site["soc_initial"]),
            soh=soh,
            available=power > 0,
            power_fraction=power,
        )
    return out


class BidSetInputError(FleetInputError):
    """A pushed bid set that is malformed, not merely refused (API 422, CLI exit 2).

    ``loc`` names the field inside the bid set, e.g. ``("bids", 3, "site_id")``.
    """

    def __init__(self, message: str, loc: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.loc = loc


def screen_bid_set(bind: Bind, payload: Mapping[str, Any]) -> None:
    """Refuse a bid set that cannot be stored even as refused: nothing is kept.

    Every bid names a site the store knows, once per site, product and hour, with a
    curve non-decreasing in MW and price. The market rules and delivery are checked
    afterwards by :func:`check_bid_set` (a bid set failing those is stored, refused).

    A payload :func:`dispatch.bids.parse_bids` cannot read (e.g. a product the
    dispatch does not bid) passes here: :func:`check_bid_set` refuses it with the
    reason.

    Raises
    ------
    BidSetInputError
        Naming the bid index and field.
    """
    try:
        bids = parse_bids(payload)
    except DispatchInputError:
        return
    known = {str(c["id"]) for c in load_site_configs(bind)}
    seen: set[tuple[str, str, int]] = set()
    for i, bid in enumerate(bids):
        if bid.site_id not in known:
            msg = f"bids[{i}].site_id={bid.site_id!r} is not a site of the fleet"
            raise BidSetInputError(msg, ("bids", i, "site_id"))
        key = (bid.site_id, bid.product, bid.hour_ending)
        if key in seen:
            msg = f"bids[{i}]: duplicate site_id/product/hour_ending {key}"
            raise BidSetInputError(msg, ("bids", i))
        seen.add(key)
        for j in range(1, len(bid.curve)):
            (mw0, p0), (mw1, p1) = bid.curve[j - 1], bid.curve[j]
            if mw1 < mw0 or p1 < p0:
                msg = (
                    f"bids[{i}].curve[{j}]=({mw1}, {p1}) is below ({mw0}, {p0}): the "
                    "curve must be non-decreasing in MW and price"
                )
                raise BidSetInputError(msg, ("bids", i, "curve", j))


def check_bid_set(
    market: str,
    operating_day: dt.date,
    payload: Mapping[str, Any],
    *,
    engine: Bind | None = None,
    now: dt.datetime | None = None,
) -> str | None:
    """Return a refusal reason for a pushed bid set, or None to accept it.

    This is the hook ``fleet/api/routers/markets.py`` calls. Without ``engine`` only
    the market's curve rules are checked; with it, the stored sites' limits and the
    delivery check too, from the SoC the day's newest stored schedule starts at
    (else the latest telemetry, else the site file's).

    Parameters
    ----------
    market
        Market name (case-insensitive).
    operating_day
        Day the bids are for.
    payload
        The bid set JSON.
    engine
        The store, for the fleet and its state.
    now
        Time of the check (for the state's age); default now.

    Returns
    -------
    str or None
        The first refusal's message (site, hour, product and rule), with a count of
        the others; None when accepted.
    """
    try:
        rules = load_market_rules(market)
        fleet = fleet_from_store(engine, rules.name) if engine is not None else None
        states = None
        if engine is not None and fleet is not None:
            stamp = now or dt.datetime.now(dt.UTC)
            states = latest_site_states(
                engine,
                [s.id for s in fleet.sites],
                now_ms=int(stamp.timestamp() * 1000),
                stale_after_ms=365 * 86_400_000,
            )
            states = {k: v for k, v in states.items() if v.soc is not None}
            states.update(planned_start_states(engine, rules, operating_day))
        refusals = bid_set_refusals(fleet, rules, operating_day, payload, states=states)
    except DispatchInputError as exc:
        return str(exc)
    if not refusals:
        return None
    more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
    return f"{refusals[0].rule}: {refusals[0].message}{more}"


def next_bid_version(bind: Bind, market: str, operating_day: dt.date) -> int:
    """Return the next bid-set version of the market and day (1 for the first)."""
    query = sa.select(sa.func.coalesce(sa.func.max(bid_sets.c.version), 0)).where(
        bid_sets.c.market == market, bid_sets.c.operating_day == operating_day
    )
    with transaction(bind) as conn:
        return int(conn.execute(query).scalar_one()) + 1


def push_bid_set(
    bind: Bind,
    fleet: Fleet,
    rules: MarketRules,
    operating_day: dt.date,
    payload: Mapping[str, Any],
    *,
    submitted_by: str,
    states: Mapping[str, SiteState] | None = None,
    commitments: Mapping[str, Commitments] | None = None,
    version: int | None = None,
) -> tuple[StoredBidSet, list[Refusal]]:
    """Check a bid set and store it as the next version, accepted or refused.

    ``states`` defaults to the SoC the day's newest stored schedule starts from;
    ``version`` to the next free version (a version already stored is refused with
    :class:`fleet.store.bids.BidVersionExistsError`, nothing is stored).

    Returns
    -------
    tuple
        The stored bid set and the refusals (empty when accepted).

    Raises
    ------
    DispatchInputError
        When the payload is malformed (nothing is stored).
    """
    if states is None:
        states = planned_start_states(bind, rules, operating_day)
    refusals = bid_set_refusals(
        fleet, rules, operating_day, payload, states=states, commitments=commitments
    )
    reason = None
    if refusals:
        more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
        reason = f"{refusals[0].rule}: {refusals[0].message}{more}"
    stored = save_bid_set(
        bind,
        market=rules.name,
        operating_day=operating_day,
        version=version or next_bid_version(bind, rules.name, operating_day),
        status="refused" if refusals else "accepted",
        submitted_by=submitted_by,
        payload=dict(payload),
        refusal_reason=reason,
    )
    logger.info(
        "bid set %s %s v%d %s", rules.name, operating_day, stored.version, stored.status
    )
    return stored, refusals
