from __future__ import annotations

import numpy as np
import pytest

from dispatch.solve import solve
from dispatch.twosettle import TwoSettlementPlan, two_settlement
from tests.ops.helpers import NODE, scenario


def _rt(scn, seed=1, sigma=15.0):
    da = np.asarray(scn.markets[NODE].energy, dtype=float)
    return da + np.random.default_rng(seed).normal(0.0, sigma, len(da))


def _plan(result, rt_net=None):
    net = {
        sid: [d - c for c, d in zip(s.charge_mw, s.discharge_mw, strict=True)]
        for sid, s in result.sites.items()
    }
    return TwoSettlementPlan(
        da_net_mw=net,
        reserves_mw={sid: s.reserves_mw for sid, s in result.sites.items()},
        rt_net_mw=rt_net or net,
    )


def test_two_settlement_equals_da_optimum_when_rt_prices_equal_da():
    scn = scenario(n_sites=2)
    best = two_settlement(scn, {NODE: scn.markets[NODE].energy})
    perfect = solve(scn)
    assert best.status == "optimal"
    assert best.objective_usd == pytest.approx(perfect.objective_usd, rel=1e-6)
    settled = two_settlement(scn, {NODE: scn.markets[NODE].energy}, plan=_plan(perfect))
    assert settled.objective_usd == pytest.approx(perfect.objective_usd, rel=1e-6)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_settlement_bounds_every_plan_when_rt_differs(seed):
    scn = scenario()
    rt = _rt(scn, seed)
    best = two_settlement(scn, {NODE: rt})
    # The DA optimum, metered as its DA position or re-run at RT prices.
    perfect = solve(scn)
    follow = two_settlement(scn, {NODE: rt}, plan=_plan(perfect))
    assert follow.objective_usd <= best.objective_usd * (1 + 1e-7)
    parts = follow.da_energy_usd + follow.as_usd + follow.rt_deviation_usd
    assert parts - follow.degradation_usd == pytest.approx(follow.objective_usd)
    assert best.objective_usd > follow.objective_usd  # RT knowledge is worth something


def test_two_settlement_follows_da_and_excludes_hours_without_rt_price():
    scn = scenario()
    rt = _rt(scn)
    rt[[3, 17, 18]] = np.nan
    best = two_settlement(scn, {NODE: rt})
    for i in (3, 17, 18):
        assert best.rt_net_mw["site-01"][i] == pytest.approx(
            best.da_net_mw["site-01"][i], abs=1e-6
        )
    known = rt.copy()
    known[[3, 17, 18]] = 1e4  # a price there would change the figure; NaN does not
    assert two_settlement(scn, {NODE: known}).objective_usd > best.objective_usd


def test_relaxed_bound_is_above_the_exact_bound_when_rt_differs():
    scn = scenario(n_sites=2)
    rt = _rt(scn, 4, sigma=25.0)
    exact = two_settlement(scn, {NODE: rt})
    relaxed = two_settlement(scn, {NODE: rt}, relax=True)
    assert relaxed.bound_usd >= exact.bound_usd * (1 - 1e-9)
    assert exact.bound_usd >= exact.objective_usd * (1 - 1e-9)
    assert relaxed.bound_usd <= exact.bound_usd * 1.05
