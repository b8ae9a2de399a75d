from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from dispatch.markets import load_market_rules
from dispatch.solve import solve
from fleet.errors import FleetInputError
from fleet.ops.awards import (
    AwardIn,
    AwardRefusedError,
    AwardSetIn,
    awards_from_bids,
    check_awards,
    commitments_from_awards,
    latest_awards,
    store_awards,
)
from fleet.ops.bids import check_bid_set, push_bid_set
from fleet.ops.dayahead import run_dayahead
from fleet.ops.scenario_builder import (
    ScenarioInputs,
    SiteState,
    build_scenario,
    operating_day_start,
)
from fleet.store.bids import latest_accepted_bid_set
from fleet.store.schedules import get_schedule, list_versions
from fleet.store.sites import save_fleet
from tests.factories import battery_data, make_fleet, site_data
from tests.ops.helpers import NODE, daily_prices, fleet

RULES = load_market_rules("ERCOT")
DAY = dt.date(2024, 7, 2)
NOW = dt.datetime(2024, 7, 1, 14, 30, tzinfo=dt.UTC)


def _prices(hours: int = 24) -> dict[str, dict[str, list[float]]]:
    return {
        NODE: {
            "energy": daily_prices(hours, spike=50.0),
            "reg_up": [6.0] * hours,
            "reg_down": [4.0] * hours,
            "spin": [3.0] * hours,
        }
    }


def _dayahead(engine, states=None):
    return run_dayahead(
        engine,
        fleet(2),
        RULES,
        DAY,
        now=NOW,
        prices=_prices(),
        quantile_prices={"p10": {NODE: daily_prices(24, shift=-10)}},
        states=states or {"site-01": SiteState(soc=0.5), "site-02": SiteState(soc=0.3)},
    )


def test_run_dayahead_stores_a_new_schedule_version_each_run(engine):
    first = _dayahead(engine)
    second = _dayahead(engine)
    assert (first.version, second.version) == (1, 2)
    assert list_versions(engine, market="ERCOT", operating_day=DAY) == [1, 2]
    stored = get_schedule(engine, market="ERCOT", operating_day=DAY, version=1)
    assert stored is not None
    assert stored.status == "optimal"
    assert stored.scenario["sites"][1]["soc_initial"] == pytest.approx(0.3)


def test_run_dayahead_builds_bids_the_fleet_can_deliver(engine):
    save_fleet(engine, fleet(2))
    outcome = _dayahead(engine)
    assert outcome.bids is not None
    payload = outcome.bids.to_payload()
    assert check_bid_set("ERCOT", DAY, payload) is None
    assert check_bid_set("ERCOT", DAY, payload, engine=engine, now=NOW) is None


def test_run_dayahead_stores_nothing_when_the_solve_fails(engine):
    # Site 2 charges at 0.1 MW only but must end the day at 90 % from 20 %.
    states = {"site-01": SiteState(soc=0.5), "site-02": SiteState(soc=0.2)}
    slow = battery_data(charge_mw=0.1, soc_initial=0.9)
    bad = make_fleet(
        2, sites=[site_data("site-01"), site_data("site-02", battery=slow)]
    )
    outcome = run_dayahead(
        engine,
        bad,
        RULES,
        DAY,
        now=NOW,
        prices=_prices(),
        quantile_prices={},
        states=states,
    )
    assert outcome.version is None
    assert outcome.status == "infeasible"
    assert "site-02" in (outcome.reason or "")
    assert list_versions(engine, market="ERCOT", operating_day=DAY) == []


def test_push_bid_set_accepts_with_a_version_when_deliverable(engine):
    outcome = _dayahead(engine)
    stored, refusals = push_bid_set(
        engine, fleet(2), RULES, DAY, outcome.bids.to_payload(), submitted_by="test"
    )
    assert refusals == []
    assert (stored.status, stored.version) == ("accepted", 1)
    assert (
        latest_accepted_bid_set(engine, market="ERCOT", operating_day=DAY).version == 1
    )


