"""Equivalent full cycles and throughput from telemetry against the truth.

Two cycles a day (10-90 % and 20-90 %, with rests) sampled every 20 s, with SoC noise of
sigma 0.10 / 0.15 / 0.20 %, integer-percent SoC (clean and with 0.2 % noise); the
relative EFC error of the fixed 0.5 % band and of the auto band
(``cycle_ledger(band="auto")``). Then a regulation day (AGC power in 4-s steps, 20-s
telemetry, SoC in 0.1 % steps): discharge and EFC from the SoC alone and from the metered
power, against the 4-s truth.

    .venv/bin/python bench/cycle_count_bench.py [--seed 0]

Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse

import numpy as np

from forecasting.degradation.cycles import DEFAULT_BAND, cycle_ledger

SAMPLE_S = 20.0


def arbitrage_day() -> np.ndarray:
    """The clean SoC of the two-cycle day at 20-s samples."""
    t_h = np.arange(int(86400 / SAMPLE_S) + 1) * SAMPLE_S / 3600.0
    knots_t = [0, 2, 5, 7, 9, 12, 14, 17, 19, 24]
    knots_s = [0.5, 0.5, 0.1, 0.1, 0.9, 0.9, 0.2, 0.2, 0.5, 0.5]
    return np.interp(t_h, knots_t, knots_s)


def regulation_day(
    rng: np.random.Generator, energy_mwh: float = 20.0, power_mw: float = 10.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """AGC-like power in 4-s steps; 20-s samples of SoC (0.1 % steps) and power."""
    step_s = 4.0
    n = int(86400 / step_s)
    r = np.zeros(n)
    for i in range(1, n):
        r[i] = 0.97 * r[i - 1] + rng.normal(0.0, 0.12)
    p = power_mw * 0.6 * np.clip(r, -1.0, 1.0)
    dt_h = step_s / 3600.0
    soc = np.clip(
        0.5 - np.concatenate([[0.0], np.cumsum(p * dt_h)]) / energy_mwh, 0.0, 1.0
    )
    true_dis = float(np.sum(np.clip(p, 0, None)) * dt_h)
    true_chg = float(np.sum(np.clip(-p, 0, None)) * dt_h)
    idx = np.arange(0, n + 1, int(SAMPLE_S / step_s))
    return (
        idx * dt_h,
        np.round(soc[idx] * 1000) / 1000,
        np.append(p, p[-1])[idx],
        true_dis,
        true_chg,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    clean = arbitrage_day()
    truth = float(np.sum(np.abs(np.diff(clean))) / 2.0)
    cases = []
    for sigma in (0.001, 0.0015, 0.002):
        noisy = np.clip(clean + rng.normal(0.0, sigma, clean.size), 0.0, 1.0)
        cases.append((f"noise sigma {sigma:.2%}", noisy))
    cases.append(("integer percent", np.round(clean * 100) / 100))
    noisy_pct = np.round(
        np.clip(clean + rng.normal(0.0, 0.002, clean.size), 0, 1) * 100
    )
    cases.append(("integer percent + 0.20 % noise", noisy_pct / 100))
    print(f"two cycles a day, 20-s samples, true EFC {truth:.3f}")
    print(f"{'signal':<32} {'0.5 % band':>11} {'auto band':>10} {'band used':>10}")
    for label, soc in cases:
        fixed = cycle_ledger(soc, 100.0, band=DEFAULT_BAND)
        auto = cycle_ledger(soc, 100.0, band="auto")
        print(
            f"{label:<32} {fixed.efc / truth - 1:>+11.1%} {auto.efc / truth - 1:>+10.1%}"
            f" {auto.band:>10.4f}"
        )
    t_h, soc, p, true_dis, true_chg = regulation_day(rng)
    energy = 20.0
    true_efc = (true_dis + true_chg) / (2 * energy)
    from_soc = cycle_ledger(soc, energy, band="auto")
    metered = cycle_ledger(soc, energy, band="auto", time_h=t_h, power_mw=p)
    print()
    print(f"regulation day: true discharge {true_dis:.2f} MWh, true EFC {true_efc:.3f}")
    for label, ledger in (("SoC only", from_soc), ("metered power", metered)):
        print(
            f"{label:<14} discharge {ledger.discharge_mwh:>7.2f} MWh "
            f"({ledger.discharge_mwh / true_dis - 1:+.1%}), EFC {ledger.efc:.3f} "
            f"({ledger.efc / true_efc - 1:+.1%})"
        )


if __name__ == "__main__":
    main()
