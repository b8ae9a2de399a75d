"""Intraday re-dispatch (MPC): every interval, re-solve the rest of the day and send setpoints.

Each step reads the sites' latest telemetry SoC and treats a site whose newest sample is
older than ``stale_after_s`` seconds as unavailable: its reserve awards are moved to
sites with headroom where they fit, the rest is reported as shortfall. The day-ahead
reserve awards are soft commitments priced at the market's charge-back (plus a planning
adder, :mod:`dispatch.markets`), so a step is never infeasible because of them; an
energy award is financial (the deviation settles at the real-time price) and is not a
constraint unless ``hold_energy_awards``. Behind-the-meter sites are re-planned with
their load forecast, tariff and the billing cycle's peak so far.

The setpoint is the site's net AC power at the point of interconnection for the
interval, + = discharge (``docs/operations.md``): discharge - charge of the plan's first
interval, clipped to the site's limits. Regulation deployment is the site's AGC on top
of it. A failed solve still commands every site: hold (0 MW), which keeps the SoC.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

from dispatch.markets import MarketRules
from dispatch.result import Result
from dispatch.scenario import Commitments, Scenario
from dispatch.shortfall import reserve_shortfall_mw
from dispatch.solve import SolveOptions, solve
from dispatch.status import SolveStatus
from fleet.domain import Fleet, Site
from fleet.errors import FleetInputError
from fleet.ops.btm import BtmInputs
from fleet.ops.clock import Clock
from fleet.ops.scenario_builder import (
    ScenarioInputs,
    SiteState,
    build_scenario,
    operating_day_hours,
    operating_day_start,
)
from telemetry import topics
from telemetry.errors import TelemetryInputError
from telemetry.ingest import make_client, parse_mqtt_url
from telemetry.registry import SiteRegistry, site_spec_from
from telemetry.setpoints import SetpointPublisher, build_setpoint

logger = logging.getLogger(__name__)

PriceSource = Callable[
    [dt.datetime, int, int], Mapping[str, Mapping[str, Sequence[float]]]
]
"""(start, intervals, interval_minutes) -> per node, per product prices on that grid."""
StateSource = Callable[[], Mapping[str, tuple[int, float]]]
"""() -> per site (telemetry time [ms since epoch], SoC 0-1)."""
SetpointSink = Callable[[str, float, int, int, str], None]
"""(site_id, p_mw, valid_from_ms, expires_at_ms, version) -> None."""
BtmSource = Callable[[dt.datetime, int, int], Mapping[str, BtmInputs]]
"""(start, intervals, interval_minutes) -> behind-the-meter inputs per site."""


@dataclass(frozen=True, slots=True)
class IntradayConfig:
    """Intraday loop settings."""

    interval_minutes: int = 15
    """Re-dispatch interval [minutes] (5 or 15)."""
    stale_after_s: float = 15.0
    """A site whose newest telemetry sample is older than this is unavailable [s]."""
    setpoint_expiry_intervals: float = 2.0
    """A setpoint expires this many intervals after it becomes valid."""
    solve_time_limit_s: float = 5.0
    """Time limit of one re-solve [s]."""
    model_interval_minutes: int | None = None
    """Interval of the re-solved model [minutes], a multiple of ``interval_minutes``
    (e.g. re-dispatch every 5 minutes on a 15-minute model); None: the same."""
    sustain_margin: float = 0.1
    """Extra share of the reserves' sustain duration the re-dispatch keeps energy for
    (fraction): SoC drifts from the plan (regulation deployment differs from its
    expected value), and an award short of energy is charged back."""
    lead_s: float = 0.0
    """Plan each interval this long before it starts [s]: its setpoints reach the
    sites ahead and take effect at the interval start (``valid_from``)."""
    hold_energy_awards: bool = False
    """Fix the day-ahead energy awards as net power (default: they are financial and
    the deviation settles at the real-time price)."""

    def __post_init__(self) -> None:
        if self.interval_minutes not in (5, 15):
            msg = f"interval_minutes={self.interval_minutes} must be 5 or 15"
            raise FleetInputError(msg)
        model = self.model_interval_minutes
        if model is not None and (
            model < self.interval_minutes or model % self.interval_minutes
        ):
            msg = (
                f"model_interval_minutes={model} must be a multiple of "
                f"interval_minutes={self.interval_minutes}"
            )
            raise FleetInputError(msg)
        if self.stale_after_s <= 0 or self.setpoint_expiry_intervals <= 0:
            msg = "stale_after_s and setpoint_expiry_intervals must be > 0"
            raise FleetInputError(msg)

    @property
    def model_factor(self) -> int:
        """Dispatch intervals per model interval."""
        model = self.model_interval_minutes or self.interval_minutes
        return model // self.interval_minutes


@dataclass(frozen=True, slots=True)
class IntervalReport:
    """What one intraday step did."""

    index: int
    """Interval index in the operating day."""
    start: dt.datetime
    """Interval start (UTC)."""
    status: str
    """Solve status, ``hold`` when no plan could be made, ``done`` after the day."""
    reason: str | None
    """Why the solve failed, if it did."""
    version: str
    """Schedule version the setpoints carry (``v{day-ahead}.{step}``)."""
    setpoints_mw: dict[str, float] = field(default_factory=dict)
    """Net power sent per site [MW], + = discharge (every site of the market)."""
    planned_soc: dict[str, float] = field(default_factory=dict)
    """SoC each site should reach at the end of this interval (0-1)."""
    measured_soc: dict[str, float] = field(default_factory=dict)
    """SoC read from telemetry at the start of the step (0-1)."""
    stale: tuple[str, ...] = ()
    """Sites treated as unavailable."""
    awarded_mw: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per site and product: the reserve award of this interval [MW]."""
    held_mw: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per site and product: the reserve the plan holds in this interval [MW]
    (a stale site's award moved to another site counts at that site)."""
    shortfall_mw: dict[str, float] = field(default_factory=dict)
    """Per product: fleet award of this interval not held by any site [MW]."""
    clipped: tuple[str, ...] = ()
    """Sites whose planned power was clipped to their limits."""
    solve_seconds: float = 0.0
    """Wall time of the re-solve [s]."""
    fallback: str = "none"
    """What made the step possible (``none``, ``terminal SoC relaxed``, ``hold``)."""


def clip_setpoint_mw(p_mw: float, site: Site) -> tuple[float, bool]:
    """Clip a net power to ``[-charge_mw, +discharge_mw]``; return it and whether it moved."""
    lo, hi = -site.battery.charge_mw, site.battery.discharge_mw
    clipped = min(hi, max(lo, p_mw))
    return clipped, clipped != p_mw


def _cover(
    stale: Sequence[str],
    available: Sequence[Site],
    commitments: Mapping[str, Commitments],
    intervals: int,
    directions: Mapping[str, str],
) -> tuple[dict[str, Commitments], dict[str, float]]:
    """Move the stale sites' reserve awards onto available sites' spare power, greedily.

    ``directions`` maps each reserve product of the market to ``up`` or ``down`` (the
    market rules). Returns the new commitments of the available sites and, per
    product, the most MW (over the intervals) left uncovered. A product moves only to
    sites that provide it. Up-products take the
    discharge power left by the site's own up awards, down-products the charge power
    left by its own; energy awards are not moved (they are financial).
    """
    products = list(directions)
    need = {p: np.zeros(intervals) for p in products}
    for sid in stale:
        com = commitments.get(sid)
        if com is None:
            continue
        for p in products:
            series = com.award(p)
            if series is not None:
                need[p] += np.asarray(series, dtype=float)
    out: dict[str, Commitments] = {}
    for site in available:
        com = commitments.get(site.id) or Commitments()
        own = {
            p: np.asarray(com.award(p) or [0.0] * intervals, dtype=float).copy()
            for p in products
        }
        rating = {"up": site.battery.discharge_mw, "down": site.battery.charge_mw}
        offers = {str(s) for s in site.services}
        for direction in ("up", "down"):
            mine = [p for p in products if directions[p] == direction]
            room = np.maximum(
                0.0,
                rating[direction] - sum((own[p] for p in mine), np.zeros(intervals)),
            )
            for p in mine:
                if p not in offers:  # the site does not provide it: not moved there
                    continue
                take = np.minimum(need[p], room)
                own[p] += take
                need[p] -= take
                room -= take
        out[site.id] = com.model_copy(
            update={
                "reserves_mw": {
                    **com.reserves_mw,
                    **{p: [float(v) for v in own[p]] for p in products if own[p].any()},
                }
            }
        )
    shortfall = {
        p: float(np.max(np.abs(v))) for p, v in need.items() if np.any(np.abs(v) > 1e-6)
    }
    return out, shortfall


class IntradayDispatcher:
    """Re-dispatch a market's sites every interval of one operating day.

    Parameters
    ----------
    fleet, rules, operating_day
        What is dispatched.
    prices
        Real-time price forecast source on the intraday grid (energy at each node; AS
        prices there set the shortfall penalty, the AS revenue itself is the award's).
    states
        Latest telemetry per site (e.g. :meth:`TelemetryTracker.snapshot`).
    send
        Where setpoints go (e.g. :meth:`MqttSetpointSink.send`); None sends nothing.
    awards
        Fixed commitments on the day's intraday grid per site (see
        :func:`fleet.ops.awards.commitments_from_awards`); sliced per step.
    schedule_version
        Day-ahead schedule version; setpoints carry ``v{version}.{step}``.
    config
        Interval, staleness, expiry and time limit.
    soc_final_min
        Terminal SoC floor per site (0-1); default the fleet file's ``soc_initial``.
    btm
        Behind-the-meter inputs source; None leaves behind-the-meter sites out (they
        get a hold setpoint).
    degradation
        Segment costs per site [$/MWh], e.g. the day-ahead plan's (so the day keeps one
        cost); default the model's at warranty duty (a fleet-file override always wins).
    """

    def __init__(
        self,
        fleet: Fleet,
        rules: MarketRules,
        operating_day: dt.date,
        *,
        prices: PriceSource,
        states: StateSource,
        send: SetpointSink | None = None,
        awards: Mapping[str, Commitments] | None = None,
        schedule_version: int = 0,
        config: IntradayConfig | None = None,
        soc_final_min: Mapping[str, float] | None = None,
        btm: BtmSource | None = None,
        degradation: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.fleet = fleet
        self.degradation = dict(degradation or {})
        self.rules = rules
        self.products: tuple[str, ...] = rules.reserve_services
        """Reserve products of the market (its rules), held and reported."""
        self.directions = {p: str(rules.reserve(p).direction) for p in self.products}
        self.operating_day = operating_day
        self.prices = prices
        self.states = states
        self.send = send
        self.awards = dict(awards or {})
        self.schedule_version = schedule_version
        self.config = config or IntradayConfig()
        self.soc_final_min = dict(soc_final_min or {})
        self.btm = btm
        self.sites = [s for s in fleet.sites if s.market.value == rules.name]
        self.day_start = operating_day_start(rules, operating_day)
        hours = operating_day_hours(rules, operating_day)
        self.intervals = hours * 60 // self.config.interval_minutes
        self.step_count = 0
        self.last_result: Result | None = None
        self._last_setpoints: dict[str, float] = {}

    @property
    def interval(self) -> dt.timedelta:
        """The re-dispatch interval."""
        return dt.timedelta(minutes=self.config.interval_minutes)

    def interval_start(self, index: int) -> dt.datetime:
        """Start of interval ``index`` of the day (UTC)."""
        return self.day_start + index * self.interval

    def index_at(self, now: dt.datetime) -> int:
        """Index of the interval containing ``now`` (may be < 0 or >= the day's count)."""
        return int((now - self.day_start) // self.interval)

    def _model_intervals(self, i0: int) -> int:
        k = self.config.model_factor
        return -(-(self.intervals - i0) // k)

    def _slice(self, com: Commitments, i0: int) -> Commitments:
        """Cut commitments from ``i0`` and resample them onto the model grid.

        AS awards take the largest value of the dispatch intervals a model interval
        covers; a fixed net power stays fixed only where all of them agree (and only
        with ``hold_energy_awards``).
        """
        k = self.config.model_factor
        n_model = self._model_intervals(i0)

        def groups(series: Sequence[Any]) -> list[list[Any]]:
            rest = list(series[i0:])
            return [rest[j * k : (j + 1) * k] for j in range(n_model)]

        def lower(series: list[float] | None) -> list[float] | None:
            if series is None:
                return None
            return [max(g) for g in groups(series)]

        def fixed(series: list[float | None] | None) -> list[float | None] | None:
            if series is None or not self.config.hold_energy_awards:
                return None
            out: list[float | None] = []
            for g in groups(series):
                vals = [v for v in g if v is not None]
                same = len(vals) == len(g) and max(vals) - min(vals) < 1e-9
                out.append(float(vals[0]) if same else None)
            return out

        return Commitments(
            reserves_mw={
                p: low
                for p, series in com.reserves_mw.items()
                if (low := lower(series)) is not None
            },
            net_mw=fixed(com.net_mw),
        )

    def _carried_soc(self, site: Site, soc: float, now: dt.datetime, i0: int) -> float:
        """Return the SoC (0-1) a site reaches at interval ``i0``'s start at its setpoint."""
        ahead_h = (self.interval_start(i0) - now).total_seconds() / 3600
        p_mw = self._last_setpoints.get(site.id, 0.0)
        if ahead_h <= 0 or p_mw == 0.0:
            return soc
        b = site.battery
        delta = (
            (-p_mw / b.eta_discharge if p_mw > 0 else -p_mw * b.eta_charge)
            * ahead_h
            / b.energy_mwh
        )
        return min(b.soc_max, max(b.soc_min, soc + delta))

    def _penalty(self, prices: Mapping[str, Mapping[str, Sequence[float]]]) -> float:
        """Return the step's shortfall price [$/MW-h].

        The charge-back at the highest AS price of the horizon plus the market's
        planning adder.
        """
        top = 0.0
        for series in prices.values():
            for product in self.products:
                values = series.get(product)
                if values is not None and len(values):
                    top = max(top, float(np.max(values)))
        return (
            self.rules.shortfall_charge_factor * top
            + self.rules.shortfall_planning_adder_usd_per_mw_h
        )

    def _scenario(
        self,
        i0: int,
        states: Mapping[str, SiteState],
        commitments: Mapping[str, Commitments],
        relaxed: bool,
    ) -> Scenario:
        n = self._model_intervals(i0)
        minutes = self.config.interval_minutes * self.config.model_factor
        start = self.interval_start(i0)
        finals: Mapping[str, float] = (
            {str(s.id): s.battery.soc_min for s in self.sites}
            if relaxed
            else self.soc_final_min
        )
        raw = self.prices(start, n, minutes)
        penalty = self._penalty(raw)
        # Reserve revenue is the day-ahead award's: no new reserve is sold intraday.
        prices = {
            node: {
                p: (list(v) if p == "energy" else [0.0] * n) for p, v in series.items()
            }
            for node, series in raw.items()
        }
        soft = {
            sid: c.model_copy(update={"shortfall_usd_per_mw_h": penalty})
            for sid, c in commitments.items()
        }
        btm = dict(self.btm(start, n, minutes)) if self.btm is not None else {}
        scn = build_scenario(
            self.fleet,
            self.rules,
            ScenarioInputs(
                start=start,
                interval_minutes=minutes,
                intervals=n,
                prices=prices,
                states=states,
                commitments=soft,
                soc_final_min=finals,
                btm=btm,
            ),
            degradation=self.degradation,
        )
        return scn.with_sustain_factor(1.0 + self.config.sustain_margin)

    def step(self, now: dt.datetime, index: int | None = None) -> IntervalReport:
        """Re-solve from interval ``index`` (default: the one containing ``now``).

        Planning an interval ahead (``index`` later than now's), the measured SoC is
        carried to the interval's start at each site's current setpoint.

        Returns
        -------
        IntervalReport
        """
        t0 = time.perf_counter()
        i0 = max(0, self.index_at(now) if index is None else index)
        self.step_count += 1
        version = f"v{self.schedule_version}.{self.step_count}"
        if i0 >= self.intervals:
            return IntervalReport(i0, self.interval_start(i0), "done", None, version)
        n = self._model_intervals(i0)
        now_ms = int(now.timestamp() * 1000)
        stale_ms = self.config.stale_after_s * 1000.0
        latest = self.states()
        states: dict[str, SiteState] = {}
        stale: list[str] = []
        measured: dict[str, float] = {}
        for site in self.sites:
            seen = latest.get(site.id)
            if seen is None or now_ms - seen[0] > stale_ms:
                stale.append(site.id)
                soc = None if seen is None else seen[1]
                states[site.id] = SiteState(soc=soc, available=False)
            else:
                measured[site.id] = seen[1]
                states[site.id] = SiteState(
                    soc=self._carried_soc(site, seen[1], now, i0)
                )
        own = {sid: self._slice(c, i0) for sid, c in self.awards.items()}
        available = [s for s in self.sites if s.id not in stale and s.is_fom]
        covered, uncovered = _cover(stale, available, own, n, self.directions)
        commitments = {sid: c for sid, c in own.items() if sid not in stale}
        commitments.update(covered)
        options = SolveOptions(
            time_limit_s=self.config.solve_time_limit_s, mip_rel_gap=1e-3
        )
        # When the exact solve does not finish in time, the LP relaxation (charge and
        # discharge exclusivity dropped) stands in: only the first interval's net power
        # is sent, which is physical, and the next step re-plans from measured SoC.
        lp_only = SolveOptions(
            time_limit_s=self.config.solve_time_limit_s, exclusivity_tol_mw=math.inf
        )
        scn: Scenario | None = None
        result: Result | None = None
        fallback = "none"
        reason: str | None = None
        for relaxed, label, opts in (
            (False, "none", options),
            (False, "LP relaxation", lp_only),
            (True, "LP relaxation, terminal SoC relaxed", lp_only),
        ):
            try:
                scn = self._scenario(i0, states, commitments, relaxed)
            except FleetInputError as exc:
                reason = str(exc)
                break
            result = solve(scn, opts)
            if result.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
                fallback = label
                break
            reason = result.reason
            logger.warning(
                "intraday %s step %d (relaxed=%s): %s %s",
                self.rules.name,
                i0,
                relaxed,
                result.status,
                result.reason,
            )
        start = self.interval_start(i0)
        valid_from = max(now_ms, int(start.timestamp() * 1000))
        expires = int(
            (start + self.config.setpoint_expiry_intervals * self.interval).timestamp()
            * 1000
        )
        expires = max(expires, valid_from + 2000)
        awarded = {
            sid: {p: float((c.award(p) or [0.0])[0]) for p in self.products}
            for sid, c in own.items()
        }
        ok = (
            scn is not None
            and result is not None
            and result.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE)
        )
        setpoints: dict[str, float] = {}
        planned: dict[str, float] = {}
        held: dict[str, dict[str, float]] = {}
        clipped: list[str] = []
        if ok:
            assert result is not None
            assert scn is not None
            self.last_result = result
            k = self.config.model_factor
            for site in self.sites:
                sched = result.sites.get(site.id)
                if sched is None or site.id in stale:
                    setpoints[site.id] = 0.0
                    continue
                p_mw, moved = clip_setpoint_mw(
                    sched.discharge_mw[0] - sched.charge_mw[0], site
                )
                if moved:
                    clipped.append(site.id)
                setpoints[site.id] = p_mw
                planned[site.id] = sched.soc[0] + (sched.soc[1] - sched.soc[0]) / k
                held[site.id] = {p: float(sched.reserve(p)[0]) for p in self.products}
            short = reserve_shortfall_mw(scn, result)
        else:
            fallback = "hold"
            logger.error(
                "intraday %s step %d: no plan (%s); every site holds its SoC",
                self.rules.name,
                i0,
                reason,
            )
            setpoints = dict.fromkeys((s.id for s in self.sites), 0.0)
            short = {}
        shortfall: dict[str, float] = {}
        for p in self.products:
            total = sum(a.get(p, 0.0) for a in awarded.values())
            have = sum(h.get(p, 0.0) for h in held.values())
            gap = max(0.0, total - have)
            if gap > 1e-6:
                shortfall[p] = gap
        if short or uncovered:
            logger.warning(
                "intraday %s step %d: stale %s, reserve shortfall %s",
                self.rules.name,
                i0,
                stale,
                shortfall,
            )
        if self.send is not None:
            for sid, p_mw in setpoints.items():
                self.send(sid, p_mw, valid_from, expires, version)
        self._last_setpoints = dict(setpoints)
        return IntervalReport(
            index=i0,
            start=start,
            status=str(result.status) if ok and result is not None else "hold",
            reason=None if ok else reason,
            version=version,
            setpoints_mw=setpoints,
            planned_soc=planned,
            measured_soc=measured,
            stale=tuple(stale),
            awarded_mw=awarded,
            held_mw=held,
            shortfall_mw=shortfall,
            clipped=tuple(clipped),
            solve_seconds=time.perf_counter() - t0,
            fallback=fallback,
        )


def run_intraday(
    dispatcher: IntradayDispatcher,
    clock: Clock,
    intervals: int,
    *,
    on_interval: Callable[[IntervalReport], None] | None = None,
    stop: threading.Event | None = None,
) -> list[IntervalReport]:
    """Run ``intervals`` re-dispatch steps, one at the start of each interval.

    Parameters
    ----------
    dispatcher
        The intraday dispatcher.
    clock
        System or accelerated clock (the demo uses :class:`AcceleratedClock`).
    intervals
        Steps to run (>= 1); stops early after the operating day's last interval.
    on_interval
        Called with each step's report.
    stop
        Set it to end the loop early.

    Returns
    -------
    list of IntervalReport
    """
    if intervals < 1:
        msg = f"intervals={intervals} must be >= 1"
        raise FleetInputError(msg)
    reports: list[IntervalReport] = []
    for _ in range(intervals):
        now = clock.now()
        report = dispatcher.step(now)
        reports.append(report)
        if on_interval is not None:
            on_interval(report)
        if report.status == "done":
            break
        next_start = dispatcher.interval_start(dispatcher.index_at(now) + 1)
        if not clock.sleep_until(next_start, stop):
            break
    return reports


def dayahead_prices_on_grid(scn: Scenario) -> PriceSource:
    """Return a price source that repeats a day-ahead scenario's hourly prices.

    Used as the real-time forecast when no RT forecaster is configured: each intraday
    interval takes the price of the day-ahead hour containing it.
    """
    hourly = {
        node: {
            p: list(prices.series(p) or [0.0] * scn.intervals)
            for p in ("energy", *scn.reserve_names)
        }
        for node, prices in scn.markets.items()
    }
    step = dt.timedelta(minutes=scn.interval_minutes)

    def source(
        start: dt.datetime, n: int, interval_minutes: int
    ) -> dict[str, dict[str, list[float]]]:
        out: dict[str, dict[str, list[float]]] = {}
        for node, series in hourly.items():
            out[node] = {}
            for product, values in series.items():
                row = []
                for i in range(n):
                    t = start + dt.timedelta(minutes=interval_minutes * i)
                    k = int((t - scn.start) // step)
                    row.append(values[min(max(k, 0), len(values) - 1)])
                out[node][product] = row
        return out

    return source


class TelemetryTracker:
    """Keep each site's latest telemetry SoC from the broker (``up/tlm`` of bank devices).

    Parameters
    ----------
    mqtt_url
        Broker URL (``mqtt://host:port``).
    group
        Topic group to follow (``+`` for all).
    """

    def __init__(self, mqtt_url: str, group: str = "+") -> None:
        self.address = parse_mqtt_url(mqtt_url)
        self.group = group
        self._latest: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self.client = make_client(
            self.address, client_id=f"bessfleet-intraday-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self._connected = threading.Event()

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        client.subscribe(f"{topics.ROOT}/{self.group}/+/up/tlm/+", qos=0)
        self._connected.set()

    def _on_message(
        self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        try:
            body = json.loads(bytes(message.payload))
            soc_pct = body["m"].get("soc_pct")
            if soc_pct is None or body.get("q", "good") != "good":
                return
            site, ts = str(body["site"]), int(body["ts"])
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.debug("ignoring telemetry on %s", message.topic)
            return
        with self._lock:
            if site not in self._latest or ts >= self._latest[site][0]:
                self._latest[site] = (ts, float(soc_pct) / 100.0)

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect and subscribe; raise RuntimeError when the broker does not answer."""
        self.client.connect(self.address.host, self.address.port)
        self.client.loop_start()
        if not self._connected.wait(timeout_s):
            self.stop()
            msg = f"broker {self.address.host}:{self.address.port} did not answer"
            raise RuntimeError(msg)

    def stop(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()

    def snapshot(self) -> dict[str, tuple[int, float]]:
        """Return per site (telemetry time [ms], SoC 0-1)."""
        with self._lock:
            return dict(self._latest)


class MqttSetpointSink:
    """Send setpoints through :class:`telemetry.setpoints.SetpointPublisher`.

    Every setpoint is built with the site's limits (``build_setpoint`` refuses
    anything outside them) and carries the schedule version in ``source`` and
    ``cmd_id``.
    """

    def __init__(
        self,
        client: mqtt.Client,
        fleet: Fleet,
        *,
        now_ms: Callable[[], int],
        record: Callable[[Any], None] | None = None,
    ) -> None:
        specs = [site_spec_from(s) for s in fleet.sites]
        self.registry = SiteRegistry.of(specs)
        self.publisher = SetpointPublisher(client, self.registry, record=record)
        self.now_ms = now_ms
        self.sent = 0
        self.dropped = 0

    def send(
        self,
        site_id: str,
        p_mw: float,
        valid_from_ms: int,
        expires_ms: int,
        version: str,
    ) -> None:
        """Build and publish one setpoint (QoS 1, with expiry)."""
        spec = self.registry.get(site_id)
        if spec is None:
            msg = f"site {site_id} is not in the setpoint registry"
            raise FleetInputError(msg)
        now = self.now_ms()
        setpoint = build_setpoint(
            spec,
            p_ac_w_setpoint=p_mw * 1e6,
            issued_ts=min(now, valid_from_ms),
            valid_from=valid_from_ms,
            expires_at=expires_ms,
            source=f"bessfleet {version}"[:64],
            cmd_id=f"{site_id}-{version}-{uuid.uuid4().hex[:8]}"[:64],
        )
        try:
            self.publisher.send(setpoint, now_ms=now)
        except TelemetryInputError as exc:
            # e.g. the step finished after the setpoint's expiry: never send it late.
            self.dropped += 1
            logger.error("setpoint for %s not sent: %s", site_id, exc)
            return
        self.sent += 1
