"""Reserve products beyond the spec's three, defined by the scenario (extension)."""

from __future__ import annotations

import json

import pytest

from dispatch.errors import ScenarioError
from dispatch.result import Result
from dispatch.scenario import parse_scenario
from dispatch.solve import SolveOptions, solve
from dispatch.testing import assert_schedule_feasible, objective_of

PATHS = [
    SolveOptions(),
    SolveOptions(decompose=False),
    SolveOptions(backend="pyomo"),
]


def _data(**overrides: object) -> dict:
    n = 4
    data: dict = {
        "schema": "bess-dispatch-scenario/1",
        "start": "2024-07-02T05:00:00Z",
        "interval_minutes": 60,
        "intervals": n,
        "markets": {
            "N": {
                "energy": [20.0, 25.0, 60.0, 30.0],
                "reg_up": [2.0] * n,
                "ecrs": [5.0] * n,
                "nonspin": [8.0] * n,
            }
        },
        "regulation": {"deploy_up": 0.1, "deploy_down": 0.1},
        "reserve_duration_h": 0.5,
        "products": {
            "ecrs": {"direction": "up", "sustain_h": 1.0},
            "nonspin": {"direction": "up", "sustain_h": 4.0},
        },
        "sites": [
            {
                "id": "a",
                "node": "N",
                "discharge_mw": 10.0,
                "charge_mw": 10.0,
                "energy_mwh": 80.0,
                "soc_min": 0.1,
                "soc_max": 0.9,
                "soc_initial": 0.5,
                "soc_final_min": 0.3,
                "eta_charge": 0.95,
                "eta_discharge": 0.95,
                "services": ["energy", "reg_up", "ecrs", "nonspin"],
                "degradation_usd_per_mwh": [1.0, 3.0],
            }
        ],
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize("options", PATHS, ids=["decomposed", "monolithic", "pyomo"])
def test_new_products_are_dispatched_within_their_sustain_when_scenario_defines_them(
    options: SolveOptions,
) -> None:
    scn = parse_scenario(_data())
    result = solve(scn, options)
    assert result.status == "optimal", result.reason
    assert_schedule_feasible(scn, result)
    assert objective_of(scn, result) == pytest.approx(result.objective_usd, rel=1e-6)
    sched = result.sites["a"]
    ecrs, nonspin = sched.reserve("ecrs"), sched.reserve("nonspin")
    assert max(ecrs) > 0
    assert max(nonspin) > 0
    e = [s * 80.0 for s in sched.soc]
    for i in range(4):
        # Stored energy above soc_min covers every up product for its own duration.
        need = (0.5 * sched.reg_up_mw[i] + 1.0 * ecrs[i] + 4.0 * nonspin[i]) / 0.95
        assert min(e[i], e[i + 1]) - 8.0 >= need - 1e-6
    assert result.revenue_usd["ecrs"] == pytest.approx(5.0 * sum(ecrs))
    assert result.revenue_usd["nonspin"] == pytest.approx(8.0 * sum(nonspin))


def test_both_backends_agree_when_products_carry_different_durations() -> None:
    scn = parse_scenario(_data())
    values = [solve(scn, o).objective_usd for o in PATHS]
    assert values[0] == pytest.approx(values[2], rel=1e-6)
    assert values[1] == pytest.approx(values[2], rel=1e-6)


def test_longer_sustain_earns_less_when_energy_is_short() -> None:
    short = solve(parse_scenario(_data()))
    longer = _data()
    longer["products"]["nonspin"]["sustain_h"] = 8.0
    long_ = solve(parse_scenario(longer))
    assert long_.objective_usd < short.objective_usd - 1.0
    assert sum(long_.sites["a"].reserve("nonspin")) < sum(
        short.sites["a"].reserve("nonspin")
    )


def test_commitment_on_new_product_is_held_when_awarded() -> None:
    data = _data()
    data["sites"][0]["commitments"] = {"reserves_mw": {"ecrs": [3.0] * 4}}
    data["markets"]["N"]["ecrs"] = [0.0] * 4
    scn = parse_scenario(data)
    for options in PATHS:
        result = solve(scn, options)
        assert min(result.sites["a"].reserve("ecrs")) >= 3.0 - 1e-6


def test_result_json_keeps_spec_keys_and_adds_products_when_written() -> None:
    scn = parse_scenario(_data())
    result = solve(scn)
    doc = json.loads(json.dumps(result.to_json_dict()))
    site = doc["sites"]["a"]
    assert {"reg_up_mw", "reg_down_mw", "spin_mw"} <= set(site)
    assert set(site["reserves_mw"]) == {"ecrs", "nonspin"}
    back = Result.model_validate(doc)
    assert back.sites["a"].reserve("nonspin") == result.sites["a"].reserve("nonspin")
    assert back.sites["a"].reg_up_mw == result.sites["a"].reg_up_mw


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"markets": {"N": {"energy": [1.0] * 4, "toy": [1.0] * 4}}},
            r"markets\.N\.toy: unknown field",
        ),
        (
            {"products": {}},
            r"unknown service\(s\) \['ecrs', 'nonspin'\]",
        ),
        (
            {"products": {"reg_up": {"direction": "down"}}},
            r"products\.reg_up\.direction='down'",
        ),
    ],
    ids=["price-of-undefined-product", "service-without-product", "builtin-direction"],
)
def test_scenario_names_the_field_when_products_are_inconsistent(
    change: dict, message: str
) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(_data(**change))


def test_spec_scenario_has_no_products_block_when_written() -> None:
    data = _data(products={}, markets={"N": {"energy": [1.0] * 4}})
    data["sites"][0]["services"] = ["energy", "reg_up"]
    assert "products" not in parse_scenario(data).to_json_dict()
