"""State-of-health estimation validated on simulated sites with a known fade."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from forecasting.degradation.aging import AgingPath, project_day
from forecasting.degradation.soh import (
    CapacityMeasurement,
    capacity_measurements,
    estimate_soh,
    simulate_energy_telemetry,
)
from forecasting.errors import ForecastInputError

HOURS = np.arange(24.0)
DAY = np.interp(HOURS, [0, 6, 10, 12, 16, 24], [0.15, 0.15, 0.95, 0.95, 0.15, 0.15])
NAMEPLATE_MWH = 40.0


def _at_hours(path: AgingPath) -> Callable[[np.ndarray], np.ndarray]:
    return lambda t: path.capacity_at_days(np.asarray(t) / 24.0)


@pytest.fixture(scope="module")
def paths() -> dict[str, AgingPath]:
    return {
        # this site's cells age 80 % faster than the model says (hot container, weak lot)
        "truth": project_day(HOURS, DAY, 2, degradation_scalar=1.8).path,
        "model": project_day(HOURS, DAY, 2).path,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimate_soh_within_1pp_of_truth_when_two_simulated_years(
    paths: dict[str, AgingPath], seed: int
) -> None:
    truth, prior = _at_hours(paths["truth"]), _at_hours(paths["model"])
    tel = simulate_energy_telemetry(
        730, truth, NAMEPLATE_MWH, np.random.default_rng(seed)
    )
    ms = capacity_measurements(tel.time_h, tel.power_mw, tel.soc, NAMEPLATE_MWH)
    est = estimate_soh(ms, prior)
    end_h = tel.time_h[-1]
    true_soh = float(truth(np.array([end_h]))[0])
    model_soh = float(prior(np.array([end_h]))[0])
    # the prior alone misses by more than a point: the telemetry must do the work
    assert abs(model_soh - true_soh) > 0.01
    assert est.latest == pytest.approx(true_soh, abs=0.01)
    assert 0 < est.latest_std < 0.01
    # and the whole smoothed path tracks the truth
    assert np.max(np.abs(est.soh - truth(est.time_h))) < 0.015


def test_capacity_measurements_recover_capacity_when_noise_free() -> None:
    truth = lambda t: np.full_like(np.asarray(t, dtype=float), 0.9)  # noqa: E731
    tel = simulate_energy_telemetry(
        5,
        truth,
        NAMEPLATE_MWH,
        np.random.default_rng(0),
        soc_std_rest=0.0,
        soc_std_full=0.0,
        power_noise_rel=0.0,
        meter_gain_error=0.0,
    )
    ms = capacity_measurements(tel.time_h, tel.power_mw, tel.soc, NAMEPLATE_MWH)
    assert len(ms) >= 5
    assert [m.capacity_fraction for m in ms] == pytest.approx([0.9] * len(ms), abs=1e-9)


def test_estimate_soh_returns_prior_when_measurements_are_useless() -> None:
    ms = [CapacityMeasurement(24.0 * d, 0.5, 10.0, -0.8, True) for d in range(1, 30)]
    est = estimate_soh(ms, lambda t: np.full_like(t, 0.97))
    assert est.latest == pytest.approx(0.97, abs=0.005)


def test_estimate_soh_rejects_input_when_no_measurements() -> None:
    with pytest.raises(ForecastInputError, match="measurements"):
        estimate_soh([], lambda t: t)


def test_capacity_measurements_reject_input_when_lengths_differ() -> None:
    with pytest.raises(ForecastInputError, match="lengths differ"):
        capacity_measurements([0.0, 1.0], [0.0], [0.5, 0.5], 10.0)


def test_simulate_energy_telemetry_rejects_input_when_interval_does_not_divide_day() -> (
    None
):
    with pytest.raises(ForecastInputError, match="interval_h"):
        simulate_energy_telemetry(
            1, lambda t: np.ones_like(t), 1.0, np.random.default_rng(0), interval_h=0.7
        )
