from __future__ import annotations

import datetime as dt
import itertools

import pytest

from dispatch.bidcheck import check_bid_set, delivery_refusals, rule_refusals
from dispatch.bids import Bid, build_bids, energy_curve, parse_bids, with_energy_prices
from dispatch.errors import DispatchInputError
from dispatch.markets import load_market_rules
from dispatch.solve import solve
from tests.ops.helpers import NODE, scenario

RULES = load_market_rules("ERCOT")
DAY = dt.date(2024, 7, 1)
GOOD_CURVE = ((-10.0, 10.0), (0.0, 20.0), (10.0, 40.0))


def _energy(curve, hour=1, site="site-01"):
    return Bid(site, "energy", hour, tuple(curve))


def _rules_of(bids, scn=None):
    return [r.rule for r in rule_refusals(bids, scn or scenario(), RULES)]


@pytest.fixture(scope="module")
def planned():
    scn = scenario()
    result = solve(scn)
    alts = []
    for factor in (0.7, 1.4):
        alt = with_energy_prices(
            scn, {NODE: [p * factor for p in scn.markets[NODE].energy]}
        )
        alts.append((alt, solve(alt)))
    return scn, result, build_bids(scn, result, RULES, DAY, alternatives=alts)


def test_build_bids_pass_the_check_when_built_from_a_feasible_plan(planned):
    scn, _, bid_set = planned
    assert check_bid_set(bid_set.bids, scn, RULES) == []


def test_build_bids_make_monotone_curves_of_at_most_ten_points_when_built(planned):
    _, _, bid_set = planned
    curves = [b.curve for b in bid_set.bids if b.product == "energy"]
    assert len(curves) == 24
    for curve in curves:
        assert 1 <= len(curve) <= RULES.curve_max_points
        for (mw0, p0), (mw1, p1) in itertools.pairwise(curve):
            assert mw1 >= mw0
            assert p1 >= p0


def test_build_bids_clear_the_planned_quantity_when_price_is_the_forecast(planned):
    scn, result, bid_set = planned
    sched = result.sites["site-01"]
    prices = scn.markets[NODE].energy
    for bid in (b for b in bid_set.bids if b.product == "energy"):
        h = bid.hour_ending - 1
        below = [mw for mw, p in bid.curve if p <= prices[h]]
        cleared = below[-1] if below else bid.curve[0][0]
        # To the market's MW step (0.1 MW in ERCOT), inside the range left by AS.
        assert cleared == pytest.approx(
            sched.discharge_mw[h] - sched.charge_mw[h], abs=RULES.curve_mw_step
        )


def test_build_bids_offer_the_planned_as_mw_when_plan_carries_reserves(planned):
    _, result, bid_set = planned
    sched = result.sites["site-01"]
    offered = {(b.product, b.hour_ending): b.curve[0][0] for b in bid_set.bids}
    for h, mw in enumerate(sched.reg_up_mw):
        if mw >= RULES.as_mw_step:
            # Rounded down to the 0.1 MW grid: never more than planned.
            assert mw - RULES.as_mw_step < offered[("reg_up", h + 1)] <= mw + 1e-9


def test_energy_curve_is_thinned_to_the_limit_when_many_points():
    points = [(float(mw), float(10 + mw)) for mw in range(-9, 10)]
    curve = energy_curve(
        plan_points=points,
        min_mw=-10,
        max_mw=10,
        energy_value_usd_per_mwh=30.0,
        eta_charge=0.95,
        eta_discharge=0.95,
        degradation_usd_per_mwh=[1, 2, 3, 4, 5, 6, 7, 8],
        rules=RULES,
    )
    assert len(curve) <= 10
    assert curve[0][0] == -10
    assert curve[-1][0] == 10


def test_rule_check_accepts_when_bid_keeps_the_rules():
    assert _rules_of([_energy(GOOD_CURVE)]) == []


def test_rule_check_refuses_when_curve_not_monotone():
    refusals = rule_refusals(
        [_energy([(-10, 30), (0, 20), (10, 40)])], scenario(), RULES
    )
    assert [r.rule for r in refusals] == ["curve_monotone"]
    assert "site site-01, hour_ending 1, energy" in refusals[0].message


def test_rule_check_refuses_when_quantity_decreases():
    assert _rules_of([_energy([(0, 10), (-5, 20)])]) == ["curve_monotone"]


