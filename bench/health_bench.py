"""Detection rate, delay and false alarms of the condition detectors on synthetic sites.

Run: ``.venv/bin/python bench/health_bench.py [--sites N] [--days D] [--seeds S]``.

Healthy fleet: ``--sites`` sites of 4 strings, ``--days`` days each, no fault; every
finding is a false alarm. Unusual but healthy sites (2.4 EFC/day, six weeks idle at
95 % SoC, 40 °C ambient) over ``--seeds`` seeds: every finding is a false alarm.
Faulty sites: one fault on one string at day 60, repeated over ``--seeds`` seeds; the
delay is the first finding's day minus the onset day; a finding of another kind or on
another string is a false alarm. "Confounders" are events that must raise no finding
of the listed kinds: a communications fault (15 % of samples bad, as many lost) must
not read as an efficiency slide, and a healthy used module (SoH 90 %) swapped in must
not read as fast fade or imbalance (the scan restarts the unit's baselines).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from forecasting.health.anomaly import detect_anomalies
from forecasting.health.detectors import expected_soh, first_detection, run_detectors
from forecasting.health.features import daily_features
from forecasting.health.findings import Finding, FindingKind
from forecasting.health.synthetic import InjectedFault, SyntheticSite, simulate_site

ONSET = 60


@dataclass(frozen=True)
class Case:
    """One fault case of the bench."""

    label: str
    fault: InjectedFault
    kind: FindingKind


FAULTS = [
    Case(
        "cell drift 1 %SoC/day",
        InjectedFault("cell_drift", "bank1", ONSET, 0.01),
        FindingKind.IMBALANCE,
    ),
    Case(
        "fan failure x2.5 R_th",
        InjectedFault("fan_failure", "bank2", ONSET, 2.5),
        FindingKind.THERMAL,
    ),
    Case(
        "fan failure x1.5 R_th",
        InjectedFault("fan_failure", "bank2", ONSET, 1.5),
        FindingKind.THERMAL,
    ),
    Case(
        "fade x4 model rate",
        InjectedFault("fast_fade", "bank3", ONSET, 4.0),
        FindingKind.FAST_FADE,
    ),
    Case(
        "fade x2 model rate",
        InjectedFault("fast_fade", "bank3", ONSET, 2.0),
        FindingKind.FAST_FADE,
    ),
    Case(
        "RTE -0.1 pt/day",
        InjectedFault("rte_slide", "bank4", ONSET, 0.001),
        FindingKind.RTE_SLIDE,
    ),
    Case(
        "RTE -0.03 pt/day",
        InjectedFault("rte_slide", "bank4", ONSET, 0.0003),
        FindingKind.RTE_SLIDE,
    ),
    Case(
        "8 % samples bad+lost",
        InjectedFault("dropout", "bank1", ONSET, 0.08),
        FindingKind.TELEMETRY_QUALITY,
    ),
]

UNUSUAL = [
    ("2.4 EFC/day", {"cycles_per_day": 3.7}),
    ("6 weeks idle at 95 % SoC", {"idle_days": (60, 101), "idle_soc": 0.95}),
    ("40 °C ambient", {"ambient_c": 40.0}),
]

CONFOUNDERS = [
    (
        "comm fault 15 % bad+lost",
        InjectedFault("dropout", "bank2", ONSET, 0.15),
        {
            FindingKind.RTE_SLIDE,
            FindingKind.FAST_FADE,
            FindingKind.IMBALANCE,
            FindingKind.THERMAL,
        },
        True,
    ),
    (
        "used module SoH 90 % swapped in",
        InjectedFault("swap", "bank2", ONSET, 0.90),
        {FindingKind.FAST_FADE, FindingKind.IMBALANCE, FindingKind.RTE_SLIDE},
        True,
    ),
    (
        "same swap, registry not read (the old scan)",
        InjectedFault("swap", "bank2", ONSET, 0.90),
        {FindingKind.FAST_FADE, FindingKind.IMBALANCE, FindingKind.RTE_SLIDE},
        False,
    ),
]


def site_features(
    site: SyntheticSite,
    days: int,
    faults: tuple[InjectedFault, ...],
    seed: int,
    *,
    registry: bool = True,
) -> pd.DataFrame:
    """Simulate a site and return its daily features with the model SoH.

    With ``registry``, a ``swap`` fault starts a new unit (module serial) on its string
    from its onset day, as the scan does from the registry.
    """
    samples = simulate_site(site, days, rng=np.random.default_rng(seed), faults=faults)
    features = daily_features(samples)
    features["unit"] = features["dev_id"]
    start = features["day"].min()
    for fault in faults:
        if fault.kind == "swap" and registry:
            after = (features["dev_id"] == fault.dev_id) & (
                features["day"] >= start + pd.Timedelta(days=fault.onset_day)
            )
            features.loc[after, "unit"] = f"{fault.dev_id}-swapped"
    return expected_soh(features, site.string_energy_mwh)


def _delay(findings: list[Finding], case: Case, start: object) -> int | None:
    first = first_detection(findings, case.kind, case.fault.dev_id)
    if first is None:
        return None
    return (
        int((pd.Timestamp(first.day) - pd.Timestamp(start)).days) - case.fault.onset_day
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=10)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--step-minutes", type=int, default=15)
    parser.add_argument("--no-forest", action="store_true")
    args = parser.parse_args()

    t0 = time.perf_counter()
    false_alarms = 0
    anomaly_false = 0
    device_days = 0
    for i in range(args.sites):
        site = SyntheticSite(f"healthy-{i:02d}", step_minutes=args.step_minutes)
        features = site_features(site, args.days, (), seed=1000 + i)
        device_days += len(features)
        findings = run_detectors(features)
        false_alarms += len(findings)
        if not args.no_forest:
            anomaly_false += len(detect_anomalies(features))
        for f in findings:
            print(
                f"  false alarm: {f.site_id} {f.dev_id} {f.kind.value} {f.day} {f.value:.4g}"
            )
    print(
        f"healthy fleet: {args.sites} sites x 4 strings x {args.days} days = "
        f"{device_days} device-days, step {args.step_minutes} min "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    print(
        f"  threshold detectors: {false_alarms} false findings "
        f"({false_alarms / max(device_days, 1):.5f} per device-day)"
    )
    if not args.no_forest:
        print(
            f"  IsolationForest (info): {anomaly_false} findings "
            f"({anomaly_false / max(device_days, 1):.5f} per device-day)"
        )
    print()
    print("| unusual but healthy case | device-days | false findings |")
    print("|---|---|---|")
    for label, options in UNUSUAL:
        days = 0
        count = 0
        for seed in range(args.seeds):
            site = replace(
                SyntheticSite(f"unusual-{seed}", step_minutes=args.step_minutes),
                **options,
            )
            features = site_features(site, 240, (), seed=2000 + seed)
            days += len(features)
            found = run_detectors(features)
            count += len(found)
            for f in found:
                print(
                    f"  false alarm: {label} {f.dev_id} {f.kind.value} {f.day} {f.value:.4g}"
                )
        print(f"| {label} | {days} | {count} |")
    print()
    print(
        "| fault | detector | detected | delay days (median / max) | false findings |"
    )
    print("|---|---|---|---|---|")
    days = ONSET + 150
    for case in FAULTS:
        delays: list[int] = []
        others = 0
        for seed in range(args.seeds):
            site = SyntheticSite(f"faulty-{seed}", step_minutes=args.step_minutes)
            features = site_features(site, days, (case.fault,), seed=seed)
            findings = run_detectors(features)
            delay = _delay(findings, case, features["day"].min())
            if delay is not None:
                delays.append(delay)
            others += sum(
                1
                for f in findings
                if f.dev_id != case.fault.dev_id or f.kind != case.kind
            )
        detected = f"{len(delays)}/{args.seeds}"
        delay_text = (
            f"{statistics.median(delays):.0f} / {max(delays)}" if delays else "-"
        )
        print(
            f"| {case.label} | {case.kind.value} | {detected} | {delay_text} | {others} |"
        )
    print()
    print("| confounder | must not raise | seeds with such a finding | findings |")
    print("|---|---|---|---|")
    for label, fault, kinds, registry in CONFOUNDERS:
        hit_seeds = 0
        hits = 0
        for seed in range(args.seeds):
            site = SyntheticSite(f"conf-{seed}", step_minutes=args.step_minutes)
            features = site_features(site, days, (fault,), seed, registry=registry)
            wrong = [f for f in run_detectors(features) if f.kind in kinds]
            hits += len(wrong)
            hit_seeds += bool(wrong)
        names = ", ".join(sorted(k.value for k in kinds))
        print(f"| {label} | {names} | {hit_seeds}/{args.seeds} | {hits} |")
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
