"""Every spec example gives the expected status and objective, on every solve path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispatch.scenario import load_scenario
from dispatch.solve import SolveOptions, solve
from dispatch.testing import assert_schedule_feasible, objective_of
from tests.conftest import SPEC_EXAMPLES as EXAMPLES

NAMES = sorted(
    p.name.removesuffix(".scenario.json") for p in EXAMPLES.glob("*.scenario.json")
)


@pytest.fixture(scope="module")
def expected(spec_examples: Path) -> dict[str, dict[str, object]]:
    return json.loads((spec_examples / "expected.json").read_text())


@pytest.mark.parametrize(
    "options",
    [
        SolveOptions(),
        SolveOptions(decompose=False),
        SolveOptions(backend="pyomo"),
    ],
    ids=["decomposed", "monolithic", "pyomo"],
)
@pytest.mark.parametrize("name", NAMES)
def test_solve_matches_expected_when_example_solved(
    name: str,
    options: SolveOptions,
    spec_examples: Path,
    expected: dict[str, dict[str, object]],
) -> None:
    scn = load_scenario(spec_examples / f"{name}.scenario.json")
    want = expected[name]
    result = solve(scn, options)
    assert result.status == want["status"], result.reason
    if want["status"] == "infeasible":
        assert result.reason
        assert result.sites == {}
        return
    assert result.objective_usd == pytest.approx(want["objective_usd"], rel=2e-4)
    assert_schedule_feasible(scn, result)
    assert objective_of(scn, result) == pytest.approx(
        result.objective_usd, rel=1e-6, abs=1e-6
    )
    assert sum(result.revenue_usd.values()) == pytest.approx(
        result.objective_usd, rel=1e-9
    )


def test_solve_names_fleet_capacity_when_capacity_minimum_unreachable(
    spec_examples: Path,
) -> None:
    scn = load_scenario(spec_examples / "fleet-capacity-infeasible.scenario.json")
    result = solve(scn)
    assert result.status == "infeasible"
    assert "fleet: capacity_min_mw" in (result.reason or "")


@pytest.mark.parametrize(
    ("options", "word"),
    [
        (SolveOptions(decompose=False), "cuts"),
        (SolveOptions(decompose=False, exclusivity_cuts=False), "repair"),
        (
            SolveOptions(decompose=False, max_repair_nodes=2, exclusivity_cuts=False),
            "milp",
        ),
        (SolveOptions(decompose=False, max_repair_nodes=0), "milp"),
    ],
    ids=["cuts", "repair", "repair-budget-then-milp", "milp"],
)
def test_solve_is_exact_on_every_path_when_lp_burns_energy_at_negative_prices(
    spec_examples: Path,
    expected: dict[str, dict[str, object]],
    options: SolveOptions,
    word: str,
) -> None:
    scn = load_scenario(spec_examples / "negative-prices.scenario.json")
    result = solve(scn, options)
    assert word in result.solve.path
    assert result.status == "optimal"
    assert result.solve.mip_gap <= 1e-5
    assert result.objective_usd == pytest.approx(
        expected["negative-prices"]["objective_usd"], rel=2e-4
    )
    assert_schedule_feasible(scn, result)


def test_solve_matches_milp_when_repair_disabled(spec_examples: Path) -> None:
    scn = load_scenario(spec_examples / "negative-prices.scenario.json")
    repaired = solve(scn)
    milp = solve(scn, SolveOptions(max_repair_nodes=0))
    assert "milp" in milp.solve.path
    assert repaired.objective_usd == pytest.approx(milp.objective_usd, rel=1e-7)


def test_solve_reports_energy_value_when_lp_path(spec_examples: Path) -> None:
    scn = load_scenario(spec_examples / "one-site-arbitrage.scenario.json")
    result = solve(scn)
    value = result.sites["site-0000"].energy_value_usd_per_mwh
    assert value is not None
    assert len(value) == scn.intervals
    prices = scn.markets["N0"].energy or []
    # Stored energy is worth between the cheapest charge and the dearest discharge.
    assert min(prices) * 0.9 <= min(value) <= max(value) <= max(prices) / 0.9


def test_result_round_trips_when_written_and_read(
    tmp_path: Path, spec_examples: Path
) -> None:
    from dispatch.result import load_result

    scn = load_scenario(spec_examples / "btm-peak-shaving.scenario.json")
    result = solve(scn)
    result.write(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["schema"] == "bess-dispatch-result/1"
    assert set(data["revenue_usd"]) >= {
        "energy",
        "reg_up",
        "degradation",
        "demand_charge",
    }
    site = data["sites"]["site-0000"]
    assert len(site["soc"]) == scn.intervals + 1
    assert len(site["grid_import_mw"]) == scn.intervals
    assert load_result(tmp_path / "r.json").objective_usd == pytest.approx(
        result.objective_usd
    )
