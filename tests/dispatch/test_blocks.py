"""Hand-checked tiny cases, one or more per constraint group."""

from __future__ import annotations

import pytest

from dispatch.solve import SolveOptions, solve
from dispatch.testing import assert_schedule_feasible, objective_of
from tests.dispatch.factories import scenario, site

BACKENDS = [SolveOptions(), SolveOptions(backend="pyomo")]
IDS = ["matrix", "pyomo"]


def _solve_checked(scn, options):
    result = solve(scn, options)
    assert result.status == "optimal", result.reason
    assert_schedule_feasible(scn, result)
    assert objective_of(scn, result) == pytest.approx(result.objective_usd, abs=1e-6)
    return result


@pytest.mark.parametrize("options", BACKENDS, ids=IDS)
def test_energy_discharges_fully_when_one_interval_priced(
    options: SolveOptions,
) -> None:
    scn = scenario([site(soc=(0.0, 1.0, 0.5, 0.0))], energy=[100.0])
    result = _solve_checked(scn, options)
    assert result.objective_usd == pytest.approx(100.0)
    assert result.sites["a"].discharge_mw == [pytest.approx(1.0)]
    assert result.sites["a"].soc == [pytest.approx(0.5), pytest.approx(0.0)]


@pytest.mark.parametrize("options", BACKENDS, ids=IDS)
def test_energy_buys_low_sells_spike_when_one_price_spike(
    options: SolveOptions,
) -> None:
    scn = scenario(
        [site(e_mwh=1.0, soc=(0.0, 1.0, 0.0, 0.0))], energy=[10.0, 10.0, 100.0, 10.0]
    )
    result = _solve_checked(scn, options)
    assert result.objective_usd == pytest.approx(90.0)
    assert result.sites["a"].discharge_mw[2] == pytest.approx(1.0)
    assert result.revenue_usd["energy"] == pytest.approx(90.0)


@pytest.mark.parametrize("options", BACKENDS, ids=IDS)
def test_power_never_charges_and_discharges_when_price_negative_and_full(
    options: SolveOptions,
) -> None:
    # Full battery at a negative price: the LP relaxation would "burn" energy through
    # the losses (charge and discharge at once); the exact optimum does nothing.
    scn = scenario([site(soc=(0.0, 1.0, 1.0, 0.0), eta=(0.9, 0.9))], energy=[-50.0])
    result = _solve_checked(scn, options)
    assert result.objective_usd == pytest.approx(0.0, abs=1e-6)
    assert any(w in result.solve.path for w in ("milp", "repair", "cuts"))


@pytest.mark.parametrize("options", BACKENDS, ids=IDS)
def test_regulation_award_limited_when_reserve_cannot_be_sustained(
    options: SolveOptions,
) -> None:
    scn = scenario(
        [site(p_mw=10.0, e_mwh=1.0, soc=(0.0, 1.0, 0.5, 0.0), services=("reg_up",))],
        energy=[0.0],
        markets={"N": {"energy": [0.0], "reg_up": [10.0]}},
        reserve_duration_h=1.0,
    )
    result = _solve_checked(scn, options)
    assert result.sites["a"].reg_up_mw == [pytest.approx(0.5)]
    assert result.objective_usd == pytest.approx(5.0)
    assert result.revenue_usd["reg_up"] == pytest.approx(5.0)


@pytest.mark.parametrize("options", BACKENDS, ids=IDS)
def test_capacity_limited_by_stored_energy_when_window_is_long(
    options: SolveOptions,
) -> None:
    scn = scenario(
        [site(p_mw=2.0, e_mwh=4.0, soc=(0.0, 1.0, 0.5, 0.0), services=("capacity",))],
        energy=[0.0] * 4,
        capacity={"price_usd_per_mw": 100.0, "window": [0, 4], "duration_h": 4.0},
    )
    result = _solve_checked(scn, options)
    # 2 MWh must cover cap for min(4 h, 4 h) at the first interval of the window.
    assert result.sites["a"].capacity_mw == pytest.approx(0.5)
    assert result.objective_usd == pytest.approx(50.0)


@pytest.mark.parametrize("options", BACKENDS, ids=IDS)
def test_btm_shaves_only_above_peak_so_far_when_demand_charge(
    options: SolveOptions,
) -> None:
    btm = {
        "load_mw": [5.0, 8.0],
        "energy_usd_per_mwh": [0.0, 0.0],
        "demand_usd_per_mw": 1000.0,
        "peak_so_far_mw": 6.0,
        "export_allowed": False,
    }
    scn = scenario(
        [site(soc=(0.0, 1.0, 0.5, 0.0), services=("peak_shaving",), btm=btm)],
        energy=[0.0, 0.0],
    )
    result = _solve_checked(scn, options)
    # 1 MW of discharge at the peak: new peak 7 MW, 1 MW above the 6 MW already paid for.
    assert result.objective_usd == pytest.approx(-1000.0)
    assert result.revenue_usd["demand_charge"] == pytest.approx(-1000.0)
    assert result.sites["a"].grid_import_mw == [pytest.approx(5.0), pytest.approx(7.0)]


