"""Benchmark the dispatch optimizer: fleet sizes, monolithic vs decomposed, arbitrage-only.

Run ``.venv/bin/python bench/dispatch_bench.py`` (``--sizes 1 10 --repeats 3`` for a quick
run). Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from typing import Any

import numpy as np

from dispatch.lp import build_lp
from dispatch.precheck import max_capacity_mw
from dispatch.scenario import Scenario, parse_scenario
from dispatch.solve import SolveOptions, solve

T = 96


def _prices(rng: np.random.Generator, n: int = T) -> dict[str, list[float]]:
    hours = np.arange(n) / 4.0
    base = (
        35
        + 20 * np.sin((hours - 9) / 24 * 2 * np.pi)
        + 25 * np.exp(-((hours - 13) ** 2) / 3)
    )
    energy = base + rng.normal(0, 6, n)
    energy[rng.integers(0, n, 3)] += rng.uniform(80, 250, 3)
    energy[rng.integers(0, n, 2)] = rng.uniform(-30, -5, 2)
    return {
        "energy": [round(float(x), 2) for x in energy],
        "reg_up": [round(float(x), 2) for x in rng.uniform(3, 10, n)],
        "reg_down": [round(float(x), 2) for x in rng.uniform(3, 9, n)],
        "spin": [round(float(x), 2) for x in rng.uniform(0.5, 5, n)],
    }


def fleet_scenario(n_sites: int, seed: int = 0) -> Scenario:
    """A fleet of ``n_sites``: 70 % front of meter, 30 % behind, POI pairs, capacity minimum."""
    rng = np.random.default_rng(seed)
    n_nodes = max(1, min(5, n_sites // 20))
    markets = {f"N{k}": _prices(rng) for k in range(n_nodes)}
    sites: list[dict[str, Any]] = []
    for k in range(n_sites):
        power = float(rng.choice([1.0, 2.0, 5.0, 10.0]))
        energy = power * float(rng.choice([1.0, 2.0, 4.0]))
        btm = k % 10 in (3, 7, 9) and n_sites > 1
        site: dict[str, Any] = {
            "id": f"site-{k:04d}",
            "node": f"N{k % n_nodes}",
            "discharge_mw": power,
            "charge_mw": power,
            "energy_mwh": energy,
            "soc_min": 0.05,
            "soc_max": 0.95,
            "soc_initial": round(float(rng.uniform(0.3, 0.7)), 3),
            "soc_final_min": 0.3,
            "eta_charge": 0.95,
            "eta_discharge": 0.95,
            "services": ["energy", "reg_up", "reg_down", "spin", "capacity"],
            "degradation_usd_per_mwh": sorted(
                round(float(x), 2) for x in rng.uniform(1, 20, 4)
            ),
        }
        if btm:
            load = 0.8 * power + 0.3 * power * np.sin(np.arange(T) / T * 2 * np.pi)
            site["services"] = ["peak_shaving", "reg_up", "reg_down"]
            site["btm"] = {
                "load_mw": [
                    round(float(x), 3) for x in load + rng.normal(0, 0.05 * power, T)
                ],
                "energy_usd_per_mwh": [80.0] * T,
                "demand_usd_per_mw": 15000.0,
                "peak_so_far_mw": round(float(load.max()) * 0.9, 3),
                "export_allowed": False,
            }
        sites.append(site)
    fom = [s["id"] for s in sites if "btm" not in s]
    groups = [
        {"sites": fom[j : j + 2], "export_mw": 1.5 * 5.0, "import_mw": 1.5 * 5.0}
        for j in range(0, min(len(fom) - 1, 2 * max(1, n_sites // 10)), 4)
    ]
    data: dict[str, Any] = {
        "schema": "bess-dispatch-scenario/1",
        "start": "2026-11-24T06:00:00Z",
        "interval_minutes": 15,
        "intervals": T,
        "markets": markets,
        "regulation": {"deploy_up": 0.1, "deploy_down": 0.1},
        "reserve_duration_h": 1.0,
        "capacity": {"price_usd_per_mw": 20.0, "window": [64, 84], "duration_h": 4.0},
        "sites": sites,
    }
    scn = parse_scenario(data)
    carry = sum(max_capacity_mw(scn, s) for s in scn.sites)
    data["fleet"] = {"capacity_min_mw": round(0.6 * carry, 3), "poi_groups": groups}
    return parse_scenario(data)


def arbitrage_scenario(n_batteries: int, seed: int = 1) -> Scenario:
    """The peer benchmark: 1-2 MW / 2-4 MWh, RTE 85-92 %, SoC 30-70 % kept, 96 quarter-hours."""
    rng = np.random.default_rng(seed)
    prices = _prices(rng)["energy"]
    sites = []
    for k in range(n_batteries):
        power = round(float(rng.uniform(1, 2)), 3)
        energy = round(float(rng.uniform(2, 4)), 3)
        eta = round(float(np.sqrt(rng.uniform(0.85, 0.92))), 4)
        soc0 = round(float(rng.uniform(0.3, 0.7)), 3)
        sites.append(
            {
                "id": f"b{k}",
                "node": "N",
                "discharge_mw": power,
                "charge_mw": power,
                "energy_mwh": energy,
                "soc_min": 0.0,
                "soc_max": 1.0,
                "soc_initial": soc0,
                "soc_final_min": soc0,
                "eta_charge": eta,
                "eta_discharge": eta,
                "services": ["energy"],
                "degradation_usd_per_mwh": [0.0],
            }
        )
    return parse_scenario(
        {
            "schema": "bess-dispatch-scenario/1",
            "start": "2026-11-24T00:00:00Z",
            "interval_minutes": 15,
            "intervals": T,
            "markets": {"N": {"energy": prices}},
            "sites": sites,
        }
    )


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


TOTAL_CPU: list[float] = []
"""CPU seconds of this process plus its (finished) worker processes, per solve."""


def _median_solve(
    scn: Scenario, options: SolveOptions, repeats: int
) -> tuple[float, Any, float]:
    """Median wall seconds, the last result, median CPU seconds of this process."""
    times = []
    cpu = []
    total = []
    result = None
    for _ in range(repeats):
        t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu_s()
        result = solve(scn, options)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        total.append(cpu[-1] + _children_cpu_s() - k0)
    TOTAL_CPU.append(statistics.median(total))
    return statistics.median(times), result, statistics.median(cpu)


def _build_seconds(scn: Scenario) -> float:
    from dispatch.decompose import components

    t0 = time.perf_counter()
    for ids in components(scn):
        build_lp(scn.subset(ids))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1, 10, 100, 1000])
    parser.add_argument("--arbitrage", type=int, nargs="*", default=[1, 10, 50])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--monolithic-max",
        type=int,
        default=100,
        help="largest fleet to also solve monolithically",
    )
    args = parser.parse_args()

    print(
        f"fleet (all services, 96 x 15 min, workers={args.workers}, median of {args.repeats})"
    )
    print(
        f"{'sites':>6} {'build s':>8} {'solve s':>8} {'total s':>8} {'main cpu':>8} {'all cpu':>8} {'sites/s':>8} {'mono s':>8} {'ratio':>6} {'rel diff':>9}  status/path"
    )
    for n in args.sizes:
        scn = fleet_scenario(n)
        repeats = args.repeats if n <= 100 else 1
        workers = args.workers if n >= 10 else 1
        total, res, cpu = _median_solve(scn, SolveOptions(workers=workers), repeats)
        all_cpu = TOTAL_CPU[-1]
        build = _build_seconds(scn)
        mono_s = float("nan")
        diff = float("nan")
        if n <= args.monolithic_max:
            mono_s, mono, _ = _median_solve(
                scn, SolveOptions(decompose=False), 1 if n >= 100 else repeats
            )
            if mono.objective_usd and res.objective_usd is not None:
                diff = abs(res.objective_usd - mono.objective_usd) / abs(
                    mono.objective_usd
                )
        print(
            f"{n:>6} {build:>8.3f} {total - build:>8.3f} {total:>8.3f} {cpu:>8.3f} "
            f"{all_cpu:>8.3f} "
            f"{n / total:>8.1f} {mono_s:>8.3f} "
            f"{mono_s / total:>6.1f} {diff:>9.1e}  {res.status} {res.solve.path[:90]}"
        )
    print()
    print(f"arbitrage only (peer case, single process, median of {args.repeats})")
    # "main cpu" is the CPU time of this process only (worker processes not included);
    # on a shared machine it is a steadier figure than wall time for one-process solves.
    print(
        f"{'batteries':>9} {'total s':>8} {'cpu s':>8} {'mono s':>8} {'mono cpu':>8}  path"
    )
    for n in args.arbitrage:
        scn = arbitrage_scenario(n)
        total, res, cpu = _median_solve(scn, SolveOptions(workers=1), args.repeats)
        mono_s, _, mono_cpu = _median_solve(
            scn, SolveOptions(decompose=False), args.repeats
        )
        print(
            f"{n:>9} {total:>8.3f} {cpu:>8.3f} {mono_s:>8.3f} {mono_cpu:>8.3f}  "
            f"{res.status} {res.solve.path[:80]}"
        )


if __name__ == "__main__":
    main()
