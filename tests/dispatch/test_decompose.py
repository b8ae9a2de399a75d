"""Decomposition: components, parallel solves and the exact fleet capacity coupling."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatch.decompose import components
from dispatch.scenario import Scenario, load_scenario
from dispatch.solve import SolveOptions, solve
from dispatch.testing import assert_schedule_feasible


def _with_capacity_min(scn: Scenario, cmin: float) -> Scenario:
    assert scn.fleet is not None
    return scn.model_copy(
        update={"fleet": scn.fleet.model_copy(update={"capacity_min_mw": cmin})}
    )


def test_components_join_sites_when_they_share_a_poi(spec_examples: Path) -> None:
    scn = load_scenario(spec_examples / "three-sites-stacked.scenario.json")
    assert components(scn) == [["site-0000", "site-0001"], ["site-0002"]]


@pytest.mark.parametrize("cmin", [4.95, 5.05, 5.13])
def test_decomposed_equals_monolithic_when_capacity_minimum_binds(
    spec_examples: Path, cmin: float
) -> None:
    scn = _with_capacity_min(
        load_scenario(spec_examples / "fleet-capacity.scenario.json"), cmin
    )
    mono = solve(scn, SolveOptions(decompose=False))
    deco = solve(scn, SolveOptions())
    assert mono.status == deco.status == "optimal"
    assert "joint" in deco.solve.path
    assert deco.objective_usd == pytest.approx(mono.objective_usd, rel=2e-4)
    assert deco.solve.mip_gap <= 1e-5
    assert_schedule_feasible(scn, deco)
    assert sum(s.capacity_mw for s in deco.sites.values()) >= cmin - 1e-6


def test_decomposed_uses_worker_processes_when_workers_given(
    spec_examples: Path,
) -> None:
    scn = load_scenario(spec_examples / "varied-parameters.scenario.json")
    serial = solve(scn)
    parallel = solve(scn, SolveOptions(workers=2))
    assert parallel.status == "optimal"
    assert parallel.objective_usd == pytest.approx(serial.objective_usd, rel=1e-9)


def test_decomposed_accepts_executor_when_one_is_plugged_in(
    spec_examples: Path,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    scn = _with_capacity_min(
        load_scenario(spec_examples / "fleet-capacity.scenario.json"), 5.05
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        result = solve(scn, SolveOptions(executor=pool))
    assert result.status == "optimal"
    assert result.objective_usd == pytest.approx(
        solve(scn, SolveOptions(decompose=False)).objective_usd, rel=2e-4
    )


def _four_capacity_components(scn: Scenario) -> Scenario:
    extra = [
        s.model_copy(update={"id": f"{s.id}-copy", "soc_initial": 0.6})
        for s in scn.sites
        if s.enrolled("capacity")
    ]
    return scn.model_copy(update={"sites": [*scn.sites, *extra]})


@pytest.mark.parametrize("fraction", [0.975, 0.985, 0.995])
@pytest.mark.parametrize("workers", [1, 2])
def test_lagrangian_equals_monolithic_when_many_capacity_components(
    spec_examples: Path, fraction: float, workers: int
) -> None:
    from dispatch.precheck import max_capacity_mw

    scn = _four_capacity_components(
        load_scenario(spec_examples / "fleet-capacity.scenario.json")
    )
    carry = sum(max_capacity_mw(scn, s) for s in scn.sites)
    scn = _with_capacity_min(scn, round(fraction * carry, 3))
    mono = solve(scn, SolveOptions(decompose=False))
    deco = solve(scn, SolveOptions(workers=workers, joint_capacity_components=0))
    assert mono.status == deco.status == "optimal"
    assert "lagrangian" in deco.solve.path
    assert deco.objective_usd == pytest.approx(mono.objective_usd, rel=2e-4)
    assert_schedule_feasible(scn, deco)


def test_warm_start_from_same_layout_gives_same_optimum_in_fewer_iterations() -> None:
    from dispatch.lp import build_lp
    from dispatch.solve import ExactSolver, lp_shape
    from tests.dispatch.factories import scenario, site

    prices = [30.0 + 25.0 * ((i * 7) % 11) / 10.0 for i in range(48)]
    scn = scenario(
        [
            site("a", p_mw=2.0, e_mwh=4.0, soc=(0.1, 0.9, 0.5, 0.5), eta=(0.95, 0.95)),
            site("b", p_mw=3.0, e_mwh=5.0, soc=(0.1, 0.9, 0.4, 0.4), eta=(0.95, 0.95)),
        ],
        energy=prices,
    )
    donor_lp = build_lp(scn.subset(["a"]))
    lp = build_lp(scn.subset(["b"]))
    assert lp_shape(lp) == lp_shape(donor_lp)
    donor = ExactSolver(donor_lp, SolveOptions())
    assert donor.solve(None).x is not None
    cold = ExactSolver(lp, SolveOptions())
    cold_raw = cold.solve(None)
    warm = ExactSolver(lp, SolveOptions())
    warm.warm_start(donor.basis())
    warm_raw = warm.solve(None)
    assert warm_raw.bound_usd == pytest.approx(cold_raw.bound_usd, rel=1e-9)
    assert cold_raw.path == warm_raw.path == "lp"
    cold_iters = cold.h.getInfo().simplex_iteration_count
    warm_iters = warm.h.getInfo().simplex_iteration_count
    assert warm_iters < cold_iters