def test_push_bid_set_refuses_with_site_hour_and_constraint_when_undeliverable(engine):
    payload = {
        "bids": [
            {
                "site_id": "site-02",
                "product": "reg_up",
                "hour_ending": 1,
                "curve": [[9.0, 1.0]],
            }
        ]
    }
    states = {"site-02": SiteState(soc=0.1)}
    stored, refusals = push_bid_set(
        engine, fleet(2), RULES, DAY, payload, submitted_by="test", states=states
    )
    assert stored.status == "refused"
    assert stored.refusal_reason.startswith(
        "energy_up_cover: site site-02, hour_ending 1:"
    )
    assert [(r.site_id, r.hour_ending) for r in refusals] == [("site-02", 1)]
    assert latest_accepted_bid_set(engine, market="ERCOT", operating_day=DAY) is None


def test_check_bid_set_hook_refuses_rule_breaks_without_a_store():
    payload = {
        "bids": [
            {
                "site_id": "site-01",
                "product": "energy",
                "hour_ending": 1,
                "curve": [[-5.0, 10.0], [0.0, 10.0], [5.0, 10.0]],
            }
        ]
    }
    reason = check_bid_set("ERCOT", DAY, payload)
    assert reason is not None
    assert reason.startswith("curve_repeats: site site-01, hour_ending 1, energy")
    assert "no rules file" in (check_bid_set("NYISO", DAY, payload) or "")


def test_commitments_from_awards_spread_hourly_awards_onto_the_grid():
    start = operating_day_start(RULES, DAY)
    awards = [
        AwardIn(
            site_id="site-01",
            ts=start,
            product="energy",
            award_mw=4.0,
            unit="usd_per_mwh",
        ),
        AwardIn(
            site_id="site-01",
            ts=start + dt.timedelta(hours=1),
            product="reg_up",
            award_mw=3.0,
            unit="usd_per_mw",
        ),
    ]
    com = commitments_from_awards(
        awards, start=start, interval_minutes=15, intervals=12
    )
    site = com["site-01"]
    assert site.net_mw == [4.0] * 4 + [None] * 8
    assert site.reg_up_mw == [0.0] * 4 + [3.0] * 4 + [0.0] * 4


def test_awards_are_honoured_when_fixed_as_commitments(engine):
    outcome = _dayahead(engine)
    energy = outcome.scenario.markets[NODE].energy
    award_set = awards_from_bids(
        outcome.bids, RULES, {"site-01": energy, "site-02": energy}
    )
    push_bid_set(
        engine, fleet(2), RULES, DAY, outcome.bids.to_payload(), submitted_by="test"
    )
    check_awards(engine, award_set, RULES, DAY, fleet(2))
    assert store_awards(engine, award_set, RULES, DAY) == len(award_set.awards)
    frame = latest_awards(engine, RULES, DAY)
    start = operating_day_start(RULES, DAY)
    com = commitments_from_awards(frame, start=start, interval_minutes=60, intervals=24)
    # Re-plan with very different prices: the awarded quantities must not move.
    flipped = {NODE: {**_prices()[NODE], "energy": daily_prices(24, shift=40)[::-1]}}
    scn = build_scenario(
        fleet(2),
        RULES,
        ScenarioInputs(
            start=start,
            interval_minutes=60,
            intervals=24,
            prices=flipped,
            states={"site-01": SiteState(soc=0.5), "site-02": SiteState(soc=0.3)},
            commitments=com,
        ),
    )
    result = solve(scn)
    assert result.status == "optimal", result.reason
    for row in frame.itertuples():
        sched = result.sites[row.site_id]
        h = int((pd.Timestamp(row.ts) - pd.Timestamp(start)) / pd.Timedelta(hours=1))
        if row.product == "energy":
            assert sched.discharge_mw[h] - sched.charge_mw[h] == pytest.approx(
                row.award_mw, abs=1e-5
            )
        else:
            assert getattr(sched, f"{row.product}_mw")[h] >= row.award_mw - 1e-5


