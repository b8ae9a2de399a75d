"""FlexMeasures' own battery case, solved by bessfleet and by FlexMeasures side by side.

The case is FlexMeasures' test battery (``flexmeasures/conftest.py`` "Test battery": 2 MW,
5 MWh, SoC 0-5 MWh starting at 2.5 MWh; round trip 0.9 as in its ``test_solver`` battery
days), repeated N times with the start SoC and round trip varied per battery (seeded),
one day of 96 quarter-hours under a duck-curve price with negative midday prices, the
end SoC at least the start SoC. Negative prices make the LP relaxation charge and
discharge at once (burning energy in the conversion losses), so exactness needs the
charge/discharge exclusivity: FlexMeasures adds one sign binary per device and step;
bessfleet solves the LP and repairs only the offending intervals.

FlexMeasures runs in its own interpreter (a separate venv: it pins other versions of
pandas, Pyomo and highspy). Give it with ``--fm-python``; without it, FlexMeasures is
run by this interpreter when it can import it, else the bench prints the ratio against
the figures recorded in issue 19. Objectives are compared to 4 decimals.

    .venv/bin/python bench/flexmeasures_bench.py --fm-python /tmp/fmvenv/bin/python
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

T = 96
INTERVAL_H = 0.25
RECORDED_FM_MS = {1: 155.0, 10: 746.0, 50: 3745.0}
"""FlexMeasures 1.0.1 ``device_scheduler`` (direct HiGHS) on this machine, issue 19 [ms]."""


def duck_prices() -> list[float]:
    """A duck-curve day [$/MWh]: evening ramp, negative solar midday, fixed."""
    hours = np.arange(T) * INTERVAL_H
    price = (
        45.0
        + 55.0 * np.exp(-((hours - 19.5) ** 2) / 4.0)
        + 20.0 * np.exp(-((hours - 7.5) ** 2) / 2.0)
        - 70.0 * np.exp(-((hours - 13.0) ** 2) / 6.0)
        + 3.0 * np.sin(hours * 2.1)
    )
    return [round(float(p), 2) for p in price]


def batteries(n: int, seed: int = 5) -> list[dict[str, float]]:
    """FlexMeasures' test battery, N times, start SoC and round trip varied."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        out.append(
            {
                "power_mw": 2.0,
                "energy_mwh": 5.0,
                "soc_start_mwh": round(float(rng.uniform(1.5, 3.5)), 3),
                "round_trip": round(float(rng.uniform(0.85, 0.95)), 4),
            }
        )
    return out


def _fm_side(case_path: Path, repeats: int) -> None:
    """Run in FlexMeasures' interpreter: time device_scheduler, print JSON."""
    from datetime import timedelta

    import pandas as pd
    from flask import Flask
    from flexmeasures.data.models.planning import FlowCommitment
    from flexmeasures.data.models.planning.linear_optimization import (
        device_scheduler,
    )
    from flexmeasures.data.models.planning.utils import initialize_df

    case = json.loads(case_path.read_text())
    columns = [
        "equals",
        "max",
        "min",
        "efficiency",
        "derivative equals",
        "derivative max",
        "derivative min",
        "derivative down efficiency",
        "derivative up efficiency",
        "stock delta",
    ]
    start = pd.Timestamp("2026-06-01T00:00:00")
    resolution = timedelta(minutes=15)
    end = start + T * resolution
    steps_per_h = 4.0
    app = Flask("bench")
    app.config["FLEXMEASURES_LP_SOLVER"] = "highspy"
    app.config["LOGGING_LEVEL"] = "INFO"
    out: dict[str, Any] = {}
    with app.app_context():
        for n_key, bats in case["sizes"].items():
            prices = pd.Series(
                case["prices"],
                index=initialize_df(columns, start, end, resolution).index,
            )
            times, cpu = [], []
            cost = float("nan")
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                devices = []
                for b in bats:
                    dc = initialize_df(columns, start, end, resolution)
                    s0 = b["soc_start_mwh"]
                    dc["max"] = (b["energy_mwh"] - s0) * steps_per_h
                    dc["min"] = (0.0 - s0) * steps_per_h
                    dc.iloc[-1, dc.columns.get_loc("min")] = 0.0
                    dc["derivative max"] = b["power_mw"]
                    dc["derivative min"] = -b["power_mw"]
                    eta = b["round_trip"] ** 0.5
                    dc["derivative down efficiency"] = eta
                    dc["derivative up efficiency"] = eta
                    dc["efficiency"] = 1.0
                    devices.append(dc)
                ems = initialize_df(columns, start, end, resolution)
                commitment = FlowCommitment(
                    name="energy",
                    quantity=0,
                    upwards_deviation_price=prices,
                    downwards_deviation_price=prices,
                    index=prices.index,
                )
                _power, cost, results, _model = device_scheduler(
                    device_constraints=devices,
                    ems_constraints=ems,
                    commitments=[commitment],
                    initial_stock=[b["soc_start_mwh"] * steps_per_h for b in bats],
                )
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                status = str(results.solver.termination_condition)
            out[n_key] = {
                "ms": 1000 * statistics.median(times),
                "cpu_ms": 1000 * statistics.median(cpu),
                "cost": float(cost),
                "status": status,
            }
    sys.stdout.write(json.dumps(out) + "\n")


