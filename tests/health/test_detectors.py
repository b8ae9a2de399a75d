from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.errors import ForecastInputError
from forecasting.health.anomaly import (
    DailyAnomalyDetector,
    anomaly_features,
    detect_anomalies,
)
from forecasting.health.detectors import (
    DetectorConfig,
    detect_thermal,
    expected_soh,
    first_detection,
    robust_scale,
    run_detectors,
)
from forecasting.health.features import daily_features
from forecasting.health.findings import FindingKind, Severity
from forecasting.health.synthetic import InjectedFault, SyntheticSite, simulate_site

SITE = SyntheticSite("sim-01", step_minutes=30)

# Fault, onset day, and the largest detection delay [days] docs/health.md states.
CASES = [
    (InjectedFault("cell_drift", "bank1", 40, 0.01), FindingKind.IMBALANCE, 14),
    (InjectedFault("fan_failure", "bank2", 40, 2.5), FindingKind.THERMAL, 3),
    (InjectedFault("fast_fade", "bank3", 20, 4.0), FindingKind.FAST_FADE, 60),
    (InjectedFault("rte_slide", "bank4", 40, 0.001), FindingKind.RTE_SLIDE, 35),
    (InjectedFault("dropout", "bank1", 40, 0.08), FindingKind.TELEMETRY_QUALITY, 7),
]


def _features(days: int, faults: tuple[InjectedFault, ...], seed: int) -> pd.DataFrame:
    samples = simulate_site(SITE, days, rng=np.random.default_rng(seed), faults=faults)
    return expected_soh(daily_features(samples), SITE.string_energy_mwh)


@pytest.mark.parametrize(("fault", "kind", "max_delay"), CASES, ids=lambda c: str(c))
def test_detector_finds_injected_fault_when_within_stated_delay(
    fault: InjectedFault, kind: FindingKind, max_delay: int
) -> None:
    features = _features(fault.onset_day + 90, (fault,), seed=7)
    findings = run_detectors(features)
    first = first_detection(findings, kind, fault.dev_id)
    assert first is not None
    start = features["day"].min()
    delay = (first.day - start).days - fault.onset_day
    assert 0 <= delay <= max_delay
    others = [f for f in findings if f.dev_id != fault.dev_id]
    assert others == []


def test_run_detectors_raises_nothing_when_fleet_healthy_for_a_year() -> None:
    for seed in (11, 12):
        assert run_detectors(_features(365, (), seed)) == []


def test_detect_thermal_is_critical_when_string_far_hotter_than_peers() -> None:
    rows = [
        {"site_id": "s", "dev_id": f"bank{i}", "day": day, "temp_at_power_c": t}
        for day in pd.date_range("2026-01-01", periods=3).date
        for i, t in enumerate([30.0, 30.5, 29.5, 41.0], start=1)
    ]
    findings = detect_thermal(pd.DataFrame(rows), DetectorConfig())
    assert {f.dev_id for f in findings} == {"bank4"}
    assert len(findings) == 2  # persist_days = 2: days 2 and 3
    assert findings[-1].severity is Severity.CRITICAL
    assert findings[-1].value == pytest.approx(41.0 - 30.25)


def test_detect_thermal_stays_quiet_when_fewer_than_three_peers() -> None:
    rows = [
        {"site_id": "s", "dev_id": f"bank{i}", "day": day, "temp_at_power_c": t}
        for day in pd.date_range("2026-01-01", periods=3).date
        for i, t in enumerate([30.0, 45.0], start=1)
    ]
    assert detect_thermal(pd.DataFrame(rows)) == []


def test_robust_scale_uses_floor_when_values_constant() -> None:
    assert robust_scale([2.0, 2.0, 2.0], 0.5) == 0.5
    assert robust_scale([1.0, 2.0, 3.0, 4.0, 100.0], 0.0) == pytest.approx(1.4826)


def test_detectors_raise_naming_column_when_feature_missing() -> None:
    with pytest.raises(ForecastInputError, match="temp_at_power_c"):
        detect_thermal(pd.DataFrame({"site_id": [], "dev_id": [], "day": []}))


def test_expected_soh_raises_when_energy_not_positive() -> None:
    features = _features(3, (), seed=1)
    with pytest.raises(ForecastInputError, match="energy_mwh"):
        expected_soh(features, 0.0)


def test_detect_anomalies_flags_only_faulty_string_when_fan_fails() -> None:
    fault = InjectedFault("fan_failure", "bank2", 35, 3.0)
    findings = detect_anomalies(_features(60, (fault,), seed=3), baseline_days=30)
    assert {f.dev_id for f in findings} == {"bank2"}
    assert min(f.day for f in findings) >= pd.Timestamp("2026-02-05").date()
    assert all(f.severity is Severity.INFO for f in findings)


def test_anomaly_detector_flags_day_beyond_training_range_when_fitted() -> None:
    rel = anomaly_features(_features(40, (), seed=5))
    model = DailyAnomalyDetector(n_estimators=50).fit(rel)
    odd = rel.head(1).copy()
    odd["temp_delta_c"] = 12.0
    assert model.predict(odd).tolist() == [True]
    assert model.max_z(odd)[0] > model.z_max


