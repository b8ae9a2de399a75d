"""Property tests: random scenarios give feasible schedules and agree across solve paths."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from dispatch.scenario import Scenario
from dispatch.solve import SolveOptions, solve
from dispatch.testing import assert_schedule_feasible, objective_of
from tests.dispatch.factories import random_scenarios

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)


@SETTINGS
@given(scn=random_scenarios())
def test_solve_returns_feasible_schedule_when_scenario_random(scn: Scenario) -> None:
    result = solve(scn)
    if result.status == "infeasible":
        mono = solve(scn, SolveOptions(decompose=False))
        assert mono.status == "infeasible"
        return
    assert result.status == "optimal", result.reason
    assert_schedule_feasible(scn, result)
    assert objective_of(scn, result) == pytest.approx(
        result.objective_usd, rel=1e-6, abs=1e-5
    )


@SETTINGS
@given(scn=random_scenarios())
def test_paths_agree_when_scenario_random(scn: Scenario) -> None:
    deco = solve(scn)
    mono = solve(scn, SolveOptions(decompose=False))
    pyomo = solve(scn, SolveOptions(backend="pyomo"))
    assert deco.status == mono.status == pyomo.status
    if mono.status != "optimal":
        return
    assert deco.objective_usd == pytest.approx(mono.objective_usd, rel=2e-4, abs=1e-4)
    assert pyomo.objective_usd == pytest.approx(mono.objective_usd, rel=2e-4, abs=1e-4)


@SETTINGS
@given(scn=random_scenarios(max_sites=7, coupled=True))
def test_lagrangian_coupling_equals_monolithic_when_capacity_minimum_set(
    scn: Scenario,
) -> None:
    deco = solve(scn, SolveOptions(joint_capacity_components=0))
    mono = solve(scn, SolveOptions(decompose=False))
    assert deco.status == mono.status
    if mono.status != "optimal":
        return
    assert_schedule_feasible(scn, deco)
    assert deco.objective_usd == pytest.approx(mono.objective_usd, rel=2e-4, abs=1e-4)


@SETTINGS
@given(scn=random_scenarios(negative=True))
def test_cuts_and_repair_equal_highs_milp_when_prices_negative(
    scn: Scenario,
) -> None:
    milp = solve(scn, SolveOptions(decompose=False, max_repair_nodes=0))
    cuts = solve(scn, SolveOptions(decompose=False))
    repair = solve(scn, SolveOptions(decompose=False, exclusivity_cuts=False))
    assert cuts.status == repair.status == milp.status
    if milp.status != "optimal":
        return
    for result in (cuts, repair):
        assert "milp" not in result.solve.path
        assert_schedule_feasible(scn, result)
        assert result.objective_usd == pytest.approx(
            milp.objective_usd, rel=1e-6, abs=1e-5
        )
