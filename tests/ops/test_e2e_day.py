"""A simulated operating day end to end over a real Mosquitto broker and a real store."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from zoneinfo import ZoneInfo

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from dispatch.markets import load_market_rules
from fleet.ops.awards import (
    awards_from_bids,
    commitments_from_awards,
    latest_awards,
    store_awards,
)
from fleet.ops.bids import push_bid_set
from fleet.ops.clock import AcceleratedClock
from fleet.ops.dayahead import run_dayahead
from fleet.ops.intraday import (
    IntradayConfig,
    IntradayDispatcher,
    MqttSetpointSink,
    TelemetryTracker,
    dayahead_prices_on_grid,
    run_intraday,
)
from fleet.ops.scenario_builder import SiteState, operating_day_start
from fleet.store.engine import make_engine
from fleet.store.migrate import upgrade
from fleet.store.schedules import list_versions
from telemetry.registry import site_spec_from
from telemetry.simulator import SimOptions, SiteGateway
from tests.factories import make_fleet, site_data
from tests.ops.helpers import NODE, daily_prices

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]

RULES = load_market_rules("ERCOT")
SPEED = 450.0  # one 15-minute interval every two wall seconds
START_HOUR = 17  # local hour the accelerated intraday window starts (spike at 18)
STEPS = 8


def _drive(gateways, clocks, stop: threading.Event) -> None:
    last = clocks[-1].now_ms()
    while not stop.is_set():
        now = clocks[-1].now_ms()
        for gw in gateways:
            gw.step(max(0, now - last) / 1000.0, now)
            gw.publish_samples(now)
        last = now
        time.sleep(0.05)


def test_simulated_day_runs_end_to_end_and_follows_the_plan(mosquitto, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    fleet = make_fleet(
        2,
        sites=[
            site_data("site-01", services=["energy", "spin"]),
            site_data("site-02", services=["energy", "spin"]),
        ],
    )
    tz = ZoneInfo(RULES.timezone)
    day = dt.datetime.now(tz).date() + dt.timedelta(
        days=1
    )  # future: setpoints not expired
    start = operating_day_start(RULES, day)

    # Day ahead: plan, bids, push (checked), awards cleared at the forecast prices.
    prices = {
        NODE: {
            "energy": daily_prices(24, spike=45.0),
            "reg_up": [0.0] * 24,
            "reg_down": [0.0] * 24,
            "spin": [4.0] * 24,
        }
    }
    outcome = run_dayahead(
        engine,
        fleet,
        RULES,
        day,
        now=dt.datetime.now(dt.UTC),
        prices=prices,
        quantile_prices={"p10": {NODE: daily_prices(24, spike=20.0, shift=-8.0)}},
        states={"site-01": SiteState(soc=0.5), "site-02": SiteState(soc=0.4)},
    )
    assert outcome.version == 1
    assert list_versions(engine, market="ERCOT", operating_day=day) == [1]
    stored, refusals = push_bid_set(
        engine, fleet, RULES, day, outcome.bids.to_payload(), submitted_by="e2e"
    )
    assert refusals == []
    assert stored.status == "accepted"
    energy = prices[NODE]["energy"]
    award_set = awards_from_bids(
        outcome.bids, RULES, {"site-01": energy, "site-02": energy}
    )
    store_awards(engine, award_set, RULES, day)
    n_day = 24 * 4
    commitments = commitments_from_awards(
        latest_awards(engine, RULES, day),
        start=start,
        interval_minutes=15,
        intervals=n_day,
    )

    # Simulated gateways at the planned SoC of the window's start, on the same clock.
    window = start + dt.timedelta(hours=START_HOUR)
    # Sites publish on a slow setup clock just before the window until the loop starts.
    clocks = [AcceleratedClock(window - dt.timedelta(minutes=10), 60.0)]
    plan = outcome.result.sites
    gateways = [
        SiteGateway(
            site_spec_from(site),
            mosquitto.url,
            SimOptions(comm_loss_per_h=0.0, cell_alarm_per_h=0.0, local_amplitude=0.0),
            random.Random(7),
            soc_initial=plan[site.id].soc[START_HOUR],
        )
        for site in fleet.sites
    ]
    tracker = TelemetryTracker(mosquitto.url)
    tracker.start()
    sink_client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="e2e-setpoints", protocol=mqtt.MQTTv5
    )
    sink_client.connect(mosquitto.host, mosquitto.port)
    sink_client.loop_start()
    stop = threading.Event()
    driver = threading.Thread(target=_drive, args=(gateways, clocks, stop), daemon=True)
    try:
        for gw in gateways:
            gw.connect()
        driver.start()
        deadline = time.monotonic() + 10
        while len(tracker.snapshot()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(tracker.snapshot()) == {"site-01", "site-02"}
        clock = AcceleratedClock(window, SPEED)
        clocks.append(clock)
        sink = MqttSetpointSink(sink_client, fleet, now_ms=clock.now_ms)
        dispatcher = IntradayDispatcher(
            fleet,
            RULES,
            day,
            prices=dayahead_prices_on_grid(outcome.scenario),
            states=tracker.snapshot,
            send=sink.send,
            awards=commitments,
            schedule_version=outcome.version,
            config=IntradayConfig(
                interval_minutes=15,
                # samples every 50 ms wall are 22 simulated seconds apart here
                stale_after_s=600.0,
                # this test checks the sites follow the awarded energy
                hold_energy_awards=True,
            ),
        )
        # One step more than the window: its telemetry read closes the SoC path.
        reports = run_intraday(dispatcher, clock, STEPS + 1)
        # No more setpoints: each site holds the last one until it expires, then holds SoC.
        last = [gw.active.setpoint if gw.active else None for gw in gateways]
        last_expiry = max(sp.expires_at for sp in last if sp is not None)
        clock.sleep_until(dt.datetime.fromtimestamp(last_expiry / 1000 - 60, dt.UTC))
        before_expiry = [(gw.state.mode, gw.state.p_mw) for gw in gateways]
        clock.sleep_until(dt.datetime.fromtimestamp(last_expiry / 1000 + 120, dt.UTC))
        after_expiry = [(gw.state.mode, gw.state.p_mw, gw.state.soc) for gw in gateways]
        time.sleep(0.2)
        later_soc = [gw.state.soc for gw in gateways]
    finally:
        stop.set()
        driver.join(timeout=5)
        tracker.stop()
        sink_client.disconnect()
        sink_client.loop_stop()
        for gw in gateways:
            gw.disconnect()

    assert [r.status for r in reports] == ["optimal"] * len(reports)
    assert len(reports) == STEPS + 1
    assert reports[-1].index >= START_HOUR * 4 + STEPS
    assert all(r.stale == () for r in reports)
    assert sink.sent == 2 * len(reports)
    for gw in gateways:
        accepted = [c for c, status in gw.seen_cmds.items() if status == "accepted"]
        assert len(accepted) == len(reports)
    for sp in last:
        assert sp is not None
        assert sp.source == f"bessfleet v1.{STEPS + 1}"
    assert [mode for mode, _ in before_expiry] == ["setpoint", "setpoint"]
    assert [p for _, p in before_expiry] == pytest.approx(
        [sp.p_ac_w_setpoint / 1e6 for sp in last if sp is not None], abs=1e-6
    )
    assert [(mode, p) for mode, p, _ in after_expiry] == [("hold", 0.0), ("hold", 0.0)]
    assert later_soc == [soc for _, _, soc in after_expiry]
    # The setpoints are the awarded net power (the plan on the market's 0.1 MW grid),
    # and the realized SoC follows the plan.
    for r in reports:
        h = START_HOUR + (r.index - START_HOUR * 4) // 4
        for site_id, p_mw in r.setpoints_mw.items():
            planned = plan[site_id].discharge_mw[h] - plan[site_id].charge_mw[h]
            assert p_mw == pytest.approx(planned, abs=RULES.curve_mw_step + 1e-6)
    hours = np.arange(25)
    for site in fleet.sites:
        # Compare at each step's own interval (a slow step on a loaded machine may
        # skip one; the loop then re-plans from the next interval).
        planned_soc = np.interp(
            [r.index / 4 for r in reports], hours, plan[site.id].soc
        )
        realized = [r.measured_soc[site.id] for r in reports]
        assert np.max(np.abs(np.asarray(realized) - planned_soc)) < 0.03, (
            site.id,
            realized,
            planned_soc.tolist(),
        )
