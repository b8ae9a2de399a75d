"""The day-ahead cycle: scenario from store, solve, store the schedule version, bids."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from dispatch.bidcheck import Refusal
from dispatch.bidcheck import check_bid_set as check_bids
from dispatch.bids import BidSet, build_bids, with_energy_prices
from dispatch.markets import MarketRules
from dispatch.result import Result
from dispatch.scenario import Scenario
from dispatch.solve import SolveOptions, solve
from dispatch.status import SolveStatus
from fleet.domain import Fleet
from fleet.errors import FleetInputError, StoreError
from fleet.ops.btm import BtmInputs, btm_inputs
from fleet.ops.clock import Clock, next_dayahead_run
from fleet.ops.degradation_costs import scenario_degradation
from fleet.ops.forecasts import Method, refresh_forecasts
from fleet.ops.scenario_builder import (
    ScenarioInputs,
    SiteState,
    build_scenario,
    operating_day_hours,
    operating_day_start,
)
from fleet.store.dml import Bind, transaction
from fleet.store.forecasts import load_price_forecast
from fleet.store.schedules import latest_schedule, save_schedule
from fleet.store.telemetry_tables import tlm_latest

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DayAheadOutcome:
    """What one day-ahead cycle produced."""

    operating_day: dt.date
    """Operating day planned."""
    status: str
    """Solve status of the P50 plan."""
    reason: str | None
    """Why the solve failed (None when it did not)."""
    version: int | None
    """Schedule version stored (None when the solve failed: the previous plan stands)."""
    scenario: Scenario
    """The P50 scenario solved."""
    result: Result
    """Its result."""
    bids: BidSet | None
    """Bids built from the plan (None when the solve failed)."""
    refusals: tuple[Refusal, ...] = ()
    """What the project's own bid check says of ``bids`` (empty: pushable)."""
    forecast_source: str = "stored"
    """``stored`` forecasts, ``refreshed`` (made by this cycle), or ``given`` prices."""


def latest_site_states(
    bind: Bind,
    site_ids: Sequence[str],
    *,
    now_ms: int,
    stale_after_ms: int,
) -> dict[str, SiteState]:
    """Return SoC, SoH and availability per site from the latest telemetry table.

    A site with no battery sample, or whose newest one is older than
    ``stale_after_ms``, is unavailable (it keeps its last known SoC). A site with an
    open critical health alert gets the health policy's power fraction
    (:func:`fleet.health.dispatch_limits`: derated by default).
    """
    query = sa.select(
        tlm_latest.c.site_id, tlm_latest.c.ts_ms, tlm_latest.c.soc_pct, tlm_latest.c.m
    ).where(tlm_latest.c.site_id.in_(list(site_ids)), tlm_latest.c.soc_pct.is_not(None))
    with transaction(bind) as conn:
        rows = conn.execute(query).all()
    # A site with an open critical health alert is derated or excluded (health policy).
    from fleet.health import dispatch_limits

    limits = dispatch_limits(bind, site_ids)
    newest: dict[str, tuple[int, float, float]] = {}
    for site_id, ts_ms, soc_pct, m in rows:
        soh = (m or {}).get("soh_pct") if isinstance(m, dict) else None
        if site_id not in newest or ts_ms > newest[site_id][0]:
            newest[site_id] = (int(ts_ms), float(soc_pct), float(soh or 100.0))
    out: dict[str, SiteState] = {}
    for site_id in site_ids:
        if site_id not in newest:
            out[site_id] = SiteState(
                available=False, power_fraction=limits.get(site_id, 1.0)
            )
            continue
        ts_ms, soc_pct, soh_pct = newest[site_id]
        fresh = now_ms - ts_ms <= stale_after_ms
        out[site_id] = SiteState(
            soc=soc_pct / 100.0,
            soh=min(1.0, soh_pct / 100.0),
            available=fresh,
            power_fraction=limits.get(site_id, 1.0),
        )
    return out


