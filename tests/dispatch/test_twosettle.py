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


def _independent_reserve_check(scn, plan):
    """Recompute, outside the model, that the plan's reserves fit each hour's headroom."""
    site = scn.sites[0]
    sid = site.id
    zero = [0.0] * scn.intervals
    ups = [r.name for r in scn.reserves if r.up]
    for i, x in enumerate(plan.da_net_mw[sid]):
        up = sum(plan.reserves_mw[sid].get(p, zero)[i] for p in ups)
        down = plan.reserves_mw[sid].get("reg_down", zero)[i]
        assert x + up <= site.discharge_mw + 1e-6
        assert -x + down <= site.charge_mw + 1e-6


def _repriced(scn, **series):
    """``scn`` with the named price series of NODE replaced."""
    markets = scn.markets[NODE].model_dump(exclude_none=True) | series
    model = type(scn.markets[NODE])
    return scn.model_copy(update={"markets": {NODE: model.model_validate(markets)}})


def test_linked_offers_move_the_up_block_to_the_dearer_product():
    from dispatch.twosettle import clear_linked_offers

    planned_scn = scenario()
    planned = solve(planned_scn)
    plan = _plan(planned)
    sid = "site-01"
    ups = ("reg_up", "spin")
    block = [
        sum(plan.reserves_mw[sid][p][i] for p in ups)
        for i in range(planned_scn.intervals)
    ]
    assert sum(block) > 1.0
    assert sum(plan.reserves_mw[sid]["spin"]) == 0.0
    # At the clearing, spin pays 20 $/MW-h where the plan expected 3: the block goes
    # to spin wherever the plan's energy and reg-down let it (reg-up's deployment
    # balances reg-down's, so not everywhere); never more than the block.
    n = planned_scn.intervals
    actual = _repriced(planned_scn, spin=[20.0] * n)
    cleared = clear_linked_offers(actual, plan)
    assert not isinstance(cleared, str)
    got = cleared.reserves_mw[sid]
    for i in range(planned_scn.intervals):
        assert got["reg_up"][i] + got["spin"][i] <= block[i] + 1e-6
        assert got["reg_down"][i] == pytest.approx(
            plan.reserves_mw[sid]["reg_down"][i], abs=1e-6
        )
    assert sum(got["spin"]) > 0.1 * sum(block)
    assert cleared.da_net_mw == plan.da_net_mw
    _independent_reserve_check(actual, cleared)
    rt = {NODE: actual.markets[NODE].energy}
    before = two_settlement(actual, rt, plan=plan)
    after = two_settlement(actual, rt, plan=cleared)
    assert after.objective_usd > before.objective_usd
    assert after.objective_usd <= two_settlement(actual, rt).bound_usd * (1 + 1e-7)
    # Spin is not deployed, reg-up is: a block held as spin is never awarded as
    # reg-up (it would drain energy the plan did not set aside), however well reg-up
    # pays; reg-up keeps at most its own block.
    dear_reg = _repriced(planned_scn, spin=[0.0] * n, reg_up=[50.0] * n)
    again = clear_linked_offers(dear_reg, cleared)
    assert not isinstance(again, str)
    for i in range(planned_scn.intervals):
        assert again.reserves_mw[sid]["reg_up"][i] <= got["reg_up"][i] + 1e-6
        assert again.reserves_mw[sid]["reg_up"][i] == pytest.approx(
            got["reg_up"][i], abs=1e-6
        )


def test_stochastic_plan_with_one_path_at_the_forecast_is_the_price_taker_plan():
    from dispatch.twosettle import stochastic_plan

    scn = scenario()
    perfect = solve(scn)
    plan = stochastic_plan(scn, {NODE: [list(scn.markets[NODE].energy)]})
    assert plan.status == "optimal"
    assert plan.expected_usd == pytest.approx(perfect.objective_usd, rel=1e-5)
    _independent_reserve_check(scn, plan)