def test_check_awards_refuses_when_outside_the_operating_day(engine):
    late = operating_day_start(RULES, DAY + dt.timedelta(days=1))
    award_set = AwardSetIn(
        version=1,
        awards=[
            AwardIn(
                site_id="site-01",
                ts=late,
                product="spin",
                award_mw=1.0,
                unit="usd_per_mw",
            )
        ],
    )
    with pytest.raises(
        FleetInputError, match=r"awards\[0\]: site site-01, spin, .*ts=.* is not the"
    ) as info:
        check_awards(engine, award_set, RULES, DAY, fleet(2))
    assert info.value.refusals[0].field == "ts"


def test_run_dayahead_when_due_plans_tomorrow_at_the_configured_lead(engine):
    from fleet.ops.clock import AcceleratedClock
    from fleet.ops.dayahead import run_dayahead_when_due
    from fleet.store.forecasts import insert_price_forecasts

    start = operating_day_start(RULES, DAY)
    ts = pd.date_range(start, periods=24, freq="h")
    rows = []
    for node, product, values in [
        (NODE, "da_energy", daily_prices(24, spike=50.0)),
        ("SYSTEM", "reg_up", [6.0] * 24),
        ("SYSTEM", "reg_down", [4.0] * 24),
        ("SYSTEM", "rrs_spin", [3.0] * 24),
    ]:
        for t, v in zip(ts, values, strict=True):
            rows.append(
                {
                    "market": "ERCOT",
                    "node": node,
                    "product": product,
                    "issue_time": dt.datetime(2024, 7, 1, 14, 0, tzinfo=dt.UTC),
                    "ts": t,
                    "horizon_h": (t - pd.Timestamp("2024-07-01T14:00Z"))
                    / pd.Timedelta(hours=1),
                    "p10": v - 5,
                    "p50": v,
                    "p90": v + 5,
                    "model_version": "test",
                    "unit": "usd_per_mwh" if product == "da_energy" else "usd_per_mw",
                }
            )
    insert_price_forecasts(engine, pd.DataFrame(rows))
    # 09:20 CDT on D-1: the cycle is due at 09:30 (30 min before the 10:00 close), half
    # a wall second away.
    clock = AcceleratedClock(dt.datetime(2024, 7, 1, 14, 20, tzinfo=dt.UTC), 1200.0)
    outcomes = run_dayahead_when_due(
        engine, fleet(2), RULES, clock, lead_minutes=30, cycles=1
    )
    assert [(o.operating_day, o.version) for o in outcomes] == [(DAY, 1)]
    assert outcomes[0].bids is not None


def test_latest_site_states_derate_site_when_open_critical_alert(engine):
    from fleet.ops.dayahead import latest_site_states
    from fleet.store.alerts import raise_alert

    raise_alert(
        engine,
        site_id="site-01",
        dev_id="bank1",
        kind="thermal_outlier",
        severity="critical",
        detail={"action": "inspect the string's cooling"},
        now=NOW,
    )
    states = latest_site_states(
        engine, ["site-01", "site-02"], now_ms=0, stale_after_ms=1
    )
    assert states["site-01"].power_fraction == pytest.approx(0.5)
    assert states["site-02"].power_fraction == pytest.approx(1.0)


def test_build_scenario_scales_site_power_when_power_fraction_below_one():
    from fleet.ops.scenario_builder import site_fields

    site = fleet(1).sites[0]
    full = site_fields(site, SiteState(soc=0.5))
    derated = site_fields(site, SiteState(soc=0.5, power_fraction=0.5))
    excluded = site_fields(site, SiteState(soc=0.5, power_fraction=0.0))
    assert derated["discharge_mw"] == pytest.approx(full["discharge_mw"] / 2)
    assert derated["charge_mw"] == pytest.approx(full["charge_mw"] / 2)
    assert (excluded["charge_mw"], excluded["discharge_mw"]) == (0.0, 0.0)


# --- awards checked against the accepted bid set and the sites' limits -------------


