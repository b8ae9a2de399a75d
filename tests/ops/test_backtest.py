from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dispatch.solve import solve
from dispatch.twosettle import two_settlement
from fleet.cli import app, main
from fleet.domain import Fleet
from fleet.errors import FleetInputError
from fleet.ops.backtest import (
    BacktestOptions,
    fixed_plan,
    read_prices,
    rt_forecast,
    run_backtest,
    static_as_plan,
    window_scenario,
    write_outputs,
)
from tests.factories import fleet_data, site_data, write_fleet_file
from tests.ops.helpers import NODE, fleet, price_frame, scenario

START, END = dt.date(2024, 3, 11), dt.date(2024, 3, 13)


@pytest.fixture(scope="module")
def report():
    prices = price_frame(dt.date(2024, 2, 20), END)
    return run_backtest(fleet(1), prices, START, END, BacktestOptions())


def test_backtest_never_beats_either_bound_when_replayed(report):
    assert len(report.ok_days) == 3
    for day in report.ok_days:
        assert day.hours == 24
        assert day.net_usd <= day.hindsight_usd * (1 + 1e-6) + 1e-6
        assert (
            day.day_ahead_usd <= day.da_only_perfect_foresight_usd * (1 + 1e-6) + 1e-6
        )
        for value in day.baselines_usd.values():
            assert value <= day.hindsight_usd * (1 + 1e-6) + 1e-6
        assert day.da_only_perfect_foresight_usd > 0


def test_backtest_reports_the_json_contract_when_done(report):
    totals = report.to_json()
    for key in (
        "revenue_usd",
        "degradation_usd",
        "hindsight_usd",
        "capture_vs_hindsight",
        "da_only_perfect_foresight_usd",
        "baselines",
        "value_of_forecast_usd",
        "rt_missing_hours",
        "days",
    ):
        assert key in totals
    assert set(totals["revenue_usd"]) == {"da_energy", "ancillary", "rt_deviation"}
    assert set(totals["baselines"]) == {"static_as", "tb2", "tb4", "naive_forecast"}
    assert 0 < totals["capture_vs_hindsight"] <= 1.0
    assert totals["capture_vs_hindsight"] == pytest.approx(
        totals["net_usd"] / totals["hindsight_usd"], abs=1e-4
    )
    assert totals["as_offers"] == "linked"
    assert totals["da_plan"] == "price_taker"
    gaps = sorted(
        (d["hindsight_usd"] - d["net_usd"] for d in totals["days"]), reverse=True
    )
    # three days: the ten largest gaps are all of it
    assert totals["hindsight_gap_top10_days_share"] == pytest.approx(
        sum(gaps[:10]) / sum(gaps), abs=1e-4
    )
    # naive_average is the strategy's own forecaster here: no value over itself
    assert totals["value_of_forecast_usd"] == 0.0
    assert len(totals["days"]) == 3


def test_fixed_plan_reproduces_the_objective_when_prices_unchanged():
    scn = scenario()
    plan = solve(scn)
    settled = solve(fixed_plan(scn, plan))
    assert settled.objective_usd == pytest.approx(plan.objective_usd, rel=1e-6)


def test_backtest_keeps_a_day_with_dark_hours_when_some_da_prices_are_missing():
    prices = price_frame(dt.date(2024, 2, 20), END)
    last = prices["timestamp_utc"].max()
    drop = (prices["product"] == "da_energy") & (
        prices["timestamp_utc"] >= last - pd.Timedelta(hours=1)
    )
    rep = run_backtest(fleet(1), prices[~drop], START, END, BacktestOptions())
    assert [d.status for d in rep.days] == ["ok", "ok", "ok"]
    assert [d.dark_hours for d in rep.days] == [0, 0, 2]


def test_backtest_skips_a_day_when_all_its_da_prices_are_missing():
    prices = price_frame(dt.date(2024, 2, 20), END)
    local = prices["timestamp_utc"].dt.tz_convert("America/Chicago").dt.date
    drop = (prices["product"] == "da_energy") & (local == END)
    rep = run_backtest(fleet(1), prices[~drop], START, END, BacktestOptions())
    assert [d.status for d in rep.days] == ["ok", "ok", "no actual DA prices"]


