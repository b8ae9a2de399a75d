"""Benchmark the CLI's start-up: ``bessfleet --help`` and a few group help screens.

Each run is a fresh process (interpreter start, imports, help rendering), timed by
wall clock from this process; the child's CPU time (user + system) is printed too, as
it depends less on other jobs sharing the machine. Prints the median and p90 per
command line; asserts nothing (timings belong in the README, not in tests).

    .venv/bin/python bench/cli_bench.py                  # 15 runs of each
    .venv/bin/python bench/cli_bench.py --runs 30 --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--help",),
    ("fleet", "--help"),
    ("db", "--help"),
    ("forecast", "--help"),
    ("degradation", "--help"),
    ("dispatch", "--help"),
    ("telemetry", "--help"),
    ("backtest", "--help"),
    ("version",),
)
"""Command lines timed: the root help, group helps, one command's help, a command."""


def _executable() -> list[str]:
    """The ``bessfleet`` console script of this interpreter, else ``python -m fleet``."""
    script = Path(sys.executable).with_name("bessfleet")
    if script.is_file():
        return [str(script)]
    found = shutil.which("bessfleet")
    return [found] if found else [sys.executable, "-m", "fleet"]


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time_s(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``argv`` once; return its wall time and its CPU time [s]."""
    cpu = _children_cpu_s()
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - started, _children_cpu_s() - cpu


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def main() -> None:
    """Time each command line ``--runs`` times in fresh processes and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per command line")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    # run this checkout's code even when the venv's editable install points elsewhere
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "COLUMNS": "100"}
    exe = _executable()
    _time_s([*exe, "--help"], env)  # warm the file cache and .pyc files
    rows = []
    for command in COMMANDS:
        runs = [_time_s([*exe, *command], env) for _ in range(args.runs)]
        times_s = [wall for wall, _ in runs]
        rows.append(
            {
                "command": " ".join(["bessfleet", *command]),
                "runs": args.runs,
                "median_s": round(statistics.median(times_s), 3),
                "p90_s": round(_p90(times_s), 3),
                "min_s": round(min(times_s), 3),
                "cpu_median_s": round(statistics.median(cpu for _, cpu in runs), 3),
            }
        )
    baseline = [
        _time_s([sys.executable, "-c", "pass"], env)[0] for _ in range(args.runs)
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    if args.json:
        print(
            json.dumps(
                {
                    "executable": exe,
                    "cpus": os.cpu_count(),
                    "load_avg_1min": round(load, 2),
                    "python_startup_median_s": round(statistics.median(baseline), 3),
                    "commands": rows,
                },
                indent=2,
            )
        )
        return
    print(
        f"{' '.join(exe)}: {args.runs} fresh processes per line; {os.cpu_count()} "
        f"CPUs, 1-min load average {load:.1f}; bare `python -c pass` median "
        f"{statistics.median(baseline):.3f} s"
    )
    width = max(len(row["command"]) for row in rows)
    print(f"{'command':<{width}}  median s  p90 s  min s  CPU median s")
    for row in rows:
        print(
            f"{row['command']:<{width}}  {row['median_s']:8.3f}  {row['p90_s']:5.3f}  "
            f"{row['min_s']:5.3f}  {row['cpu_median_s']:12.3f}"
        )


if __name__ == "__main__":
    main()
