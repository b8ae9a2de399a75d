"""Intraday re-dispatch (MPC): every interval, re-solve the rest of the day and send setpoints.

Each step reads the sites' latest telemetry SoC, treats a site whose telemetry is older
than ``stale_intervals`` intervals as unavailable (its awards are moved to other sites
where they fit, the rest is reported as shortfall), fixes the awards as commitments,
solves the rest of the operating day at the real-time price forecast, clips each
site's first-interval net power to its limits and publishes it as a setpoint carrying
the schedule version and an expiry. A failed solve sends nothing: sites hold their
last setpoint until it expires, then hold SoC.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
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
from dispatch.solve import SolveOptions, solve
from dispatch.status import SolveStatus
from fleet.domain import Fleet, Site
from fleet.errors import FleetInputError
from fleet.ops.clock import Clock
from fleet.ops.scenario_builder import (
    ScenarioInputs,
    SiteState,
    build_scenario,
    operating_day_hours,
    operating_day_start,
)
from telemetry import topics
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


@dataclass(frozen=True, slots=True)
class IntradayConfig:
    """Intraday loop settings."""

    interval_minutes: int = 15
    """Re-dispatch interval [minutes] (5 or 15)."""
    stale_intervals: float = 2.0
    """Telemetry older than this many intervals makes a site unavailable."""
    setpoint_expiry_intervals: float = 2.0
    """A setpoint expires this many intervals after it becomes valid."""
    solve_time_limit_s: float = 1.5
    """Time limit of one re-solve [s]."""
    model_interval_minutes: int | None = None
    """Interval of the re-solved model [minutes], a multiple of ``interval_minutes``
    (e.g. re-dispatch every 5 minutes on a 15-minute model); None: the same."""

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

    @property
    def model_factor(self) -> int:
        """Dispatch intervals per model interval."""
        model = self.model_interval_minutes or self.interval_minutes
        return model // self.interval_minutes
        if self.stale_intervals <= 0 or self.setpoint_expiry_intervals <= 0:
            msg = "stale_intervals and setpoint_expiry_intervals must be > 0"
            raise FleetInputError(msg)


@dataclass(frozen=True, slots=True)
class IntervalReport:
    """What one intraday step did."""

    index: int
    """Interval index in the operating day."""
    start: dt.datetime
    """Interval start (UTC)."""
    status: str
    """Solve status, ``done`` after the day's last interval."""
    reason: str | None
    """Why the solve failed, if it did."""
    version: str
    """Schedule version the setpoints carry (``v{day-ahead}.{step}``)."""
    setpoints_mw: dict[str, float] = field(default_factory=dict)
    """Net power sent per site [MW], + = discharge."""
    planned_soc: dict[str, float] = field(default_factory=dict)
    """SoC each site should reach at the end of this interval (0-1)."""
    measured_soc: dict[str, float] = field(default_factory=dict)
    """SoC read from telemetry at the start of the step (0-1)."""
    stale: tuple[str, ...] = ()
    """Sites treated as unavailable."""
    shortfall_mw: dict[str, float] = field(default_factory=dict)
    """Per product: most MW of the stale sites' awards not covered by others."""
    clipped: tuple[str, ...] = ()
    """Sites whose planned power was clipped to their limits."""
    solve_seconds: float = 0.0
    """Wall time of the re-solve [s]."""
    fallback: str = "none"
    """Which fallback made the re-solve feasible (``none`` when all awards were met)."""


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
) -> tuple[dict[str, Commitments], dict[str, float]]:
    """Move the stale sites' awards onto available sites' spare power, greedily.

    Returns the new commitments of the available sites and, per product, the most MW
    (over the intervals) left uncovered.
    """
    need = {p: np.zeros(intervals) for p in ("reg_up", "reg_down", "spin", "energy")}
    for sid in stale:
        com = commitments.get(sid)
        if com is None:
            continue
        for p in ("reg_up", "reg_down", "spin"):
            series = getattr(com, f"{p}_mw")
            if series is not None:
                need[p] += np.asarray(series, dtype=float)
        if com.net_mw is not None:
            need["energy"] += np.asarray([v or 0.0 for v in com.net_mw], dtype=float)
    out: dict[str, Commitments] = {}
    for site in available:
        com = commitments.get(site.id) or Commitments()
        ru = np.asarray(com.reg_up_mw or [0.0] * intervals, dtype=float)
        rd = np.asarray(com.reg_down_mw or [0.0] * intervals, dtype=float)
        sp = np.asarray(com.spin_mw or [0.0] * intervals, dtype=float)
        net_fixed = com.net_mw or [None] * intervals
        net = np.asarray([v or 0.0 for v in net_fixed], dtype=float)
        p_d, p_c = site.battery.discharge_mw, site.battery.charge_mw
        up_room = np.maximum(0.0, p_d - net - ru - sp)
        for p, arr in (("reg_up", ru), ("spin", sp)):
            take = np.minimum(need[p], up_room)
            arr += take
            need[p] -= take
            up_room -= take
        dn_room = np.maximum(0.0, p_c + net - rd)
        take = np.minimum(need["reg_down"], dn_room)
        rd += take
        need["reg_down"] -= take
        energy_room_up = np.maximum(0.0, p_d - net - ru - sp)
        energy_room_dn = np.maximum(0.0, p_c + net - rd)
        e_need = need["energy"]
        take_e = np.clip(e_need, -energy_room_dn, energy_room_up)
        moved = np.abs(take_e) > 1e-9
        new_net: list[float | None] = [
            (
                float(net[i] + take_e[i])
                if (net_fixed[i] is not None or moved[i])
                else None
            )
            for i in range(intervals)
        ]
        need["energy"] = e_need - take_e
        out[site.id] = Commitments(
            reg_up_mw=list(ru),
            reg_down_mw=list(rd),
            spin_mw=list(sp),
            net_mw=new_net if any(v is not None for v in new_net) else None,
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
        Real-time price forecast source on the intraday grid.
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
        degradation: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.fleet = fleet
        self.degradation = dict(degradation or {})
        self.rules = rules
        self.operating_day = operating_day
        self.prices = prices
        self.states = states
        self.send = send
        self.awards = dict(awards or {})
        self.schedule_version = schedule_version
        self.config = config or IntradayConfig()
        self.soc_final_min = dict(soc_final_min or {})
        self.sites = [
            s for s in fleet.sites if s.market.value == rules.name and not s.is_btm
        ]
        self.day_start = operating_day_start(rules, operating_day)
        hours = operating_day_hours(rules, operating_day)
        self.intervals = hours * 60 // self.config.interval_minutes
        self.step_count = 0
        self.last_result: Result | None = None

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

    def _hour_intervals(self, i0: int) -> int:
        """Model intervals from interval ``i0`` to the end of its hour (at least 1)."""
        minutes_in = (i0 * self.config.interval_minutes) % 60
        model = self.config.interval_minutes * self.config.model_factor
        return max(1, -(-(60 - minutes_in) // model))

    def _model_intervals(self, i0: int) -> int:
        k = self.config.model_factor
        return -(-(self.intervals - i0) // k)

    def _slice(self, com: Commitments, i0: int) -> Commitments:
        """Cut commitments from ``i0`` and resample them onto the model grid.

        AS lower bounds take the largest value of the dispatch intervals a model
        interval covers; a fixed net power stays fixed only where all of them agree.
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
            if series is None:
                return None
            out: list[float | None] = []
            for g in groups(series):
                vals = [v for v in g if v is not None]
                same = len(vals) == len(g) and max(vals) - min(vals) < 1e-9
                out.append(float(vals[0]) if same else None)
            return out

        return Commitments(
            reg_up_mw=lower(com.reg_up_mw),
            reg_down_mw=lower(com.reg_down_mw),
            spin_mw=lower(com.spin_mw),
            net_mw=fixed(com.net_mw),
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
        return build_scenario(
            self.fleet,
            self.rules,
            ScenarioInputs(
                start=start,
                interval_minutes=minutes,
                intervals=n,
                prices=self.prices(start, n, minutes),
                states=states,
                commitments=commitments,
                soc_final_min=finals,
            ),
            site_ids=[s.id for s in self.sites],
            degradation=self.degradation,
        )

    def step(self, now: dt.datetime) -> IntervalReport:
        """Re-solve from the interval containing ``now`` and send setpoints.

        Returns
        -------
        IntervalReport
        """
        t0 = time.perf_counter()
        i0 = max(0, self.index_at(now))
        self.step_count += 1
        version = f"v{self.schedule_version}.{self.step_count}"
        if i0 >= self.intervals:
            return IntervalReport(i0, self.interval_start(i0), "done", None, version)
        n = self._model_intervals(i0)
        now_ms = int(now.timestamp() * 1000)
        stale_ms = self.config.stale_intervals * self.config.interval_minutes * 60_000
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
                states[site.id] = SiteState(soc=seen[1])
        own = {sid: self._slice(c, i0) for sid, c in self.awards.items()}
        available = [s for s in self.sites if s.id not in stale]
        covered, shortfall = _cover(stale, available, own, n)
        commitments = {sid: c for sid, c in own.items() if sid not in stale}
        commitments.update(covered)
        # Stale sites get no power: their own awards cannot be fixed on them.
        options = SolveOptions(time_limit_s=self.config.solve_time_limit_s)
        result = None
        # Fallbacks, in order, when the awards cannot all be met from the measured SoC:
        # drop the stale sites' cover, relax the terminal SoC, keep the energy awards
        # of the current award hour only (later ones are re-planned and the deviation
        # settles in real time), and last keep only the AS awards.
        attempts: list[tuple[dict[str, Commitments], bool, dict[str, float], str]] = [
            (commitments, False, shortfall, "none"),
        ]
        if stale:
            base = {sid: c for sid, c in own.items() if sid not in stale}
            full = dict(_cover(stale, [], own, n)[1])
            attempts.append((base, False, full, "stale cover dropped"))
        last = attempts[-1]
        attempts.append((last[0], True, last[2], "terminal SoC relaxed"))
        hold = self._hour_intervals(i0)
        near = {
            sid: c.model_copy(
                update={
                    "net_mw": None
                    if c.net_mw is None
                    else [v if j < hold else None for j, v in enumerate(c.net_mw)]
                }
            )
            for sid, c in last[0].items()
        }
        attempts.append((near, True, last[2], "energy awards after this hour released"))
        as_only = {
            sid: c.model_copy(update={"net_mw": None}) for sid, c in last[0].items()
        }
        attempts.append((as_only, True, last[2], "energy awards released"))
        scn = None
        fallback = "none"
        for coms, relaxed, short, label in attempts:
            scn = self._scenario(i0, states, coms, relaxed)
            result = solve(scn, options)
            if result.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
                shortfall, fallback = short, label
                break
            logger.warning(
                "intraday %s step %d (relaxed=%s): %s %s",
                self.rules.name,
                i0,
                relaxed,
                result.status,
                result.reason,
            )
        assert result is not None
        assert scn is not None
        seconds = time.perf_counter() - t0
        if result.status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            return IntervalReport(
                i0,
                scn.start,
                str(result.status),
                result.reason,
                version,
                measured_soc=measured,
                stale=tuple(stale),
                shortfall_mw=shortfall,
                solve_seconds=seconds,
            )
        self.last_result = result
        setpoints: dict[str, float] = {}
        planned: dict[str, float] = {}
        clipped: list[str] = []
        valid_from = max(now_ms, int(scn.start.timestamp() * 1000))
        expires = int(
            (
                scn.start + self.config.setpoint_expiry_intervals * self.interval
            ).timestamp()
            * 1000
        )
        expires = max(expires, valid_from + 2000)
        for site in available:
            sched = result.sites[site.id]
            p_mw, moved = clip_setpoint_mw(
                sched.discharge_mw[0] - sched.charge_mw[0], site
            )
            if moved:
                clipped.append(site.id)
            setpoints[site.id] = p_mw
            k = self.config.model_factor
            planned[site.id] = sched.soc[0] + (sched.soc[1] - sched.soc[0]) / k
            if self.send is not None:
                self.send(site.id, p_mw, valid_from, expires, version)
        if fallback != "none":
            logger.warning(
                "intraday %s step %d: awards not all met from measured SoC: %s",
                self.rules.name,
                i0,
                fallback,
            )
        if shortfall:
            logger.warning(
                "intraday %s step %d: stale %s, uncovered awards %s",
                self.rules.name,
                i0,
                stale,
                shortfall,
            )
        return IntervalReport(
            index=i0,
            start=scn.start,
            status=str(result.status),
            reason=None,
            version=version,
            setpoints_mw=setpoints,
            planned_soc=planned,
            measured_soc=measured,
            stale=tuple(stale),
            shortfall_mw=shortfall,
            clipped=tuple(clipped),
            fallback=fallback,
            solve_seconds=seconds,
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
            p: list(getattr(prices, p) or [0.0] * scn.intervals)
            for p in ("energy", "reg_up", "reg_down", "spin")
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
        self.publisher.send(setpoint, now_ms=now)
        self.sent += 1
