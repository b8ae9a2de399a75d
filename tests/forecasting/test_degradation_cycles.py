"""Cycle counting: hysteresis filter, rainflow ledger, throughput."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.degradation.cycles import (
    cycle_ledger,
    extract_cycles,
    hysteresis_filter,
    turning_points,
)
from forecasting.errors import ForecastInputError


def _light_duty(days: int, step_h: float) -> np.ndarray:
    """A site doing one 20%-deep cycle a day, sampled every step_h hours."""
    hours = np.arange(0, 24, step_h)
    day = np.interp(hours, [0, 8, 12, 14, 18, 24], [0.5, 0.5, 0.7, 0.7, 0.5, 0.5])
    return np.append(np.tile(day, days), day[0])


def test_cycle_ledger_counts_one_full_cycle_when_soc_goes_empty_full_empty() -> None:
    ledger = cycle_ledger([0.0, 0.5, 1.0, 0.5, 0.0], 40.0)
    assert ledger.efc == pytest.approx(1.0)
    assert ledger.discharge_mwh == pytest.approx(40.0)
    assert ledger.charge_mwh == pytest.approx(40.0)
    assert sum(ledger.cycles_per_bin) == pytest.approx(1.0)
    assert ledger.cycles_per_bin[-1] == pytest.approx(1.0)


def test_cycle_ledger_filters_noise_when_soc_is_noisy() -> None:
    rng = np.random.default_rng(3)
    clean = _light_duty(3, 1 / 180)  # 20-s telemetry
    noisy = np.clip(clean + rng.normal(0, 0.0005, clean.size), 0, 1)
    truth = cycle_ledger(clean, 100.0)
    filtered = cycle_ledger(noisy, 100.0)
    raw = cycle_ledger(noisy, 100.0, band=0.0)
    assert truth.efc == pytest.approx(0.6, rel=1e-6)
    assert filtered.efc == pytest.approx(truth.efc, rel=0.05)
    # unfiltered counting of noisy SoC overstates wear several times over
    assert raw.efc > 4 * truth.efc
    assert filtered.throughput_mwh == pytest.approx(truth.throughput_mwh, rel=0.05)


def test_cycle_ledger_histogram_separates_depths_when_mixed_cycles() -> None:
    soc = [0.1, 0.9, 0.1, 0.5, 0.3, 0.5, 0.3, 0.1]
    ledger = cycle_ledger(soc, 1.0, depth_edges=(0.0, 0.5, 1.0))
    shallow, deep = ledger.cycles_per_bin
    assert deep == pytest.approx(1.0)
    assert shallow >= 1.0
    assert (
        ledger.efc == pytest.approx(0.8 + 0.2 + 0.2 + 0.2, rel=1e-9) or ledger.efc > 1
    )


def test_hysteresis_filter_keeps_ramps_when_moves_exceed_band() -> None:
    soc = np.array([0.2, 0.3, 0.4, 0.398, 0.5, 0.6, 0.5, 0.4])
    out = hysteresis_filter(soc, 0.005)
    assert out[0] == 0.2
    assert out.max() == pytest.approx(0.6)
    assert np.all(np.diff(out[:6]) >= 0)  # the 0.002 dip is gone
    assert out[-1] == pytest.approx(0.4)


@pytest.mark.parametrize(
    "soc",
    [[0.1, 0.9, 0.1], np.array([0.1, 0.9, 0.1]), pd.Series([0.1, 0.9, 0.1])],
    ids=["list", "array", "series"],
)
def test_turning_points_finds_extremes_when_list_array_or_series(soc: object) -> None:
    assert list(turning_points(soc)) == [0, 1, 2]


def test_extract_cycles_returns_nothing_when_single_sample() -> None:
    assert extract_cycles([0.5]) == []


def test_cycle_ledger_rejects_input_when_soc_in_percent() -> None:
    with pytest.raises(ForecastInputError, match=r"soc\[1\]=55\.0"):
        cycle_ledger([0.5, 55.0], 10.0)


def test_cycle_ledger_rejects_input_when_energy_negative() -> None:
    with pytest.raises(ForecastInputError, match="energy_mwh=-1"):
        cycle_ledger([0.5, 0.6], -1.0)


def test_cycle_ledger_rejects_input_when_edges_do_not_cover_unit_range() -> None:
    with pytest.raises(ForecastInputError, match="depth_edges"):
        cycle_ledger([0.5, 0.6], 1.0, depth_edges=(0.0, 0.5))


soc_lists = st.lists(
    st.floats(min_value=0.0, max_value=1.0, allow_nan=False), min_size=2, max_size=60
)


@settings(max_examples=60, deadline=None)
@given(soc=soc_lists, band=st.sampled_from([0.0, 0.005, 0.05]))
def test_cycle_ledger_efc_equals_half_the_filtered_travel_when_any_history(
    soc: list[float], band: float
) -> None:
    filtered = hysteresis_filter(soc, band) if band else np.asarray(soc)
    ledger = cycle_ledger(soc, 1.0, band=band)
    assert ledger.efc == pytest.approx(np.abs(np.diff(filtered)).sum() / 2, abs=1e-9)
    assert ledger.discharge_mwh + ledger.charge_mwh == pytest.approx(
        2 * ledger.efc, abs=1e-9
    )
    assert sum(ledger.cycles_per_bin) == pytest.approx(
        sum(c.count for c in ledger.cycles)
    )


@settings(max_examples=60, deadline=None)
@given(soc=soc_lists)
def test_hysteresis_filter_never_adds_travel_when_any_history(soc: list[float]) -> None:
    raw = np.asarray(soc)
    out = hysteresis_filter(raw, 0.01)
    assert out.shape == raw.shape
    assert out.min() >= raw.min() - 1e-12
    assert out.max() <= raw.max() + 1e-12
    assert np.abs(np.diff(out)).sum() <= np.abs(np.diff(raw)).sum() + 1e-9
    assert out[0] == raw[0]
    assert out[-1] == raw[-1]
