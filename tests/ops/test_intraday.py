from __future__ import annotations

import datetime as dt

import pytest

from dispatch.markets import load_market_rules
from dispatch.scenario import Commitments
from fleet.domain import Fleet
from fleet.errors import FleetInputError
from fleet.ops.clock import AcceleratedClock
from fleet.ops.intraday import (
    IntradayConfig,
    IntradayDispatcher,
    clip_setpoint_mw,
    run_intraday,
)
from fleet.ops.scenario_builder import operating_day_start
from tests.factories import fleet_data
from tests.ops.helpers import NODE, daily_prices, fleet

RULES = load_market_rules("ERCOT")
DAY = dt.date(2024, 7, 2)
START = operating_day_start(RULES, DAY)
N = 96


def _prices(
    start: dt.datetime, n: int, minutes: int = 15
) -> dict[str, dict[str, list[float]]]:
    hourly = daily_prices(24, spike=40.0)
    first = (start - START) / dt.timedelta(hours=1)
    energy = [hourly[min(23, int(first + i * minutes / 60))] for i in range(n)]
    return {
        NODE: {
            "energy": energy,
            "reg_up": [6.0] * n,
            "reg_down": [3.0] * n,
            "spin": [2.0] * n,
        }
    }


class Sent:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float, int, int, str]] = []

    def __call__(self, site_id, p_mw, valid_from, expires, version) -> None:
        self.calls.append((site_id, p_mw, valid_from, expires, version))


def _dispatcher(states, awards=None, send=None):
    return IntradayDispatcher(
        fleet(2),
        RULES,
        DAY,
        prices=_prices,
        states=lambda: states,
        send=send,
        awards=awards or {},
        schedule_version=3,
        config=IntradayConfig(interval_minutes=15),
    )


def _ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def test_intraday_step_sends_versioned_setpoints_with_expiry_when_sites_fresh():
    now = START + dt.timedelta(hours=10, minutes=2)
    sent = Sent()
    states = {"site-01": (_ms(now) - 5000, 0.5), "site-02": (_ms(now) - 5000, 0.6)}
    report = _dispatcher(states, send=sent).step(now)
    assert report.status == "optimal"
    assert report.index == 40
    assert report.stale == ()
    assert {c[0] for c in sent.calls} == {"site-01", "site-02"}
    for _, p_mw, valid_from, expires, version in sent.calls:
        assert version == "v3.1"
        assert valid_from == _ms(now)
        assert expires == _ms(START + dt.timedelta(hours=10, minutes=30))
        assert -10.0 <= p_mw <= 10.0


def test_intraday_step_covers_a_stale_sites_awards_with_other_sites():
    now = START + dt.timedelta(hours=3)
    old = _ms(now) - 16_000  # one sample period past the 15 s staleness limit
    states = {"site-01": (_ms(now), 0.5), "site-02": (old, 0.5)}
    awards = {"site-02": Commitments(reg_up_mw=[3.0] * N, spin_mw=[0.0] * N)}
    sent = Sent()
    dispatcher = _dispatcher(states, awards, send=sent)
    report = dispatcher.step(now)
    assert report.stale == ("site-02",)
    assert report.shortfall_mw == {}
    # Every site is commanded; the stale one is told to hold.
    assert sorted(c[0] for c in sent.calls) == ["site-01", "site-02"]
    assert report.setpoints_mw["site-02"] == 0.0
    sched = dispatcher.last_result.sites["site-01"]
    assert min(sched.reg_up_mw) >= 3.0 - 1e-6
    assert report.held_mw["site-01"]["reg_up"] >= 3.0 - 1e-6
    assert report.awarded_mw["site-02"]["reg_up"] == pytest.approx(3.0)


