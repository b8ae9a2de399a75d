"""Degradation costs: segment costs for dispatch, calendar term, schedule wear."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.degradation.costs import (
    CostInputs,
    cycle_fade,
    degradation_costs,
    lower_convex_envelope,
    schedule_wear,
)
from forecasting.errors import ForecastInputError

BASE = CostInputs(energy_mwh=40.0, replacement_cost_usd_per_kwh=150.0)


@pytest.mark.parametrize("k", [1, 2, 4, 7, 10])
def test_degradation_costs_are_non_decreasing_when_any_segment_count(k: int) -> None:
    seg = degradation_costs(BASE, k).segment_usd_per_mwh
    assert len(seg) == k
    assert all(c >= 0 for c in seg)
    assert list(seg) == sorted(seg)


def test_degradation_costs_scale_with_replacement_cost_when_doubled() -> None:
    one = degradation_costs(BASE, 4)
    two = degradation_costs(
        CostInputs(energy_mwh=40.0, replacement_cost_usd_per_kwh=300.0), 4
    )
    assert np.allclose(two.segment_usd_per_mwh, 2 * np.array(one.segment_usd_per_mwh))
    assert two.calendar_usd_per_day == pytest.approx(2 * one.calendar_usd_per_day)


def test_degradation_costs_spend_the_replacement_over_the_life_when_summed() -> None:
    costs = degradation_costs(BASE, 1)
    inputs = BASE
    # cost of the life's cycling (at the reference depth) + calendar = one replacement
    depth = inputs.soc_max - inputs.soc_min
    cycles = costs.efc_to_eol / depth
    per_cycle = costs.usd_per_fade * float(
        cycle_fade(depth, inputs, costs.fade_per_efc_scale)
    )
    total = cycles * per_cycle + costs.calendar_usd_per_day * costs.life_years * 365
    assert total == pytest.approx(inputs.replacement_usd, rel=1e-6)


def test_degradation_costs_match_segment_sum_when_full_band_cycle_is_costed() -> None:
    costs = degradation_costs(BASE, 4)
    soc = np.interp(np.arange(97), [0, 16, 40, 56, 96], [0.05, 0.95, 0.95, 0.05, 0.05])
    wear = schedule_wear(soc, 0.25, BASE)
    band_mwh = (BASE.soc_max - BASE.soc_min) * BASE.energy_mwh
    grid_mwh_per_segment = band_mwh / 4 * BASE.eta_discharge
    expected = sum(costs.segment_usd_per_mwh) * grid_mwh_per_segment
    assert wear.cycle_usd == pytest.approx(expected, rel=1e-3)
    assert wear.efc == pytest.approx(0.9)
    assert wear.calendar_usd > 0


def test_schedule_wear_is_lower_when_cycles_are_shallow() -> None:
    t = np.arange(97)
    deep = np.interp(t, [0, 16, 40, 56, 96], [0.05, 0.95, 0.95, 0.05, 0.05])
    shallow = np.interp(
        t,
        [0, 8, 24, 32, 48, 56, 72, 80, 96],
        [0.5, 0.95, 0.95, 0.5, 0.5, 0.95, 0.95, 0.5, 0.5],
    )
    # same throughput, two half-depth cycles cost less than one deep cycle
    assert schedule_wear(shallow, 0.25, BASE).efc == pytest.approx(
        schedule_wear(deep, 0.25, BASE).efc
    )
    assert (
        schedule_wear(shallow, 0.25, BASE).cycle_usd
        < schedule_wear(deep, 0.25, BASE).cycle_usd
    )


def test_lower_convex_envelope_repairs_a_concave_kink_when_present() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = np.array([0.0, 2.0, 2.5, 6.0])
    env = lower_convex_envelope(x, y)
    assert env[1] <= y[1]
    slopes = np.diff(env)
    assert np.all(np.diff(slopes) >= -1e-12)


def test_degradation_costs_fall_when_cells_live_longer_at_cooler_temperature() -> None:
    hot = degradation_costs(
        CostInputs(energy_mwh=40.0, replacement_cost_usd_per_kwh=150.0, temp_c=35.0), 4
    )
    cool = degradation_costs(
        CostInputs(energy_mwh=40.0, replacement_cost_usd_per_kwh=150.0, temp_c=20.0), 4
    )
    assert hot.life_years < cool.life_years


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("energy_mwh", 0.0),
        ("replacement_cost_usd_per_kwh", -1.0),
        ("eol_capacity_fraction", 1.0),
        ("efc_per_day", 0.0),
        ("eta_discharge", 1.5),
    ],
)
def test_degradation_costs_reject_input_when_field_out_of_range(
    field: str, value: float
) -> None:
    kwargs = {"energy_mwh": 40.0, "replacement_cost_usd_per_kwh": 150.0, field: value}
    with pytest.raises(ForecastInputError, match=field):
        degradation_costs(CostInputs(**kwargs), 4)


def test_degradation_costs_reject_input_when_no_segments() -> None:
    with pytest.raises(ForecastInputError, match="n_segments=0"):
        degradation_costs(BASE, 0)


@settings(max_examples=60, deadline=None)
@given(
    soc_min=st.floats(0.0, 0.4),
    width=st.floats(0.1, 0.6),
    k=st.integers(1, 12),
    efc_per_day=st.floats(0.05, 4.0),
    temp_c=st.floats(0.0, 50.0),
    eol=st.floats(0.5, 0.95),
    cost=st.floats(0.0, 1000.0),
)
def test_degradation_costs_are_valid_scenario_segments_when_any_inputs(
    soc_min: float,
    width: float,
    k: int,
    efc_per_day: float,
    temp_c: float,
    eol: float,
    cost: float,
) -> None:
    inputs = CostInputs(
        energy_mwh=10.0,
        replacement_cost_usd_per_kwh=cost,
        soc_min=soc_min,
        soc_max=soc_min + width,
        efc_per_day=efc_per_day,
        temp_c=temp_c,
        eol_capacity_fraction=eol,
    )
    result = degradation_costs(inputs, k)
    seg = np.array(result.segment_usd_per_mwh)
    assert seg.shape == (k,)
    assert np.all(np.isfinite(seg))
    assert np.all(seg >= 0)
    assert np.all(np.diff(seg) >= -1e-12)
    assert result.life_years > 0
