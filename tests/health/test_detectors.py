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
    features = pd.concat(
        [_features(365, (), seed) for seed in (11, 12)], ignore_index=True
    )
    assert run_detectors(features) == []


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
