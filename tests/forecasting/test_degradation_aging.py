"""The LFP aging model: its pieces, and its agreement with NREL BLAST-Lite."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.degradation.aging import (
    AgingState,
    ThroughputAging,
    WindowStress,
    calendar_rate,
    cycle_rate,
    load_params,
    project_day,
    simulate,
    step,
    validity_warnings,
    window_stress,
)
from forecasting.errors import ForecastInputError

HOURS = np.arange(24.0)
# (a) 0->100% over 4 h, hold 2 h, 100->0% over 4 h, rest empty
DAY_A = np.interp(HOURS, [0, 4, 6, 10, 24], [0, 1, 1, 0, 0])
# (b) one 25<->75% cycle a day
DAY_B = np.interp(HOURS, [0, 2, 12, 14, 24], [0.25, 0.75, 0.75, 0.25, 0.25])
# (c) two 25<->75% cycles a day
DAY_C = np.interp(
    HOURS,
    [0, 2, 6, 8, 12, 14, 18, 20, 24],
    [0.25, 0.75, 0.75, 0.25, 0.25, 0.75, 0.75, 0.25, 0.25],
)
# (d) rest at 50%
DAY_D = np.full(24, 0.5)
PROFILES = {
    "a_full_cycle": DAY_A,
    "b_one_half": DAY_B,
    "c_two_half": DAY_C,
    "d_rest": DAY_D,
}
YEARS = (1, 5, 10)


def _blast_capacity(day: np.ndarray, conserve: bool) -> list[float]:
    """Run BLAST-Lite's Lfp_Gr_250AhPrismatic on the day repeated for 10 years."""
    blast_models = pytest.importorskip(
        "blast.models", reason="blast-lite (test-only dependency) is not installed"
    )
    with pytest.MonkeyPatch.context() as mp:
        # blast-lite 1.1 calls np.trapz, which numpy 2.4 removed (same function).
        if not hasattr(np, "trapz"):
            mp.setattr(np, "trapz", np.trapezoid, raising=False)
        soc = np.append(np.tile(day, 365 * 10), day[0])
        time_s = np.arange(soc.size) * 3600.0
        cell = blast_models.Lfp_Gr_250AhPrismatic()
        cell.simulate_battery_life(
            {"Time_s": time_s, "SOC": soc, "Temperature_C": np.full(soc.size, 25.0)},
            is_conserve_energy_throughput=conserve,
        )
    t_days = cell.stressors["t_days"]
    q = cell.outputs["q"]
    return [float(np.interp(365 * y, t_days, q)) for y in YEARS]


@pytest.fixture(scope="module")
def blast_results() -> dict[tuple[str, bool], list[float]]:
    return {
        (name, conserve): _blast_capacity(day, conserve)
        for name, day in PROFILES.items()
        for conserve in (True, False)
    }


@pytest.mark.parametrize("name", sorted(PROFILES))
@pytest.mark.parametrize(
    "conserve", [True, False], ids=["blast_default", "blast_bms_soc"]
)
def test_project_day_matches_blast_lite_within_1pp_when_25c_profiles(
    blast_results: dict[tuple[str, bool], list[float]], name: str, conserve: bool
) -> None:
    ours = project_day(HOURS, PROFILES[name], 10, 25.0).capacity_fraction_by_year
    peer = blast_results[(name, conserve)]
    for year, expected in zip(YEARS, peer, strict=True):
        assert ours[year] == pytest.approx(expected, abs=0.01), (name, year)
    # the comparison could fail: the profiles do age the battery by several points
    assert ours[10] < 0.97


def test_project_day_reproduces_issue_figures_when_full_cycle_daily() -> None:
    ours = project_day(HOURS, DAY_A, 10, 25.0).capacity_fraction_by_year
    assert [ours[y] for y in YEARS] == pytest.approx([0.980, 0.933, 0.888], abs=0.003)


def test_project_day_warns_extrapolation_when_shallow_cycles() -> None:
    assert project_day(HOURS, DAY_A, 1).warnings == ()
    warnings = project_day(HOURS, DAY_B, 1).warnings
    assert len(warnings) == 1
    assert "extrapolation" in warnings[0]


def test_simulate_equals_project_day_when_history_repeats_the_day() -> None:
    soc = np.append(np.tile(DAY_C, 365 * 2), DAY_C[0])
    path = simulate(np.arange(soc.size, dtype=float), soc, 25.0)
    proj = project_day(HOURS, DAY_C, 2)
    assert path.capacity_at_days([365, 730]) == pytest.approx(
        [proj.capacity_fraction_by_year[1], proj.capacity_fraction_by_year[2]], abs=2e-4
    )
    assert path.final.efc == pytest.approx(proj.path.efc[-1], rel=1e-3)