def test_backtest_keeps_25_hours_when_the_day_is_dst_fall_back():
    day = dt.date(2024, 11, 3)
    prices = price_frame(dt.date(2024, 10, 15), day)
    rep = run_backtest(fleet(1), prices, day, day, BacktestOptions())
    (row,) = rep.days
    assert row.status == "ok"
    assert row.hours == 25
    assert rep.totals()["hours_replayed"] == 25
    assert row.net_usd <= row.hindsight_usd * (1 + 1e-6) + 1e-6


def test_backtest_keeps_23_hours_when_the_day_is_dst_spring_forward():
    day = dt.date(2024, 3, 10)
    prices = price_frame(dt.date(2024, 2, 20), day)
    rep = run_backtest(fleet(1), prices, day, day, BacktestOptions())
    assert [(d.status, d.hours) for d in rep.days] == [("ok", 23)]


def test_backtest_reports_an_rt_gap_and_never_fills_it_with_da():
    prices = price_frame(dt.date(2024, 2, 20), END)
    hours = sorted(prices["timestamp_utc"].unique())
    gap = set(hours[-10:-7])  # three hours of the last day
    drop = (prices["product"] == "rt_energy") & prices["timestamp_utc"].isin(gap)
    gapped = prices[~drop]
    rep = run_backtest(fleet(1), gapped, START, END, BacktestOptions())
    assert [d.rt_missing_hours for d in rep.days] == [0, 0, 3]
    totals = rep.totals()
    assert totals["rt_missing_hours"] == 3
    assert totals["rt_missing_days"] == [END.isoformat()]
    # Filling the gap with DA prices would be a different figure: the gap is excluded.
    filled = gapped.copy()
    fill = prices[drop].copy()
    fill["price"] = (
        prices[(prices["product"] == "da_energy") & prices["timestamp_utc"].isin(gap)]
        .sort_values("timestamp_utc")["price"]
        .to_numpy()
    )
    filled = pd.concat([gapped, fill], ignore_index=True)
    rep_filled = run_backtest(fleet(1), filled, END, END, BacktestOptions())
    assert rep_filled.days[0].rt_missing_hours == 0
    assert rep.days[-1].hindsight_usd != pytest.approx(
        rep_filled.days[0].hindsight_usd, rel=1e-9
    )


def test_backtest_refuses_when_end_before_start():
    prices = price_frame(dt.date(2024, 2, 20), END)
    with pytest.raises(
        FleetInputError, match="--end=2024-03-11 is before --start=2024-03-13"
    ):
        run_backtest(fleet(1), prices, END, START, BacktestOptions())


def test_write_outputs_writes_csv_json_and_plot_when_done(report, tmp_path):
    paths = write_outputs(report, tmp_path)
    assert paths["png"].stat().st_size > 1000
    assert paths["csv"].read_text().splitlines()[0].startswith("day,status,")
    assert json.loads(paths["json"].read_text())["days_replayed"] == 3


