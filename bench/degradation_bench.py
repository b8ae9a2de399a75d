"""Time the degradation library on realistic sizes and print the figures (no asserts)."""

from __future__ import annotations

import time

import numpy as np

from forecasting.degradation.aging import project_day, simulate
from forecasting.degradation.costs import CostInputs, degradation_costs, schedule_wear
from forecasting.degradation.cycles import cycle_ledger
from forecasting.degradation.soh import (
    capacity_measurements,
    estimate_soh,
    simulate_energy_telemetry,
)


def _timed(label: str, fn, repeat: int = 3) -> object:
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    print(f"{label:<58s} {best * 1000:9.1f} ms")
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    hours = np.arange(24.0)
    day = np.interp(hours, [0, 4, 6, 10, 24], [0, 1, 1, 0, 0])
    _timed(
        "project_day: 20 years, hourly day profile", lambda: project_day(hours, day, 20)
    )

    step_h = 5 / 60
    h5 = np.arange(0, 24, step_h)
    d5 = np.interp(h5, [0, 4, 6, 10, 24], [0.05, 0.95, 0.95, 0.05, 0.05])
    soc2y = np.clip(
        np.append(np.tile(d5, 730), d5[0]) + rng.normal(0, 4e-4, 730 * 288 + 1), 0, 1
    )
    t2y = np.arange(soc2y.size) * step_h
    _timed(
        "simulate: 2 years of 5-min noisy SoC (210k samples)",
        lambda: simulate(t2y, soc2y),
        1,
    )

    h1s = np.arange(0, 24, 1 / 3600)
    d1s = np.interp(h1s, [0, 8, 12, 14, 18, 24], [0.5, 0.5, 0.7, 0.7, 0.5, 0.5])
    soc1s = np.clip(np.tile(d1s, 7) + rng.normal(0, 5e-4, d1s.size * 7), 0, 1)
    clean = cycle_ledger(np.tile(d1s, 7), 100.0)
    filt = _timed(
        "cycle_ledger: 7 days of 1-s SoC (605k samples), filtered",
        lambda: cycle_ledger(soc1s, 100.0),
        1,
    )
    raw = _timed(
        "cycle_ledger: same, unfiltered",
        lambda: cycle_ledger(soc1s, 100.0, band=0.0),
        1,
    )
    print(
        f"  EFC true {clean.efc:.2f}, filtered {filt.efc:.2f}, "
        f"unfiltered {raw.efc:.2f} ({raw.efc / clean.efc:.1f}x)"
    )

    truth = project_day(hours, day, 2, degradation_scalar=1.5).path
    prior = project_day(hours, day, 2).path
    tel = simulate_energy_telemetry(
        730, lambda t: truth.capacity_at_days(t / 24), 40.0, rng
    )
    ms = _timed(
        "capacity_measurements: 2 years of 15-min telemetry",
        lambda: capacity_measurements(tel.time_h, tel.power_mw, tel.soc, 40.0),
    )
    est = _timed(
        "estimate_soh: Kalman + RTS over those measurements",
        lambda: estimate_soh(ms, lambda t: prior.capacity_at_days(t / 24)),
    )
    print(
        f"  SoH truth {truth.capacity_fraction[-1]:.4f}, estimate {est.latest:.4f} "
        f"+/- {est.latest_std:.4f}, prior {prior.capacity_fraction[-1]:.4f}"
    )

    inputs = CostInputs(energy_mwh=400.0, replacement_cost_usd_per_kwh=135.0)
    costs = _timed("degradation_costs: K=10", lambda: degradation_costs(inputs, 10), 5)
    print(f"  segments $/MWh: {[round(c, 2) for c in costs.segment_usd_per_mwh]}")
    soc_day = np.interp(
        np.arange(97), [0, 16, 40, 56, 96], [0.05, 0.95, 0.95, 0.05, 0.05]
    )
    _timed(
        "schedule_wear: one 96-interval day",
        lambda: schedule_wear(soc_day, 0.25, inputs),
        5,
    )


if __name__ == "__main__":
    main()