@pytest.mark.parametrize("options", BACKENDS, ids=IDS)
def test_btm_never_exports_when_export_not_allowed(options: SolveOptions) -> None:
    btm = {
        "load_mw": [0.2],
        "energy_usd_per_mwh": [100.0],
        "demand_usd_per_mw": 0.0,
        "peak_so_far_mw": 0.0,
        "export_allowed": False,
    }
    scn = scenario([site(soc=(0.0, 1.0, 1.0, 0.0), services=(), btm=btm)], energy=[0.0])
    result = _solve_checked(scn, options)
    assert result.sites["a"].discharge_mw == [pytest.approx(0.2)]
    assert result.objective_usd == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("options", BACKENDS, ids=IDS)
def test_fleet_poi_group_caps_export_when_sites_share_poi(
    options: SolveOptions,
) -> None:
    sites = [site("a", p_mw=2.0, e_mwh=4.0), site("b", p_mw=2.0, e_mwh=4.0)]
    scn = scenario(
        sites,
        energy=[100.0],
        fleet={
            "poi_groups": [{"sites": ["a", "b"], "export_mw": 3.0, "import_mw": 3.0}]
        },
    )
    result = _solve_checked(scn, options)
    assert result.objective_usd == pytest.approx(300.0)


@pytest.mark.parametrize("options", BACKENDS, ids=IDS)
def test_degradation_takes_shallow_cycle_only_when_deep_one_costs_more(
    options: SolveOptions,
) -> None:
    scn = scenario(
        [site(p_mw=10.0, e_mwh=10.0, soc=(0.0, 1.0, 1.0, 0.0), deg=(10.0, 100.0))],
        energy=[60.0, 0.0],
    )
    result = _solve_checked(scn, options)
    # The shallow 5 MWh earn 60 - 10; the deep ones would earn 60 - 100.
    assert result.sites["a"].discharge_mw[0] == pytest.approx(5.0)
    assert result.objective_usd == pytest.approx(250.0)
    assert result.revenue_usd["degradation"] == pytest.approx(-50.0)


def test_throughput_budget_binds_with_shadow_price_when_set() -> None:
    scn = scenario(
        [
            site(
                p_mw=2.0, e_mwh=4.0, soc=(0.0, 1.0, 1.0, 0.0), throughput_budget_mwh=1.0
            )
        ],
        energy=[50.0, 80.0],
    )
    result = _solve_checked(scn, SolveOptions())
    assert result.objective_usd == pytest.approx(80.0)
    assert result.sites["a"].throughput_shadow_usd_per_mwh == pytest.approx(80.0)


def test_commitments_hold_awards_when_fixed() -> None:
    scn = scenario(
        [
            site(
                p_mw=2.0,
                e_mwh=4.0,
                soc=(0.0, 1.0, 0.5, 0.0),
                services=("energy", "reg_up"),
                commitments={"reg_up_mw": [1.0, 0.0], "net_mw": [None, -1.0]},
            )
        ],
        energy=[50.0, 80.0],
    )
    result = _solve_checked(scn, SolveOptions())
    assert result.sites["a"].reg_up_mw[0] >= 1.0 - 1e-9
    assert result.sites["a"].charge_mw[1] == pytest.approx(1.0)


def test_solve_names_site_and_group_when_iis_needed() -> None:
    # A committed reserve the battery cannot sustain: the pre-checks say nothing, the IIS
    # names the site and the group.
    scn = scenario(
        [
            site(
                p_mw=5.0,
                e_mwh=1.0,
                soc=(0.0, 1.0, 0.5, 0.0),
                services=("reg_up",),
                commitments={"reg_up_mw": [3.0]},
            )
        ],
        energy=[0.0],
        reserve_duration_h=1.0,
    )
    result = solve(scn)
    assert result.status == "infeasible"
    assert "site a" in (result.reason or "")
    assert "reserve sustainability" in (result.reason or "")


@pytest.mark.parametrize(
    ("soc", "match"),
    [
        ((0.1, 0.9, 0.95, 0.0), "site a: energy limits: soc_initial=0.95"),
        ((0.0, 1.0, 0.0, 1.0), "site a: final energy: soc_final_min=1 is unreachable"),
    ],
)
def test_solve_returns_infeasible_when_prechecks_fail(soc, match: str) -> None:
    scn = scenario([site(soc=soc)], energy=[10.0])
    result = solve(scn)
    assert result.status == "infeasible"
    assert match in (result.reason or "")
    assert result.solve.path == "precheck"


def test_solve_returns_feasible_or_optimal_when_time_limit_tiny(spec_examples) -> None:
    from dispatch.scenario import load_scenario

    scn = load_scenario(spec_examples / "negative-prices.scenario.json")
    result = solve(scn, SolveOptions(time_limit_s=1e-3, decompose=False))
    assert result.status in ("optimal", "feasible", "error")
    if result.status in ("optimal", "feasible"):
        assert_schedule_feasible(scn, result)
