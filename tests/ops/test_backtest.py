from __future__ import annotations

import datetime as dt
import json

import pytest
from typer.testing import CliRunner

from dispatch.markets import load_market_rules
from dispatch.solve import solve
from fleet.cli import app, main
from fleet.errors import FleetInputError
from fleet.ops.backtest import (
    BacktestOptions,
    baseline_commitments,
    fixed_plan,
    read_prices,
    run_backtest,
    write_outputs,
)
from tests.factories import fleet_data, write_fleet_file
from tests.ops.helpers import fleet, price_frame, scenario

START, END = dt.date(2024, 3, 11), dt.date(2024, 3, 13)


@pytest.fixture(scope="module")
def report():
    prices = price_frame(dt.date(2024, 2, 20), END)
    return run_backtest(fleet(1), prices, START, END, BacktestOptions())


def test_backtest_never_beats_perfect_foresight_when_replayed(report):
    assert len(report.ok_days) == 3
    for day in report.ok_days:
        assert day.day_ahead_usd <= day.perfect_foresight_usd * (1 + 1e-6) + 1e-6
        assert day.perfect_foresight_usd > 0


def test_backtest_reports_the_json_contract_when_done(report):
    totals = report.to_json()
    for key in (
        "revenue_usd",
        "degradation_usd",
        "perfect_foresight_usd",
        "capture_ratio",
        "baseline_usd",
        "days",
    ):
        assert key in totals
    assert set(totals["revenue_usd"]) == {
        "energy",
        "reg_up",
        "reg_down",
        "spin",
        "rt_deviation",
    }
    assert 0 < totals["capture_ratio"] <= 1.0
    assert totals["capture_ratio"] == pytest.approx(
        totals["day_ahead_usd"] / totals["perfect_foresight_usd"], abs=1e-4
    )
    assert len(totals["days"]) == 3


def test_fixed_plan_reproduces_the_objective_when_prices_unchanged():
    scn = scenario()
    plan = solve(scn)
    settled = solve(fixed_plan(scn, plan))
    assert settled.objective_usd == pytest.approx(plan.objective_usd, rel=1e-6)


def test_baseline_charges_then_discharges_in_fixed_windows_when_built():
    scn = scenario()
    rules = load_market_rules("ERCOT")
    base = baseline_commitments(scn, rules)
    net = base.sites[0].commitments.net_mw
    # Local midnight start: hours 2-3 charge, hours 18-19 discharge (k = ceil(18/10) = 2).
    assert [i for i, v in enumerate(net) if v < 0] == [2, 3]
    assert [i for i, v in enumerate(net) if v > 0] == [18, 19]
    result = solve(base)
    assert result.status == "optimal"
    assert result.sites["site-01"].soc[-1] == pytest.approx(0.5, abs=1e-6)


def test_backtest_skips_a_day_when_actual_prices_are_missing():
    prices = price_frame(dt.date(2024, 2, 20), END)
    drop = (prices["product"] == "da_energy") & (
        prices["timestamp_utc"] == prices["timestamp_utc"].max()
    )
    rep = run_backtest(fleet(1), prices[~drop], START, END, BacktestOptions())
    assert [d.status for d in rep.days] == ["ok", "ok", "missing actual energy prices"]


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
    fleet_path = write_fleet_file(tmp_path, fleet_data(1))
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
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{") :])
    assert data["days_replayed"] == 2
    assert data["perfect_foresight_usd"] >= data["day_ahead_usd"]
    assert (tmp_path / "out" / "backtest_daily.png").exists()


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
    assert 0.3 < totals["capture_ratio"] <= 1.0
    assert totals["baseline_ratio"] > 1.0