@pytest.mark.parametrize("site_01_offers_ecrs", [True, False])
def test_intraday_moves_a_stale_sites_ecrs_only_to_a_site_that_offers_it(
    site_01_offers_ecrs,
):
    """Products come from the market rules: ECRS is covered like reg-up and spin."""
    data = fleet_data(2)
    data["sites"][1]["services"] = [*data["sites"][1]["services"], "ecrs"]
    if site_01_offers_ecrs:
        data["sites"][0]["services"] = [*data["sites"][0]["services"], "ecrs"]
    now = START + dt.timedelta(hours=3)
    states = {"site-01": (_ms(now), 0.5), "site-02": (_ms(now) - 16_000, 0.5)}
    awards = {"site-02": Commitments(reserves_mw={"ecrs": [3.0] * N})}

    def prices(start, n, minutes=15):
        out = _prices(start, n, minutes)
        out[NODE]["ecrs"] = [5.0] * n
        return out

    dispatcher = IntradayDispatcher(
        Fleet.model_validate(data),
        RULES,
        DAY,
        prices=prices,
        states=lambda: states,
        awards=awards,
        config=IntradayConfig(interval_minutes=15),
    )
    report = dispatcher.step(now)
    assert report.stale == ("site-02",)
    assert report.awarded_mw["site-02"]["ecrs"] == pytest.approx(3.0)
    if site_01_offers_ecrs:
        assert report.shortfall_mw == {}
        assert report.held_mw["site-01"]["ecrs"] >= 3.0 - 1e-6
        assert min(dispatcher.last_result.sites["site-01"].reserve("ecrs")) >= 3 - 1e-6
    else:
        assert report.shortfall_mw == {"ecrs": pytest.approx(3.0)}
        assert report.held_mw["site-01"]["ecrs"] == 0.0


def test_intraday_site_fresh_within_15_s_is_not_stale():
    now = START + dt.timedelta(hours=3)
    states = {"site-01": (_ms(now) - 14_000, 0.5), "site-02": (_ms(now), 0.5)}
    assert _dispatcher(states).step(now).stale == ()


def test_intraday_step_reports_shortfall_when_others_cannot_cover():
    now = START + dt.timedelta(hours=3)
    states = {"site-01": (_ms(now), 0.5)}  # site-02 never reported
    awards = {"site-02": Commitments(reg_up_mw=[14.0] * N)}
    report = _dispatcher(states, awards).step(now)
    assert report.stale == ("site-02",)
    assert report.shortfall_mw == {"reg_up": pytest.approx(4.0)}
    assert report.status == "optimal"


def test_intraday_step_honours_awards_when_sites_fresh():
    now = START + dt.timedelta(hours=12)
    states = {"site-01": (_ms(now), 0.5), "site-02": (_ms(now), 0.5)}
    net: list[float | None] = [None] * N
    net[48] = -6.0
    awards = {"site-01": Commitments(net_mw=net, spin_mw=[1.0] * N)}
    held = IntradayDispatcher(
        fleet(2),
        RULES,
        DAY,
        prices=_prices,
        states=lambda: states,
        awards=awards,
        config=IntradayConfig(hold_energy_awards=True),
    )
    report = held.step(now)
    assert report.setpoints_mw["site-01"] == pytest.approx(-6.0)
    assert min(held.last_result.sites["site-01"].spin_mw) >= 1.0 - 1e-6
    assert report.shortfall_mw == {}


def test_intraday_energy_award_is_financial_by_default():
    # At noon the price is high: with the award financial (deviation settled at the
    # real-time price) the plan discharges instead of charging the awarded 6 MW.
    now = START + dt.timedelta(hours=12)
    states = {"site-01": (_ms(now), 0.5), "site-02": (_ms(now), 0.5)}
    net: list[float | None] = [None] * N
    net[48] = -6.0
    report = _dispatcher(states, {"site-01": Commitments(net_mw=net)}).step(now)
    assert report.setpoints_mw["site-01"] != pytest.approx(-6.0)


def test_intraday_awards_beyond_the_sites_means_shortfall_not_infeasible():
    now = START + dt.timedelta(hours=3)
    states = {"site-01": (_ms(now), 0.5), "site-02": (_ms(now), 0.5)}
    # 50 MW of reg-up on a 10 MW site: held up to charge + discharge power, rest short.
    awards = {"site-01": Commitments(reg_up_mw=[50.0] * N)}
    sent = Sent()
    report = _dispatcher(states, awards, send=sent).step(now)
    assert report.status in ("optimal", "feasible")
    assert {c[0] for c in sent.calls} == {"site-01", "site-02"}
    assert report.shortfall_mw["reg_up"] == pytest.approx(
        50.0 - report.held_mw["site-01"]["reg_up"]
    )
    assert 0 < report.held_mw["site-01"]["reg_up"] <= 20.0 + 1e-6


