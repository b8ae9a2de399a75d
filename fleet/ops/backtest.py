"""Replay real prices day by day: forecasts, day-ahead solve, settlement, comparisons.

For each operating day D of the period (``docs/backtest.md`` has the definitions):

1. forecasts of D's day-ahead energy and AS prices, issued on D-1 as they would have
   been (only data known at the issue time);
2. the day-ahead solve of the market's sites at the P50 forecast: the plan;
3. settlement at the actual prices: the plan's energy and AS positions at the actual DA
   prices (the same model evaluates the fixed plan, so degradation is costed the same
   way), and the expected deployed regulation energy (a deviation from the DA
   position) at real-time minus DA prices;
4. perfect foresight: the same model and constraints solved with the actual DA prices;
5. the baseline: fixed daily charge and discharge windows, no AS, settled the same way.

Days are independent (each starts from the fleet file's SoC and must end at or above
it), so they run in parallel.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from dispatch.markets import MarketRules, load_market_rules
from dispatch.result import Result
from dispatch.scenario import Commitments, Scenario
from dispatch.solve import SolveOptions, solve
from dispatch.status import SolveStatus
from fleet.domain import Fleet
from fleet.errors import FleetInputError
from fleet.ops.scenario_builder import (
    ScenarioInputs,
    build_scenario,
    operating_day_hours,
    operating_day_start,
)
from forecasting.baselines import BASELINE_NAMES, baseline_forecasts
from forecasting.data import clean_series, read_price_csv

logger = logging.getLogger(__name__)

ForecasterName = Literal["model", "persistence", "seasonal_naive", "naive_average"]
FORECASTERS: tuple[str, ...] = ("model", *BASELINE_NAMES)
"""Forecasters the backtest can issue day-ahead prices with."""
AS_NODE = "SYSTEM"
"""Node of the system-wide ancillary-service prices in the price data."""
AS_SERIES: Mapping[str, str] = {
    "reg_up": "reg_up",
    "reg_down": "reg_down",
    "spin": "rrs_spin",
}
"""Scenario AS product -> price-data product."""
SERVICES = ("energy", "reg_up", "reg_down", "spin")
DEFAULT_PRICE_FILES: tuple[str, ...] = (
    "ercot_da_spp/ercot_da_spp_hubs_lz_2021_2025.csv.gz",
    "ercot_rt_da_hourly_15sp_2024_2026/ercot_rt_da_hourly_15sp_2024_2026.csv.gz",
    "ercot_as_mcpc/ercot_dam_as_mcpc_2022_2025.csv.gz",
    "ercot_rt_da_hourly_15sp_2024_2026/ercot_dam_as_mcpc_hourly_2024_2026.csv.gz",
)
"""Price files read from the shared data folder when ``--prices`` is not given."""
BASELINE_CHARGE_HOUR = 2
"""Local hour the fixed-window baseline starts charging."""
BASELINE_DISCHARGE_HOUR = 18
"""Local hour the fixed-window baseline starts discharging."""


@dataclass(frozen=True, slots=True)
class BacktestOptions:
    """How the backtest runs."""

    market: str = "ERCOT"
    """Market whose front-of-meter sites are replayed."""
    forecaster: str = "naive_average"
    """``model`` (quantile gradient boosting) or a naive baseline name."""
    refit_days: int = 28
    """Days between refits of the model forecaster."""
    workers: int = 1
    """Worker processes for the day solves (1: in this process)."""
    site_ids: tuple[str, ...] = ()
    """Only these sites (empty: all of the market's front-of-meter sites)."""


@dataclass(frozen=True, slots=True)
class DayInputs:
    """Everything one day's solves need (plain data, picklable)."""

    day: dt.date
    """Operating day."""
    hours: int
    """Hours of the day (23-25)."""
    forecast: Mapping[str, Mapping[str, list[float]]]
    """Per node, per scenario product: P50 forecast [$/MWh, $/MW-h]."""
    actual: Mapping[str, Mapping[str, list[float]]]
    """Per node, per scenario product: actual DA prices."""
    rt_energy: Mapping[str, list[float]]
    """Per node: actual real-time energy prices, hourly [$/MWh] (DA where missing)."""


@dataclass(frozen=True, slots=True)
class DayRow:
    """One day of the backtest (all money in USD)."""

    day: str
    """Operating day (ISO)."""
    status: str
    """``ok`` or why the day was skipped."""
    revenue_usd: dict[str, float] = field(default_factory=dict)
    """Strategy revenue by service at actual prices (``rt_deviation`` included)."""
    degradation_usd: float = 0.0
    """Strategy degradation cost (positive number)."""
    net_usd: float = 0.0
    """Strategy revenue minus degradation, real-time deviation included."""
    day_ahead_usd: float = 0.0
    """Strategy value settled at DA prices: ``net_usd`` without ``rt_deviation``."""
    perfect_foresight_usd: float = 0.0
    """Optimum of the same model at the actual DA prices (net of degradation)."""
    baseline_usd: float = 0.0
    """Fixed-window baseline at the actual prices (net of degradation)."""
    solve_seconds: float = 0.0
    """Wall time of the day's solves [s]."""


@dataclass(frozen=True, slots=True)
class BacktestReport:
    """The backtest's totals and its days."""

    start: dt.date
    """First operating day."""
    end: dt.date
    """Last operating day."""
    market: str
    """Market replayed."""
    sites: tuple[str, ...]
    """Sites replayed."""
    forecaster: str
    """Forecaster used for the day-ahead solve."""
    days: tuple[DayRow, ...]
    """One row per day."""
    seconds: float
    """Wall time of the whole backtest [s]."""

    @property
    def ok_days(self) -> list[DayRow]:
        """Days that were replayed (not skipped)."""
        return [d for d in self.days if d.status == "ok"]

    def totals(self) -> dict[str, Any]:
        """Return the JSON contract: revenue by service, degradation, PF, ratios."""
        ok = self.ok_days
        revenue: dict[str, float] = {}
        for row in ok:
            for key, value in row.revenue_usd.items():
                revenue[key] = revenue.get(key, 0.0) + value
        net = math.fsum(d.net_usd for d in ok)
        da = math.fsum(d.day_ahead_usd for d in ok)
        pf = math.fsum(d.perfect_foresight_usd for d in ok)
        base = math.fsum(d.baseline_usd for d in ok)
        return {
            "market": self.market,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "sites": list(self.sites),
            "forecaster": self.forecaster,
            "days_replayed": len(ok),
            "days_skipped": len(self.days) - len(ok),
            "revenue_usd": {k: round(v, 2) for k, v in sorted(revenue.items())},
            "degradation_usd": round(math.fsum(d.degradation_usd for d in ok), 2),
            "net_usd": round(net, 2),
            "day_ahead_usd": round(da, 2),
            "perfect_foresight_usd": round(pf, 2),
            "capture_ratio": round(da / pf, 4) if pf > 0 else None,
            "baseline_usd": round(base, 2),
            "baseline_ratio": round(da / base, 4) if base > 0 else None,
            "seconds": round(self.seconds, 2),
        }

    def to_json(self) -> dict[str, Any]:
        """Return the totals plus the per-day rows."""
        return {**self.totals(), "days": [asdict(d) for d in self.days]}


def default_price_files(shared_data_dir: Path) -> list[Path]:
    """Return the shared data files the backtest reads by default."""
    return [shared_data_dir / name for name in DEFAULT_PRICE_FILES]


def read_prices(paths: Sequence[Path], market: str) -> pd.DataFrame:
    """Read and concatenate price CSVs of the normalized layout for one market.

    Raises
    ------
    FleetInputError
        When no file is given or a file is missing or malformed (naming it).
    """
    if not paths:
        msg = "--prices: no price file given"
        raise FleetInputError(msg)
    frames = []
    for path in paths:
        try:
            frames.append(read_price_csv(path, market=market))
        except ValueError as exc:
            raise FleetInputError(str(exc)) from None
    return pd.concat(frames, ignore_index=True)


def _series(frame: pd.DataFrame, node: str, product: str) -> pd.Series | None:
    rows = frame[(frame["node"] == node) & (frame["product"] == product)]
    rows = rows.drop_duplicates("timestamp_utc")
    if rows.empty:
        return None
    series = pd.Series(
        rows["price"].to_numpy(float), index=pd.DatetimeIndex(rows["timestamp_utc"])
    ).sort_index(kind="stable")
    cleaned, _ = clean_series(series)
    return cleaned


def _forecast(
    y: pd.Series,
    days: list[dt.date],
    *,
    method: str,
    tz: str,
    product: str,
    refit_days: int,
    clock: Callable[[], float] | None,
) -> pd.Series:
    """P50 forecast of ``y`` for every hour of ``days``, issued on D-1."""
    if method == "model":
        from forecasting.backtest import rolling_backtest
        from forecasting.price import PriceForecaster

        def make() -> PriceForecaster:
            return PriceForecaster(tz=tz, product=product)

        result = rolling_backtest(
            y, make, start=days[0], end=days[-1], refit_days=refit_days, clock=clock
        )
        frame = result.forecasts
        return pd.Series(
            frame["p50"].to_numpy(float),
            index=pd.DatetimeIndex(frame["timestamp_utc"]),
        )
    base = baseline_forecasts(y, days, tz=tz, product=product)
    return base[method]


def _fill(values: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray | None:
    """Fill gaps from ``fallback``, then the day's mean; None when all are missing."""
    out = values.copy()
    if fallback is not None:
        out = np.where(np.isfinite(out), out, fallback)
    if not np.isfinite(out).any():
        return None
    return np.where(np.isfinite(out), out, np.nanmean(out))


def prepare_days(
    fleet: Fleet,
    prices: pd.DataFrame,
    start: dt.date,
    end: dt.date,
    options: BacktestOptions,
    clock: Callable[[], float] | None = None,
) -> list[DayInputs | DayRow]:
    """Issue the forecasts and cut the actual prices into one input per day.

    Returns
    -------
    list
        Per day: a :class:`DayInputs`, or a skipped :class:`DayRow` when an actual
        price is missing.

    Raises
    ------
    FleetInputError
        When the period is empty, a forecaster name is unknown or a node has no
        price series.
    """
    if end < start:
        msg = f"--end={end} is before --start={start}"
        raise FleetInputError(msg)
    if options.forecaster not in FORECASTERS:
        msg = f"--forecaster={options.forecaster!r} must be one of {list(FORECASTERS)}"
        raise FleetInputError(msg)
    rules = load_market_rules(options.market)
    sites = _sites(fleet, rules, options.site_ids)
    nodes = sorted({s.node for s in sites})
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    first = operating_day_start(rules, start)
    last = operating_day_start(rules, end + dt.timedelta(days=1))
    hours_index = pd.date_range(first, last, freq="h", inclusive="left")
    actual: dict[tuple[str, str], pd.Series] = {}
    forecast: dict[tuple[str, str], pd.Series] = {}
    keys = [(node, "energy", "da_energy") for node in nodes]
    keys += [(AS_NODE, svc, prod) for svc, prod in AS_SERIES.items()]
    for node, svc, product in keys:
        y = _series(prices, node, product)
        if y is None:
            if svc == "energy":
                msg = f"--prices: no {options.market} da_energy series for node {node}"
                raise FleetInputError(msg)
            logger.warning("no %s prices: %s is priced at 0", product, svc)
            continue
        actual[(node, svc)] = y.reindex(hours_index)
        fc = _forecast(
            y,
            days,
            method=options.forecaster,
            tz=rules.timezone,
            product=product,
            refit_days=options.refit_days,
            clock=clock,
        )
        forecast[(node, svc)] = fc.reindex(hours_index)
        logger.info("forecast %s/%s for %d days", node, product, len(days))
    rt: dict[str, pd.Series] = {}
    for node in nodes:
        series = _series(prices, node, "rt_energy")
        if series is not None:
            rt[node] = series.reindex(hours_index)
    out: list[DayInputs | DayRow] = []
    for day in days:
        lo = operating_day_start(rules, day)
        n = operating_day_hours(rules, day)
        idx = pd.date_range(lo, periods=n, freq="h")
        day_fc: dict[str, dict[str, list[float]]] = {}
        day_act: dict[str, dict[str, list[float]]] = {}
        missing = None
        for node in nodes:
            day_fc[node], day_act[node] = {}, {}
            for svc in SERVICES:
                key = (node, svc) if svc == "energy" else (AS_NODE, svc)
                if key not in actual:
                    continue
                act = actual[key].reindex(idx).to_numpy(float)
                if np.isnan(act).any():
                    missing = f"missing actual {svc} prices"
                    break
                fc = _fill(forecast[key].reindex(idx).to_numpy(float))
                if fc is None:
                    missing = f"no {svc} forecast"
                    break
                day_fc[node][svc] = [float(v) for v in fc]
                day_act[node][svc] = [float(v) for v in act]
            if missing:
                break
        if missing:
            out.append(DayRow(day=day.isoformat(), status=missing))
            continue
        day_rt = {}
        for node in nodes:
            da = np.asarray(day_act[node]["energy"])
            values = rt[node].reindex(idx).to_numpy(float) if node in rt else da
            day_rt[node] = [float(v) for v in np.where(np.isfinite(values), values, da)]
        out.append(DayInputs(day, n, day_fc, day_act, day_rt))
    return out


def _sites(fleet: Fleet, rules: MarketRules, site_ids: Sequence[str]) -> list[Any]:
    sites = [s for s in fleet.sites if s.market.value == rules.name and not s.is_btm]
    if site_ids:
        unknown = sorted(set(site_ids) - {s.id for s in sites})
        if unknown:
            msg = (
                f"--site: {unknown} not front-of-meter {rules.name} sites of the fleet "
                f"(have {[s.id for s in sites]})"
            )
            raise FleetInputError(msg)
        sites = [s for s in sites if s.id in site_ids]
    if not sites:
        msg = f"the fleet has no front-of-meter {rules.name} site"
        raise FleetInputError(msg)
    return sites


def fixed_plan(
    scn: Scenario, result: Result, *, keep_services: bool = False
) -> Scenario:
    """Return ``scn`` with every site's schedule fixed to ``result``'s.

    Net power is fixed per interval; AS awards are fixed by dropping the services
    and committing the planned MW (a service the site is not enrolled in has its
    variable bounded above by the commitment). The model then only re-optimizes the
    segment assignment of degradation, so the objective is the plan's value.
    """
    sites = []
    for site in scn.sites:
        sched = result.sites[site.id]
        net = [d - c for c, d in zip(sched.charge_mw, sched.discharge_mw, strict=True)]
        com = Commitments(
            reg_up_mw=list(sched.reg_up_mw),
            reg_down_mw=list(sched.reg_down_mw),
            spin_mw=list(sched.spin_mw),
            net_mw=list(net),
        )
        services = list(site.services) if keep_services else ["energy"]
        sites.append(
            site.model_copy(
                update={
                    "commitments": com,
                    "services": services,
                    "soc_final_min": site.soc_min,
                }
            )
        )
    return scn.model_copy(update={"sites": sites})


def baseline_commitments(scn: Scenario, rules: MarketRules) -> Scenario:
    """Return ``scn`` with the fixed-window baseline schedule fixed at every site.

    Each site charges from :data:`BASELINE_CHARGE_HOUR` and discharges from
    :data:`BASELINE_DISCHARGE_HOUR` (local), each for ``k`` hours, k = ceil(usable
    energy / power); it charges what fits above its start SoC and discharges what
    returns it to the start SoC. No AS.
    """
    tz = rules.timezone
    hours = pd.date_range(scn.start, periods=scn.intervals, freq="h").tz_convert(tz)
    local_hour = np.asarray(hours.hour)
    sites = []
    nets: dict[str, np.ndarray] = {}
    for site in scn.sites:
        e = site.energy_mwh
        usable = e * (site.soc_max - site.soc_min)
        k = max(1, math.ceil(usable / max(site.charge_mw, site.discharge_mw, 1e-9)))
        room = e * site.soc_max - e * site.soc_initial
        charge_window = (local_hour >= BASELINE_CHARGE_HOUR) & (
            local_hour < BASELINE_CHARGE_HOUR + k
        )
        dis_window = (local_hour >= BASELINE_DISCHARGE_HOUR) & (
            local_hour < BASELINE_DISCHARGE_HOUR + k
        )
        n_c, n_d = int(charge_window.sum()), int(dis_window.sum())
        stored = min(room, site.charge_mw * site.eta_charge * n_c) if n_c else 0.0
        c_mw = stored / (site.eta_charge * n_c) if n_c else 0.0
        d_mw = stored * site.eta_discharge / n_d if n_d else 0.0
        nets[site.id] = np.where(charge_window, -c_mw, 0.0) + np.where(
            dis_window, d_mw, 0.0
        )
    # Sites sharing a POI scale their windows by one factor so the group's limits hold
    # (the same factor on charge and discharge keeps each day's energy balance).
    for group in scn.fleet.poi_groups if scn.fleet is not None else []:
        members = [sid for sid in group.sites if sid in nets]
        total = np.sum([nets[sid] for sid in members], axis=0)
        out_mw = float(np.max(np.maximum(total, 0.0), initial=0.0))
        in_mw = float(np.max(np.maximum(-total, 0.0), initial=0.0))
        factor = min(
            1.0,
            group.export_mw / out_mw if out_mw > 0 else 1.0,
            group.import_mw / in_mw if in_mw > 0 else 1.0,
        )
        for sid in members:
            nets[sid] = nets[sid] * factor
    for site in scn.sites:
        com = Commitments(net_mw=[float(v) for v in nets[site.id]])
        sites.append(
            site.model_copy(
                update={
                    "commitments": com,
                    "services": ["energy"],
                    "soc_final_min": site.soc_min,
                }
            )
        )
    return scn.model_copy(update={"sites": sites})


def _net(result: Result) -> float:
    return float(result.objective_usd or 0.0)


def run_day(fleet: Fleet, options: BacktestOptions, inputs: DayInputs) -> DayRow:
    """Replay one operating day: plan at the forecast, settle, compare.

    Parameters
    ----------
    fleet
        The fleet.
    options
        Market and site selection.
    inputs
        The day's forecasts and actual prices.

    Returns
    -------
    DayRow
    """
    t0 = time.perf_counter()
    rules = load_market_rules(options.market)
    sites = _sites(fleet, rules, options.site_ids)
    ids = [s.id for s in sites]
    start = operating_day_start(rules, inputs.day)

    def scenario(prices: Mapping[str, Mapping[str, list[float]]]) -> Scenario:
        return build_scenario(
            fleet,
            rules,
            ScenarioInputs(
                start=start,
                interval_minutes=60,
                intervals=inputs.hours,
                prices=prices,
            ),
            site_ids=ids,
        )

    opts = SolveOptions(mip_rel_gap=1e-6, time_limit_s=60.0)
    scn_fc = scenario(inputs.forecast)
    scn_act = scenario(inputs.actual)
    plan = solve(scn_fc, opts)
    if plan.status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
        return DayRow(inputs.day.isoformat(), f"plan {plan.status}: {plan.reason}")
    settled = solve(fixed_plan(scn_act, plan), opts)
    perfect = solve(scn_act, opts)
    base = solve(baseline_commitments(scn_act, rules), opts)
    for name, res in (("settle", settled), ("perfect", perfect), ("baseline", base)):
        if res.status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            return DayRow(inputs.day.isoformat(), f"{name} {res.status}: {res.reason}")
    revenue = {
        k: float(settled.revenue_usd.get(k, 0.0))
        for k in ("energy", "reg_up", "reg_down", "spin")
    }
    deviation = 0.0
    for site in scn_act.sites:
        sched = plan.sites[site.id]
        rt = np.asarray(inputs.rt_energy[site.node])
        da = np.asarray(inputs.actual[site.node]["energy"])
        deployed = rules.deploy_up * np.asarray(sched.reg_up_mw) / 1.0
        deployed -= rules.deploy_down * np.asarray(sched.reg_down_mw)
        deviation += float(np.dot(deployed, rt - da))
    revenue["rt_deviation"] = deviation
    degradation = -float(settled.revenue_usd.get("degradation", 0.0))
    return DayRow(
        day=inputs.day.isoformat(),
        status="ok",
        revenue_usd=revenue,
        degradation_usd=degradation,
        net_usd=_net(settled) + deviation,
        day_ahead_usd=_net(settled),
        perfect_foresight_usd=_net(perfect),
        baseline_usd=_net(base),
        solve_seconds=time.perf_counter() - t0,
    )


def run_backtest(
    fleet: Fleet,
    prices: pd.DataFrame,
    start: dt.date,
    end: dt.date,
    options: BacktestOptions | None = None,
    *,
    executor: Executor | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> BacktestReport:
    """Replay ``[start, end]`` (operating days, inclusive) for the market's sites.

    Parameters
    ----------
    fleet
        The fleet (its front-of-meter sites in ``options.market`` are replayed).
    prices
        Long price frame (:func:`read_prices`): DA energy per node, AS at ``SYSTEM``,
        RT energy per node when available.
    start, end
        First and last operating day.
    options
        Market, forecaster, refit cadence, sites.
    executor
        Runs the independent days in parallel when given.
    clock
        Monotonic clock for the reported wall time [s].

    Returns
    -------
    BacktestReport
    """
    options = options or BacktestOptions()
    t0 = clock()
    rules = load_market_rules(options.market)
    sites = _sites(fleet, rules, options.site_ids)
    prepared = prepare_days(fleet, prices, start, end, options, clock)
    todo = [p for p in prepared if isinstance(p, DayInputs)]
    if executor is None:
        done = [run_day(fleet, options, p) for p in todo]
    else:
        n = len(todo)
        done = list(executor.map(run_day, [fleet] * n, [options] * n, todo))
    by_day = {row.day: row for row in done}
    rows = tuple(
        by_day[p.day.isoformat()] if isinstance(p, DayInputs) else p for p in prepared
    )
    return BacktestReport(
        start=start,
        end=end,
        market=rules.name,
        sites=tuple(s.id for s in sites),
        forecaster=options.forecaster,
        days=rows,
        seconds=clock() - t0,
    )


def write_outputs(report: BacktestReport, out_dir: Path) -> dict[str, Path]:
    """Write ``backtest_days.csv``, ``backtest.json`` and ``backtest_daily.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for d in report.days:
        row: dict[str, Any] = {
            "day": d.day,
            "status": d.status,
            **{f"revenue_{k}_usd": v for k, v in d.revenue_usd.items()},
            "degradation_usd": d.degradation_usd,
            "net_usd": d.net_usd,
            "day_ahead_usd": d.day_ahead_usd,
            "perfect_foresight_usd": d.perfect_foresight_usd,
            "baseline_usd": d.baseline_usd,
        }
        rows.append(row)
    csv_path = out_dir / "backtest_days.csv"
    pd.DataFrame(rows).to_csv(csv_path, index=False)
    json_path = out_dir / "backtest.json"
    json_path.write_text(json.dumps(report.to_json(), indent=1) + "\n")
    png_path = out_dir / "backtest_daily.png"
    _plot(report, png_path)
    return {"csv": csv_path, "json": json_path, "png": png_path}


def _plot(report: BacktestReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = report.ok_days
    days = pd.to_datetime([d.day for d in ok])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    series = {
        "strategy (forecast, DA settled)": [d.day_ahead_usd for d in ok],
        "perfect foresight": [d.perfect_foresight_usd for d in ok],
        "fixed-window baseline": [d.baseline_usd for d in ok],
    }
    for label, values in series.items():
        ax1.plot(days, values, label=label, lw=0.8)
        ax2.plot(days, np.cumsum(values) / 1e3, label=label)
    ax1.set_ylabel("net revenue per day [$]")
    ax2.set_ylabel("cumulative [k$]")
    totals = report.totals()
    ratio = totals["capture_ratio"]
    ax1.set_title(
        f"{report.market} backtest {report.start}..{report.end}, "
        f"{len(report.sites)} site(s); capture ratio "
        f"{'n/a' if ratio is None else f'{100 * ratio:.1f}%'}"
    )
    ax1.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
