from __future__ import annotations

import datetime as dt

import pytest

from dispatch.errors import DispatchInputError
from dispatch.markets import available_markets, load_market_rules, parse_market_rules
from fleet.ops.clock import next_dayahead_run


def test_load_market_rules_reads_ercot_sustain_durations_when_loaded():
    rules = load_market_rules("ercot")
    assert rules.name == "ERCOT"
    assert rules.curve_max_points == 10
    assert rules.as_max_blocks == 5
    assert rules.product("reg_up").sustain_h == 0.5
    assert rules.product("ecrs").sustain_h == 1.0
    assert rules.product("nonspin").sustain_h == 4.0
    assert rules.product("ecrs").modeled
    assert rules.product("ecrs").direction == "up"
    assert rules.product("reg_down").direction == "down"
    assert rules.reserve_services == ("reg_up", "reg_down", "spin", "ecrs", "nonspin")
    assert rules.price_products == ("energy", *rules.reserve_services)
    assert rules.series_of("spin") == "rrs_spin"
    assert rules.reserve_duration_h == 4.0
    assert rules.scenario_products()["nonspin"] == {"direction": "up", "sustain_h": 4.0}


def test_market_registry_holds_time_zones_and_as_nodes():
    from dispatch.markets import market_timezone

    assert market_timezone("ercot") == "America/Chicago"
    assert market_timezone("CAISO") == "America/Los_Angeles"
    assert load_market_rules("ERCOT").as_node("HB_HOUSTON", "ecrs") == "SYSTEM"
    assert load_market_rules("CAISO").as_node("NODE_X", "reg_up") == "NODE_X"


def test_parse_market_rules_refuses_modeled_product_without_direction():
    from importlib import resources

    from dispatch.markets import parse_market_toml

    text = resources.files("dispatch.markets").joinpath("ercot.toml").read_text()
    text += '\n[products.toy]\nprice_series = "toy"\ncode = "TOY"\nservice = "toy"\nmodeled = true\n'
    with pytest.raises(
        DispatchInputError,
        match=r"products\.toy is a modeled service but has no direction",
    ):
        parse_market_toml(text, "toy.toml")


def test_load_market_rules_reads_caiso_regulation_hour_when_loaded():
    rules = load_market_rules("CAISO")
    assert rules.product("reg_up").sustain_h == 1.0
    assert rules.as_max_blocks == 1
    assert rules.reserve_services == ("reg_up", "reg_down", "spin")
    assert set(available_markets()) >= {"ERCOT", "CAISO"}


def test_load_market_rules_raises_when_market_unknown():
    with pytest.raises(DispatchInputError, match=r"PJMX.*known markets"):
        load_market_rules("PJMX")


def test_parse_market_rules_names_missing_field_when_file_incomplete():
    with pytest.raises(
        DispatchInputError, match=r"x\.toml: missing field 'energy_curve'"
    ):
        parse_market_rules({"name": "X"}, "x.toml")


def test_next_dayahead_run_is_before_ercot_close_when_morning():
    rules = load_market_rules("ERCOT")
    now = dt.datetime(2024, 7, 1, 12, 0, tzinfo=dt.UTC)  # 07:00 CDT
    run, day = next_dayahead_run(rules, now, lead_minutes=30)
    assert run == dt.datetime(2024, 7, 1, 14, 30, tzinfo=dt.UTC)  # 09:30 CDT
    assert day == dt.date(2024, 7, 2)


def test_next_dayahead_run_moves_to_next_day_when_past_close():
    rules = load_market_rules("CAISO")
    now = dt.datetime(2024, 7, 1, 20, 0, tzinfo=dt.UTC)  # 13:00 PDT
    run, day = next_dayahead_run(rules, now, lead_minutes=0)
    assert run == dt.datetime(2024, 7, 2, 17, 0, tzinfo=dt.UTC)  # 10:00 PDT
    assert day == dt.date(2024, 7, 3)