def test_intraday_holds_every_site_when_no_plan_can_be_made():
    now = START + dt.timedelta(hours=3)
    states = {"site-01": (_ms(now), 0.5), "site-02": (_ms(now), 0.5)}

    def no_prices(start, n, minutes):
        return {NODE: {"energy": [float("nan")] * n}}

    sent = Sent()
    dispatcher = IntradayDispatcher(
        fleet(2), RULES, DAY, prices=no_prices, states=lambda: states, send=sent
    )
    report = dispatcher.step(now)
    assert report.status == "hold"
    assert report.fallback == "hold"
    assert "missing" in (report.reason or "")
    assert sorted((c[0], c[1]) for c in sent.calls) == [
        ("site-01", 0.0),
        ("site-02", 0.0),
    ]


def test_clip_setpoint_mw_clips_to_site_limits():
    site = fleet(1).sites[0]
    assert clip_setpoint_mw(12.5, site) == (10.0, True)
    assert clip_setpoint_mw(-11.0, site) == (-10.0, True)
    assert clip_setpoint_mw(3.0, site) == (3.0, False)


def test_intraday_config_refuses_when_interval_not_5_or_15():
    with pytest.raises(FleetInputError, match="interval_minutes=10 must be 5 or 15"):
        IntradayConfig(interval_minutes=10)


def test_run_intraday_steps_every_interval_on_an_accelerated_clock():
    clock = AcceleratedClock(START + dt.timedelta(hours=20, minutes=14), speed=9000.0)

    def states():
        now = _ms(clock.now())
        return {"site-01": (now, 0.5), "site-02": (now, 0.5)}

    dispatcher = IntradayDispatcher(
        fleet(2), RULES, DAY, prices=_prices, states=states, config=IntradayConfig()
    )
    seen: list[int] = []
    reports = run_intraday(
        dispatcher, clock, 3, on_interval=lambda r: seen.append(r.index)
    )
    assert seen == [80, 81, 82]
    assert all(r.status == "optimal" for r in reports)
    assert [r.version for r in reports] == ["v0.1", "v0.2", "v0.3"]


def test_intraday_step_solves_a_coarser_model_when_configured():
    now = START + dt.timedelta(hours=12, minutes=5)
    states = {"site-01": (_ms(now), 0.5), "site-02": (_ms(now), 0.5)}
    net: list[float | None] = [None] * 288
    net[145:148] = [-4.0, -4.0, -4.0]  # 12:05-12:20 on the 5-minute grid
    awards = {"site-01": Commitments(net_mw=net)}
    dispatcher = IntradayDispatcher(
        fleet(2),
        RULES,
        DAY,
        prices=_prices,
        states=lambda: states,
        awards=awards,
        config=IntradayConfig(
            interval_minutes=5, model_interval_minutes=15, hold_energy_awards=True
        ),
    )
    report = dispatcher.step(now)
    assert report.index == 145
    assert report.setpoints_mw["site-01"] == pytest.approx(-4.0)
    assert len(dispatcher.last_result.sites["site-01"].charge_mw) == 48  # (288-145)/3


def test_intraday_plans_an_interval_ahead_with_valid_from_at_its_start():
    now = START + dt.timedelta(hours=3, minutes=5)  # 10 minutes before 03:15
    states = {"site-01": (_ms(now), 0.5), "site-02": (_ms(now), 0.5)}
    sent = Sent()
    dispatcher = _dispatcher(states, send=sent)
    report = dispatcher.step(now, index=13)
    assert report.index == 13
    assert report.start == START + dt.timedelta(hours=3, minutes=15)
    for _, _, valid_from, expires, _ in sent.calls:
        assert valid_from == _ms(START + dt.timedelta(hours=3, minutes=15))
        assert expires == _ms(START + dt.timedelta(hours=3, minutes=45))
    # The next ahead step carries the measured SoC to its interval at the setpoint.
    p1 = report.setpoints_mw["site-01"]
    later = dispatcher.step(now + dt.timedelta(minutes=15), index=14)
    assert later.index == 14
    if p1:
        assert later.status in ("optimal", "feasible")
    soc = dispatcher._carried_soc(fleet(2).sites[0], 0.5, now, 13)
    expected = 0.5 - (p1 / 0.95 if p1 > 0 else p1 * 0.95) * (10 / 60) / 20.0
    assert soc == pytest.approx(min(0.95, max(0.05, expected)))
