"""Scale benchmark: fleet solves through Dask, ingest through Mosquitto into PostgreSQL.

Prints figures and a hardware estimate for a 20,000-site fleet; asserts nothing.

    .venv/bin/python bench/scale_bench.py solve --sites 5000 --interval-minutes 15
    .venv/bin/python bench/scale_bench.py solve --sites 1000 --interval-minutes 5
    .venv/bin/python bench/scale_bench.py ingest --sites 1000 --rate 1 --duration 60 \
        --db postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/scale_bench.py all --db postgresql+psycopg://...   # all three

``solve`` runs on a Dask LocalCluster of ``--workers`` single-threaded processes on this
machine (or ``--dask tcp://host:8786``). ``ingest`` starts its own Mosquitto on a free
loopback port, a fresh PostgreSQL database on the server named by ``--db`` (dropped
afterwards), ``--ingest-workers`` ``bessfleet ingest`` processes in one shared
subscription group, and publishes ``--sites`` x ``--rate`` QoS 1 messages/s for
``--duration`` seconds, all bounded in time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from dispatch.scenario import Scenario, parse_scenario  # noqa: E402
from dispatch.solve import SolveOptions, solve  # noqa: E402
from fleet.parallel import make_executor  # noqa: E402

BESSFLEET = Path(sys.executable).with_name("bessfleet")


# --- solve ----------------------------------------------------------------------------


def _prices(
    rng: np.random.Generator, n: int, per_hour: float
) -> dict[str, list[float]]:
    hours = np.arange(n) / per_hour
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


def scale_scenario(n_sites: int, interval_minutes: int, seed: int = 0) -> Scenario:
    """A day of ``n_sites`` independent FOM sites (energy + regulation + spin), 10 nodes."""
    rng = np.random.default_rng(seed)
    intervals = 24 * 60 // interval_minutes
    per_hour = 60 / interval_minutes
    markets = {f"N{k}": _prices(rng, intervals, per_hour) for k in range(10)}
    sites: list[dict[str, Any]] = []
    for k in range(n_sites):
        power = float(rng.choice([1.0, 2.0, 5.0, 10.0, 50.0]))
        sites.append(
            {
                "id": f"s{k:05d}",
                "node": f"N{k % 10}",
                "discharge_mw": power,
                "charge_mw": power,
                "energy_mwh": power * float(rng.choice([1.0, 2.0, 4.0])),
                "soc_min": 0.05,
                "soc_max": 0.95,
                "soc_initial": round(float(rng.uniform(0.3, 0.7)), 3),
                "soc_final_min": 0.3,
                "eta_charge": 0.95,
                "eta_discharge": 0.95,
                "services": ["energy", "reg_up", "reg_down", "spin"],
                "degradation_usd_per_mwh": sorted(
                    round(float(x), 2) for x in rng.uniform(1, 20, 4)
                ),
            }
        )
    return parse_scenario(
        {
            "schema": "bess-dispatch-scenario/1",
            "start": "2026-11-24T06:00:00Z",
            "interval_minutes": interval_minutes,
            "intervals": intervals,
            "markets": markets,
            "regulation": {"deploy_up": 0.1, "deploy_down": 0.1},
            "reserve_duration_h": 1.0,
            "sites": sites,
        }
    )


def _children_cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process's descendants."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def bench_solve(
    n_sites: int,
    interval_minutes: int,
    workers: int,
    dask: str | None,
    baseline_sites: int,
) -> dict[str, Any]:
    """Solve the fleet serially on a sample, then whole through Dask; return figures."""
    t = time.perf_counter()
    scn = scale_scenario(n_sites, interval_minutes)
    build_s = time.perf_counter() - t
    sample = scn.subset([s.id for s in scn.sites[:baseline_sites]])
    t = time.perf_counter()
    base = solve(sample, SolveOptions())
    serial_s = time.perf_counter() - t
    with make_executor(dask, workers=workers, local="dask") as executor:
        cpu0 = _children_cpu_s()
        t = time.perf_counter()
        result = solve(scn, SolveOptions(executor=executor, workers=workers))
        dask_s = time.perf_counter() - t
        cpu_s = _children_cpu_s() - cpu0
    out = {
        "sites": n_sites,
        "interval_minutes": interval_minutes,
        "intervals": scn.intervals,
        "workers": workers,
        "scenario_build_s": round(build_s, 2),
        "serial_sample_sites": baseline_sites,
        "serial_sample_s": round(serial_s, 2),
        "serial_sites_per_s": round(baseline_sites / serial_s, 1),
        "serial_status": str(base.status),
        "dask_s": round(dask_s, 2),
        "dask_sites_per_s": round(n_sites / dask_s, 1),
        "local_worker_cpu_s": round(cpu_s, 1) if dask is None else None,
        "sites_per_worker_cpu_s": round(n_sites / cpu_s, 1)
        if dask is None and cpu_s
        else None,
        "load_average_1min": round(os.getloadavg()[0], 1),
        "status": str(result.status),
        "objective_usd": None
        if result.objective_usd is None
        else round(result.objective_usd, 2),
    }
    print(json.dumps({"solve": out}), flush=True)
    return out


# --- ingest ---------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_ingest(
    admin_url: str,
    n_sites: int,
    rate_hz: float,
    duration_s: float,
    ingest_workers: int,
    burst_s: float = 10.0,
) -> dict[str, Any]:
    """Publish n_sites x rate msg/s through Mosquitto into a fresh PostgreSQL database."""
    import sqlalchemy as sa

    from fleet.store import migrate
    from fleet.store.engine import make_engine
    from fleet.store.sites import save_fleet
    from tests.conftest import start_mosquitto, stop_mosquitto
    from tests.scale.telemetry_load import publish_paced, synthetic_fleet

    help_text = subprocess.run(
        [str(BESSFLEET), "ingest", "--help"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    shared = "--share" in help_text
    if not shared and ingest_workers > 1:
        print("ingest: no --share option yet; running ONE ingest worker", flush=True)
        ingest_workers = 1
    name = f"bessfleet_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = (
        sa.engine.make_url(admin_url)
        .set(database=name)
        .render_as_string(hide_password=False)
    )
    tmp = Path(tempfile.mkdtemp(prefix="bessfleet-bench-"))
    broker = start_mosquitto(tmp / "broker")
    procs: list[subprocess.Popen[bytes]] = []
    engine = make_engine(url)
    try:
        migrate.upgrade(url)
        fleet = synthetic_fleet(n_sites)
        save_fleet(engine, fleet)
        for k in range(ingest_workers):
            args = [str(BESSFLEET), "ingest", "--db", url, "--mqtt-url", broker.url]
            args += ["--client-id", f"bench-ingest-{k}"]
            if shared:
                args += ["--share", "bessfleet-ingest"]
            log = (tmp / f"ingest-{k}.log").open("wb")
            procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
            "subscribed" in (tmp / f"ingest-{k}.log").read_text()
            for k in range(ingest_workers)
        ):
            time.sleep(0.2)

        def count() -> int:
            with engine.connect() as conn:
                return int(
                    conn.execute(
                        sa.text("SELECT count(*) FROM tlm_measurements")
                    ).scalar_one()
                )

        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                samples.append((time.monotonic(), count()))
                time.sleep(1.0)

        watcher = threading.Thread(target=watch, daemon=True)
        t0 = time.monotonic()
        watcher.start()
        report = publish_paced(
            broker.host,
            broker.port,
            [s.id for s in fleet.sites],
            group="ercot",
            rate_per_site_hz=rate_hz,
            duration_s=duration_s,
            clients=4,
        )
        drain_deadline = time.monotonic() + 60
        while count() < report.published and time.monotonic() < drain_deadline:
            time.sleep(0.5)
        t_end = time.monotonic()
        stop.set()
        watcher.join(timeout=5)
        stored = count()
        burst_base_ms = time.time_ns() // 1_000_000
        # saturation: publish as fast as the publisher can for burst_s, time the drain
        t_burst = time.monotonic()
        burst = publish_paced(
            broker.host,
            broker.port,
            [s.id for s in fleet.sites],
            group="ercot",
            rate_per_site_hz=1000.0,
            duration_s=burst_s,
            clients=4,
        )
        burst_deadline = time.monotonic() + 120
        while count() < stored + burst.published and time.monotonic() < burst_deadline:
            time.sleep(0.2)
        burst_stored = count() - stored
        burst_s_total = time.monotonic() - t_burst
        with engine.connect() as conn:
            lags = np.array(
                conn.execute(
                    sa.text(
                        "SELECT received_at_ms - ts_ms FROM tlm_measurements "
                        "WHERE ts_ms < :b"
                    ),
                    {"b": burst_base_ms},
                )
                .scalars()
                .all(),
                dtype=float,
            )
            size_b = int(
                conn.execute(
                    sa.text(
                        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                        "JOIN pg_inherits i ON i.inhrelid = c.oid "
                        "WHERE i.inhparent = 'tlm_measurements'::regclass"
                    )
                ).scalar()
                or conn.execute(
                    sa.text("SELECT pg_total_relation_size('tlm_measurements')")
                ).scalar_one()
            )
            quarantined = int(
                conn.execute(
                    sa.text("SELECT count(*) FROM tlm_quarantine")
                ).scalar_one()
            )
        window = [x for x in samples if t0 + 5 <= x[0] <= t0 + duration_s]
        rates = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(window)]
        rates = rates or [0.0]
        out = {
            "sites": n_sites,
            "rate_hz_per_site": rate_hz,
            "target_msgs_per_s": n_sites * rate_hz,
            "duration_s": round(report.seconds, 1),
            "ingest_workers": ingest_workers,
            "shared_subscription": shared,
            "published": report.published,
            "acked_by_broker": report.acked,
            "publish_msgs_per_s": round(report.published / report.seconds, 1),
            "stored": stored,
            "lost": report.published - stored,
            "quarantined": quarantined,
            "stored_msgs_per_s_overall": round(stored / (t_end - t0), 1),
            "stored_msgs_per_s_min_second": round(min(rates), 1),
            "stored_msgs_per_s_median_second": round(float(np.median(rates)), 1),
            "lag_ms_p50": round(float(np.percentile(lags, 50)), 1)
            if lags.size
            else None,
            "lag_ms_p95": round(float(np.percentile(lags, 95)), 1)
            if lags.size
            else None,
            "lag_ms_p99": round(float(np.percentile(lags, 99)), 1)
            if lags.size
            else None,
            "lag_ms_max": round(float(lags.max()), 1) if lags.size else None,
            "bytes_per_row": round(size_b / max(1, stored + burst_stored), 1),
            "burst_published": burst.published,
            "burst_publish_msgs_per_s": round(burst.published / burst.seconds, 1),
            "burst_stored": burst_stored,
            "burst_lost": burst.published - burst_stored,
            "burst_stored_msgs_per_s": round(burst_stored / burst_s_total, 1),
        }
        print(json.dumps({"ingest": out}), flush=True)
        return out
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        engine.dispose()
        stop_mosquitto(broker)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


# --- the 20,000-site estimate ---------------------------------------------------------


def estimate(
    solve15: dict[str, Any] | None,
    solve5: dict[str, Any] | None,
    ingest: dict[str, Any] | None,
    *,
    sites: int = 20_000,
    msgs_per_site_s: float = 1.0,
    solve_budget_s: float = 120.0,
    raw_days: int = 35,
) -> list[str]:
    """Turn the measured figures into a sizing for ``sites`` (printed, and in README)."""
    lines = [f"Estimate for {sites:,} sites (from the figures above):"]
    for label, fig in (("15-min", solve15), ("5-min", solve5)):
        if not fig:
            continue
        per_core = fig.get("sites_per_worker_cpu_s") or fig["serial_sites_per_s"]
        core_s = sites / per_core
        cores = math.ceil(core_s / solve_budget_s / 0.7)  # 70 % parallel efficiency
        lines.append(
            f"- solve, {label} intervals: {per_core} sites/s per core -> {core_s:,.0f} core-s; "
            f"to finish within {solve_budget_s:.0f} s: {cores} worker cores "
            f"({math.ceil(cores / 8)} x 8-core Dask nodes, 2 GB RAM per worker)"
        )
    if ingest:
        rate = sites * msgs_per_site_s
        per_worker = ingest["burst_stored_msgs_per_s"] / max(
            1, ingest["ingest_workers"]
        )
        note = "(saturated: drain rate of the burst)"
        workers = math.ceil(rate / (0.5 * per_worker))  # 50 % headroom for catch-up
        row_b = ingest["bytes_per_row"]
        day_gb = rate * 86_400 * row_b / 1e9
        lines.append(
            f"- ingest: {rate:,.0f} msg/s ({msgs_per_site_s:g} per site per s); "
            f"measured {per_worker:,.0f} msg/s per worker {note} -> {workers} ingest workers "
            f"(1 core each) at 50 % headroom; shard the broker by topic group above "
            f"~40k msg/s per Mosquitto (single-threaded)"
        )
        lines.append(
            f"- PostgreSQL: {rate:,.0f} rows/s, {row_b:.0f} B/row with indexes -> "
            f"{day_gb:,.0f} GB/day raw; {raw_days} d raw = {day_gb * raw_days / 1000:,.1f} TB "
            f"(+1-min rollups ~{day_gb / 60 * 400 / 1000:,.1f} TB/400 d); "
            f"16+ cores, 64 GB RAM, NVMe with >= {rate * 3:,.0f} write IOPS headroom"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["solve", "ingest", "all"])
    parser.add_argument("--sites", type=int, default=None)
    parser.add_argument("--interval-minutes", type=int, default=15)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--dask", default=None, help="Dask scheduler address")
    parser.add_argument("--baseline-sites", type=int, default=200)
    parser.add_argument("--db", default=os.environ.get("BESSFLEET_TEST_DATABASE_URL"))
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--ingest-workers", type=int, default=2)
    parser.add_argument(
        "--burst", type=float, default=10.0, help="saturation burst [s]"
    )
    args = parser.parse_args()
    solve15 = solve5 = ingest = None
    if args.what == "solve":
        fig = bench_solve(
            args.sites or 5000,
            args.interval_minutes,
            args.workers,
            args.dask,
            args.baseline_sites,
        )
        solve15, solve5 = (fig, None) if args.interval_minutes == 15 else (None, fig)
    if args.what == "all":
        solve15 = bench_solve(5000, 15, args.workers, args.dask, args.baseline_sites)
        solve5 = bench_solve(1000, 5, args.workers, args.dask, args.baseline_sites)
    if args.what in ("ingest", "all"):
        if not args.db:
            parser.error("--db (a PostgreSQL server URL) is required for ingest")
        ingest = bench_ingest(
            args.db,
            args.sites or 1000,
            args.rate,
            args.duration,
            args.ingest_workers,
            args.burst,
        )
    for line in estimate(solve15, solve5, ingest):
        print(line)


if __name__ == "__main__":
    main()