def test_backtest_cli_prints_json_when_asked(tmp_path):
    prices = price_frame(dt.date(2024, 2, 20), END)
    csv_path = tmp_path / "prices.csv"
    out = prices.rename(columns={"price": "price_usd_per_mwh"})
    out["timestamp_utc"] = out["timestamp_utc"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(csv_path, index=False)
    data = fleet_data(1)
    data["sites"].append(site_data("btm-01", btm=True))
    fleet_path = write_fleet_file(tmp_path, data)
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            "--fleet",
            str(fleet_path),
            "--start",
            "2024-03-11",
            "--end",
            "2024-03-12",
            "--prices",
            str(csv_path),
            "--json",
            "--load-dir",
            str(_load_dir(tmp_path)),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{") :])
    assert data["days_replayed"] == 2
    assert data["hindsight_usd"] >= data["net_usd"]
    assert [
        (b["site_id"], b["billing_month"], b["days"]) for b in data["btm_bills"]
    ] == [("btm-01", "2024-03-01", 2)]
    days_csv = pd.read_csv(tmp_path / "out" / "backtest_days.csv")
    assert {"hindsight_usd", "baseline_static_as_usd", "rt_missing_hours"} <= set(
        days_csv.columns
    )
    assert len(days_csv) == 2
    assert (tmp_path / "out" / "backtest_btm_bills.csv").exists()
    assert (tmp_path / "out" / "backtest_daily.png").exists()


def test_backtest_cli_exits_2_when_load_dir_is_not_a_folder(tmp_path, capsys):
    fleet_path = write_fleet_file(tmp_path, fleet_data(1))
    args = ["backtest", "--fleet", str(fleet_path), "--start", "2024-03-11", "--end"]
    args += ["2024-03-12", "--load-dir", str(tmp_path / "nope")]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert "--load-dir" in capsys.readouterr().err


def test_backtest_cli_exits_2_when_price_file_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    fleet_path = write_fleet_file(tmp_path, fleet_data(1))
    args = ["backtest", "--fleet", str(fleet_path), "--start", "2024-03-11", "--end"]
    args += ["2024-03-12", "--prices", str(tmp_path / "none.csv")]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert "none.csv" in capsys.readouterr().err


@pytest.mark.slow
def test_backtest_replays_a_real_week_when_shared_data_present(shared_data):
    from fleet.ops.backtest import default_price_files

    prices = read_prices(default_price_files(shared_data), "ERCOT")
    rep = run_backtest(
        fleet(1).model_copy(),
        prices,
        dt.date(2024, 8, 5),
        dt.date(2024, 8, 11),
        BacktestOptions(),
    )
    totals = rep.totals()
    assert totals["days_replayed"] == 7
    assert 0.3 < totals["capture_vs_hindsight"] <= 1.0
    assert totals["value_over_baselines"]["tb2"] > 1.0


def _load_dir(tmp_path):
    """A one-year hourly load data set: 300 kW base, 900 kW from 14:00 to 17:00 UTC."""
    idx = pd.date_range(
        "2023-01-01", "2024-01-01", freq="h", inclusive="left", tz="UTC"
    )
    kw = np.where((idx.hour >= 19) & (idx.hour < 22), 900.0, 300.0)
    kw = kw + 100.0 * (idx.day_of_year % 3 == 0)  # the month's days differ in peak
    folder = tmp_path / "building_load_cambridge_hourly"
    folder.mkdir()
    pd.DataFrame(
        {
            "timestamp_utc": idx.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "site": "UCam_Building_b2",
            "load_kw": kw,
        }
    ).to_csv(folder / "load.csv", index=False)
    return tmp_path


def test_backtest_bills_btm_sites_per_billing_month_on_the_months_peak(tmp_path):
    data = fleet_data(1)
    tariff = {
        "energy_usd_per_mwh": 0.0,
        "periods": [],
        "demand_usd_per_kw_month": 15.0,
        "billing_cycle_day": 1,
    }
    data["sites"].append(site_data("btm-01", btm=True, tariff=tariff))
    fl = Fleet.model_validate(data)
    first, last = dt.date(2024, 6, 28), dt.date(2024, 7, 2)
    prices = price_frame(dt.date(2024, 6, 10), last)
    options = BacktestOptions(load_dir=_load_dir(tmp_path), realtime=False)
    rep = run_backtest(fl, prices, first, last, options)
    bills = rep.totals()["btm_bills"]
    assert [(b["site_id"], b["billing_month"], b["days"]) for b in bills] == [
        ("btm-01", "2024-06-01", 3),
        ("btm-01", "2024-07-01", 2),
    ]
    demand_usd_per_mw = 15.0 * 1000
    for bill in bills:
        # No energy charge: each bill is one demand charge on the month's peak
        # (several days, one charge), with and without the battery.
        # (peaks are reported to 0.1 kW: the bill may differ by half of that)
        half_step = demand_usd_per_mw * 0.5e-4 + 0.01
        assert bill["bill_without_battery_usd"] == pytest.approx(
            demand_usd_per_mw * bill["peak_without_mw"], abs=half_step
        )
        assert bill["bill_with_battery_usd"] == pytest.approx(
            demand_usd_per_mw * bill["peak_with_mw"], abs=half_step
        )
        assert bill["peak_with_mw"] < bill["peak_without_mw"] - 0.1
        assert bill["savings_usd"] > 0
    assert rep.totals()["btm_bill_savings_usd"] == pytest.approx(
        sum(b["savings_usd"] for b in bills), abs=0.02
    )


def test_backtest_refuses_a_btm_site_when_its_load_profile_is_missing(tmp_path):
    data = fleet_data(1)
    data["sites"].append(
        site_data(
            "btm-01",
            btm=True,
            load={
                "dataset": "building_load_cambridge_hourly",
                "profile": "nope",
                "scale": 1.0,
            },
        )
    )
    fl = Fleet.model_validate(data)
    prices = price_frame(dt.date(2024, 6, 10), dt.date(2024, 7, 1))
    options = BacktestOptions(load_dir=_load_dir(tmp_path), realtime=False)
    with pytest.raises(FleetInputError, match=r"btm-01: load\.profile='nope'"):
        run_backtest(fl, prices, dt.date(2024, 7, 1), dt.date(2024, 7, 1), options)


def test_static_as_offer_is_energy_neutral_and_held_every_hour():
    scn = scenario()
    plan = static_as_plan(scn)
    ru, rd, sp = (
        plan.reserves_mw["site-01"]["reg_up"],
        plan.reserves_mw["site-01"]["reg_down"],
        plan.reserves_mw["site-01"]["spin"],
    )
    assert ru == [pytest.approx(6.0)] * 24
    assert sp == [pytest.approx(4.0)] * 24
    # a_dn * eta_c * rd = a_up * ru / eta_d: expected deployment leaves SoC unchanged
    assert rd[0] == pytest.approx(6.0 / (0.95 * 0.95), rel=1e-6)
    value = two_settlement(scn, {NODE: scn.markets[NODE].energy}, plan=plan)
    assert value.status == "optimal"
    assert value.da_energy_usd == 0.0
    assert value.as_usd == pytest.approx(24 * (6 * 6.0 + 4 * rd[0] + 3 * 4.0), rel=1e-6)


def test_tb_windows_trade_only_in_the_cheapest_and_dearest_hours():
    scn = scenario(services=("energy",))
    result = solve(window_scenario(scn, 2))
    net = np.asarray(result.sites["site-01"].discharge_mw) - np.asarray(
        result.sites["site-01"].charge_mw
    )
    prices = np.asarray(scn.markets[NODE].energy)
    order = np.argsort(prices)
    allowed = set(order[:2]) | set(order[-2:])
    assert {int(i) for i in np.flatnonzero(np.abs(net) > 1e-6)} <= allowed
    assert net[order[-1]] > 0
    assert net[order[0]] < 0


def test_rt_forecast_uses_only_hours_before_the_redispatch():
    da = [10.0] * 6
    rt = [10.0, 30.0, 99.0, np.nan, 10.0, 10.0]
    fc = rt_forecast(da, rt, 2, 0.0, decay=0.5)
    assert fc == [
        10.0 + 20.0 * 0.5,
        10.0 + 20.0 * 0.25,
        10.0 + 20.0 * 0.125,
        10.0 + 20.0 * 0.0625,
    ]
    changed = rt_forecast(da, [10.0, 30.0, -5.0, 1e4, 0.0, 0.0], 2, 0.0, decay=0.5)
    assert changed == fc


@pytest.mark.slow
def test_backtest_replays_the_real_dst_fall_back_day_with_25_hours(shared_data):
    from fleet.ops.backtest import default_price_files

    prices = read_prices(default_price_files(shared_data), "ERCOT")
    day = dt.date(2025, 11, 2)
    rep = run_backtest(fleet(1), prices, day, day, BacktestOptions())
    (row,) = rep.days
    assert (row.status, row.hours) == ("ok", 25)
    # the reconstructed file drops both ambiguous 01:00 hours: dark, not skipped
    assert row.dark_hours == 2
    assert row.net_usd <= row.hindsight_usd


def test_model_mean_plans_at_the_swanson_mean_of_the_quantiles():
    from fleet.ops.backtest import SWANSON_WEIGHTS, _forecast
    from forecasting.backtest import rolling_backtest
    from forecasting.price import PriceForecaster

    frame = price_frame(dt.date(2024, 1, 1), dt.date(2024, 3, 12))
    y = (
        frame[(frame["node"] == NODE) & (frame["product"] == "da_energy")]
        .set_index("timestamp_utc")["price"]
        .sort_index()
    )
    days = [dt.date(2024, 3, 11), dt.date(2024, 3, 12)]
    tz = "America/Chicago"
    mean = _forecast(
        y,
        days,
        method="model_mean",
        tz=tz,
        product="da_energy",
        refit_days=28,
        clock=None,
    )
    quantiles = rolling_backtest(
        y,
        lambda: PriceForecaster(tz=tz, product="da_energy"),
        start=days[0],
        end=days[-1],
        refit_days=28,
    ).forecasts
    w10, w50, w90 = SWANSON_WEIGHTS
    expected = (
        w10 * quantiles["p10"] + w50 * quantiles["p50"] + w90 * quantiles["p90"]
    ).to_numpy()
    assert len(mean) == 48
    np.testing.assert_allclose(mean.to_numpy(), expected, rtol=1e-9)
    assert not np.allclose(mean.to_numpy(), quantiles["p50"].to_numpy())


def _with_ecrs_nonspin(prices: pd.DataFrame) -> pd.DataFrame:
    """Add SYSTEM ``ecrs`` and ``nonspin`` series (the shared data's product names)."""
    base = prices[prices["product"] == "rrs_spin"]
    extra = [
        base.assign(product="ecrs", price=base["price"] * 2.0 + 4.0),
        base.assign(product="nonspin", price=base["price"] * 1.5 + 6.0),
    ]
    return pd.concat([prices, *extra], ignore_index=True)


def test_backtest_bids_and_settles_ecrs_and_nonspin_when_site_lists_them():
    data = fleet_data(1)
    data["sites"][0]["services"] = [*data["sites"][0]["services"], "ecrs", "nonspin"]
    data["sites"][0]["battery"]["energy_mwh"] = 40.0
    data["sites"][0]["battery"]["strings"] = 106
    fl = Fleet.model_validate(data)
    prices = _with_ecrs_nonspin(price_frame(dt.date(2024, 2, 20), END))
    rep = run_backtest(fl, prices, END, END, BacktestOptions())
    totals = rep.totals()
    assert totals["days_replayed"] == 1
    by_product = totals["ancillary_by_product_usd"]
    assert by_product["ecrs"] > 0
    assert by_product["nonspin"] > 0
    assert totals["awarded_mw_h"]["nonspin"] > 0
    assert sum(by_product.values()) == pytest.approx(
        totals["revenue_usd"]["ancillary"], abs=0.05
    )
    # Without the services the same prices earn nothing from them.
    plain = run_backtest(fleet(1), prices, END, END, BacktestOptions()).totals()
    assert plain["ancillary_by_product_usd"]["ecrs"] == 0.0
    assert plain["awarded_mw_h"]["nonspin"] == 0.0


def test_btm_replay_is_metered_and_settled_by_the_engine_when_given_a_store(
    tmp_path, engine
):
    """Each replayed day is in the store: the meters, and settle_day's bills add up."""
    from dispatch.markets import load_market_rules
    from fleet.ops.backtest import btm_months, run_btm
    from fleet.ops.btm import btm_inputs
    from fleet.ops.metering import LOAD_DEVICE, PCS_DEVICE, interval_mean_mw
    from fleet.ops.scenario_builder import operating_day_start
    from fleet.ops.settlement import settle_day

    rules = load_market_rules("ERCOT")
    tariff = {
        "energy_usd_per_mwh": 50.0,
        "periods": [],
        "demand_usd_per_kw_month": 15.0,
        "billing_cycle_day": 1,
    }
    data = fleet_data(1)
    data["sites"].append(site_data("btm-01", btm=True, tariff=tariff))
    fl = Fleet.model_validate(data)
    site = next(s for s in fl.sites if s.is_btm)
    first, last = dt.date(2024, 7, 1), dt.date(2024, 7, 3)
    months = run_btm(fl, rules, [site], first, last, _load_dir(tmp_path), store=engine)
    assert [(m.billing_month, m.days) for m in months] == [("2024-07-01", 3)]

    t0 = operating_day_start(rules, first)
    n = 3 * 96
    load = interval_mean_mw(
        engine,
        site_id="btm-01",
        dev_id=LOAD_DEVICE,
        start=t0,
        intervals=n,
        interval_minutes=15,
    )
    battery = interval_mean_mw(
        engine,
        site_id="btm-01",
        dev_id=PCS_DEVICE,
        start=t0,
        intervals=n,
        interval_minutes=15,
    )
    assert load.notna().all()
    assert battery.notna().all()
    assert battery.max() > 0.1, "the battery discharged into the afternoon peak"
    # The history before the window is metered (without the battery): from the
    # first day on, the plan's load forecast comes from telemetry.
    before = interval_mean_mw(
        engine,
        site_id="btm-01",
        dev_id=PCS_DEVICE,
        start=t0 - dt.timedelta(days=14),
        intervals=14 * 96,
        interval_minutes=15,
    )
    assert before.isna().all()
    assert btm_inputs(engine, site, t0, 96, 15, now=t0).source == "telemetry"

    # Settling the days again from the store gives the reported bills.
    one = fl.model_copy(update={"sites": [site], "poi_groups": []})
    rows = [
        r
        for day in (first, first + dt.timedelta(days=1), last)
        for r in settle_day(engine, one, rules, day).rows
    ]
    (again,) = btm_months("btm-01", rows)
    assert again == months[0]
    month = months[0]
    demand = 15.0 * 1000
    # one demand charge on the month's highest import, not one per day
    assert month.demand_with_usd == pytest.approx(
        demand * month.peak_with_mw, abs=demand * 0.5e-4 + 0.03
    )
    assert month.demand_without_usd == pytest.approx(
        demand * month.peak_without_mw, abs=demand * 0.5e-4 + 0.03
    )
    assert month.bill_with_battery_usd == pytest.approx(
        month.energy_with_usd + month.demand_with_usd, abs=0.01
    )
    assert month.savings_usd == pytest.approx(
        month.bill_without_battery_usd - month.bill_with_battery_usd, abs=0.05
    )
    assert month.peak_with_mw < month.peak_without_mw - 0.1


def test_backtest_charges_reserve_not_held_as_settlement_does():
    """Awards the metered path cannot hold are short; the fleet's capability is pooled."""
    from dispatch.markets import load_market_rules
    from dispatch.twosettle import TwoSettlementPlan
    from fleet.ops.backtest import DayInputs, reserve_shortfall

    rules = load_market_rules("ERCOT")
    fl = fleet(2)
    hours = 24
    price = [6.0] * hours
    inputs = DayInputs(
        day=dt.date(2024, 7, 1),
        hours=hours,
        forecast={},
        actual={NODE: {"energy": [30.0] * hours, "reg_up": price, "spin": price}},
        rt_energy={NODE: [30.0] * hours},
    )
    zero = [0.0] * hours

    def plan(reg_up_1: float) -> TwoSettlementPlan:
        return TwoSettlementPlan(
            da_net_mw={"site-01": [10.0] * hours, "site-02": zero},
            reserves_mw={"site-01": {"reg_up": [reg_up_1] * hours}},
            rt_net_mw={"site-01": [10.0] * hours, "site-02": zero},
        )

    # site-01 discharges its full 10 MW: it holds no reg-up of its own ...
    metered = {"site-01": [10.0] * hours, "site-02": zero}
    soc = {"site-01": [0.5] * hours, "site-02": [0.5] * hours}
    pooled = reserve_shortfall(fl, rules, inputs, plan(5.0), metered, soc)
    # ... but site-02 idles at half charge: the pooled fleet holds the 5 MW.
    assert pooled.awarded_mwh["reg_up"] == pytest.approx(5.0 * hours)
    assert pooled.total_mwh == 0.0
    assert pooled.charge_usd == 0.0

    # With site-02 empty (at soc_min) nobody holds it: all of it is short.
    soc_empty = {"site-01": [0.5] * hours, "site-02": [0.05] * hours}
    short = reserve_shortfall(fl, rules, inputs, plan(5.0), metered, soc_empty)
    assert short.shortfall_mwh["reg_up"] == pytest.approx(5.0 * hours)
    assert short.charge_usd == pytest.approx(
        rules.shortfall_charge_factor * 5.0 * 6.0 * hours, abs=0.01
    )


def test_linked_offers_never_earn_less_at_da_than_fixed_offers_and_stay_bounded():
    prices = price_frame(dt.date(2024, 2, 20), END)
    # On the last day spin (price series rrs_spin) and reg-up swap prices: the forecast
    # (made from the days before) misjudges which upward product pays; the linked block
    # follows the clearing prices.
    ts = pd.to_datetime(prices["timestamp_utc"], utc=True)
    last = pd.Timestamp(END, tz="America/Chicago")
    swap = (
        prices["product"].isin(["rrs_spin", "reg_up"])
        & (ts >= last)
        & (ts < last + pd.Timedelta(days=1))
    )
    assert swap.sum() == 48
    prices.loc[swap, "product"] = prices.loc[swap, "product"].map(
        {"rrs_spin": "reg_up", "reg_up": "rrs_spin"}
    )
    linked = run_backtest(fleet(1), prices, START, END, BacktestOptions())
    fixed = run_backtest(
        fleet(1), prices, START, END, BacktestOptions(as_offers="fixed")
    )
    assert linked.to_json()["as_offers"] == "linked"
    assert len(linked.ok_days) == len(fixed.ok_days) == 3
    for a, b in zip(linked.ok_days, fixed.ok_days, strict=True):
        assert a.day_ahead_usd >= b.day_ahead_usd * (1 - 1e-5) - 1e-3
        assert a.net_usd <= a.hindsight_usd * (1 + 1e-6) + 1e-6
        assert a.as_shortfall_mwh == pytest.approx(0.0, abs=1e-6)
    assert sum(d.day_ahead_usd for d in linked.ok_days) > sum(
        d.day_ahead_usd for d in fixed.ok_days
    )


def test_stochastic_da_plan_replays_within_the_bound():
    prices = price_frame(dt.date(2024, 1, 20), END)
    rep = run_backtest(
        fleet(1),
        prices,
        START,
        END,
        BacktestOptions(da_plan="stochastic", scenario_days=10),
    )
    assert rep.to_json()["da_plan"] == "stochastic"
    assert len(rep.ok_days) == 3
    for day in rep.ok_days:
        assert day.net_usd <= day.hindsight_usd * (1 + 1e-6) + 1e-6
        assert day.as_shortfall_mwh == pytest.approx(0.0, abs=1e-6)


def test_backtest_refuses_an_unknown_as_offer_mode():
    prices = price_frame(dt.date(2024, 2, 20), END)
    with pytest.raises(FleetInputError, match="--as-offers"):
        run_backtest(fleet(1), prices, START, END, BacktestOptions(as_offers="both"))


def test_perfect_forecast_plans_the_da_only_optimum_and_bounds_the_forecasts_value():
    prices = price_frame(dt.date(2024, 2, 20), END)
    perfect = run_backtest(
        fleet(1), prices, START, END, BacktestOptions(forecaster="perfect")
    )
    naive = run_backtest(fleet(1), prices, START, END, BacktestOptions())
    totals = perfect.to_json()
    assert totals["forecaster"] == "perfect"
    assert len(perfect.ok_days) == len(naive.ok_days) == 3
    for p, n in zip(perfect.ok_days, naive.ok_days, strict=True):
        # Planned at the actual DA prices, the DA plan settles at the DA-only optimum.
        assert p.day_ahead_usd == pytest.approx(
            p.da_only_perfect_foresight_usd, rel=1e-4
        )
        assert p.day_ahead_usd >= n.day_ahead_usd * (1 - 1e-6) - 1e-6
        assert p.net_usd <= p.hindsight_usd * (1 + 1e-6) + 1e-6
        # The naive baseline is the same engine with naive_average.
        assert p.baselines_usd["naive_forecast"] == pytest.approx(n.net_usd, rel=1e-6)
    assert totals["value_of_forecast_usd"] == pytest.approx(
        totals["net_usd"] - naive.to_json()["net_usd"], abs=0.02
    )


def test_redispatch_that_gives_an_award_up_for_an_rt_spike_is_settled_as_metered():
    prices = price_frame(dt.date(2024, 2, 20), END)
    ts = pd.to_datetime(prices["timestamp_utc"], utc=True)
    local = ts.dt.tz_convert("America/Chicago")
    spike = (
        (prices["product"] == "rt_energy")
        & (local.dt.date == END)
        & local.dt.hour.isin([16, 17, 18])
    )
    assert spike.sum() == 3
    prices.loc[spike, "price"] = 3_000.0
    realtime = run_backtest(fleet(1), prices, END, END, BacktestOptions())
    metered_da = run_backtest(
        fleet(1), prices, END, END, BacktestOptions(realtime=False)
    )
    (day,), (da_day,) = realtime.ok_days, metered_da.ok_days
    # The engine sold into the spike and gave part of its upward awards up: the day
    # is settled on the metered path (no fallback to the DA plan), the awards not
    # held are charged back, and the result stays below the bound.
    assert day.rt_fallbacks == 0
    assert day.as_shortfall_mwh > 0
    assert day.as_shortfall_usd > 0
    assert day.net_usd > da_day.net_usd
    assert day.net_usd <= day.hindsight_usd * (1 + 1e-6) + 1e-6