def _big_fleet():
    """site-01: 100 MW / 200 MWh; site-02: the 10 MW / 20 MWh default."""
    big = site_data(
        "site-01",
        poi={"export_mw": 100.0, "import_mw": 100.0},
        battery=battery_data(
            charge_mw=100.0, discharge_mw=100.0, energy_mwh=200.0, strings=530
        ),
    )
    return make_fleet(2, sites=[big, site_data("site-02")])


def _bid(site, product, hour, curve):
    return {"site_id": site, "product": product, "hour_ending": hour, "curve": curve}


def _award(site, product, hour, mw):
    unit = "usd_per_mwh" if product == "energy" else "usd_per_mw"
    ts = operating_day_start(RULES, DAY) + dt.timedelta(hours=hour - 1)
    return AwardIn(site_id=site, ts=ts, product=product, award_mw=mw, unit=unit)


def _accepted(engine, bids, version=None):
    stored, refusals = push_bid_set(
        engine,
        _big_fleet(),
        RULES,
        DAY,
        {"bids": bids},
        submitted_by="test",
        states={"site-01": SiteState(soc=0.5), "site-02": SiteState(soc=0.5)},
        version=version,
    )
    assert refusals == [], refusals
    return stored


BIDS = [
    _bid("site-01", "energy", 1, [[-50.0, 10.0], [50.0, 40.0]]),
    _bid("site-01", "reg_up", 1, [[20.0, 1.0], [10.0, 2.0]]),
    _bid("site-01", "reg_down", 1, [[30.0, 1.0]]),
    _bid("site-02", "energy", 1, [[-5.0, 10.0], [0.0, 20.0], [5.0, 40.0]]),
]


def test_check_awards_refuses_5000_mw_reg_up_when_site_has_100_mw(engine):
    _accepted(engine, BIDS)
    award_set = AwardSetIn(version=1, awards=[_award("site-01", "reg_up", 1, 5000.0)])
    with pytest.raises(
        AwardRefusedError,
        match=r"awards\[0\]: site site-01, reg_up, hour_ending 1: award_mw=5000 "
        r"exceeds the site's 200 MW",
    ) as info:
        check_awards(engine, award_set, RULES, DAY, _big_fleet())
    assert (info.value.refusals[0].index, info.value.refusals[0].field) == (
        0,
        "award_mw",
    )
    assert latest_awards(engine, RULES, DAY).empty


def test_check_awards_refuses_when_no_accepted_bid_set_for_the_day(engine):
    award_set = AwardSetIn(version=1, awards=[_award("site-01", "energy", 1, 5.0)])
    with pytest.raises(
        AwardRefusedError, match=r"no bid set ERCOT 2024-07-02 version=1"
    ):
        check_awards(engine, award_set, RULES, DAY, _big_fleet())
    # A refused bid set does not count either.
    bad = {"bids": [_bid("site-02", "reg_up", 1, [[9.0, 1.0]])]}
    stored, refusals = push_bid_set(
        engine,
        _big_fleet(),
        RULES,
        DAY,
        bad,
        submitted_by="test",
        states={"site-02": SiteState(soc=0.06)},
    )
    assert stored.status == "refused"
    assert refusals
    with pytest.raises(AwardRefusedError, match=r"version=1 was refused, not accepted"):
        check_awards(engine, award_set, RULES, DAY, _big_fleet())


@pytest.mark.parametrize(
    ("award", "match"),
    [
        (
            ("site-01", "reg_up", 1, 31.0),
            r"upward reserves awarded 31 MW exceed the 30 MW of the linked blocks",
        ),
        (("site-01", "energy", 1, 60.0), r"outside the bid curve's -50\.\.50 MW"),
        (("site-02", "spin", 1, 5.0), r"offered no upward block here"),
        (
            ("site-01", "nonspin", 1, 5.0),
            r"site is not enrolled in nonspin|sustained >= 4 h awarded 5 MW",
        ),
        (("site-02", "reg_up", 1, -1.0), r"award_mw=-1 must be >= 0"),
        (("site-02", "energy", 1, -11.0), r"outside the site's -10\.\.10 MW"),
        (("site-09", "energy", 1, 1.0), r"site_id='site-09' is not a ERCOT site"),
    ],
)
def test_check_awards_refuses_naming_site_product_hour_when_beyond_the_bids(
    engine, award, match
):
    _accepted(engine, BIDS)
    award_set = AwardSetIn(version=1, awards=[_award(*award)])
    with pytest.raises(AwardRefusedError, match=match) as info:
        check_awards(engine, award_set, RULES, DAY, _big_fleet())
    assert f"site {award[0]}, {award[1]}, hour_ending 1" in str(info.value)


