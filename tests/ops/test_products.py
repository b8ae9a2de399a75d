"""Products as data: ERCOT ECRS and Non-Spin, and a toy product added by rules alone.

Each runs the production path: day-ahead plan and bids (``run_dayahead``), the pushed
bid set, awards checked and stored (``check_awards``), and the metered settlement of
the day (``settle_day``) from telemetry in the store.
"""

from __future__ import annotations

import datetime as dt
from importlib import resources

import pytest
import sqlalchemy as sa

from dispatch.markets import MarketRules, load_market_rules, parse_market_toml
from fleet.domain import Fleet
from fleet.ops.awards import awards_from_bids, check_awards, store_awards
from fleet.ops.bids import push_bid_set
from fleet.ops.dayahead import run_dayahead
from fleet.ops.metering import PCS_DEVICE
from fleet.ops.scenario_builder import SiteState, operating_day_start
from fleet.ops.settlement import settle_day
from fleet.store.dml import transaction
from fleet.store.schedules import get_schedule, load_intervals
from fleet.store.telemetry_tables import tlm_measurements
from tests.factories import fleet_data
from tests.ops.helpers import NODE, daily_prices

DAY = dt.date(2024, 7, 2)
NOW = dt.datetime(2024, 7, 1, 14, 30, tzinfo=dt.UTC)
AS_PRICE = {"reg_up": 2.0, "reg_down": 1.0, "spin": 1.5, "ecrs": 6.0, "nonspin": 9.0}


def _fleet(extra: list[str], context: dict | None = None) -> Fleet:
    data = fleet_data(2)
    data["sites"][0]["services"] = [*data["sites"][0]["services"], *extra]
    data["sites"][0]["battery"]["energy_mwh"] = 40.0
    data["sites"][0]["battery"]["strings"] = 106
    return Fleet.model_validate(data, context=context)


def _prices(products: dict[str, float]) -> dict[str, dict[str, list[float]]]:
    return {
        NODE: {
            "energy": daily_prices(24, spike=30.0),
            **{p: [v] * 24 for p, v in products.items()},
        }
    }


def _write_telemetry(engine, site_id: str, start: dt.datetime, soc: float) -> None:
    """One good sample per 15-minute interval of the day: idle at ``soc``."""
    t0 = int(start.timestamp() * 1000)
    rows = [
        {
            "site_id": site_id,
            "dev_id": PCS_DEVICE,
            "ts_ms": t0 + k * 900_000 + 1000,
            "seq": k,
            "sid": 1,
            "hist": False,
            "q": "good",
            "flags": 0,
            "payload_hash": f"h{k}",
            "received_at_ms": t0 + k * 900_000 + 2000,
            "p_ac_w": 0.0,
            "soc_pct": soc * 100.0,
        }
        for k in range(96)
    ]
    with transaction(engine) as conn:
        conn.execute(sa.insert(tlm_measurements), rows)


def _run_day(engine, fleet: Fleet, rules: MarketRules, prices: dict[str, float]):
    outcome = run_dayahead(
        engine,
        fleet,
        rules,
        DAY,
        now=NOW,
        prices=_prices(prices),
        states={"site-01": SiteState(soc=0.6), "site-02": SiteState(soc=0.5)},
    )
    stored, refusals = push_bid_set(
        engine, fleet, rules, DAY, outcome.bids.to_payload(), submitted_by="test"
    )
    assert refusals == []
    energy = outcome.scenario.markets[NODE].energy
    cleared = awards_from_bids(outcome.bids, rules, {s.id: energy for s in fleet.sites})
    priced = cleared.model_copy(
        update={
            "version": stored.version,
            "awards": [
                a.model_copy(update={"price": prices.get(a.product, 30.0)})
                for a in cleared.awards
            ],
        }
    )
    check_awards(engine, priced, rules, DAY, fleet)
    store_awards(engine, priced, rules, DAY)
    return outcome, priced


