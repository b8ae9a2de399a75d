"""Degradation costs and warranty budgets feed a real HiGHS dispatch solve."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from forecasting.degradation.costs import CostInputs, degradation_costs
from forecasting.degradation.warranty import WarrantyTerms, horizon_budget_mwh

scenario_mod = pytest.importorskip(
    "dispatch.scenario", reason="dispatch/ not built yet"
)
solve_mod = pytest.importorskip("dispatch.solve", reason="dispatch/ not built yet")

INTERVALS = 96
ENERGY_MWH = 40.0
SITE = "site-deg"


def _prices() -> list[float]:
    """A two-peak day of 15-min energy prices [$/MWh] (fixed, no randomness)."""
    h = np.arange(INTERVALS) / 4
    base = (
        35
        + 25 * np.sin((h - 9) / 24 * 4 * np.pi)
        + 15 * np.cos((h - 3) / 24 * 2 * np.pi)
    )
    return [round(float(v), 3) for v in base]


def _scenario(segments: list[float], budget_mwh: float | None = None) -> Any:
    site: dict[str, Any] = {
        "id": SITE,
        "node": "N0",
        "discharge_mw": 10.0,
        "charge_mw": 10.0,
        "energy_mwh": ENERGY_MWH,
        "soc_min": 0.05,
        "soc_max": 0.95,
        "soc_initial": 0.5,
        "soc_final_min": 0.5,
        "eta_charge": 0.95,
        "eta_discharge": 0.95,
        "services": ["energy"],
        "degradation_usd_per_mwh": segments,
    }
    if budget_mwh is not None:
        site["throughput_budget_mwh"] = budget_mwh
    return scenario_mod.Scenario.model_validate(
        {
            "schema": "bess-dispatch-scenario/1",
            "start": "2026-11-24T06:00:00Z",
            "interval_minutes": 15,
            "intervals": INTERVALS,
            "markets": {"N0": {"energy": _prices()}},
            "sites": [site],
        }
    )


def _segments(replacement_usd_per_kwh: float) -> list[float]:
    inputs = CostInputs(
        energy_mwh=ENERGY_MWH,
        replacement_cost_usd_per_kwh=replacement_usd_per_kwh,
        soc_min=0.05,
        soc_max=0.95,
        eta_discharge=0.95,
    )
    return list(degradation_costs(inputs, 4).segment_usd_per_mwh)


def _throughput_mwh(result: Any) -> float:
    return float(np.sum(result.sites[SITE].discharge_mw) * 0.25)


def test_dispatch_throughput_falls_when_replacement_cost_rises() -> None:
    results = {}
    for cost in (20.0, 150.0, 400.0):
        result = solve_mod.solve(_scenario(_segments(cost)), solve_mod.SolveOptions())
        assert result.status == "optimal", result.reason
        results[cost] = _throughput_mwh(result)
    assert results[20.0] > 0
    assert results[150.0] < results[20.0]
    assert results[400.0] < results[150.0]


def test_dispatch_warranty_budget_binds_with_positive_shadow_when_tight() -> None:
    segments = _segments(60.0)
    free = solve_mod.solve(_scenario(segments), solve_mod.SolveOptions())
    assert free.status == "optimal", free.reason
    unconstrained_mwh = _throughput_mwh(free)
    assert unconstrained_mwh > 10.0
    # warranty: 10 years, 20 GWh; 9.5 years in, 15 GWh used -> 27.4 MWh a day left
    terms = WarrantyTerms(years=10, throughput_mwh=20000.0, energy_mwh=ENERGY_MWH)
    budget = horizon_budget_mwh(
        terms, age_days=9.5 * 365, used_mwh=15000.0, horizon_h=24.0
    )
    assert budget is not None
    assert budget == pytest.approx(5000.0 / 182.5)
    assert 0 < budget < unconstrained_mwh
    bound = solve_mod.solve(_scenario(segments, budget), solve_mod.SolveOptions())
    assert bound.status == "optimal", bound.reason
    assert _throughput_mwh(bound) == pytest.approx(budget, abs=1e-4)
    shadow = bound.sites[SITE].throughput_shadow_usd_per_mwh
    assert shadow is not None
    assert shadow > 0
    assert bound.objective_usd < free.objective_usd


def test_dispatch_budget_is_slack_with_zero_shadow_when_loose() -> None:
    segments = _segments(60.0)
    loose = solve_mod.solve(_scenario(segments, 1000.0), solve_mod.SolveOptions())
    assert loose.status == "optimal", loose.reason
    shadow = loose.sites[SITE].throughput_shadow_usd_per_mwh
    assert shadow == pytest.approx(0.0, abs=1e-6)
