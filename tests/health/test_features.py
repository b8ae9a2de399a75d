from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from forecasting.errors import ForecastInputError
from forecasting.health.features import daily_features
from forecasting.health.synthetic import (
    EPOCH_2026_MS,
    InjectedFault,
    SyntheticSite,
    lfp_ocv,
    simulate_site,
)


def _day() -> pd.DataFrame:
    """96 quarter-hours: 1 MW charge for 2 h, 0.9 MW discharge for 2 h."""
    n = 96
    p = np.zeros(n)
    p[4:12] = -1e6
    p[60:68] = 0.9e6
    soc = np.full(n, 20.0)
    soc[12:60] = 80.0
    soc[20:24] = 50.0  # mid-SoC samples (spread 12 mV there)
    spread = np.where((soc >= 35) & (soc <= 65), 0.012, 0.050)
    temp = np.where(p < 0, 35.0, np.where(p > 0, 33.0, 25.0))
    q = np.array(["good"] * n, dtype=object)
    q[[30, 31]] = "bad"
    frame = pd.DataFrame(
        {
            "site_id": "s1",
            "dev_id": "bank1",
            "ts_ms": EPOCH_2026_MS + np.arange(n) * 900_000,
            "q": q,
            "soc_pct": soc,
            "soh_pct": 97.0,
            "p_dc_w": p,
            "cell_v_max_v": 3.3 + spread,
            "cell_v_min_v": np.full(n, 3.3),
            "cell_t_max_c": temp,
        }
    )
    return frame.drop(index=[40, 41, 42]).reset_index(drop=True)


def test_daily_features_match_hand_numbers_when_one_closed_cycle() -> None:
    row = daily_features(_day()).iloc[0]
    assert row["day"] == dt.date(2026, 1, 1)
    assert row["samples"] == 93
    assert row["energy_in_mwh"] == pytest.approx(2.0)
    assert row["energy_out_mwh"] == pytest.approx(1.8)
    assert row["rte"] == pytest.approx(0.9)
    assert row["bad_fraction"] == pytest.approx(2 / 93)
    assert row["gap_fraction"] == pytest.approx(3 / 96)
    assert row["spread_mid_soc_mv"] == pytest.approx(12.0)
    assert row["temp_at_power_c"] == pytest.approx(34.0)
    assert row["soh"] == pytest.approx(0.97)


def test_daily_features_rte_is_nan_when_cycle_not_closed() -> None:
    frame = _day()
    frame.loc[frame.index[-1], "soc_pct"] = 60.0
    assert np.isnan(daily_features(frame).iloc[0]["rte"])


def test_daily_features_raise_naming_column_when_missing() -> None:
    with pytest.raises(ForecastInputError, match="cell_t_max_c"):
        daily_features(_day().drop(columns=["cell_t_max_c"]))


def test_lfp_ocv_is_flat_at_mid_soc_and_steep_at_ends() -> None:
    v = lfp_ocv(np.array([0.0, 0.5, 0.6, 1.0]))
    assert v[0] == pytest.approx(2.5)
    assert v[2] - v[1] == pytest.approx(0.01)
    assert v[3] == pytest.approx(3.6)


def test_simulate_site_raises_when_fault_names_unknown_string() -> None:
    with pytest.raises(ForecastInputError, match="bank9"):
        simulate_site(
            SyntheticSite("s"),
            2,
            rng=np.random.default_rng(0),
            faults=(InjectedFault("fan_failure", "bank9", 0, 2.0),),
        )


def test_simulate_site_is_reproducible_when_seed_fixed() -> None:
    a = simulate_site(SyntheticSite("s"), 2, rng=np.random.default_rng(4))
    b = simulate_site(SyntheticSite("s"), 2, rng=np.random.default_rng(4))
    pd.testing.assert_frame_equal(a, b)