def test_check_awards_accepts_a_linked_upward_block_awarded_to_another_product(
    engine,
):
    # ERCOT links the upward products in one offer: the 30 MW offered as reg-up may
    # be awarded as spin (same sustain), in part or whole, but not beyond the block.
    _accepted(engine, BIDS)
    split = [_award("site-01", "reg_up", 1, 10.0), _award("site-01", "spin", 1, 20.0)]
    check_awards(engine, AwardSetIn(version=1, awards=split), RULES, DAY, _big_fleet())
    over = [_award("site-01", "reg_up", 1, 20.0), _award("site-01", "spin", 1, 20.0)]
    with pytest.raises(
        AwardRefusedError,
        match=r"site site-01, reg_up, spin, hour_ending 1: upward reserves awarded "
        r"40 MW exceed the 30 MW",
    ):
        check_awards(
            engine, AwardSetIn(version=1, awards=over), RULES, DAY, _big_fleet()
        )


@pytest.mark.parametrize(
    ("reg_up", "spin", "expected"),
    [
        (3.0, 8.0, {"spin": 30.0}),  # spin pays more: the whole block goes there
        (3.0, 1.5, {"reg_up": 30.0}),  # spin below the block's 2.0 ask: reg-up
        (2.0, 2.0, {"reg_up": 30.0}),  # a tie stays with the product bid
        (1.9, 1.0, {}),  # neither reaches the ask: nothing upward
    ],
)
def test_replay_market_clears_a_linked_upward_block_to_the_best_paying_product(
    engine, reg_up, spin, expected
):
    from dispatch.bids import BidSet, parse_bids
    from fleet.ops.market import clear_at_prices

    stored = _accepted(engine, BIDS)
    bid_set = BidSet(
        market=RULES.name, operating_day=DAY, bids=parse_bids({"bids": BIDS})
    )
    hours = 24
    prices = {"reg_up": [reg_up] * hours, "spin": [spin] * hours}
    awards = clear_at_prices(
        bid_set,
        RULES,
        energy_usd_per_mwh={"site-01": [25.0] * hours, "site-02": [25.0] * hours},
        as_usd_per_mw={
            sid: {**prices, "reg_down": [2.0] * hours} for sid in ("site-01", "site-02")
        },
        version=stored.version,
        enrolled={"site-01": {"reg_up", "reg_down", "spin"}, "site-02": set()},
    )
    got = {(a.site_id, a.product): (a.award_mw, a.price) for a in awards.awards}
    up = {p: mw for (sid, p), (mw, _) in got.items() if p in ("reg_up", "spin")}
    assert up == expected
    for product, mw in expected.items():
        # paid at the product's own clearing price, never more MW than the block
        assert got[("site-01", product)] == (mw, prices[product][0])
    assert got[("site-01", "reg_down")] == (30.0, 2.0)
    # The energy curves still clear hour by hour at the node's price.
    assert got[("site-01", "energy")][0] == pytest.approx(-50.0)
    assert got[("site-02", "energy")][0] == pytest.approx(0.0)
    # What the replay market awards, the project's own award check accepts.
    check_awards(engine, awards, RULES, DAY, _big_fleet())