def planned_end_soc(
    bind: Bind, rules: MarketRules, operating_day: dt.date
) -> dict[str, float]:
    """Return the SoC (0-1) the newest schedule of ``operating_day`` ends each site at."""
    stored = latest_schedule(bind, market=rules.name, operating_day=operating_day)
    if stored is None or not stored.result:
        return {}
    out: dict[str, float] = {}
    for site_id, sched in (stored.result.get("sites") or {}).items():
        soc = sched.get("soc") if isinstance(sched, dict) else None
        if soc:
            out[str(site_id)] = float(soc[-1])
    return out


def with_planned_start(
    bind: Bind,
    rules: MarketRules,
    operating_day: dt.date,
    states: Mapping[str, SiteState],
) -> dict[str, SiteState]:
    """Start D's plan where D-1's plan ends, not at the SoC telemetry shows now.

    The day-ahead plan is made on D-1, hours before D starts; the intraday loop of
    D-1 steers each site to its plan's end (its terminal SoC floor), so that SoC, not
    the one measured at planning time, is where D begins. Availability, SoH and the
    health derate stay those of telemetry.
    """
    ends = planned_end_soc(bind, rules, operating_day - dt.timedelta(days=1))
    return {
        sid: (dataclasses.replace(state, soc=ends[sid]) if sid in ends else state)
        for sid, state in states.items()
    }


def stored_forecast_prices(
    bind: Bind,
    rules: MarketRules,
    nodes: Sequence[str],
    start: dt.datetime,
    intervals: int,
    *,
    as_of: dt.datetime,
    quantile: str = "p50",
) -> dict[str, dict[str, list[float]]]:
    """Return the newest stored forecasts (issued at or before ``as_of``) per node.

    Raises
    ------
    FleetInputError
        When a node has no energy forecast covering the horizon.
    """
    index = pd.date_range(start, periods=intervals, freq="h")
    as_series: dict[tuple[str, str], list[float] | None] = {}
    for node in nodes:
        for product in rules.reserve_services:
            as_node = rules.as_node(node, product)
            series = rules.reserve(product).price_series
            if series is None or (as_node, product) in as_series:
                continue
            as_series[(as_node, product)] = None
            frame = load_price_forecast(
                bind, market=rules.name, node=as_node, product=series, as_of=as_of
            )
            if frame.empty:
                logger.warning(
                    "no stored %s forecast for %s at %s: priced at 0",
                    product,
                    rules.name,
                    as_node,
                )
                continue
            values = frame[quantile].reindex(index).to_numpy(float)
            as_series[(as_node, product)] = list(np.nan_to_num(values, nan=0.0))
    out: dict[str, dict[str, list[float]]] = {}
    for node in nodes:
        frame = load_price_forecast(
            bind,
            market=rules.name,
            node=node,
            product=rules.series_of("energy") or "da_energy",
            as_of=as_of,
        )
        values = (
            frame[quantile].reindex(index).to_numpy(float)
            if not frame.empty
            else np.full(intervals, np.nan)
        )
        if np.isnan(values).any():
            msg = (
                f"node {node}: stored da_energy forecast (as of {as_of.isoformat()}) "
                f"misses {int(np.isnan(values).sum())} of {intervals} hours from "
                f"{start.isoformat()}"
            )
            raise FleetInputError(msg)
        out[node] = {"energy": list(values)}
        for product in rules.reserve_services:
            shared = as_series.get((rules.as_node(node, product), product))
            if shared is not None:
                out[node][product] = shared
    return out