def test_ecrs_and_nonspin_are_bid_awarded_and_settled_when_site_lists_them(engine):
    rules = load_market_rules("ERCOT")
    fleet = _fleet(["ecrs", "nonspin"])
    outcome, awards = _run_day(engine, fleet, rules, AS_PRICE)
    scn = outcome.scenario
    # The scenario carries the products with the rules' directions and durations.
    assert scn.products["ecrs"].sustain_h == 1.0
    assert scn.products["nonspin"].sustain_h == 4.0
    assert scn.site("site-01").services[-2:] == ["ecrs", "nonspin"]
    assert "ecrs" not in scn.site("site-02").services
    # Bids and awards carry them for the site that lists them, and only there.
    offered = {(b.site_id, b.product) for b in outcome.bids.bids}
    assert ("site-01", "ecrs") in offered
    assert ("site-01", "nonspin") in offered
    assert not {("site-02", "ecrs"), ("site-02", "nonspin")} & offered
    awarded = {
        p: sum(a.award_mw for a in awards.awards if a.product == p)
        for p in ("ecrs", "nonspin")
    }
    assert awarded["ecrs"] > 0
    assert awarded["nonspin"] > 0
    # The 4 h sustain bounds Non-Spin by the energy above soc_min at the start.
    sched = outcome.result.sites["site-01"]
    first = sched.reserve("nonspin")[0] * 4.0 + sched.reserve("ecrs")[0] * 1.0
    assert first / 0.95 <= 40.0 * (0.6 - 0.05) + 1e-6
    # The stored schedule keeps them without a column of their own.
    stored = get_schedule(engine, market="ERCOT", operating_day=DAY)
    assert stored is not None
    frame = load_intervals(engine, schedule_id=stored.id, site_id="site-01")
    assert frame["nonspin_mw"].tolist() == pytest.approx(sched.reserve("nonspin"))
    # Settled at their clearing prices from metered telemetry (idle, SoC 60 %).
    start = operating_day_start(rules, DAY)
    for sid in ("site-01", "site-02"):
        _write_telemetry(engine, sid, start, 0.6)
    day = settle_day(engine, fleet, rules, DAY)
    items = {(r["site_id"], r["item"]): r for r in day.rows}
    for product in ("ecrs", "nonspin"):
        row = items[("site-01", product)]
        assert row["quantity"] == pytest.approx(awarded[product], abs=1e-3)
        assert row["amount_usd"] == pytest.approx(
            AS_PRICE[product] * awarded[product], abs=0.01
        )
        assert day.awarded_mwh[product] == pytest.approx(awarded[product], abs=1e-3)
        assert ("site-02", product) not in items


def test_settlement_charges_nonspin_shortfall_when_soc_cannot_sustain_four_hours(
    engine,
):
    rules = load_market_rules("ERCOT")
    fleet = _fleet(["ecrs", "nonspin"])
    _run_day(engine, fleet, rules, AS_PRICE)
    start = operating_day_start(rules, DAY)
    # Near empty all day: the awarded Non-Spin cannot be sustained for 4 h.
    for sid in ("site-01", "site-02"):
        _write_telemetry(engine, sid, start, 0.08)
    day = settle_day(engine, fleet, rules, DAY)
    assert day.shortfall_mwh["nonspin"] > 0
    charged = sum(r["amount_usd"] for r in day.rows if r["item"] == "as_shortfall_up")
    assert charged < 0


TOY = """
[products.toy]
price_series = "toy"
code = "TOY"
service = "toy"
direction = "up"
offer_group = "up"
offer_column = "TOY"
sustain_h = 2.0
modeled = true
"""


def test_toy_product_is_dispatched_and_settled_when_added_to_the_rules_alone(engine):
    text = resources.files("dispatch.markets").joinpath("ercot.toml").read_text()
    rules = parse_market_toml(text + TOY, "ercot+toy.toml")
    assert rules.reserve("toy").sustain_h == 2.0
    fleet = _fleet(["toy"], context={"market_rules": {"ERCOT": rules}})
    prices = {**AS_PRICE, "toy": 12.0}
    del prices["ecrs"], prices["nonspin"]
    outcome, awards = _run_day(engine, fleet, rules, prices)
    assert outcome.scenario.products["toy"].sustain_h == 2.0
    toy = [a for a in awards.awards if a.product == "toy"]
    assert toy
    assert {a.site_id for a in toy} == {"site-01"}
    start = operating_day_start(rules, DAY)
    for sid in ("site-01", "site-02"):
        _write_telemetry(engine, sid, start, 0.6)
    day = settle_day(engine, fleet, rules, DAY)
    row = next(r for r in day.rows if r["item"] == "toy")
    total = sum(a.award_mw for a in toy)
    assert row["amount_usd"] == pytest.approx(12.0 * total, abs=0.01)
    assert day.awarded_mwh["toy"] == pytest.approx(total, abs=1e-3)


def test_fleet_refuses_a_service_the_market_rules_do_not_carry():
    with pytest.raises(
        ValueError, match=r"services\.4\n\s*'toy' is not a known service"
    ):
        _fleet(["toy"])