def test_replay_market_clears_caiso_offers_each_as_its_own_product():
    # CAISO has no linked upward offer: a reg-up offer is never awarded as spin.
    from dispatch.bids import BidSet, parse_bids
    from fleet.ops.market import clear_at_prices

    caiso = load_market_rules("CAISO")
    bids = [
        _bid("site-01", "reg_up", 1, [[20.0, 1.0]]),
        _bid("site-01", "spin", 1, [[5.0, 1.0]]),
    ]
    bid_set = BidSet(market="CAISO", operating_day=DAY, bids=parse_bids({"bids": bids}))
    awards = clear_at_prices(
        bid_set,
        caiso,
        energy_usd_per_mwh={"site-01": [25.0] * 24},
        as_usd_per_mw={"site-01": {"reg_up": [3.0] * 24, "spin": [9.0] * 24}},
        version=1,
        enrolled={"site-01": {"reg_up", "spin"}},
    )
    got = {a.product: (a.award_mw, a.price) for a in awards.awards}
    assert got == {"reg_up": (20.0, 3.0), "spin": (5.0, 9.0)}


def test_check_awards_refuses_when_unit_does_not_fit_the_product(engine):
    _accepted(engine, BIDS)
    wrong = _award("site-01", "reg_up", 1, 5.0).model_copy(
        update={"unit": "usd_per_mwh"}
    )
    with pytest.raises(AwardRefusedError, match=r"reg_up is priced in usd_per_mw"):
        check_awards(
            engine, AwardSetIn(version=1, awards=[wrong]), RULES, DAY, _big_fleet()
        )


def test_check_awards_refuses_when_energy_and_reserves_together_exceed_power(engine):
    _accepted(engine, BIDS)
    awards = [
        _award("site-01", "energy", 1, 50.0),
        _award("site-01", "reg_up", 1, 30.0),
        _award("site-01", "reg_down", 1, 30.0),
    ]
    check_awards(engine, AwardSetIn(version=1, awards=awards), RULES, DAY, _big_fleet())
    over = [
        _award("site-01", "energy", 1, -50.0),
        _award("site-01", "reg_down", 1, 30.0),
        _award("site-02", "energy", 1, 5.0),
    ]
    # -50 MW charge plus 30 MW of reg_down needs 80 MW of charge: fits in 100 MW.
    check_awards(engine, AwardSetIn(version=1, awards=over), RULES, DAY, _big_fleet())
    small = make_fleet(
        2,
        sites=[
            site_data(
                "site-01",
                poi={"export_mw": 100.0, "import_mw": 100.0},
                battery=battery_data(
                    charge_mw=60.0, discharge_mw=100.0, energy_mwh=200.0, strings=530
                ),
            ),
            site_data("site-02"),
        ],
    )
    with pytest.raises(
        AwardRefusedError, match=r"site site-01, hour_ending 1: downward reserves 30 MW"
    ):
        check_awards(engine, AwardSetIn(version=1, awards=over), RULES, DAY, small)


def test_check_awards_accepts_and_stores_when_within_bids_and_limits(engine):
    _accepted(engine, BIDS)
    awards = [
        _award("site-01", "energy", 1, 12.5),
        _award("site-01", "reg_up", 1, 30.0),
        _award("site-02", "energy", 1, -5.0),
    ]
    award_set = AwardSetIn(version=1, awards=awards)
    check_awards(engine, award_set, RULES, DAY, _big_fleet())
    assert store_awards(engine, award_set, RULES, DAY) == 3
    # Stored again with fewer rows, the version's rows are replaced.
    fewer = AwardSetIn(version=1, awards=awards[:1])
    assert store_awards(engine, fewer, RULES, DAY) == 1
    frame = latest_awards(engine, RULES, DAY)
    assert frame[["site_id", "product", "award_mw"]].values.tolist() == [
        ["site-01", "energy", 12.5]
    ]


