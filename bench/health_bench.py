"""Detection delay and false-alarm rate of the condition detectors on synthetic sites.

Run: ``.venv/bin/python bench/health_bench.py [--sites N] [--days D] [--seeds S]``.

Healthy fleet: ``--sites`` sites of 4 strings, ``--days`` days each, no fault; every
finding is a false alarm. Faulty sites: one fault per site (cell drift, fan failure,
accelerated fade, RTE slide, telemetry dropout) on one string at day 60, repeated over
``--seeds`` seeds; the delay is the first finding's day minus the onset day.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from forecasting.health.anomaly import detect_anomalies
from forecasting.health.detectors import expected_soh, first_detection, run_detectors
from forecasting.health.features import daily_features
from forecasting.health.findings import FindingKind
from forecasting.health.synthetic import InjectedFault, SyntheticSite, simulate_site

FAULTS = [
    (
        "cell drift 1 %SoC/day",
        InjectedFault("cell_drift", "bank1", 60, 0.01),
        FindingKind.IMBALANCE,
    ),
    (
        "fan failure x2.5 R_th",
        InjectedFault("fan_failure", "bank2", 60, 2.5),
        FindingKind.THERMAL,
    ),
    (
        "fade x4 model rate",
        InjectedFault("fast_fade", "bank3", 60, 4.0),
        FindingKind.FAST_FADE,
    ),
    (
        "RTE -0.1 pt/day",
        InjectedFault("rte_slide", "bank4", 60, 0.001),
        FindingKind.RTE_SLIDE,
    ),
    (
        "8 % samples bad+lost",
        InjectedFault("dropout", "bank1", 60, 0.08),
        FindingKind.TELEMETRY_QUALITY,
    ),
]


def _features(
    site: SyntheticSite, days: int, faults: tuple[InjectedFault, ...], seed: int
) -> pd.DataFrame:
    samples = simulate_site(site, days, rng=np.random.default_rng(seed), faults=faults)
    return expected_soh(daily_features(samples), site.string_energy_mwh)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=10)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--step-minutes", type=int, default=15)
    args = parser.parse_args()

    t0 = time.perf_counter()
    false_alarms = 0
    anomaly_false = 0
    device_days = 0
    for i in range(args.sites):
        site = SyntheticSite(f"healthy-{i:02d}", step_minutes=args.step_minutes)
        features = _features(site, args.days, (), seed=1000 + i)
        device_days += len(features)
        findings = run_detectors(features)
        false_alarms += len(findings)
        anomaly_false += len(detect_anomalies(features))
        for f in findings:
            print(
                f"  false alarm: {f.site_id} {f.dev_id} {f.kind.value} {f.day} {f.value:.4g}"
            )
    healthy_s = time.perf_counter() - t0
    print(
        f"healthy fleet: {args.sites} sites x 4 strings x {args.days} days = "
        f"{device_days} device-days, step {args.step_minutes} min ({healthy_s:.1f} s)"
    )
    print(
        f"  threshold detectors: {false_alarms} false findings "
        f"({false_alarms / max(device_days, 1):.5f} per device-day)"
    )
    print(
        f"  IsolationForest (info): {anomaly_false} findings "
        f"({anomaly_false / max(device_days, 1):.5f} per device-day)"
    )
    print()
    print(
        "| fault | detector | detected | delay days (median / max) | other-string findings | forest delay (median) |"
    )
    print("|---|---|---|---|---|---|")
    days = 60 + 150
    for label, fault, kind in FAULTS:
        delays: list[int] = []
        forest: list[int] = []
        others = 0
        for seed in range(args.seeds):
            site = SyntheticSite(f"faulty-{seed}", step_minutes=args.step_minutes)
            features = _features(site, days, (fault,), seed=seed)
            findings = run_detectors(features)
            start = features["day"].min()
            first = first_detection(findings, kind, fault.dev_id)
            if first is not None:
                delays.append((first.day - start).days - fault.onset_day)
            others += sum(1 for f in findings if f.dev_id != fault.dev_id)
            anomaly = first_detection(
                detect_anomalies(features), FindingKind.ANOMALY, fault.dev_id
            )
            if anomaly is not None:
                forest.append((anomaly.day - start).days - fault.onset_day)
        detected = f"{len(delays)}/{args.seeds}"
        delay = f"{statistics.median(delays):.0f} / {max(delays)}" if delays else "-"
        forest_text = (
            f"{statistics.median(forest):.0f} ({len(forest)}/{args.seeds})"
            if forest
            else "-"
        )
        print(
            f"| {label} | {kind.value} | {detected} | {delay} | {others} | {forest_text} |"
        )
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