def scenario(bats: list[dict[str, float]], prices: list[float]) -> Any:
    """The same case as a bessfleet scenario (energy only, no degradation cost)."""
    from dispatch.scenario import parse_scenario

    sites = []
    for k, b in enumerate(bats):
        eta = b["round_trip"] ** 0.5
        soc0 = b["soc_start_mwh"] / b["energy_mwh"]
        sites.append(
            {
                "id": f"b{k}",
                "node": "N",
                "discharge_mw": b["power_mw"],
                "charge_mw": b["power_mw"],
                "energy_mwh": b["energy_mwh"],
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
            "start": "2026-06-01T00:00:00Z",
            "interval_minutes": 15,
            "intervals": T,
            "markets": {"N": {"energy": prices}},
            "sites": sites,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1, 10, 50])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--fm-python", help="python of a venv with flexmeasures installed"
    )
    parser.add_argument("--fm-side", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fm_side:
        _fm_side(Path(args.fm_side), args.repeats)
        return

    from dispatch.solve import SolveOptions, solve

    prices = duck_prices()
    case = {
        "prices": prices,
        "sizes": {str(n): batteries(n) for n in args.sizes},
    }
    fm: dict[str, Any] = {}
    if not args.fm_python and importlib.util.find_spec("flexmeasures") is not None:
        args.fm_python = sys.executable
    if args.fm_python:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "case.json"
            path.write_text(json.dumps(case))
            run = subprocess.run(
                [
                    args.fm_python,
                    __file__,
                    "--fm-side",
                    str(path),
                    "--repeats",
                    str(args.repeats),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        if run.returncode != 0:
            print(f"FlexMeasures side failed:\n{run.stderr[-2000:]}")
        else:
            fm = json.loads(run.stdout.strip().splitlines()[-1])
    print(
        f"FlexMeasures' battery case, duck curve with negative midday prices, "
        f"96 x 15 min, median of {args.repeats}, workers={args.workers}"
    )
    print(
        f"{'batteries':>9} {'bessfleet ms':>12} {'cpu ms':>8} {'FM ms':>8} "
        f"{'FM cpu':>8} {'ratio':>6} {'cpu ratio':>9} {'objective':>12} "
        f"{'FM objective':>12}  path"
    )
    for n in args.sizes:
        scn = scenario(case["sizes"][str(n)], prices)
        times, cpu = [], []
        res = None
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            res = solve(scn, SolveOptions(workers=args.workers))
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        assert res is not None
        ms = 1000 * statistics.median(times)
        entry = fm.get(str(n))
        cpu_ms = 1000 * statistics.median(cpu)
        if entry is not None:
            fm_ms, fm_cpu = entry["ms"], entry["cpu_ms"]
            fm_obj = -entry["cost"] * INTERVAL_H
            label = ""
        else:
            fm_ms, fm_cpu = RECORDED_FM_MS.get(n, float("nan")), float("nan")
            fm_obj = float("nan")
            label = " (FlexMeasures figure recorded in issue 19)"
        print(
            f"{n:>9} {ms:>12.1f} {cpu_ms:>8.1f} {fm_ms:>8.1f} {fm_cpu:>8.1f} "
            f"{fm_ms / ms:>6.1f} {fm_cpu / cpu_ms:>9.1f} {res.objective_usd:>12.4f} "
            f"{fm_obj:>12.4f}  {res.status} {res.solve.path[:70]}{label}"
        )


if __name__ == "__main__":
    main()