def test_push_bid_set_refuses_a_version_already_stored(engine):
    from fleet.store.bids import BidVersionExistsError

    _accepted(engine, BIDS, version=3)
    with pytest.raises(
        BidVersionExistsError, match=r"ERCOT 2024-07-02 version=3 is already stored"
    ):
        _accepted(engine, BIDS, version=3)
    assert _accepted(engine, BIDS).version == 4
    # A refused push keeps its record and its version; the fixed set is a new version.
    refused, _ = push_bid_set(
        engine,
        _big_fleet(),
        RULES,
        DAY,
        {"bids": [_bid("site-02", "reg_up", 1, [[9.0, 1.0]])]},
        submitted_by="test",
        states={"site-02": SiteState(soc=0.06)},
        version=5,
    )
    assert refused.status == "refused"
    with pytest.raises(BidVersionExistsError, match=r"version=5 .*\(refused\)"):
        _accepted(engine, BIDS, version=5)
    assert _accepted(engine, BIDS).version == 6
    award_set = AwardSetIn(version=6, awards=[_award("site-01", "reg_up", 1, 30.0)])
    check_awards(engine, award_set, RULES, DAY, _big_fleet())


def _cli(args, capsys, monkeypatch):
    from fleet.cli import main

    monkeypatch.setenv("COLUMNS", "250")
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else (0 if code is None else 1)), out, err


def test_cli_awards_push_exits_2_with_the_reason_and_bids_push_refuses_a_version_twice(
    migrated_db_url, tmp_path, capsys, monkeypatch
):
    import json

    from tests.factories import fleet_data, write_fleet_file

    fleet_path = write_fleet_file(tmp_path, fleet_data(2))
    base = ["--fleet", str(fleet_path), "--day", str(DAY), "--db", migrated_db_url]
    bids = tmp_path / "bids.json"
    bids.write_text(json.dumps({"bids": BIDS[3:]}))
    awards = tmp_path / "awards.json"
    huge = _award("site-02", "reg_up", 1, 5000.0).model_dump(mode="json")
    awards.write_text(json.dumps({"version": 1, "awards": [huge]}))

    code, _, err = _cli(["awards", "push", str(awards), *base], capsys, monkeypatch)
    assert code == 2
    assert "awards[0]: site site-02, reg_up, hour_ending 1: award_mw=5000" in err

    code, out, err = _cli(
        ["bids", "push", str(bids), *base, "--version", "1"], capsys, monkeypatch
    )
    assert code == 0, err
    assert "accepted ERCOT 2024-07-02 v1" in out
    code, _, err = _cli(
        ["bids", "push", str(bids), *base, "--version", "1"], capsys, monkeypatch
    )
    assert code == 2
    assert "version=1 is already stored" in err

    # With the bid set accepted it is still refused: the site carries at most 20 MW.
    code, _, err = _cli(["awards", "push", str(awards), *base], capsys, monkeypatch)
    assert code == 2
    assert "award_mw=5000 exceeds the site's 20 MW" in err
    energy = _award("site-02", "energy", 1, 5.0).model_dump(mode="json")
    awards.write_text(json.dumps({"version": 1, "awards": [energy]}))
    code, out, err = _cli(["awards", "push", str(awards), *base], capsys, monkeypatch)
    assert code == 0, err
    assert "recorded 1 awards for ERCOT 2024-07-02 v1" in out


# --- CAISO: forecasts store on PostgreSQL, AS prices at the market's AS node -------


def test_forecast_predict_stores_a_caiso_model_with_a_long_name(
    migrated_db_url, shared_data, tmp_path, capsys, monkeypatch
):
    from fleet.store.engine import make_engine
    from fleet.store.forecasts import load_price_forecast

    prices = (
        shared_data / "caiso_dervet_example_2020" / "caiso_reg_up_down_2020_hourly.csv"
    )
    node = "UNSPECIFIED_DERVET_CAISO_CASE"
    registry = tmp_path / "registry"
    train = [
        "forecast",
        "train",
        "--market",
        "CAISO",
        "--node",
        node,
        "--product",
        "reg_up",
        "--registry",
        str(registry),
        "--prices",
        str(prices),
        "--as-of",
        "2020-12-01",
    ]
    code, _, err = _cli(train, capsys, monkeypatch)
    assert code == 0, err
    (model_dir,) = registry.iterdir()
    # market-node-product-trainend-digest: longer than the old VARCHAR(64).
    assert len(model_dir.name) > 64
    predict = [
        "forecast",
        "predict",
        "--model",
        str(model_dir),
        "--day",
        "2020-12-02",
        "--prices",
        str(prices),
        "--store",
        "--db",
        migrated_db_url,
    ]
    code, out, err = _cli(predict, capsys, monkeypatch)
    assert code == 0, err
    assert "stored 24 forecast rows" in out
    engine = make_engine(migrated_db_url)
    try:
        frame = load_price_forecast(engine, market="CAISO", node=node, product="reg_up")
    finally:
        engine.dispose()
    assert len(frame) == 24
    assert frame.attrs["model_version"] == model_dir.name


