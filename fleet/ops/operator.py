"""The unattended operator: each market's operating day, on its own clock, end to end.

For every market of the fleet, one loop runs the day's steps when they are due and
records each one in the store (``ops_runs``, ``ops_intervals``, ``settlements``):

1. **forecast** (D-1, ``lead_minutes`` before the day-ahead close): fit on the stored
   prices and store D's forecasts (:mod:`fleet.ops.forecasts`);
2. **dayahead**: plan D for every site, front- and behind-the-meter, store the schedule;
3. **bids**: the plan's bids, checked and stored as the next bid-set version
   (``accepted`` — a refusal is a bug and is logged as a failed step);
4. **export**: the accepted bid set written as the market's submission files;
5. **awards** (at the day-ahead results time): cleared by the replay market at the
   day's real prices, or — with an ISO connected — those pushed through the API or
   ``bessfleet awards push``; checked, stored;
6. **intraday** (every interval of D): re-dispatch from telemetry, a setpoint to every
   site, each setpoint and step recorded;
7. **settle** (after D ends): from metered telemetry (:mod:`fleet.ops.settlement`).

The loop is restart-safe: a step recorded ``done`` is not run again, intervals already
commanded are not re-sent, and a restart mid-day picks up at the current interval.
A separate monitor raises an ``ingest_down`` alert when every registered ingest worker
has gone silent, and closes it when one is back.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np

from dispatch.markets import MarketRules, load_market_rules
from dispatch.scenario import parse_scenario
from fleet.domain import Fleet
from fleet.errors import FleetInputError, StoreError
from fleet.ops.awards import (
    check_awards,
    commitments_from_awards,
    latest_awards,
    store_awards,
)
from fleet.ops.bids import planned_start_states, push_bid_set
from fleet.ops.btm import (
    BtmInputs,
    load_forecast_mw,
    peak_so_far_mw,
    tariff_usd_per_mwh,
)
from fleet.ops.clock import Clock, ClockSpec, clock_from_spec, clock_spec
from fleet.ops.dayahead import run_dayahead
from fleet.ops.forecasts import Method, refresh_forecasts
from fleet.ops.intraday import (
    IntervalReport,
    IntradayConfig,
    IntradayDispatcher,
    PriceSource,
    SetpointSink,
    StateSource,
    dayahead_prices_on_grid,
)
from fleet.ops.market import IsoMarket, Market, ReplayMarket, day_prices
from fleet.ops.metering import latest_soc
from fleet.ops.runs import done_intervals, mark_step, record_interval, step_status
from fleet.ops.scenario_builder import operating_day_hours, operating_day_start
from fleet.ops.settlement import settle_day, store_settlement
from fleet.store.bids import latest_accepted_bid_set
from fleet.store.dml import Bind
from fleet.store.schedules import latest_schedule

logger = logging.getLogger(__name__)

MarketMode = Literal["replay", "iso"]


@dataclass(frozen=True, slots=True)
class OperatorOptions:
    """How the operator runs the day."""

    market_mode: MarketMode = "replay"
    """``replay``: awards cleared at the day's real prices; ``iso``: awards pushed."""
    forecast: Method = "model"
    """Forecast method of the forecast step."""
    lead_minutes: float = 30.0
    """The forecast and day-ahead steps run this long before the day-ahead close."""
    intraday: IntradayConfig = field(default_factory=IntradayConfig)
    """Intraday settings (interval, staleness, expiry, time limit)."""
    export_dir: Path | None = None
    """Where accepted bid sets are written as submission files (None: not written)."""
    data_dir: Path | None = None
    """Load data sets, for a behind-the-meter site with no metered load yet."""
    settle_after_minutes: float = 15.0
    """The settle step runs this long after the operating day ends."""
    days: int | None = None
    """Stop each market after settling this many operating days (None: run on)."""
    max_sleep_s: float = 1.0
    """Longest wall-clock nap between checks [s] (so a stop is seen quickly)."""
    background: Literal["thread", "process"] = "process"
    """Where planning and settlement run beside the intraday steps (a process keeps
    their CPU-heavy Python from starving the steps; an in-memory store needs a thread)."""


