"""Soft reserve awards: a shortfall is allowed at the charge-back price, never infeasible."""

from __future__ import annotations

import numpy as np
import pytest

from dispatch.shortfall import reserve_shortfall_mw
from dispatch.solve import SolveOptions, solve
from dispatch.testing import assert_schedule_feasible, objective_of
from tests.dispatch.factories import scenario, site

BACKENDS = [SolveOptions(), SolveOptions(backend="pyomo")]
IDS = ["matrix", "pyomo"]


def _scn(award_mw: float, penalty: float | None, soc0: float = 0.5):
    s = site(
        p_mw=1.0,
        e_mwh=2.0,
        soc=(0.0, 1.0, soc0, 0.0),
        services=("energy", "reg_up"),
    )
    com: dict = {"reg_up_mw": [award_mw] * 2}
    if penalty is not None:
        com["shortfall_usd_per_mw_h"] = penalty
    s["commitments"] = com
    return scenario(
        [s],
        energy=[10.0, 10.0],
        markets={"N": {"energy": [10.0, 10.0], "reg_up": [0.0, 0.0]}},
        reserve_duration_h=1.0,
    )


@pytest.mark.parametrize("options", BACKENDS, ids=IDS)
def test_hard_award_beyond_power_is_infeasible_and_soft_one_is_not(options):
    # 3 MW of reg-up on a 1 MW site cannot be held.
    assert solve(_scn(3.0, None), options).status == "infeasible"
    scn = _scn(3.0, 50.0)
    result = solve(scn, options)
    assert result.status == "optimal", result.reason
    assert_schedule_feasible(scn, result)
    short = reserve_shortfall_mw(scn, result)["a"]["reg_up"]
    # The site holds what it can (at most charge + discharge power) ...
    held = np.asarray(result.sites["a"].reg_up_mw)
    assert np.all(held <= 2.0 + 1e-6)
    np.testing.assert_allclose(short, 3.0 - held, atol=1e-6)
    assert short.sum() > 0
    # ... and the objective, recomputed independently, charges the shortfall.
    assert objective_of(scn, result) == pytest.approx(result.objective_usd, abs=1e-6)


@pytest.mark.parametrize("options", BACKENDS, ids=IDS)
def test_soft_award_is_held_when_the_penalty_beats_the_energy_margin(options):
    # Holding 1 MW of reg-up forgoes discharging (10 $/MWh); the penalty is 50.
    scn = _scn(1.0, 50.0, soc0=1.0)
    result = solve(scn, options)
    assert result.status == "optimal"
    assert reserve_shortfall_mw(scn, result) == {}
    # A penalty below the energy margin: the optimizer sells energy and pays it.
    cheap = _scn(1.0, 1.0, soc0=1.0)
    res2 = solve(cheap, options)
    assert res2.status == "optimal"
    assert sum(v.sum() for v in reserve_shortfall_mw(cheap, res2)["a"].values()) > 0
    assert objective_of(cheap, res2) == pytest.approx(res2.objective_usd, abs=1e-6)


def test_both_backends_agree_on_soft_awards():
    scn = _scn(2.5, 7.0, soc0=0.8)
    a = solve(scn, BACKENDS[0])
    b = solve(scn, BACKENDS[1])
    assert a.objective_usd == pytest.approx(b.objective_usd, abs=1e-6)


def _full_site_scenario(foldback: bool):
    s = site(p_mw=1.0, e_mwh=4.0, soc=(0.0, 1.0, 0.85, 0.0), services=("energy",))
    if foldback:
        s["foldback"] = {"charge_taper_soc": 0.9, "discharge_taper_soc": 0.1}
    return scenario([s], energy=[-20.0, -20.0, -20.0])


@pytest.mark.parametrize("options", BACKENDS, ids=IDS)
def test_foldback_tapers_charging_near_full(options):
    # Paid to charge: without foldback the site charges at full power until full.
    free = solve(_full_site_scenario(False), options)
    free_soc = free.sites["a"].soc
    assert free_soc[-1] == pytest.approx(1.0)  # fills the 0.15 x 4 MWh left
    scn = _full_site_scenario(True)
    result = solve(scn, options)
    assert result.status == "optimal"
    assert_schedule_feasible(scn, result)
    soc = np.asarray(result.sites["a"].soc)
    net = np.asarray(result.sites["a"].charge_mw) - np.asarray(
        result.sites["a"].discharge_mw
    )
    # Each interval's net charge is within the cap at both of its ends.
    cap = 1.0 * (1 - np.maximum(soc[:-1], soc[1:])) / 0.1
    assert np.all(net <= np.minimum(1.0, cap) + 1e-6)
    # From 0.85 the first hour can only reach c = 10 (1 - 0.85 - c/4): SoC 0.957
    # (without the taper: full in the first hour).
    assert soc[1] == pytest.approx(0.85 + 1.5 / 3.5 / 4, abs=1e-6)
    assert soc[-1] < 1.0 - 1e-3
    assert objective_of(scn, result) == pytest.approx(result.objective_usd, abs=1e-6)
