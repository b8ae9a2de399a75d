"""A failed operator step raises a critical alert; the step done closes it."""

from __future__ import annotations

import datetime as dt

from dispatch.markets import load_market_rules
from fleet.errors import FleetInputError
from fleet.ops.clock import AcceleratedClock
from fleet.ops.market import ReplayMarket
from fleet.ops.operator import MarketLoop, OperatorOptions
from fleet.store.alerts import list_alerts
from fleet.store.sites import save_fleet
from tests.ops.helpers import fleet

DAY = dt.date(2024, 7, 2)


def _open(engine):
    return [a for a in list_alerts(engine) if a.kind == "ops_step_failed"]


def test_a_failed_step_raises_an_alert_and_its_success_closes_it(engine):
    save_fleet(engine, fleet(2))
    loop = MarketLoop(
        engine,
        fleet(2),
        load_market_rules("ERCOT"),
        AcceleratedClock(dt.datetime(2024, 7, 1, 14, 0, tzinfo=dt.UTC), 1.0),
        send=None,
        states=dict,
        options=OperatorOptions(),
        market=ReplayMarket(),
    )
    try:

        def broken() -> None:
            msg = "no accepted ERCOT bid set for 2024-07-02: nothing to award"
            raise FleetInputError(msg)

        assert not loop._step(DAY, "awards", broken)
        assert not loop._step(DAY, "awards", broken)  # a retry updates the same alert
        alerts = [a for a in _open(engine) if a.closed_at is None]
        assert len(alerts) == 1
        alert = alerts[0]
        assert alert.severity == "critical"
        assert alert.site_id == "_ops"
        assert alert.detail["step"] == "awards"
        assert alert.detail["market"] == "ERCOT"
        assert "no accepted ERCOT bid set" in alert.detail["error"]
        # Another step of the same day failing is an alert of its own.
        assert not loop._step(
            DAY, "export", lambda: {"_status": "failed", "reason": "x"}
        )
        assert len([a for a in _open(engine) if a.closed_at is None]) == 2
        # The step succeeds: its alert closes, the other stays open.
        assert loop._step(DAY, "awards", lambda: {"awards": 3})
        still = [a for a in _open(engine) if a.closed_at is None]
        assert [a.detail["step"] for a in still] == ["export"]
    finally:
        loop._planner.shutdown(wait=True)