def schedule_intervals(scn: Scenario, result: Result) -> pd.DataFrame:
    """Return the per-site, per-interval plan in the store's schedule layout."""
    ts = pd.date_range(
        scn.start, periods=scn.intervals, freq=f"{scn.interval_minutes}min"
    )
    parts = []
    for site_id, sched in result.sites.items():
        parts.append(
            pd.DataFrame(
                {
                    "site_id": site_id,
                    "ts": ts,
                    "charge_mw": sched.charge_mw,
                    "discharge_mw": sched.discharge_mw,
                    **{f"{p}_mw": sched.reserve(p) for p in scn.reserve_names},
                    "soc": sched.soc[:-1],
                    "energy_value_usd_per_mwh": sched.energy_value_usd_per_mwh
                    or [0.0] * scn.intervals,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def run_dayahead(
    bind: Bind,
    fleet: Fleet,
    rules: MarketRules,
    operating_day: dt.date,
    *,
    now: dt.datetime,
    prices: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    quantile_prices: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    states: Mapping[str, SiteState] | None = None,
    stale_after_ms: int = 30 * 60_000,
    options: SolveOptions | None = None,
    actor: str = "dayahead",
    forecast: Method | None = "model",
    btm: Mapping[str, BtmInputs] | None = None,
    data_dir: Path | None = None,
) -> DayAheadOutcome:
    """Plan ``operating_day`` for the market's sites, store the schedule, build bids.

    Parameters
    ----------
    bind
        The store.
    fleet
        The fleet.
    rules
        The market.
    operating_day
        The day planned (usually tomorrow).
    now
        The cycle's time: forecasts issued after it are not used; telemetry older
        than ``stale_after_ms`` before it makes a site unavailable.
    prices
        P50 prices per node and product; default: the stored forecasts.
    quantile_prices
        Extra energy price scenarios for the bid curves, ``{"p10": {node: [...]},
        "p90": {...}}``; default: the stored P10/P90 when ``prices`` is None.
    states
        Site states; default: the latest telemetry in the store.
    stale_after_ms
        Telemetry age beyond which a site is unavailable [ms].
    options
        Solve options.
    actor
        Audit actor of the stored schedule.
    forecast
        When ``prices`` is None and the store has no forecast of the day: make them
        with this method (:func:`fleet.ops.forecasts.refresh_forecasts`) and go on;
        None: refuse, naming the missing series.
    btm
        Behind-the-meter inputs per site; default: built from the store
        (:func:`fleet.ops.btm.btm_inputs`, load forecast from metered telemetry).
    data_dir
        Folder of the load data sets, used for a behind-the-meter site that has no
        metered load yet.

    Returns
    -------
    DayAheadOutcome
        On a failed solve no schedule is stored (the previous version stands) and
        the reason is returned.
    """
    start = operating_day_start(rules, operating_day)
    hours = operating_day_hours(rules, operating_day)
    sites = [s for s in fleet.sites if s.market.value == rules.name]
    nodes = sorted({s.node for s in sites if s.is_fom})
    extra: dict[str, Mapping[str, Sequence[float]]] = dict(quantile_prices or {})
    source = "given"
    if prices is None:
        source = "stored"
        try:
            prices = stored_forecast_prices(bind, rules, nodes, start, hours, as_of=now)
        except FleetInputError:
            if forecast is None:
                raise
            refresh_forecasts(bind, fleet, rules, operating_day, method=forecast)
            source = "refreshed"
            prices = stored_forecast_prices(bind, rules, nodes, start, hours, as_of=now)
        if quantile_prices is None:
            for q in ("p10", "p90"):
                qp = stored_forecast_prices(
                    bind, rules, nodes, start, hours, as_of=now, quantile=q
                )
                extra[q] = {node: qp[node]["energy"] for node in nodes}
    if states is None:
        states = latest_site_states(
            bind,
            [s.id for s in sites],
            now_ms=int(now.timestamp() * 1000),
            stale_after_ms=stale_after_ms,
        )
        states = with_planned_start(bind, rules, operating_day, states)
    if btm is None:
        btm = {
            s.id: btm_inputs(bind, s, start, hours, 60, now=now, data_dir=data_dir)
            for s in sites
            if s.is_btm
        }
    scn = build_scenario(
        fleet,
        rules,
        ScenarioInputs(
            start=start,
            interval_minutes=60,
            intervals=hours,
            prices=prices,
            states=states,
            btm=btm,
        ),
        degradation=scenario_degradation(bind, sites, now=now),
    )
    options = options or SolveOptions(time_limit_s=120.0)
    result = solve(scn, options)
    if result.status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
        logger.error(
            "day-ahead %s %s: %s (%s); the previous plan stands",
            rules.name,
            operating_day,
            result.status,
            result.reason,
        )
        return DayAheadOutcome(
            operating_day,
            str(result.status),
            result.reason,
            None,
            scn,
            result,
            None,
            forecast_source=source,
        )
    alternatives = []
    for energy in extra.values():
        alt_scn = with_energy_prices(scn, energy)
        alt = solve(alt_scn, options)
        if alt.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            alternatives.append((alt_scn, alt))
    version = save_schedule(
        bind,
        market=rules.name,
        operating_day=operating_day,
        status=str(result.status),
        scenario=scn.to_json_dict(),
        result=result.to_json_dict(),
        objective_usd=result.objective_usd,
        solve_path=result.solve.path,
        intervals=schedule_intervals(scn, result),
        actor=actor,
    )
    bids = build_bids(
        scn,
        result,
        rules,
        operating_day,
        alternatives=alternatives,
        note=f"{rules.name} {operating_day} schedule v{version}",
        meta={"plan_version": version, "solver": result.solve.solver},
    )
    # The plan's own bids must pass the project's check against the same scenario.
    refusals = tuple(check_bids(bids.bids, bid_check_scenario(scn), rules))
    for refusal in refusals:
        logger.error(
            "day-ahead %s %s: own bid refused: %s", rules.name, operating_day, refusal
        )
    logger.info(
        "day-ahead %s %s: schedule v%d, objective %.0f USD, %d bids",
        rules.name,
        operating_day,
        version,
        result.objective_usd or 0.0,
        len(bids.bids),
    )
    return DayAheadOutcome(
        operating_day,
        str(result.status),
        None,
        version,
        scn,
        result,
        bids,
        refusals=refusals,
        forecast_source=source,
    )


def bid_check_scenario(scn: Scenario) -> Scenario:
    """Return the scenario a plan's bids are checked against: its sites, no prices.

    The bid check reads limits, SoC and commitments only; the same site fields as the
    plan (SoH-scaled energy, derated power) keep plan and check on one footing.
    """
    return scn.model_copy(
        update={"sites": [s for s in scn.sites if s.is_fom] or scn.sites}
    )


def run_dayahead_when_due(
    bind: Bind,
    fleet: Fleet,
    rules: MarketRules,
    clock: Clock,
    *,
    lead_minutes: float = 30.0,
    stop: threading.Event | None = None,
    on_outcome: Callable[[DayAheadOutcome], None] | None = None,
    cycles: int | None = None,
) -> list[DayAheadOutcome]:
    """Run the day-ahead cycle ``lead_minutes`` before each day-ahead close.

    Sleeps on ``clock`` until :func:`fleet.ops.clock.next_dayahead_run`, plans the next
    operating day from the store, reports the outcome and repeats (``cycles`` times,
    or until ``stop`` is set). A cycle that cannot run (no forecasts, store error) is
    logged, counts as a cycle, and the loop goes on to the next day.

    Returns
    -------
    list of DayAheadOutcome
        The outcomes of the cycles run.
    """
    outcomes: list[DayAheadOutcome] = []
    attempts = 0
    while cycles is None or attempts < cycles:
        attempts += 1
        run_at, day = next_dayahead_run(rules, clock.now(), lead_minutes=lead_minutes)
        if not clock.sleep_until(run_at, stop):
            break
        try:
            outcome = run_dayahead(bind, fleet, rules, day, now=clock.now())
        except (FleetInputError, StoreError) as exc:
            logger.error("day-ahead %s %s failed: %s", rules.name, day, exc)
            continue
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes
