"""Benchmark the price forecasters on the real data: held-out scores and fit time.

Run: ``.venv/bin/python bench/forecast_bench.py [--workers 2] [--quick] [--hubs] [--fit-time N]``

Prints, per (market, node, product), the model and the four baselines on the
test period (2024 onward; 2024 was used to choose the DA energy P50 settings, see
``forecasting.price.DA_ENERGY_DEFAULTS``; ``--hub-periods oos`` is after the tuning
cut), as a markdown table, plus the
fit time of one node-product on two years of hourly data, and writes
``docs/img/forecast_backtest.png``.
"""

from __future__ import annotations

import argparse
import logging
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from forecasting.backtest import plot_backtest, rolling_backtest
from forecasting.data import clean_series, read_price_csv, select_series, to_hourly
from forecasting.price import PriceForecaster

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DA = DATA / "ercot_da_spp" / "ercot_da_spp_hubs_lz_2021_2025.csv.gz"
RT_DA = (
    DATA
    / "ercot_rt_da_hourly_15sp_2024_2026"
    / "ercot_rt_da_hourly_15sp_2024_2026.csv.gz"
)
AS_OLD = DATA / "ercot_as_mcpc" / "ercot_dam_as_mcpc_2022_2025.csv.gz"
AS_NEW = (
    DATA
    / "ercot_rt_da_hourly_15sp_2024_2026"
    / "ercot_dam_as_mcpc_hourly_2024_2026.csv.gz"
)
CAISO_DA = DATA / "caiso_dervet_example_2020" / "caiso_da_energy_2020_hourly.csv"
CAISO_AS = DATA / "caiso_dervet_example_2020" / "caiso_reg_up_down_2020_hourly.csv"
REFIT_DAYS = 7  # weekly, as the CLI default
PLOT = ROOT / "docs" / "img" / "forecast_backtest.png"


@dataclass(frozen=True)
class Job:
    market: str
    node: str
    product: str
    files: tuple[Path, ...]
    start: str
    end: str
    note: str = "held-out"


ALL_ERCOT_NODES = (
    "HB_BUSAVG",
    "HB_HOUSTON",
    "HB_HUBAVG",
    "HB_NORTH",
    "HB_PAN",
    "HB_SOUTH",
    "HB_WEST",
    "LZ_AEN",
    "LZ_CPS",
    "LZ_HOUSTON",
    "LZ_LCRA",
    "LZ_NORTH",
    "LZ_RAYBN",
    "LZ_SOUTH",
    "LZ_WEST",
)


HUBS = (
    "HB_BUSAVG",
    "HB_HOUSTON",
    "HB_HUBAVG",
    "HB_NORTH",
    "HB_PAN",
    "HB_SOUTH",
    "HB_WEST",
)


def hub_jobs(periods: str = "both") -> list[Job]:
    """DA energy at every ERCOT hub: 2024 and/or out of sample (2025-06..2026-01)."""
    out = [
        Job(
            "ERCOT",
            n,
            "da_energy",
            (DA,),
            "2024-01-01",
            "2024-12-31",
            "tuning: the DA P50 settings were chosen on 2024",
        )
        for n in HUBS
        if periods in ("2024", "both")
    ]
    out += [
        Job(
            "ERCOT",
            n,
            "da_energy",
            (DA, RT_DA),
            "2025-06-01",
            "2026-01-31",
            "out of sample: after the 2025-05-31 tuning cut",
        )
        for n in HUBS
        if periods in ("oos", "both")
    ]
    return out


def jobs(quick: bool, all_nodes: bool = False) -> list[Job]:
    held = ("2024-01-01", "2024-12-31")
    da_nodes = (
        ALL_ERCOT_NODES
        if all_nodes
        else ("HB_HOUSTON", "HB_NORTH", "HB_SOUTH", "HB_WEST", "HB_PAN", "HB_HUBAVG")
    )
    out = [Job("ERCOT", n, "da_energy", (DA,), *held) for n in da_nodes]
    out += [
        Job(
            "ERCOT",
            n,
            "rt_energy",
            (RT_DA,),
            "2024-03-01",
            "2025-02-28",
            "held-out, trained 2024+ only",
        )
        for n in (ALL_ERCOT_NODES if all_nodes else ("HB_HOUSTON",))
    ]
    out += [
        Job("ERCOT", "SYSTEM", p, (AS_OLD, AS_NEW), *held)
        for p in ("reg_up", "reg_down", "rrs_spin", "nonspin", "ecrs")
    ]
    out += [
        Job(
            "CAISO",
            "UNSPECIFIED_DERVET_CAISO_CASE",
            "da_energy",
            (CAISO_DA,),
            "2020-07-01",
            "2020-12-31",
            "2020 H2 (only year available)",
        ),
        Job(
            "CAISO",
            "UNSPECIFIED_DERVET_CAISO_CASE",
            "reg_up",
            (CAISO_AS,),
            "2020-07-01",
            "2020-12-31",
            "2020 H2 (only year available)",
        ),
        Job(
            "CAISO",
            "UNSPECIFIED_DERVET_CAISO_CASE",
            "reg_down",
            (CAISO_AS,),
            "2020-07-01",
            "2020-12-31",
            "2020 H2 (only year available)",
        ),
    ]
    if quick:
        out = [j for j in out if j.node == "HB_HOUSTON" and j.product == "da_energy"]
    # fast, diverse series first: partial runs on a busy machine still cover each kind
    order = {"CAISO": 0, "rt_energy": 1, "reg_up": 2, "rrs_spin": 3}
    return sorted(out, key=lambda j: order.get(j.market, order.get(j.product, 9)))


def load(job: Job) -> tuple[pd.Series, str]:
    frame = pd.concat(
        [read_price_csv(f, node=job.node, product=job.product) for f in job.files]
    )
    raw = select_series(frame, market=job.market, node=job.node, product=job.product)
    y, report = clean_series(to_hourly(raw))
    return y, report.summary()


def cross_series(job: Job) -> dict[str, pd.Series]:
    """The other ERCOT hubs' series of the job's product (cross-hub spread features)."""
    if job.market != "ERCOT" or job.product != "da_energy" or job.node not in HUBS:
        return {}
    out = {}
    for node in HUBS:
        if node != job.node:
            other, _ = load(Job(job.market, node, job.product, job.files, "", ""))
            out[node] = other
    return out


def run(
    job: Job, refit_days: int = REFIT_DAYS
) -> tuple[Job, pd.DataFrame, pd.DataFrame | None, str, float, int]:
    y, summary = load(job)
    exog = cross_series(job)
    started = time.perf_counter()
    result = rolling_backtest(
        y,
        lambda: PriceForecaster(
            market=job.market,
            node=job.node,
            product=job.product,
            cross_nodes=tuple(exog),
        ),
        start=job.start,
        end=job.end,
        refit_days=refit_days,
        clock=time.perf_counter,
        exog=exog,
    )
    wall = time.perf_counter() - started
    keep = (
        result.forecasts
        if (job.node, job.product) == ("HB_HOUSTON", "da_energy")
        else None
    )
    return job, result.scores, keep, summary, wall, result.n_refits


def fit_time(pooled: bool = False) -> tuple[float, int]:
    """Seconds to fit HB_HOUSTON DA on two years; ``pooled``: with the 6 other hubs."""
    job = Job("ERCOT", "HB_HOUSTON", "da_energy", (DA,), "", "")
    y, _ = load(job)
    exog = cross_series(job) if pooled else {}
    model = PriceForecaster(
        market="ERCOT",
        node="HB_HOUSTON",
        product="da_energy",
        train_days=730,
        cross_nodes=tuple(exog),
    )
    started = time.perf_counter()
    model.fit(y, issue_time=pd.Timestamp("2024-01-01T15:00Z"), exog=exog)
    return time.perf_counter() - started, model.n_train_


