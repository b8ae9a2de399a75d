"""settle_day judges reserve awards from the meters (the rule the backtest shares)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from dispatch.markets import load_market_rules
from fleet.ops.metering import PCS_DEVICE, write_metered
from fleet.ops.scenario_builder import operating_day_start
from fleet.ops.settlement import settle_day
from fleet.store.bids import save_awards
from tests.ops.helpers import fleet

DAY = dt.date(2024, 7, 1)


def _awards(start: dt.datetime, product: str, mw: float, price: float, unit: str):
    return [
        {
            "market": "ERCOT",
            "operating_day": DAY,
            "version": 1,
            "site_id": "site-01",
            "ts": start + dt.timedelta(hours=h),
            "product": product,
            "award_mw": mw,
            "price": price,
            "unit": unit,
        }
        for h in range(24)
    ]


def test_settle_day_charges_reg_up_when_the_metered_site_has_no_headroom(engine):
    rules = load_market_rules("ERCOT")
    start = operating_day_start(rules, DAY)
    rows = _awards(start, "energy", 10.0, 30.0, "usd_per_mwh")
    rows += _awards(start, "reg_up", 5.0, 6.0, "usd_per_mw")
    save_awards(engine, pd.DataFrame(rows))
    # The site discharges its full 10 MW all day at half charge: no reg-up held.
    write_metered(
        engine,
        site_id="site-01",
        dev_id=PCS_DEVICE,
        start=start,
        interval_minutes=15,
        p_mw=[10.0] * 96,
        soc=[0.5] * 96,
    )
    day = settle_day(engine, fleet(1), rules, DAY)
    assert day.awarded_mwh["reg_up"] == pytest.approx(120.0)
    assert day.shortfall_mwh["reg_up"] == pytest.approx(120.0)
    (short,) = [r for r in day.rows if r["item"] == "as_shortfall_up"]
    assert short["amount_usd"] == pytest.approx(
        -rules.shortfall_charge_factor * 120.0 * 6.0, abs=0.01
    )
    by_item = day.by_item()
    assert by_item["reg_up"] == pytest.approx(120.0 * 6.0)
    assert by_item["da_energy"] == pytest.approx(240.0 * 30.0)
    assert by_item["rt_deviation"] == pytest.approx(0.0, abs=0.01)


def test_settle_day_charges_nothing_when_the_idle_site_holds_its_reg_up(engine):
    rules = load_market_rules("ERCOT")
    start = operating_day_start(rules, DAY)
    save_awards(engine, pd.DataFrame(_awards(start, "reg_up", 5.0, 6.0, "usd_per_mw")))
    write_metered(
        engine,
        site_id="site-01",
        dev_id=PCS_DEVICE,
        start=start,
        interval_minutes=15,
        p_mw=[0.0] * 96,
        soc=[0.5] * 96,
    )
    day = settle_day(engine, fleet(1), rules, DAY)
    assert day.awarded_mwh["reg_up"] == pytest.approx(120.0)
    assert day.shortfall_mwh["reg_up"] == 0.0
    assert not [r for r in day.rows if r["item"].startswith("as_shortfall")]