def test_rule_check_refuses_when_too_many_points():
    curve = [(-10 + 2 * k, 10.0 + k) for k in range(11)]
    refusals = rule_refusals([_energy(curve)], scenario(), RULES)
    assert [r.rule for r in refusals] == ["curve_points"]
    assert "11 points; ERCOT takes 2 to 10" in refusals[0].message


def test_rule_check_refuses_when_energy_curve_is_a_single_point():
    assert _rules_of([_energy([(0.0, 20.0)])]) == ["curve_points"]


def test_rule_check_refuses_when_off_the_markets_grid():
    refusals = rule_refusals(
        [
            _energy([(-10, 10), (4.067383796, 20)]),
            Bid("site-01", "reg_up", 2, ((1.0, 0.123),)),
        ],
        scenario(),
        RULES,
    )
    assert [r.rule for r in refusals] == ["precision", "precision"]
    assert (
        "4.067383796 MW is not a multiple of the market's 0.1 MW" in refusals[0].message
    )
    assert "price 0.123 is not a multiple of the market's 0.01" in refusals[1].message
    # 15.28 computed as 1528 * 0.01 = 15.280000000000001 is on the grid.
    assert _rules_of([_energy([(-10.0, 1528 * 0.01), (10.0, 20.0)])]) == []


def test_rule_check_refuses_when_three_points_share_a_price():
    assert _rules_of([_energy([(-10, 20), (0, 20), (10, 20)])]) == ["curve_repeats"]


def test_rule_check_refuses_when_curve_exceeds_site_power():
    refusals = rule_refusals([_energy([(-10, 10), (12, 40)])], scenario(), RULES)
    assert [r.rule for r in refusals] == ["power_limit"]
    assert "-10..10 MW" in refusals[0].message


def test_rule_check_refuses_when_price_above_cap():
    assert _rules_of([_energy([(-10, 10), (10, 9000)])]) == ["price_bounds"]


def test_rule_check_refuses_when_as_offer_above_duration_limit():
    # 20 MWh, band 0.9 -> 18 MWh usable; 0.5 h sustain and 20 MW of power cap it at 20 MW.
    bid = Bid("site-01", "reg_up", 5, ((15.0, 1.0), (6.0, 2.0)))
    refusals = rule_refusals([bid], scenario(), RULES)
    assert [r.rule for r in refusals] == ["as_limit"]
    assert "21 MW offered exceeds" in refusals[0].message


def test_rule_check_refuses_when_too_many_as_blocks():
    bid = Bid("site-01", "reg_down", 2, tuple((1.0, float(k)) for k in range(6)))
    assert _rules_of([bid]) == ["as_blocks"]


def test_rule_check_refuses_when_site_not_enrolled():
    scn = scenario(services=("energy",))
    assert _rules_of([Bid("site-01", "spin", 3, ((2.0, 1.0),))], scn) == ["enrolment"]


def test_rule_check_refuses_when_product_not_in_market():
    bid = Bid("site-01", "frrs_up", 3, ((2.0, 1.0),))
    assert _rules_of([bid]) == ["product"]


def test_rule_check_refuses_when_hour_outside_the_day():
    assert _rules_of([_energy(GOOD_CURVE, hour=25)]) == ["hour"]


def test_rule_check_refuses_when_site_unknown_or_bid_duplicated():
    bids = [_energy(GOOD_CURVE), _energy(GOOD_CURVE), _energy(GOOD_CURVE, site="ghost")]
    assert _rules_of(bids) == ["duplicate", "site"]


def test_rule_check_without_scenario_checks_only_curve_rules():
    bids = [_energy([(-50, 10), (50, 20)], site="anything")]
    assert rule_refusals(bids, None, RULES) == []
    bad = [_energy([(-50, 30), (50, 20)], site="anything")]
    assert [r.rule for r in rule_refusals(bad, None, RULES)] == ["curve_monotone"]


def test_delivery_refuses_when_reg_up_exceeds_stored_energy():
    # Starting at soc_min, 8 MW of reg_up for 0.5 h needs 4.2 MWh above soc_min at once.
    scn = scenario(soc_initial=0.05)
    bids = [Bid("site-01", "reg_up", 1, ((8.0, 1.0),)), _energy([(-2, 10), (0, 20)])]
    refusals = delivery_refusals(bids, scn, RULES)
    assert [(r.site_id, r.hour_ending, r.rule) for r in refusals] == [
        ("site-01", 1, "energy_up_cover")
    ]
    assert "if all bids cleared" in refusals[0].message