def write_plot(frame: pd.DataFrame) -> None:
    from forecasting.backtest import BacktestResult, score_table

    PLOT.parent.mkdir(parents=True, exist_ok=True)
    result = BacktestResult(frame, score_table(frame), 0, 0.0)
    plot_backtest(
        result,
        PLOT,
        title="ERCOT HB_HOUSTON da_energy 2024 (held-out)",
        tz="America/Chicago",
    )
    print(f"plot: {PLOT}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--skip", action="append", default=[], help="NODE:PRODUCT already measured"
    )
    parser.add_argument(
        "--all-nodes",
        action="store_true",
        help="every ERCOT hub and load zone (DA and RT), not a representative subset",
    )
    parser.add_argument("--refit-days", type=int, default=REFIT_DAYS)
    parser.add_argument(
        "--hub-periods", choices=("2024", "oos", "both"), default="both"
    )
    parser.add_argument(
        "--hubs",
        action="store_true",
        help="only DA energy at the 7 ERCOT hubs, 2024 and 2025-06..2026-01",
    )
    parser.add_argument(
        "--fit-time",
        type=int,
        default=0,
        metavar="N",
        help="only time N fits of HB_HOUSTON DA (alone and with the 6 other hubs)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.fit_time:
        for pooled in (False, True):
            runs = sorted(fit_time(pooled)[0] for _ in range(args.fit_time))
            print(
                f"fit time, ERCOT HB_HOUSTON da_energy, 2 years"
                f"{', pooled P50 with the 6 other hubs' if pooled else ''}: median "
                f"{runs[len(runs) // 2]:.1f} s, range {runs[0]:.1f}-{runs[-1]:.1f} s"
                f" ({args.fit_time} runs)"
            )
        return
    seconds, rows = (0.0, 0) if args.skip else fit_time()
    print(
        f"fit time, ERCOT HB_HOUSTON da_energy, {rows} hourly rows (2 years): {seconds:.1f} s"
    )
    lines = [
        "| market | node | product | period | method | MAE | RMSE | pinball (mean P10/50/90) | P10-P90 coverage | spread corr | top/bottom-4 hit (>=3/4) | exact top/bottom-4 | MAE vs best baseline |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    plot_frame = None
    with ProcessPoolExecutor(args.workers) as pool:
        todo = [
            j
            for j in (
                hub_jobs(args.hub_periods)
                if args.hubs
                else jobs(args.quick, args.all_nodes)
            )
            if f"{j.node}:{j.product}" not in args.skip
        ]
        futures = [pool.submit(run, j, args.refit_days) for j in todo]
        for future in as_completed(futures):
            job, scores, keep, summary, wall, refits = future.result()
            print(
                f"{job.market} {job.node} {job.product} {job.start}..{job.end}: {refits} refits, {wall:.0f} s; data: {summary}",
                flush=True,
            )
            if keep is not None and not args.hubs:
                plot_frame = keep
                write_plot(plot_frame)
            for method, row in scores.iterrows():

                def pct(v: float) -> str:
                    return "-" if pd.isna(v) else f"{v:.1%}"

                def num(v: float, fmt: str = ".2f") -> str:
                    return "-" if pd.isna(v) else format(v, fmt)

                row_line = (
                    f"| {job.market} | {job.node} | {job.product} | {job.start}..{job.end} ({job.note}) | {method} | "
                    f"{num(row['mae'])} | {num(row['rmse'])} | {num(row['pinball_mean'])} | {pct(row['coverage_p10_p90'])} | "
                    f"{num(row['spread_corr'], '.3f')} | {pct(row['top4_hit'])} | {pct(row['top4_exact'])} | {pct(row['mae_vs_best_baseline'])} |"
                )
                lines.append(row_line)
                print(row_line, flush=True)
    print()
    print("\n".join(lines))
    if plot_frame is None:
        print("no HB_HOUSTON da_energy run: no plot")


if __name__ == "__main__":
    main()
