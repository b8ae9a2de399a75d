"""Which segment costs dispatch uses, where they come from, and the model's warnings."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from fleet.cli import main
from fleet.fleetfile import load_fleet
from fleet.ops.degradation_costs import (
    describe_fleet_costs,
    site_segment_costs,
    warranty_efc_per_day,
)
from forecasting.degradation.costs import CostInputs, degradation_costs
from tests.factories import battery_data, fleet_data, write_fleet_file

EXAMPLE_FLEET = Path(__file__).parents[2] / "deploy" / "examples" / "fleet.toml"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["degradation", *args])
    out = capsys.readouterr()
    code = exc.value.code
    return (0 if code is None else int(code)), out.out, out.err


def _fleet_file(tmp_path: Path, override: list[float] | None = None) -> Path:
    data = fleet_data(1)
    data["sites"][0]["battery"] = battery_data(
        commissioned=dt.date(2026, 1, 1),
        warranty={"years": 10, "throughput_mwh": 73_000.0},
    )
    if override is not None:
        data["sites"][0]["degradation_usd_per_mwh"] = override
    return write_fleet_file(tmp_path, data)


def test_example_fleet_sets_no_hand_made_curve_so_dispatch_uses_the_model():
    fleet = load_fleet(EXAMPLE_FLEET)
    assert all(s.degradation_usd_per_mwh is None for s in fleet.sites)
    odessa = next(s for s in fleet.sites if s.id == "tx-odessa-01")
    chosen = site_segment_costs(odessa)
    assert chosen.source == "model"
    assert chosen.duty_source == "warranty"
    # The model's curve at $135/kWh, not the [2, 4, 8, 16] the file used to carry.
    assert chosen.usd_per_mwh[0] > 10.0
    assert list(chosen.usd_per_mwh) == sorted(chosen.usd_per_mwh)
    assert "override" not in describe_fleet_costs(fleet)


def test_scenario_builder_uses_model_curve_when_site_has_no_override():
    from dispatch.markets import load_market_rules
    from fleet.ops.scenario_builder import ScenarioInputs, build_scenario

    fleet = load_fleet(EXAMPLE_FLEET)
    rules = load_market_rules("ERCOT")
    sites = [s for s in fleet.sites if s.market.value == "ERCOT" and not s.is_btm]
    flat = [40.0] * 24
    prices = {
        s.node: {"energy": flat, "reg_up": flat, "reg_down": flat, "spin": flat}
        for s in sites
    }
    scn = build_scenario(
        fleet,
        rules,
        ScenarioInputs(
            start=dt.datetime(2026, 3, 2, 6, tzinfo=dt.UTC),
            interval_minutes=60,
            intervals=24,
            prices=prices,
        ),
    )
    for entry in scn.sites:
        site = next(s for s in sites if s.id == entry.id)
        expected = site_segment_costs(site).usd_per_mwh
        assert entry.degradation_usd_per_mwh == pytest.approx(list(expected))


def test_site_segment_costs_names_fleet_file_override_and_keeps_model_for_reference(
    tmp_path: Path,
):
    site = load_fleet(_fleet_file(tmp_path, [1.0, 2.0])).sites[0]
    chosen = site_segment_costs(site)
    assert chosen.source == "fleet file"
    assert chosen.usd_per_mwh == (1.0, 2.0)
    assert len(chosen.model_usd_per_mwh) == 4
    assert "override" in chosen.description
    assert site.id in describe_fleet_costs(load_fleet(_fleet_file(tmp_path, [1.0])))


def test_site_segment_costs_prefers_history_duty_over_warranty(tmp_path: Path):
    site = load_fleet(_fleet_file(tmp_path)).sites[0]
    assert warranty_efc_per_day(site) == pytest.approx(73_000 / 20 / 3650)
    warranty = site_segment_costs(site)
    history = site_segment_costs(site, history_efc_per_day=2.0)
    assert history.duty_source == "history"
    assert history.efc_per_day == pytest.approx(2.0)
    # More cycling a day means a shorter life and a different cost per MWh.
    assert history.costs.life_years < warranty.costs.life_years
    assert history.usd_per_mwh != warranty.usd_per_mwh


def _inputs(**kw: float) -> CostInputs:
    return CostInputs(energy_mwh=200.0, replacement_cost_usd_per_kwh=135.0, **kw)


def test_costs_warn_when_life_beyond_supported_years():
    rare = degradation_costs(_inputs(efc_per_day=0.2))
    assert rare.life_years > 20
    assert any("beyond the 20 years" in w for w in rare.warnings)
    daily = degradation_costs(_inputs(efc_per_day=1.0))
    assert daily.warnings == ()


def test_costs_warn_when_hot_cycling_looks_cheaper_than_at_25c():
    hot = degradation_costs(_inputs(temp_c=35.0))
    ref = degradation_costs(_inputs(temp_c=25.0))
    # The model form: cycling is cheaper hot. It must say so.
    assert hot.segment_usd_per_mwh[-1] < ref.segment_usd_per_mwh[-1]
    assert any("fitted form" in w for w in hot.warnings)
    assert any(
        "outside the 10-45" in w
        for w in degradation_costs(_inputs(temp_c=50.0)).warnings
    )


def test_cli_costs_json_says_what_dispatch_uses_and_where_it_came_from(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    path = _fleet_file(tmp_path, [1.0, 2.0, 3.0])
    site = load_fleet(path).sites[0].id
    code, out, err = _run(capsys, "costs", site, "--fleet", str(path), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["degradation_usd_per_mwh"] == [1.0, 2.0, 3.0]
    assert doc["source"] == "fleet file"
    assert doc["duty_source"] == "warranty"
    assert len(doc["model_degradation_usd_per_mwh"]) == 4
    assert doc["what_if"] is False


def test_cli_costs_exits_2_naming_option_when_efc_per_day_zero(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    path = _fleet_file(tmp_path)
    site = load_fleet(path).sites[0].id
    code, _out, err = _run(
        capsys, "costs", site, "--fleet", str(path), "--efc-per-day", "0"
    )
    assert code == 2
    assert "--efc-per-day=0" in err
    assert "Traceback" not in err


def test_cli_costs_warns_when_duty_rare(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    path = _fleet_file(tmp_path)
    site = load_fleet(path).sites[0].id
    code, out, err = _run(
        capsys, "costs", site, "--fleet", str(path), "--efc-per-day", "0.2"
    )
    assert code == 0, err
    assert "what-if" in out
    assert "warning: expected life" in out


def _history(path: Path, days: int, *, bom: bool = False, power: bool = True) -> Path:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    day = np.interp(
        np.arange(24), [0, 6, 10, 12, 16, 24], [0.1, 0.1, 1.0, 1.0, 0.1, 0.1]
    )
    soc = np.append(np.tile(day, days), day[0])
    watts = np.append(-np.diff(soc) * 20.0, 0.0)
    rows = ["timestamp_utc,soc" + (",power_mw" if power else "")]
    for i, (s, p) in enumerate(zip(soc, watts, strict=True)):
        stamp = (start + dt.timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(f"{stamp},{s:.6f}" + (f",{p:.6f}" if power else ""))
    text = "\n".join(rows) + "\n"
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return path


def test_cli_costs_takes_duty_from_history_csv_with_bom(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    path = _fleet_file(tmp_path)
    site = load_fleet(path).sites[0].id
    hist = _history(tmp_path / "h.csv", 10, bom=True)
    code, out, err = _run(
        capsys, "costs", site, "--fleet", str(path), "--soc-csv", str(hist), "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["duty_source"] == "history"
    # One 10 %-100 % cycle a day, metered: 0.9 EFC a day.
    assert doc["history_efc_per_day"] == pytest.approx(0.9, rel=0.02)


def test_cli_project_accepts_bom_and_refuses_latin1_naming_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    soc = 0.5 + 0.4 * np.sin(np.arange(24) / 24 * 2 * np.pi)
    body = "hour,soc\n" + "".join(f"{h},{s:.4f}\n" for h, s in enumerate(soc))
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + body.encode())
    code, _out, err = _run(capsys, "project", "--profile", str(bom), "--years", "2")
    assert code == 0, err
    latin = tmp_path / "latin.csv"
    latin.write_bytes(body.encode() + "# r\xe9sum\xe9\n".encode("latin-1"))
    code, _out, err = _run(capsys, "project", "--profile", str(latin), "--years", "2")
    assert code == 2
    assert "line 26" in err
    assert "0xe9" in err
    assert "Traceback" not in err


def test_cli_report_books_warranty_throughput_from_metered_power(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    path = _fleet_file(tmp_path)
    site = load_fleet(path).sites[0].id
    hist = _history(tmp_path / "h.csv", 20)
    code, out, err = _run(
        capsys,
        "report",
        "--fleet",
        str(path),
        "--soc-csv",
        f"{site}={hist}",
        "--json",
    )
    assert code == 0, err
    row = json.loads(out)["sites"][0]
    # 20 days x 0.9 x 20 MWh discharged on the DC meter, x 0.95 at the AC meter.
    assert row["warranty_used_mwh"] == pytest.approx(20 * 0.9 * 20.0 * 0.95, rel=0.02)


def test_cli_report_counts_regulation_swings_the_soc_filter_cannot_see(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    path = _fleet_file(tmp_path)
    site = load_fleet(path).sites[0].id
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    # A day of +-2 MW square-wave regulation around 50 %, 20-s samples: each swing
    # moves SoC by 0.03 %, far below any noise band; SoC telemetry in 0.1 % steps.
    n = 4320
    power = np.where((np.arange(n) // 3) % 2 == 0, 2.0, -2.0)
    soc = 0.5 - np.concatenate([[0.0], np.cumsum(power[:-1] * 20 / 3600)]) / 20.0
    rows = ["timestamp_utc,soc,power_mw"]
    for i in range(n):
        stamp = (start + dt.timedelta(seconds=20 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(f"{stamp},{round(soc[i], 3):.3f},{power[i]:.3f}")
    hist = tmp_path / "reg.csv"
    hist.write_text("\n".join(rows) + "\n", encoding="utf-8")
    code, out, err = _run(
        capsys, "report", "--fleet", str(path), "--soc-csv", f"{site}={hist}", "--json"
    )
    assert code == 0, err
    row = json.loads(out)["sites"][0]
    metered_dc = float(np.sum(np.clip(power[:-1], 0, None)) * 20 / 3600)
    assert row["warranty_used_mwh"] == pytest.approx(metered_dc * 0.95, rel=0.02)


def _store_history(url: str, site: str, days: int, start: dt.datetime) -> None:
    """Hourly telemetry of one 10 %-100 % cycle a day (20 MWh battery) into the store."""
    import sqlalchemy as sa

    from fleet.store.engine import make_engine
    from fleet.store.migrate import upgrade
    from fleet.store.telemetry_tables import tlm_measurements

    upgrade(url)
    start_ms = int(start.timestamp() * 1000)
    day = np.interp(
        np.arange(24), [0, 6, 10, 12, 16, 24], [0.1, 0.1, 1.0, 1.0, 0.1, 0.1]
    )
    soc = np.append(np.tile(day, days), day[0])
    power_w = np.append(-np.diff(soc) * 20e6, 0.0)
    rows = [
        {
            "site_id": site,
            "dev_id": "bank1",
            "ts_ms": start_ms + i * 3_600_000,
            "seq": i,
            "sid": 1,
            "hist": False,
            "q": "good",
            "flags": 0,
            "payload_hash": f"{i:032x}",
            "received_at_ms": start_ms + i * 3_600_000,
            "soc_pct": 100 * float(s),
            "p_dc_w": float(p),
        }
        for i, (s, p) in enumerate(zip(soc, power_w, strict=True))
    ]
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.insert(tlm_measurements), rows)
    engine.dispose()


def test_day_ahead_costs_use_store_history_duty_when_enough_telemetry(
    tmp_path: Path, empty_db_url: str, capsys: pytest.CaptureFixture[str]
):
    from fleet.ops.degradation_costs import history_efc_per_day, scenario_degradation
    from fleet.store.engine import make_engine

    path = _fleet_file(tmp_path)
    site = load_fleet(path).sites[0]
    start = dt.datetime(2026, 1, 11, tzinfo=dt.UTC)
    _store_history(empty_db_url, site.id, 20, start)
    now = start + dt.timedelta(days=20, hours=1)
    engine = make_engine(empty_db_url)
    try:
        assert history_efc_per_day(engine, site, now=now) == pytest.approx(
            0.9, rel=0.01
        )
        # Five days only: too little, the warranty duty stands.
        early = start + dt.timedelta(days=5)
        assert history_efc_per_day(engine, site, now=early) is None
        used = scenario_degradation(engine, [site], now=now)
    finally:
        engine.dispose()
    expected = site_segment_costs(site, history_efc_per_day=0.9).usd_per_mwh
    assert used[site.id] == pytest.approx(list(expected), rel=0.01)
    assert used[site.id] != pytest.approx(list(site_segment_costs(site).usd_per_mwh))
    fleet = load_fleet(path)
    assert "duty of the last 30 days for " + site.id in describe_fleet_costs(
        fleet, None, used
    )
    code, out, err = _run(
        capsys,
        "costs",
        site.id,
        "--fleet",
        str(path),
        "--db",
        empty_db_url,
        "--as-of",
        now.isoformat(),
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["duty_source"] == "history"
    assert doc["degradation_usd_per_mwh"] == pytest.approx(list(expected), rel=0.01)


def test_cli_costs_what_if_asks_the_model_even_when_site_has_override(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    path = _fleet_file(tmp_path, [1.0, 2.0, 3.0])
    site = load_fleet(path).sites[0]
    code, out, err = _run(
        capsys, "costs", site.id, "--fleet", str(path), "--efc-per-day", "2", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["what_if"] is True
    assert doc["source"] == "fleet file"
    expected = site_segment_costs(site, efc_per_day=2.0).model_usd_per_mwh
    assert doc["degradation_usd_per_mwh"] == pytest.approx(list(expected), abs=1e-4)


def test_intraday_keeps_the_day_ahead_plan_costs_when_given():
    from dispatch.markets import load_market_rules
    from fleet.ops.intraday import IntradayConfig, IntradayDispatcher
    from tests.ops.helpers import NODE, fleet

    rules = load_market_rules("ERCOT")
    day = dt.date(2024, 7, 2)

    def prices(start: dt.datetime, n: int, minutes: int = 15):
        del start, minutes
        return {NODE: {"energy": [40.0] * n, "reg_up": [5.0] * n}}

    fleet_obj = fleet(2)
    plan = {"site-01": [30.0, 31.0, 32.0]}
    dispatcher = IntradayDispatcher(
        fleet_obj,
        rules,
        day,
        prices=prices,
        states=dict,
        config=IntradayConfig(interval_minutes=15),
        degradation=plan,
    )
    scn = dispatcher._scenario(40, {}, {}, relaxed=False)
    curves = {s.id: s.degradation_usd_per_mwh for s in scn.sites}
    assert curves["site-01"] == [30.0, 31.0, 32.0]
    # A site the plan does not name gets the model's curve at warranty duty.
    site_02 = next(s for s in fleet_obj.sites if s.id == "site-02")
    assert site_02.degradation_usd_per_mwh is None
    assert curves["site-02"] == pytest.approx(
        list(site_segment_costs(site_02).usd_per_mwh)
    )