def test_delivery_refuses_when_reg_down_has_no_room():
    scn = scenario(soc_initial=0.95)
    bids = [Bid("site-01", "reg_down", 3, ((9.0, 1.0),))]
    refusals = delivery_refusals(bids, scn, RULES)
    # Hours 1-2 carry no bid (net 0), so the site is still full at hour 3.
    assert [(r.hour_ending, r.rule) for r in refusals] == [(3, "energy_down_room")]


def test_delivery_refuses_at_the_hour_energy_runs_out_when_reserves_last():
    # 6 MW reg_up every hour from 10 MWh: the curve forces 2 MW discharge (and reg_up
    # deploys 10 %), so stored energy falls 2.74 MWh an hour below the 4.16 MWh cover
    # by the end of hour 3.
    scn = scenario()
    bids = []
    for h in range(1, 25):
        bids.append(Bid("site-01", "reg_up", h, ((6.0, 1.0),)))
        bids.append(_energy([(2.0, 10), (2.0, 20)], hour=h))
    refusals = delivery_refusals(bids, scn, RULES)
    assert [(r.hour_ending, r.rule) for r in refusals] == [(3, "energy_up_cover")]


def test_delivery_refuses_when_power_headroom_is_short():
    bids = [
        Bid("site-01", "reg_up", 2, ((8.0, 1.0),)),
        _energy([(5, 10), (10, 20)], hour=2),
    ]
    refusals = delivery_refusals(bids, scenario(), RULES)
    assert [(r.hour_ending, r.rule) for r in refusals] == [(2, "power_headroom")]


def test_delivery_counts_existing_awards_when_commitments_given():
    # From 5 MWh, 5 MW of spin alone fits; with 4 MW of reg_up already awarded the
    # 0.5 h cover (1 + 0.5 * 9 / 0.95 = 5.74 MWh) does not.
    spin = [Bid("site-01", "spin", 1, ((5.0, 1.0),))]
    assert delivery_refusals(spin, scenario(soc_initial=0.25), RULES) == []
    awarded = scenario(soc_initial=0.25, commitments={"reg_up_mw": [4.0] * 24})
    refusals = delivery_refusals(spin, awarded, RULES)
    assert [(r.hour_ending, r.rule) for r in refusals] == [(1, "energy_up_cover")]


def test_parse_bids_names_the_field_when_curve_malformed():
    with pytest.raises(DispatchInputError, match=r"bids\[0\]\.curve\[1\]"):
        parse_bids(
            {
                "bids": [
                    {
                        "site_id": "a",
                        "product": "energy",
                        "hour_ending": 1,
                        "curve": [[0, 1], [1]],
                    }
                ]
            }
        )
    with pytest.raises(DispatchInputError, match=r"bids\[0\]\.product='capacity'"):
        parse_bids(
            {
                "bids": [
                    {
                        "site_id": "a",
                        "product": "capacity",
                        "hour_ending": 1,
                        "curve": [[0, 1]],
                    }
                ]
            }
        )


def test_check_scenario_leaves_out_a_poi_group_of_another_market_when_awards_are_checked() -> (
    None
):
    # check_awards builds the market's scenario from the fleet's sites of that market:
    # the example fleet's ERCOT POI group has no CAISO site and must not be in it.
    from dispatch.markets import load_market_rules
    from fleet.fleetfile import load_fleet
    from fleet.ops.bids import check_scenario
    from tests.conftest import REPO_ROOT

    fleet = load_fleet(REPO_ROOT / "deploy" / "examples" / "fleet.toml")
    assert fleet.poi_groups
    for market in ("CAISO", "ERCOT"):
        mine = [s for s in fleet.sites if s.market.value == market]
        scn = check_scenario(
            fleet.model_copy(update={"sites": mine}),
            load_market_rules(market),
            dt.date(2025, 4, 9),
        )
        groups = scn.fleet.poi_groups if scn.fleet is not None else []
        assert all(g.sites for g in groups)
        assert bool(groups) == (market == "ERCOT")