def test_stochastic_plan_keeps_headroom_for_a_real_time_spike():
    from dispatch.twosettle import stochastic_plan

    scn = scenario()
    da = np.asarray(scn.markets[NODE].energy, dtype=float)
    spike = da.copy()
    spike[18] += 3000.0
    calm = da.copy()
    calm[18] -= 3000.0 / 9  # the paths average to the forecast
    paths = [list(spike)] + [list(calm)] * 9
    plan = stochastic_plan(scn, {NODE: paths})
    taker = _plan(solve(scn))
    sid = "site-01"
    ups = [r.name for r in scn.reserves if r.up]

    def head(p):
        return (
            scn.sites[0].discharge_mw
            - p.da_net_mw[sid][18]
            - sum(p.reserves_mw[sid][q][18] for q in ups)
        )

    assert head(taker) == pytest.approx(0.0, abs=1e-6)  # all headroom sold
    assert head(plan) > 1.0  # one path in ten at +3000 $/MWh is worth keeping room for
    _independent_reserve_check(scn, plan)


def test_plan_that_gave_awards_up_is_paid_for_them_and_deploys_only_what_it_held():
    scn = scenario()
    site = scn.sites[0]
    sid, n, dt_h = site.id, scn.intervals, scn.delta_h
    plan = _plan(solve(scn))
    awards = plan.reserves_mw[sid]
    loss = site.eta_charge * site.eta_discharge
    # An hour with both regulation awards; the plant gives up part of each so that
    # the deployed energy, and so the SoC path, is unchanged (a_dn·η_c·δ_dn =
    # a_up·δ_up/η_d with a_up = a_dn).
    h = next(
        i for i in range(n) if awards["reg_up"][i] > 2 and awards["reg_down"][i] > 2
    )
    d_up = 0.5 * min(awards["reg_up"][h], awards["reg_down"][h] * loss)
    d_dn = d_up / loss
    held = {sid: {k: [float(v) for v in series] for k, series in awards.items()}}
    held[sid]["reg_up"][h] -= d_up
    held[sid]["reg_down"][h] -= d_dn
    rt = _rt(scn, 5)
    gave_up = TwoSettlementPlan(
        plan.da_net_mw, plan.reserves_mw, plan.rt_net_mw, held_mw=held
    )
    value = two_settlement(scn, {NODE: rt}, plan=gave_up)
    full = two_settlement(scn, {NODE: rt}, plan=plan)
    assert value.status == full.status == "optimal"
    # Awards are paid in full at DA and reported as awarded ...
    assert value.as_usd == pytest.approx(full.as_usd, rel=1e-9)
    for k, series in awards.items():
        assert value.reserves_mw[sid][k] == pytest.approx(list(series), abs=1e-6)
    # ... only held regulation is deployed (recomputed outside the model) ...
    a_up, a_dn = scn.regulation.deploy_up, scn.regulation.deploy_down
    x = np.asarray(plan.da_net_mw[sid], dtype=float)
    metered = np.asarray(plan.rt_net_mw[sid], dtype=float)
    metered += a_up * np.asarray(held[sid]["reg_up"]) - a_dn * np.asarray(
        held[sid]["reg_down"]
    )
    assert value.rt_deviation_usd == pytest.approx(
        dt_h * float(np.dot(rt, metered - x)), rel=1e-6
    )
    assert value.rt_deviation_usd != pytest.approx(full.rt_deviation_usd, rel=1e-9)
    # ... and, charged back at the clearing price, the strategy stays below the bound.
    prices = scn.markets[NODE].model_dump()
    charge = dt_h * (prices["reg_up"][h] * d_up + prices["reg_down"][h] * d_dn)
    best = two_settlement(scn, {NODE: rt})
    assert value.objective_usd - charge <= best.objective_usd * (1 + 1e-7)


def test_ancillary_by_product_adds_up_when_sites_are_solved_apart():
    from dispatch.decompose import components

    scn = scenario(n_sites=2)
    assert len(components(scn)) == 2  # no shared POI: one solve per site
    value = two_settlement(scn, {NODE: _rt(scn, 6)})
    assert value.as_usd > 0
    assert set(value.as_by_product_usd) == set(scn.reserve_names)
    assert sum(value.as_by_product_usd.values()) == pytest.approx(value.as_usd)
