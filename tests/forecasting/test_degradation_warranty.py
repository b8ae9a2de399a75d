"""Warranty ledger and horizon throughput budget."""

from __future__ import annotations

import pytest

from forecasting.degradation.warranty import (
    WarrantyTerms,
    horizon_budget_mwh,
    warranty_status,
)
from forecasting.errors import ForecastInputError

TERMS = WarrantyTerms(
    years=10,
    throughput_mwh=36500.0,
    energy_mwh=10.0,
    max_average_soc=0.6,
    max_c_rate_per_h=0.5,
)


def test_warranty_status_shows_headroom_when_under_used() -> None:
    status = warranty_status(TERMS, age_days=365, used_mwh=2000.0)
    assert status.allowed_to_date_mwh == pytest.approx(3650.0)
    assert status.headroom_mwh == pytest.approx(1650.0)
    assert status.remaining_mwh == pytest.approx(34500.0)
    assert status.efc_per_year == pytest.approx(200.0)
    assert status.allowed_efc_per_year == pytest.approx(365.0)
    assert status.violations == ()


def test_warranty_status_lists_violations_when_limits_exceeded() -> None:
    status = warranty_status(
        TERMS, age_days=365, used_mwh=40000.0, average_soc=0.7, max_c_rate_per_h=0.6
    )
    assert len(status.violations) == 3
    assert status.headroom_fraction < 0


def test_horizon_budget_spreads_remaining_throughput_when_mid_warranty() -> None:
    budget = horizon_budget_mwh(TERMS, age_days=5 * 365, used_mwh=18250.0, horizon_h=24)
    assert budget == pytest.approx(10.0)  # one full cycle a day left
    catch_up = horizon_budget_mwh(
        TERMS, age_days=5 * 365, used_mwh=9125.0, horizon_h=24
    )
    assert catch_up == pytest.approx(15.0)


def test_horizon_budget_is_zero_when_throughput_exhausted() -> None:
    assert (
        horizon_budget_mwh(TERMS, age_days=100, used_mwh=40000.0, horizon_h=24) == 0.0
    )


def test_horizon_budget_is_none_when_warranty_expired() -> None:
    assert (
        horizon_budget_mwh(TERMS, age_days=11 * 365, used_mwh=0.0, horizon_h=24) is None
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"years": 0}, "years=0"),
        ({"throughput_mwh": -5.0}, "throughput_mwh=-5.0"),
        ({"max_average_soc": 1.5}, "max_average_soc=1.5"),
    ],
)
def test_warranty_status_rejects_terms_when_field_out_of_range(
    kwargs: dict[str, float], match: str
) -> None:
    base = {"years": 10, "throughput_mwh": 100.0, "energy_mwh": 10.0}
    with pytest.raises(ForecastInputError, match=match):
        warranty_status(WarrantyTerms(**{**base, **kwargs}), age_days=1, used_mwh=0.0)


def test_horizon_budget_rejects_input_when_horizon_not_positive() -> None:
    with pytest.raises(ForecastInputError, match="horizon_h=0"):
        horizon_budget_mwh(TERMS, age_days=1, used_mwh=0.0, horizon_h=0)