def test_insert_price_forecasts_refuses_a_model_name_longer_than_the_column(engine):
    from fleet.store.forecasts import insert_price_forecasts

    row = {
        "market": "CAISO",
        "node": "N",
        "product": "reg_up",
        "ts": pd.Timestamp("2024-07-02T07:00Z"),
        "issue_time": pd.Timestamp("2024-07-01T17:00Z"),
        "model_version": "m" * 129,
        "p50": 5.0,
        "unit": "usd_per_mw",
    }
    with pytest.raises(
        FleetInputError, match=r"price_forecasts\.model_version='m+' has 129 characters"
    ):
        insert_price_forecasts(engine, pd.DataFrame([row]))


def test_stored_forecast_prices_read_as_prices_at_each_markets_as_node(engine):
    from fleet.ops.dayahead import stored_forecast_prices
    from fleet.store.forecasts import insert_price_forecasts

    caiso = load_market_rules("CAISO")
    assert (RULES.as_node("HB_HOUSTON"), caiso.as_node("NODE_A")) == (
        "SYSTEM",
        "NODE_A",
    )
    start = operating_day_start(caiso, DAY)
    issue = pd.Timestamp("2024-07-01T17:00Z")
    rows = []
    for node, product, value in [
        ("NODE_A", "da_energy", 30.0),
        ("NODE_A", "reg_up", 7.0),
        ("NODE_B", "da_energy", 31.0),
        ("NODE_B", "reg_up", 9.0),
        ("SYSTEM", "reg_up", 99.0),
    ]:
        for h in range(24):
            rows.append(
                {
                    "market": "CAISO",
                    "node": node,
                    "product": product,
                    "ts": pd.Timestamp(start) + pd.Timedelta(hours=h),
                    "issue_time": issue,
                    "model_version": "test",
                    "p50": value,
                    "unit": "usd_per_mwh" if product == "da_energy" else "usd_per_mw",
                }
            )
    insert_price_forecasts(engine, pd.DataFrame(rows))
    prices = stored_forecast_prices(
        engine, caiso, ["NODE_A", "NODE_B"], start, 24, as_of=NOW + dt.timedelta(days=1)
    )
    assert prices["NODE_A"]["reg_up"] == [7.0] * 24
    assert prices["NODE_B"]["reg_up"] == [9.0] * 24
    assert prices["NODE_B"]["energy"] == [31.0] * 24


def test_check_scenario_of_one_market_leaves_out_poi_groups_of_another():
    """The example fleet's POI group is ERCOT's: CAISO awards are still checkable."""
    from fleet.fleetfile import load_fleet
    from fleet.ops.bids import check_scenario
    from tests.conftest import REPO_ROOT

    example = load_fleet(REPO_ROOT / "deploy" / "examples" / "fleet.toml")
    assert example.poi_groups
    for market in ("CAISO", "ERCOT"):
        rules = load_market_rules(market)
        own = [s for s in example.sites if s.market.value == market]
        scn = check_scenario(example.model_copy(update={"sites": own}), rules, DAY)
        assert scn.sites
        assert {s.id for s in scn.sites} <= {s.id for s in own}
        groups = scn.fleet.poi_groups if scn.fleet is not None else []
        assert all(g.sites and set(g.sites) <= {s.id for s in own} for g in groups)
        assert bool(groups) == (market == "ERCOT")