def test_anomaly_detector_raises_not_fitted_when_predicting_first() -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        DailyAnomalyDetector().predict(pd.DataFrame())


# Issue 20: the defects a new user found, as assertions on the synthetic telemetry
# (15-minute samples as the bench, fixed seeds 0-7, onset on day 60).

SEEDS = range(8)
ONSET = 60


def _site_features(
    site: SyntheticSite,
    days: int,
    faults: tuple[InjectedFault, ...],
    seed: int,
    *,
    units: bool = True,
) -> pd.DataFrame:
    samples = simulate_site(site, days, rng=np.random.default_rng(seed), faults=faults)
    features = daily_features(samples)
    if units:
        features["unit"] = features["dev_id"]
        start = features["day"].min()
        for fault in faults:
            if fault.kind == "swap":
                after = (features["dev_id"] == fault.dev_id) & (
                    features["day"] >= start + pd.Timedelta(days=fault.onset_day)
                )
                features.loc[after, "unit"] = "MOD-NEW"
    return expected_soh(features, site.string_energy_mwh)


def _delays(fault: InjectedFault, kind: FindingKind) -> list[int | None]:
    delays: list[int | None] = []
    for seed in SEEDS:
        features = _site_features(SyntheticSite(f"s{seed}"), ONSET + 90, (fault,), seed)
        findings = run_detectors(features)
        wrong = [f for f in findings if f.dev_id != fault.dev_id or f.kind != kind]
        assert wrong == []
        first = first_detection(findings, kind, fault.dev_id)
        start = features["day"].min()
        delays.append(None if first is None else (first.day - start).days - ONSET)
    return delays


def test_fast_fade_found_within_60_days_when_fade_twice_model_rate() -> None:
    delays = _delays(
        InjectedFault("fast_fade", "bank3", ONSET, 2.0), FindingKind.FAST_FADE
    )
    assert all(d is not None and 0 <= d <= 60 for d in delays), delays


def test_rte_slide_found_within_30_days_when_efficiency_slides_003_pt_per_day() -> None:
    delays = _delays(
        InjectedFault("rte_slide", "bank4", ONSET, 0.0003), FindingKind.RTE_SLIDE
    )
    assert all(d is not None and 0 <= d <= 30 for d in delays), delays


def test_thermal_found_in_every_seed_when_fan_thermal_resistance_x15() -> None:
    delays = _delays(
        InjectedFault("fan_failure", "bank2", ONSET, 1.5), FindingKind.THERMAL
    )
    assert all(d is not None and 0 <= d <= 7 for d in delays), delays


def test_comm_fault_raises_quality_not_efficiency_when_samples_bad() -> None:
    fault = InjectedFault("dropout", "bank2", ONSET, 0.15)
    for seed in SEEDS:
        features = _site_features(SyntheticSite(f"s{seed}"), ONSET + 90, (fault,), seed)
        findings = run_detectors(features)
        kinds = {(f.dev_id, f.kind) for f in findings}
        assert kinds == {("bank2", FindingKind.TELEMETRY_QUALITY)}
        after = features[
            (features["dev_id"] == "bank2")
            & (features["day"] >= features["day"].min() + pd.Timedelta(days=ONSET))
        ]
        # Bad samples no longer count as zero energy: no RTE on days they touch.
        assert after["rte"].dropna().empty or (after["rte"].dropna().min() > 0.88)
        assert after["bad_fraction"].mean() > 0.1


def test_fast_fade_quiet_when_hot_site_ages_as_model_predicts() -> None:
    site = SyntheticSite("hot", ambient_c=40.0)
    for seed in (1, 2):
        features = _site_features(site, 365, (), seed)
        assert features["temp_mean_c"].mean() > 40.0
        assert run_detectors(features) == []


def test_swap_restarts_baselines_when_used_module_swapped_in() -> None:
    fault = InjectedFault("swap", "bank2", ONSET, 0.90)
    for seed in SEEDS:
        site = SyntheticSite(f"s{seed}")
        assert run_detectors(_site_features(site, ONSET + 90, (fault,), seed)) == []
    # Without the registry's unit the used module reads as a fast fade: the defect.
    blind = run_detectors(
        _site_features(SyntheticSite("s0"), ONSET + 90, (fault,), 0, units=False)
    )
    assert FindingKind.FAST_FADE in {f.kind for f in blind}


@pytest.mark.parametrize(
    "options",
    [
        {"cycles_per_day": 3.7},
        {"idle_days": (60, 101), "idle_soc": 0.95},
        {"ambient_c": 40.0},
    ],
    ids=["2.4 EFC per day", "six weeks idle at 95 % SoC", "40 degC ambient"],
)
def test_run_detectors_quiet_when_operation_unusual_but_healthy(
    options: dict[str, object],
) -> None:
    site = SyntheticSite("odd", **options)  # type: ignore[arg-type]
    for seed in (21, 22):
        features = _site_features(site, 240, (), seed)
        if "cycles_per_day" in options:
            efc = (features["energy_in_mwh"] + features["energy_out_mwh"]) / 2.0
            assert efc.groupby(features["dev_id"]).mean().between(2.3, 2.6).all()
        assert run_detectors(features) == []