@dataclass(slots=True)
class MarketProgress:
    """What one market loop did in this run."""

    market: str
    """Market name."""
    steps: list[tuple[dt.date, str, str]] = field(default_factory=list)
    """(operating day, step, status) in the order run."""
    intervals: dict[dt.date, list[IntervalReport]] = field(default_factory=dict)
    """Intraday reports per operating day."""
    settled: list[dt.date] = field(default_factory=list)
    """Operating days settled."""


def planned_start_soc(bind: Bind, rules: MarketRules, day: dt.date) -> dict[str, float]:
    """Return the SoC (0-1) the newest schedule of ``day`` starts each site from."""
    return {
        sid: state.soc
        for sid, state in planned_start_states(bind, rules, day).items()
        if state.soc is not None
    }


def store_states(bind: Bind) -> Callable[[Sequence[str]], StateSource]:
    """Return a state source factory reading the latest telemetry from the store."""

    def factory(site_ids: Sequence[str]) -> StateSource:
        ids = list(site_ids)
        return lambda: latest_soc(bind, ids)

    return factory


class MarketLoop:
    """The operating day of one market (see the module docstring)."""

    def __init__(
        self,
        bind: Bind,
        fleet: Fleet,
        rules: MarketRules,
        clock: Clock,
        *,
        send: SetpointSink | None,
        states: StateSource,
        options: OperatorOptions,
        market: Market,
        background: Literal["thread", "process"] = "thread",
    ) -> None:
        self.bind = bind
        self.fleet = fleet
        self.rules = rules
        self.clock = clock
        self.send = send
        self.states = states
        self.options = options
        self.market = market
        self.tz = ZoneInfo(rules.timezone)
        self.sites = [s for s in fleet.sites if s.market.value == rules.name]
        self.progress = MarketProgress(rules.name)
        self._planner: Executor
        self._url = _process_url(bind) if background == "process" else None
        if self._url is not None:
            # Planning (forecast fits, several solves) and settlement are CPU-heavy
            # Python: in a process of their own they never starve the intraday steps.
            self._planner = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn")
            )
        else:
            self._planner = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"plan-{rules.name}"
            )
        self._planning: Future[None] | None = None
        self._settling: set[dt.date] = set()
        self._dispatchers: dict[dt.date, IntradayDispatcher] = {}
        self._done: dict[dt.date, set[int]] = {}
        self._load_cache: dict[tuple[str, dt.date], list[float]] = {}

    # -- times -------------------------------------------------------------------
    def _local(self, day: dt.date, at: dt.time) -> dt.datetime:
        return dt.datetime.combine(day, at, tzinfo=self.tz).astimezone(dt.UTC)

    def dayahead_due(self, day: dt.date) -> dt.datetime:
        """When the forecast and day-ahead steps of ``day`` run (D-1, before close)."""
        close = self._local(
            day - dt.timedelta(days=1), self.rules.day_ahead_close_local
        )
        return close - dt.timedelta(minutes=self.options.lead_minutes)

    def awards_due(self, day: dt.date) -> dt.datetime:
        """When the awards of ``day`` are known (D-1 day-ahead results time)."""
        return self._local(
            day - dt.timedelta(days=1), self.rules.day_ahead_results_local
        )

    def day_end(self, day: dt.date) -> dt.datetime:
        """End of the operating day (next local midnight, UTC)."""
        return operating_day_start(self.rules, day + dt.timedelta(days=1))

    # -- steps -------------------------------------------------------------------
    def _step(
        self, day: dt.date, step: str, fn: Callable[[], dict[str, Any] | None]
    ) -> bool:
        """Run a step once; record it; return whether it is done."""
        if step_status(self.bind, self.rules.name, day, step) == "done":
            return True
        now = self.clock.now()
        mark_step(self.bind, self.rules.name, day, step, "running", now=now)
        try:
            detail = fn()
        except (FleetInputError, StoreError, ValueError) as exc:
            logger.error("%s %s %s failed: %s", self.rules.name, day, step, exc)
            mark_step(
                self.bind,
                self.rules.name,
                day,
                step,
                "failed",
                now=self.clock.now(),
                error=str(exc)[:2000],
            )
            self.progress.steps.append((day, step, "failed"))
            self._step_alert(day, step, str(exc))
            return False
        status = "done"
        if detail is not None and detail.pop("_status", None) == "failed":
            status = "failed"
        self._step_alert(
            day, step, None if status == "done" else str((detail or {}).get("reason"))
        )
        mark_step(
            self.bind,
            self.rules.name,
            day,
            step,
            status,
            now=self.clock.now(),
            detail=detail,
            error=None if status == "done" else str((detail or {}).get("reason")),
        )
        self.progress.steps.append((day, step, status))
        logger.info("%s %s %s: %s %s", self.rules.name, day, step, status, detail)
        return status == "done"

    def _step_alert(self, day: dt.date, step: str, error: str | None) -> None:
        """Raise a critical ``ops_step_failed`` alert for a failed step, or close it.

        One alert per market, day and step, updated on retries, closed when the step
        is done.
        """
        from fleet.store.alerts import close_alert, open_alert_ids, raise_alert

        serial = f"{day.isoformat()}/{step}"
        try:
            if error is not None:
                raise_alert(
                    self.bind,
                    site_id="_ops",
                    dev_id=self.rules.name,
                    kind="ops_step_failed",
                    severity="critical",
                    detail={
                        "market": self.rules.name,
                        "operating_day": day.isoformat(),
                        "step": step,
                        "error": error[:2000],
                        "action": "see GET /v1/operations/runs; the operator retries "
                        "the step while it is still due",
                    },
                    now=self.clock.now(),
                    serial=serial,
                )
            else:
                for alert_id in open_alert_ids(
                    self.bind,
                    "_ops",
                    "ops_step_failed",
                    dev_id=self.rules.name,
                    serial=serial,
                ):
                    close_alert(self.bind, alert_id, now=self.clock.now())
        except StoreError as exc:  # an alert must not stop the loop
            logger.warning("%s step alert: %s", self.rules.name, exc)

    def _plan(self, day: dt.date) -> None:
        """Forecast, plan, bid and export ``day`` (on the planner thread)."""
        try:
            self._step(day, "forecast", functools.partial(self._forecast, day))
            if self._step(day, "dayahead", functools.partial(self._dayahead, day)):
                self._step(day, "export", functools.partial(self._export, day))
        except Exception:  # a planning bug must not stop the day's intraday steps
            logger.exception("%s %s: planning failed", self.rules.name, day)

    def _submit(self, job: str, day: dt.date) -> Future[None]:
        """Run a planning or settlement job on the background executor."""
        if self._url is not None:
            return self._planner.submit(
                _background_job,
                self._url,
                self.fleet,
                self.rules.name,
                clock_spec(self.clock),
                self.options,
                self.market.name,
                job,
                day,
            )
        if job == "plan":
            return self._planner.submit(self._plan, day)
        return self._planner.submit(self._settle_step, day)

    def _settle_step(self, day: dt.date) -> None:
        try:
            self._step(day, "settle", functools.partial(self._settle, day))
        except Exception:  # a settlement bug must not stop the loop
            logger.exception("%s %s: settlement failed", self.rules.name, day)

    def _forecast(self, day: dt.date) -> dict[str, Any]:
        made = refresh_forecasts(
            self.bind, self.fleet, self.rules, day, method=self.options.forecast
        )
        return {
            "series": len(made),
            "models": sorted({f.model_version for f in made}),
        }

    def _dayahead(self, day: dt.date) -> dict[str, Any]:
        outcome = run_dayahead(
            self.bind,
            self.fleet,
            self.rules,
            day,
            now=self.clock.now(),
            forecast=self.options.forecast,
            data_dir=self.options.data_dir,
            actor="operator",
        )
        if outcome.version is None or outcome.bids is None:
            return {"_status": "failed", "reason": outcome.reason}
        payload = outcome.bids.to_payload()
        stored, refusals = push_bid_set(
            self.bind,
            self.fleet,
            self.rules,
            day,
            payload,
            submitted_by="operator",
        )
        detail = {
            "schedule_version": outcome.version,
            "objective_usd": round(outcome.result.objective_usd or 0.0, 2),
            "bids": len(outcome.bids.bids),
            "bid_version": stored.version,
            "bid_status": stored.status,
            "forecast_source": outcome.forecast_source,
        }
        if refusals:
            detail.update(_status="failed", reason=stored.refusal_reason)
        return detail

    def _export(self, day: dt.date) -> dict[str, Any] | None:
        if self.options.export_dir is None:
            return {"written": None}
        from fleet.ops.export import export_bid_set

        result = export_bid_set(
            self.bind,
            self.fleet,
            self.rules,
            day,
            self.options.export_dir / self.rules.name.lower() / day.isoformat(),
        )
        return {"folder": str(result.folder), "files": len(result.files)}

    def _awards(self, day: dt.date) -> dict[str, Any] | None:
        stored = latest_accepted_bid_set(
            self.bind, market=self.rules.name, operating_day=day
        )
        if stored is None:
            msg = f"no accepted {self.rules.name} bid set for {day}: nothing to award"
            raise FleetInputError(msg)
        award_set = self.market.awards(self.bind, self.fleet, self.rules, stored)
        if award_set is None:
            return {"_status": "failed", "reason": "no awards pushed yet"}
        if self.market.name == "iso":
            return {"version": award_set.version, "awards": len(award_set.awards)}
        check_awards(self.bind, award_set, self.rules, day, self.fleet)
        n = store_awards(self.bind, award_set, self.rules, day)
        return {"version": award_set.version, "awards": n}

    # -- intraday ----------------------------------------------------------------
    def _price_source(self, day: dt.date) -> PriceSource:
        """Return the intraday price source of ``day``.

        Energy at the day's real day-ahead prices where stored (known since the
        day-ahead results), else the plan's forecast; AS at their clearing prices.
        """
        stored = latest_schedule(self.bind, market=self.rules.name, operating_day=day)
        fallback = (
            dayahead_prices_on_grid(parse_scenario(stored.scenario))
            if stored is not None and stored.scenario
            else None
        )
        start = operating_day_start(self.rules, day)
        hours = operating_day_hours(self.rules, day)
        nodes = sorted({s.node for s in self.sites})
        energy_series = self.rules.series_of("energy") or "da_energy"
        hourly: dict[str, dict[str, np.ndarray]] = {}
        for node in nodes:
            hourly[node] = {
                "energy": day_prices(
                    self.bind, self.rules, day, node=node, series=energy_series
                )
            }
            for product in self.rules.reserve_services:
                series = self.rules.series_of(product)
                if series is not None:
                    hourly[node][product] = day_prices(
                        self.bind,
                        self.rules,
                        day,
                        node=self.rules.as_node(node, product),
                        series=series,
                    )

        def source(
            first: dt.datetime, n: int, minutes: int
        ) -> dict[str, dict[str, list[float]]]:
            base = fallback(first, n, minutes) if fallback is not None else {}
            out: dict[str, dict[str, list[float]]] = {}
            for node in nodes:
                row: dict[str, list[float]] = {}
                for product, values in hourly[node].items():
                    vals = []
                    for i in range(n):
                        t = first + dt.timedelta(minutes=minutes * i)
                        h = min(
                            hours - 1, max(0, int((t - start).total_seconds() // 3600))
                        )
                        vals.append(float(values[h]))
                    arr = np.asarray(vals)
                    if np.isnan(arr).any():
                        alt = base.get(node, {}).get(product)
                        if alt is None:
                            arr = (
                                np.nan_to_num(arr, nan=0.0)
                                if product != "energy"
                                else arr
                            )
                        else:
                            arr = np.where(np.isnan(arr), np.asarray(alt, float), arr)
                    row[product] = [float(v) for v in arr]
                out[node] = row
            return out

        return source

    def _btm_source(
        self, day: dt.date
    ) -> Callable[[dt.datetime, int, int], Mapping[str, BtmInputs]]:
        start = operating_day_start(self.rules, day)
        hours = operating_day_hours(self.rules, day)

        def source(first: dt.datetime, n: int, minutes: int) -> dict[str, BtmInputs]:
            now = self.clock.now()
            out: dict[str, BtmInputs] = {}
            for site in (s for s in self.sites if s.is_btm):
                key = (site.id, day)
                if key not in self._load_cache:
                    load, _ = load_forecast_mw(
                        self.bind,
                        site,
                        start,
                        hours * 4,
                        15,
                        as_of=start,
                        data_dir=self.options.data_dir,
                    )
                    self._load_cache[key] = load
                day_load = self._load_cache[key]
                i0 = int((first - start).total_seconds() // 900)
                step = max(1, minutes // 15)
                load = [
                    float(np.mean(day_load[j : j + step]))
                    if j < len(day_load)
                    else day_load[-1]
                    for j in range(i0, i0 + n * step, step)
                ]
                out[site.id] = BtmInputs(
                    load_mw=load,
                    energy_usd_per_mwh=tariff_usd_per_mwh(site, first, n, minutes),
                    peak_so_far_mw=peak_so_far_mw(self.bind, site, now, first),
                    source="telemetry",
                )
            return out

        return source

    def _dispatcher(self, day: dt.date) -> IntradayDispatcher | None:
        if day in self._dispatchers:
            return self._dispatchers[day]
        stored = latest_schedule(self.bind, market=self.rules.name, operating_day=day)
        if stored is None:
            return None
        config = self.options.intraday
        n = operating_day_hours(self.rules, day) * 60 // config.interval_minutes
        awards = latest_awards(self.bind, self.rules, day)
        commitments = (
            commitments_from_awards(
                awards,
                start=operating_day_start(self.rules, day),
                interval_minutes=config.interval_minutes,
                intervals=n,
            )
            if not awards.empty
            else {}
        )
        # The day keeps the day-ahead plan's degradation costs.
        planned = parse_scenario(stored.scenario).sites if stored.scenario else []
        dispatcher = IntradayDispatcher(
            self.fleet,
            self.rules,
            day,
            degradation={s.id: list(s.degradation_usd_per_mwh) for s in planned},
            prices=self._price_source(day),
            states=self.states,
            send=self.send,
            awards=commitments,
            schedule_version=stored.version,
            config=config,
            btm=self._btm_source(day),
        )
        self._dispatchers[day] = dispatcher
        self._done[day] = done_intervals(self.bind, self.rules.name, day)
        return dispatcher

    def _intraday(self, day: dt.date, now: dt.datetime) -> dt.datetime | None:
        """Run the step of the interval due now if not done; return when the next is.

        With ``lead_s`` the interval that starts within the lead is planned now (so
        a step may belong to tomorrow's first interval).
        """
        lead = dt.timedelta(seconds=self.options.intraday.lead_s)
        ahead = (now + lead).astimezone(self.tz).date()
        if ahead != day:
            day = ahead
        dispatcher = self._dispatcher(day)
        if dispatcher is None:
            return None
        index = dispatcher.index_at(now + lead)
        if index < 0 or index >= dispatcher.intervals:
            return None
        done = self._done[day]
        if index not in done:
            # End the day where tomorrow's plan (once made) starts each site.
            tomorrow = planned_start_soc(
                self.bind, self.rules, day + dt.timedelta(days=1)
            )
            if tomorrow:
                dispatcher.soc_final_min = tomorrow
            if step_status(self.bind, self.rules.name, day, "intraday") is None:
                mark_step(
                    self.bind, self.rules.name, day, "intraday", "running", now=now
                )
            report = dispatcher.step(now, index=index)
            record_interval(
                self.bind, self.rules.name, day, report, now=self.clock.now()
            )
            done.add(index)
            self.progress.intervals.setdefault(day, []).append(report)
            if index == dispatcher.intervals - 1:
                mark_step(
                    self.bind,
                    self.rules.name,
                    day,
                    "intraday",
                    "done",
                    now=self.clock.now(),
                    detail={"intervals": len(done)},
                )
        return dispatcher.interval_start(index + 1) - lead

    def run_intraday_day(
        self,
        day: dt.date,
        stop: threading.Event,
        on_interval: Callable[[IntervalReport], None] | None = None,
        intervals: int | None = None,
    ) -> int:
        """Command every interval of ``day`` from now until it ends; return the count.

        Raises
        ------
        FleetInputError
            When the day is over or has no stored plan.
        """
        now = self.clock.now()
        if now >= self.day_end(day):
            msg = (
                f"--day {day}: the {self.rules.name} operating day ended at "
                f"{self.day_end(day).isoformat()}; there is nothing left to dispatch"
            )
            raise FleetInputError(msg)
        if self._dispatcher(day) is None:
            msg = (
                f"no {self.rules.name} schedule for {day}: run `bessfleet dayahead run` "
                "(or `bessfleet operate`) first"
            )
            raise FleetInputError(msg)
        start = operating_day_start(self.rules, day)
        if now < start and not self.clock.sleep_until(start, stop):
            return 0
        count = 0
        while not stop.is_set() and (intervals is None or count < intervals):
            nxt = self._intraday(day, self.clock.now())
            reports = self.progress.intervals.get(day, [])
            if reports and len(reports) > count:
                count = len(reports)
                if on_interval is not None:
                    on_interval(reports[-1])
            if nxt is None or not self.clock.sleep_until(nxt, stop):
                break
        return count

    def _settle(self, day: dt.date) -> dict[str, Any]:
        result = settle_day(self.bind, self.fleet, self.rules, day)
        rows = store_settlement(self.bind, result, now=self.clock.now())
        awarded = sum(result.awarded_mwh.values())
        short = sum(result.shortfall_mwh.values())
        return {
            "rows": rows,
            "net_usd": round(result.total_usd, 2),
            "by_item_usd": {k: round(v, 2) for k, v in result.by_item().items()},
            "awarded_mwh": round(awarded, 3),
            "shortfall_mwh": round(short, 3),
            "shortfall_share": round(short / awarded, 5) if awarded else 0.0,
        }

    # -- the loop ----------------------------------------------------------------
    def tick(self) -> dt.datetime:
        """Do what is due now; return when something is next due (UTC)."""
        now = self.clock.now()
        today = now.astimezone(self.tz).date()
        wake: list[dt.datetime] = []
        for day in (today, today + dt.timedelta(days=1)):
            start = operating_day_start(self.rules, day)
            due = self.dayahead_due(day)
            if now < due:
                wake.append(due)
            elif (
                now < start
                and step_status(self.bind, self.rules.name, day, "dayahead") != "done"
                and (self._planning is None or self._planning.done())
            ):
                # Planning runs beside the intraday steps, which must not wait for it.
                self._planning = self._submit("plan", day)
            awards_at = self.awards_due(day)
            if now < awards_at:
                wake.append(awards_at)
            elif (
                now < self.day_end(day)
                and step_status(self.bind, self.rules.name, day, "dayahead") == "done"
                and step_status(self.bind, self.rules.name, day, "awards") != "done"
            ) and not self._step(day, "awards", functools.partial(self._awards, day)):
                wake.append(now + dt.timedelta(minutes=5))
        nxt = self._intraday(today, now)
        if nxt is not None:
            wake.append(nxt)
        wake.append(self.day_end(today))
        for back in (1, 2):
            day = today - dt.timedelta(days=back)
            settle_at = self.day_end(day) + dt.timedelta(
                minutes=self.options.settle_after_minutes
            )
            if step_status(self.bind, self.rules.name, day, "dayahead") != "done":
                continue
            if step_status(self.bind, self.rules.name, day, "settle") == "done":
                if day in self._settling and day not in self.progress.settled:
                    self.progress.settled.append(day)
                continue
            if now < settle_at:
                wake.append(settle_at)
            elif self._planning is None or self._planning.done():
                self._settling.add(day)
                self._planning = self._submit("settle", day)
        return min(w for w in wake if w > now) if any(w > now for w in wake) else now

    def finished(self) -> bool:
        """Whether the run's ``days`` are settled."""
        days = self.options.days
        return days is not None and len(self.progress.settled) >= days

    def run(self, stop: threading.Event) -> MarketProgress:
        """Tick until stopped (or ``days`` settled)."""
        try:
            self._run(stop)
        finally:
            self._planner.shutdown(wait=True, cancel_futures=True)
        return self.progress

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set() and not self.finished():
            try:
                wake = self.tick()
            except (FleetInputError, StoreError) as exc:
                logger.error("%s operator: %s", self.rules.name, exc)
                wake = self.clock.now() + dt.timedelta(minutes=1)
            except Exception:  # the loop never dies: log, wait, go on
                logger.exception("%s operator tick failed", self.rules.name)
                wake = self.clock.now() + dt.timedelta(minutes=1)
            now = self.clock.now()
            if wake > now:
                speed = float(getattr(self.clock, "speed", 1.0))
                nap = min(
                    self.options.max_sleep_s, (wake - now).total_seconds() / speed
                )
                if stop.wait(max(0.0, nap)):
                    break


class Operator:
    """Run every market of the fleet unattended (one loop thread per market).

    Parameters
    ----------
    bind
        The store.
    fleet
        The fleet.
    clock
        System clock in production, an accelerated one in tests and demos.
    send
        Setpoint sink (e.g. :class:`fleet.ops.intraday.MqttSetpointSink`).
    states
        State source per site list; default the store's latest telemetry.
    options
        How the day runs.
    markets
        Markets to run (default every market of the fleet).
    """

    def __init__(
        self,
        bind: Bind,
        fleet: Fleet,
        clock: Clock,
        *,
        send: SetpointSink | None,
        states: Callable[[Sequence[str]], StateSource] | None = None,
        options: OperatorOptions | None = None,
        markets: Sequence[str] | None = None,
    ) -> None:
        self.bind = bind
        self.fleet = fleet
        self.clock = clock
        self.options = options or OperatorOptions()
        names = markets or sorted({s.market.value for s in fleet.sites})
        market: Market = (
            ReplayMarket() if self.options.market_mode == "replay" else IsoMarket()
        )
        factory = states or store_states(bind)
        self.loops = []
        for name in names:
            rules = load_market_rules(name)
            ids = [s.id for s in fleet.sites if s.market.value == rules.name]
            self.loops.append(
                MarketLoop(
                    bind,
                    fleet,
                    rules,
                    clock,
                    send=send,
                    states=factory(ids),
                    options=self.options,
                    market=market,
                    background=self.options.background,
                )
            )

    def run(self, stop: threading.Event | None = None) -> list[MarketProgress]:
        """Run every market loop and the ingest monitor until stopped or done."""
        stop = stop or threading.Event()
        results: dict[str, MarketProgress] = {}

        def target(loop: MarketLoop) -> None:
            results[loop.rules.name] = loop.run(stop)

        threads = [
            threading.Thread(target=target, args=(loop,), name=f"ops-{loop.rules.name}")
            for loop in self.loops
        ]
        monitor_stop = threading.Event()
        monitor = threading.Thread(
            target=monitor_ingest, args=(self.bind, monitor_stop), daemon=True
        )
        monitor.start()
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(timeout=0.5)
        except KeyboardInterrupt:
            stop.set()
            for t in threads:
                t.join()
        finally:
            monitor_stop.set()
        return [
            results[loop.rules.name]
            for loop in self.loops
            if loop.rules.name in results
        ]


def monitor_ingest(bind: Bind, stop: threading.Event, interval_s: float = 5.0) -> None:
    """Raise an ``ingest_down`` alert while no registered ingest worker is alive."""
    from fleet.store.alerts import close_alert, open_alert_ids, raise_alert
    from fleet.store.heartbeats import ingest_liveness

    while not stop.wait(interval_s):
        try:
            live = ingest_liveness(bind)
            now = dt.datetime.now(dt.UTC)
            if not live.ok:
                raise_alert(
                    bind,
                    site_id="_ingest",
                    dev_id="ingest",
                    kind="ingest_down",
                    severity="critical",
                    detail={
                        "dead_workers": list(live.dead),
                        "silent_s": live.newest_beat_age_s,
                        "action": "restart the ingest workers; telemetry is queued "
                        "in the broker sessions meanwhile",
                    },
                    now=now,
                )
            else:
                for alert_id in open_alert_ids(bind, "_ingest", "ingest_down"):
                    close_alert(bind, alert_id, now=now)
        except StoreError as exc:
            logger.warning("ingest monitor: %s", exc)
        except Exception:  # the monitor must never take the operator down
            logger.exception("ingest monitor failed")
            time.sleep(interval_s)


def _process_url(bind: Bind) -> str | None:
    """Return the store URL a background process can open (None: keep a thread)."""
    url = getattr(bind, "url", None)
    if url is None or (
        url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
    ):
        return None
    return str(url.render_as_string(hide_password=False))


def _background_job(
    url: str,
    fleet: Fleet,
    market: str,
    spec: ClockSpec,
    options: OperatorOptions,
    mode: str,
    job: str,
    day: dt.date,
) -> None:
    """Run a market's planning or settlement of ``day`` in a process of its own."""
    from fleet.store.engine import make_engine

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    engine = make_engine(url)
    try:
        loop = MarketLoop(
            engine,
            fleet,
            load_market_rules(market),
            clock_from_spec(spec),
            send=None,
            states=dict,
            options=options,
            market=ReplayMarket() if mode == "replay" else IsoMarket(),
        )
        if job == "plan":
            loop._plan(day)
        else:
            loop._settle_step(day)
        loop._planner.shutdown(wait=False)
    finally:
        engine.dispose()