def test_simulate_ages_faster_when_hotter() -> None:
    soc = np.append(np.tile(DAY_A, 365), DAY_A[0])
    t = np.arange(soc.size, dtype=float)
    cool = simulate(t, soc, 20.0).final.capacity_fraction
    hot = simulate(t, soc, 40.0).final.capacity_fraction
    assert hot < cool


def test_simulate_counts_noise_free_wear_when_soc_is_noisy() -> None:
    rng = np.random.default_rng(7)
    step_h = 1 / 60
    hours = np.arange(0, 24, step_h)
    day = np.interp(hours, [0, 4, 6, 10, 24], [0.05, 0.95, 0.95, 0.05, 0.05])
    soc = np.append(np.tile(day, 30), day[0])
    noisy = np.clip(soc + rng.normal(0, 0.0005, soc.size), 0, 1)
    t = np.arange(soc.size) * step_h
    clean = simulate(t, soc)
    filtered = simulate(t, noisy)
    raw = simulate(t, noisy, band=0.0)
    assert filtered.final.efc == pytest.approx(clean.final.efc, rel=0.02)
    assert raw.final.efc > 1.2 * clean.final.efc


def test_calendar_rate_rises_when_soc_and_temperature_rise() -> None:
    assert calendar_rate(0.9, 25.0) > calendar_rate(0.1, 25.0)
    assert calendar_rate(0.5, 35.0) > calendar_rate(0.5, 25.0)


@pytest.mark.parametrize(
    "soc",
    [0.5, np.array([0.2, 0.5, 0.8]), pd.Series([0.2, 0.5, 0.8])],
    ids=["scalar", "array", "series"],
)
def test_calendar_rate_keeps_shape_when_scalar_array_or_series(soc: object) -> None:
    out = calendar_rate(soc, 25.0)
    assert np.shape(out) == np.shape(np.asarray(soc))
    assert np.all(np.asarray(out) > 0)


def test_cycle_rate_rises_when_deeper_or_faster() -> None:
    assert cycle_rate(1.0, 0.1, 25.0) > cycle_rate(0.5, 0.1, 25.0)
    assert cycle_rate(0.5, 0.5, 25.0) > cycle_rate(0.5, 0.1, 25.0)


def test_step_follows_power_law_when_stress_is_constant() -> None:
    p = load_params()
    stress = WindowStress(1.0, 1e-3, 0.0, 0.0, 0.0, 1.0)
    state = AgingState()
    for _ in range(100):
        state = step(state, stress)
    assert state.q_loss_cal == pytest.approx(1e-3 * 100**p.pcal, rel=1e-9)
    assert state.q_loss_cyc == 0.0


def test_load_params_cites_blast_lite_when_read() -> None:
    p = load_params()
    assert "Lfp_Gr_250AhPrismatic" in p.source
    assert p.pcal == pytest.approx(0.526)
    assert p.pcyc == pytest.approx(0.828)


def test_window_stress_rejects_input_when_soc_above_one() -> None:
    with pytest.raises(ForecastInputError, match=r"soc\[1\]=1\.5"):
        window_stress([0.0, 1.0], [0.5, 1.5])


def test_simulate_rejects_input_when_time_not_increasing() -> None:
    with pytest.raises(ForecastInputError, match="strictly increasing"):
        simulate([0.0, 1.0, 1.0], [0.5, 0.6, 0.7])


def test_project_day_rejects_input_when_years_zero() -> None:
    with pytest.raises(ForecastInputError, match="years=0"):
        project_day(HOURS, DAY_A, 0)


def test_validity_warnings_flag_temperature_when_outside_tests() -> None:
    warnings = validity_warnings(1.0, 50.0, 1.0)
    assert any("50" in w for w in warnings)


def test_throughput_aging_tracks_project_day_when_fed_running_totals() -> None:
    hook = ThroughputAging(40.0, dod=1.0)
    proj = project_day(HOURS, DAY_A, 2)
    soc = np.append(DAY_A, DAY_A[0])
    throughput = 0.0
    q = 1.0
    for day in range(730):
        for h in range(24):
            throughput += abs(soc[h + 1] - soc[h]) * 40.0 * q
            q_new = hook(day + (h + 1) / 24, throughput, float(soc[h + 1]))
            assert q_new <= q + 1e-12
            q = q_new
    assert q == pytest.approx(proj.capacity_fraction_by_year[2], abs=0.001)


def test_throughput_aging_rejects_input_when_energy_not_positive() -> None:
    with pytest.raises(ForecastInputError, match="energy_mwh=0"):
        ThroughputAging(0.0)
