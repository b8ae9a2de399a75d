"""Benchmark the operations loop: a year of daily solves and intraday re-solves, 12 sites.

Run ``.venv/bin/python bench/ops_bench.py`` (both), or ``year`` / ``intraday`` alone:

- ``year``: the backtest of 2024 (real ERCOT prices from the shared data) for a 12-site
  ERCOT fleet: per day the DA plan, 24 hourly real-time re-dispatches, the
  two-settlement, the DA+RT hindsight bound, DA-only perfect foresight and baselines.
  Target: under 10 minutes on the 2-core machine.
- ``intraday``: re-solves of the rest of the day for the same fleet at 15- and 5-minute
  intervals from several times of day. Target: under 2 s per interval.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from pathlib import Path
from typing import Any

from dispatch.markets import load_market_rules
from fleet.config import Settings
from fleet.domain import Fleet
from fleet.fleetfile import fleet_from_data, read_fleet_data
from fleet.ops.backtest import (
    BacktestOptions,
    default_price_files,
    read_prices,
    run_backtest,
)
from fleet.ops.intraday import IntradayConfig, IntradayDispatcher
from fleet.ops.scenario_builder import operating_day_start

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "examples" / "fleet.toml"


def twelve_site_fleet() -> Fleet:
    """The example fleet's ERCOT front-of-meter sites, cloned up to 12 sites."""
    data: dict[str, Any] = read_fleet_data(EXAMPLE)
    base = [
        s for s in data["sites"] if s["market"] == "ERCOT" and s["meter"] == "front"
    ]
    sites = []
    for k in range(12):
        site = dict(base[k % len(base)])
        if k >= len(base):
            site["id"] = f"{site['id']}-b{k}"
            site["resource_id"] = f"{site['resource_id']}_B{k}"
        sites.append(site)
    data = {**data, "sites": sites}
    data.pop("capacity_min_mw", None)
    return fleet_from_data(data, source="bench")


def bench_year(workers: int) -> None:
    """Backtest 2024 for the 12-site fleet."""
    fleet = twelve_site_fleet()
    t0 = time.perf_counter()
    prices = read_prices(default_price_files(Settings().shared_data_dir), "ERCOT")
    read_s = time.perf_counter() - t0
    options = BacktestOptions(forecaster="naive_average")
    if workers > 1:
        from fleet.parallel import make_executor

        with make_executor(workers=workers) as executor:
            report = run_backtest(
                fleet,
                prices,
                dt.date(2024, 1, 1),
                dt.date(2024, 12, 31),
                options,
                executor=executor,
            )
    else:
        report = run_backtest(
            fleet, prices, dt.date(2024, 1, 1), dt.date(2024, 12, 31), options
        )
    totals = report.totals()
    per_day = [d.solve_seconds for d in report.ok_days] or [0.0]
    skipped = [d for d in report.days if d.status != "ok"]
    if skipped:
        print(
            f"  {len(skipped)} days skipped, first: {skipped[0].day} {skipped[0].status}"
        )
    print(f"year of daily solves, {len(fleet.sites)} sites, workers={workers}")
    print(f"  read prices       {read_s:8.1f} s")
    print(f"  backtest total    {report.seconds:8.1f} s  (target < 600 s)")
    print(
        f"  per day mean {statistics.mean(per_day):.3f} s, "
        f"max {max(per_day):.3f} s, days {len(per_day)}"
    )
    print(
        f"  capture vs hindsight {totals['capture_vs_hindsight']}, value over "
        f"baselines {totals['value_over_baselines']}"
    )


def bench_intraday() -> None:
    """Intraday re-solves of the rest of a day, 12 sites."""
    fleet = twelve_site_fleet()
    rules = load_market_rules("ERCOT")
    day = dt.date(2024, 8, 20)
    start = operating_day_start(rules, day)
    nodes = sorted({s.node for s in fleet.sites})

    def prices(
        first: dt.datetime, n: int, minutes: int
    ) -> dict[str, dict[str, list[float]]]:
        out = {}
        for node in nodes:
            energy = []
            for i in range(n):
                hour = ((first - start).total_seconds() / 3600 + i * minutes / 60) % 24
                energy.append(30 + 40 * (16 <= hour < 20) - 10 * (2 <= hour < 6))
            out[node] = {
                "energy": energy,
                "reg_up": [5.0] * n,
                "reg_down": [3.0] * n,
                "spin": [2.0] * n,
            }
        return out

    for n_min, model_min in ((15, None), (5, None), (5, 15)):
        label = f"{n_min}-min" + (f" on a {model_min}-min model" if model_min else "")
        times = []
        for hour in (0, 6, 12, 18):
            now = start + dt.timedelta(hours=hour, minutes=1)
            stamp = int(now.timestamp() * 1000)
            states = {s.id: (stamp, 0.5) for s in fleet.sites}
            dispatcher = IntradayDispatcher(
                fleet,
                rules,
                day,
                prices=prices,
                states=lambda st=states: st,
                config=IntradayConfig(
                    interval_minutes=n_min,
                    model_interval_minutes=model_min,
                    solve_time_limit_s=30.0,
                ),
            )
            t0 = time.perf_counter()
            report = dispatcher.step(now)
            times.append(time.perf_counter() - t0)
            print(
                f"  {label}, from {hour:02d}:00 ({dispatcher.intervals - report.index}"
                f" intervals): {times[-1]:.3f} s {report.status}"
            )
        print(f"intraday {label}: max {max(times):.3f} s (target < 2 s)")


def main() -> None:
    """Run the chosen benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "which", nargs="?", choices=["year", "intraday", "all"], default="all"
    )
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.which in ("intraday", "all"):
        bench_intraday()
    if args.which in ("year", "all"):
        bench_year(args.workers)


if __name__ == "__main__":
    main()
