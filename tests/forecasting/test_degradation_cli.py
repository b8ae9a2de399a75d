"""The ``bessfleet degradation`` commands, run in process through the CLI entry point."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from fleet.cli import main
from tests.factories import battery_data, fleet_data, write_fleet_file

HOURS = np.arange(24)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["degradation", *args])
    out = capsys.readouterr()
    code = exc.value.code
    return (0 if code is None else int(code)), out.out, out.err


def _day_csv(path: Path, soc: np.ndarray) -> Path:
    lines = ["hour,soc", *(f"{h},{s:.6f}" for h, s in zip(HOURS, soc, strict=True))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_cli_project_prints_yearly_capacity_json_when_profile_valid(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    day = np.interp(HOURS, [0, 4, 6, 10, 24], [0, 1, 1, 0, 0])
    csv = _day_csv(tmp_path / "day.csv", day)
    code, out, err = _run(
        capsys, "project", "--profile", str(csv), "--years", "10", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    cap = data["capacity_fraction"]
    assert sorted(cap, key=int) == [str(y) for y in range(1, 11)]
    assert [cap["1"], cap["5"], cap["10"]] == pytest.approx(
        [0.980, 0.933, 0.888], abs=0.003
    )
    assert any("80-100%" in note for note in data["notes"])


def test_cli_project_says_extrapolation_when_shallow_cycles(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    day = np.interp(HOURS, [0, 2, 12, 14, 24], [0.25, 0.75, 0.75, 0.25, 0.25])
    csv = _day_csv(tmp_path / "day.csv", day)
    code, out, err = _run(capsys, "project", "--profile", str(csv), "--years", "2")
    assert code == 0, err
    assert "extrapolation" in out
    hotter = _run(
        capsys,
        "project",
        "--profile",
        str(csv),
        "--years",
        "2",
        "--temp-c",
        "35",
        "--json",
    )
    cooler = _run(capsys, "project", "--profile", str(csv), "--years", "2", "--json")
    assert (
        json.loads(hotter[1])["capacity_fraction"]["2"]
        < json.loads(cooler[1])["capacity_fraction"]["2"]
    )


def test_cli_project_exits_2_naming_line_when_soc_above_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("hour,soc\n0,0.5\n1,0.6\n2,62\n", encoding="utf-8")
    code, _out, err = _run(capsys, "project", "--profile", str(csv), "--years", "1")
    assert code == 2
    assert "line 4" in err
    assert "soc=62" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("hour,level\n0,0.5\n", "missing column(s) soc"),
        ("hour,soc\n0,0.5\n0,0.6\n", "line 3: hour=0"),
        ("hour,soc\n0,abc\n", "line 2: soc='abc'"),
        ("hour,soc\n24,0.5\n", "hour=24"),
        ("hour,soc\n", "no data rows"),
    ],
)
def test_cli_project_exits_2_when_profile_malformed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, match: str
) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(content, encoding="utf-8")
    code, _out, err = _run(capsys, "project", "--profile", str(csv), "--years", "1")
    assert code == 2
    assert match in " ".join(err.split())


@pytest.fixture
def fleet_file(tmp_path: Path) -> Path:
    data = fleet_data(1)
    data["sites"][0]["battery"] = battery_data(
        commissioned=dt.date(2026, 1, 1),
        warranty={"years": 10, "throughput_mwh": 73_000.0},
    )
    return write_fleet_file(tmp_path, data)


def _site_id(fleet_file: Path) -> str:
    from fleet.fleetfile import load_fleet

    return load_fleet(fleet_file).sites[0].id


def test_cli_costs_prints_non_decreasing_segments_when_site_known(
    capsys: pytest.CaptureFixture[str], fleet_file: Path
) -> None:
    site = _site_id(fleet_file)
    code, out, err = _run(capsys, "costs", site, "--fleet", str(fleet_file), "--json")
    assert code == 0, err
    seg = json.loads(out)["degradation_usd_per_mwh"]
    assert len(seg) == 4
    assert seg == sorted(seg)
    assert seg[0] > 0


def test_cli_costs_exits_2_when_site_unknown(
    capsys: pytest.CaptureFixture[str], fleet_file: Path
) -> None:
    code, _out, err = _run(capsys, "costs", "no-such-site", "--fleet", str(fleet_file))
    assert code == 2
    assert "no-such-site" in err


def test_cli_plot_writes_png_when_site_known(
    capsys: pytest.CaptureFixture[str], fleet_file: Path, tmp_path: Path
) -> None:
    png = tmp_path / "curve.png"
    code, _out, err = _run(
        capsys, "plot", _site_id(fleet_file), "--fleet", str(fleet_file), "-o", str(png)
    )
    assert code == 0, err
    assert png.read_bytes()[:4] == b"\x89PNG"


def _history_csv(path: Path, days: int, energy_mwh: float = 20.0) -> Path:
    """Hourly SoC and DC power of a 20 MWh battery cycling once a day since 2026-01-01."""
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    day = np.interp(
        np.arange(24), [0, 6, 10, 12, 16, 24], [0.1, 0.1, 1.0, 1.0, 0.1, 0.1]
    )
    soc = np.append(np.tile(day, days), day[0])
    power = np.append(-np.diff(soc) * energy_mwh, 0.0)
    rows = ["timestamp_utc,soc,power_mw"]
    for i, (s, p) in enumerate(zip(soc, power, strict=True)):
        stamp = (start + dt.timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(f"{stamp},{s:.6f},{p:.6f}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_cli_report_lists_health_warranty_and_wear_when_history_given(
    capsys: pytest.CaptureFixture[str], fleet_file: Path, tmp_path: Path
) -> None:
    site = _site_id(fleet_file)
    hist = _history_csv(tmp_path / "soc.csv", 60)
    result = tmp_path / "result.json"
    t = np.arange(97)
    soc = list(np.interp(t, [0, 16, 40, 56, 96], [0.5, 0.95, 0.95, 0.05, 0.5]))
    zeros = [0.0] * 96
    result.write_text(
        json.dumps(
            {
                "schema": "bess-dispatch-result/1",
                "status": "optimal",
                "objective_usd": 1.0,
                "revenue_usd": {},
                "solve": {"seconds": 0.1, "mip_gap": 0.0, "solver": "highs"},
                "sites": {
                    site: {
                        "charge_mw": zeros,
                        "discharge_mw": zeros,
                        "reg_up_mw": zeros,
                        "reg_down_mw": zeros,
                        "spin_mw": zeros,
                        "capacity_mw": 0.0,
                        "soc": soc,
                        "revenue_usd": {"energy": 2000.0, "degradation": -300.0},
                    }
                },
            }
        ),
        encoding="utf-8",
    )
    code, out, err = _run(
        capsys,
        "report",
        "--fleet",
        str(fleet_file),
        "--soc-csv",
        f"{site}={hist}",
        "--result",
        str(result),
        "--json",
    )
    assert code == 0, err
    (row,) = json.loads(out)["sites"]
    assert row["site"] == site
    assert row["soh_method"] == "telemetry"
    assert 0.97 < row["soh"] < 1.0
    assert row["efc_per_year"] == pytest.approx(0.9 * 365, rel=0.02)
    assert row["warranty_used_mwh"] > 0
    # 60 days at 0.9 EFC/day (x 0.95 at the meter) under a 1 EFC/day warranty
    assert row["warranty_used_mwh"] == pytest.approx(60 * 0.9 * 20 * 0.95, rel=0.01)
    assert row["warranty_headroom_mwh"] == pytest.approx(1200 - 1026, abs=5)
    assert row["schedule_wear_usd"] > 0
    assert row["schedule_revenue_usd"] == pytest.approx(2000.0)
    assert row["schedule_planned_degradation_usd"] == pytest.approx(300.0)
    assert row["schedule_net_of_wear_usd"] == pytest.approx(
        2000.0 - row["schedule_cycle_wear_usd"], abs=0.02
    )
    assert row["end_of_life"] is not None


def test_cli_report_exits_2_when_soc_csv_option_malformed(
    capsys: pytest.CaptureFixture[str], fleet_file: Path
) -> None:
    code, _out, err = _run(
        capsys, "report", "--fleet", str(fleet_file), "--soc-csv", "nopath"
    )
    assert code == 2
    assert "SITE=PATH" in err


@pytest.mark.integration
def test_cli_report_reads_store_telemetry_when_db_given(
    capsys: pytest.CaptureFixture[str], fleet_file: Path, empty_db_url: str
) -> None:
    import sqlalchemy as sa

    from fleet.store.engine import make_engine
    from fleet.store.migrate import upgrade
    from fleet.store.telemetry_tables import tlm_measurements

    upgrade(empty_db_url)
    site = _site_id(fleet_file)
    # 20 days of hourly telemetry starting 10 days after commissioning (2026-01-01)
    start_ms = int(dt.datetime(2026, 1, 11, tzinfo=dt.UTC).timestamp() * 1000)
    day = np.interp(
        np.arange(24), [0, 6, 10, 12, 16, 24], [0.1, 0.1, 1.0, 1.0, 0.1, 0.1]
    )
    soc = np.append(np.tile(day, 20), day[0])
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
            "cell_t_min_c": 24.0,
            "cell_t_max_c": 26.0,
        }
        for i, (s, p) in enumerate(zip(soc, power_w, strict=True))
    ]
    engine = make_engine(empty_db_url)
    with engine.begin() as conn:
        conn.execute(sa.insert(tlm_measurements), rows)
    engine.dispose()
    code, out, err = _run(
        capsys, "report", "--fleet", str(fleet_file), "--db", empty_db_url, "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    (row,) = data["sites"]
    assert row["site"] == site
    assert row["history_days"] == pytest.approx(20.0)
    assert row["soh_method"] == "telemetry"
    assert row["model_soh"] < 1.0
    assert any("after commissioning" in note for note in row["notes"])
    assert row["efc_per_year"] == pytest.approx(0.9 * 365, rel=0.02)


@pytest.mark.integration
def test_cli_plot_reads_site_from_store_when_no_fleet_file(
    capsys: pytest.CaptureFixture[str],
    fleet_file: Path,
    empty_db_url: str,
    tmp_path: Path,
) -> None:
    from fleet.fleetfile import load_fleet
    from fleet.store.engine import make_engine
    from fleet.store.migrate import upgrade
    from fleet.store.sites import save_fleet

    upgrade(empty_db_url)
    code, _out, err = _run(capsys, "costs", "any-site", "--db", empty_db_url)
    assert code == 2
    assert "holds no sites" in " ".join(err.split())
    engine = make_engine(empty_db_url)
    save_fleet(engine, load_fleet(fleet_file))
    engine.dispose()
    site = _site_id(fleet_file)
    png = tmp_path / "c.png"
    code, _out, err = _run(capsys, "plot", site, "--db", empty_db_url, "-o", str(png))
    assert code == 0, err
    assert png.read_bytes()[:4] == b"\x89PNG"
    from_store = _run(capsys, "costs", site, "--db", empty_db_url, "--json")
    from_file = _run(capsys, "costs", site, "--fleet", str(fleet_file), "--json")
    assert json.loads(from_store[1]) == json.loads(from_file[1])


def test_cli_report_falls_back_to_model_when_power_units_implausible(
    capsys: pytest.CaptureFixture[str], fleet_file: Path, tmp_path: Path
) -> None:
    site = _site_id(fleet_file)
    hist = _history_csv(tmp_path / "soc.csv", 10, energy_mwh=20_000.0)  # kW as MW
    code, out, err = _run(
        capsys,
        "report",
        "--fleet",
        str(fleet_file),
        "--soc-csv",
        f"{site}={hist}",
        "--json",
    )
    assert code == 0, err
    (row,) = json.loads(out)["sites"]
    assert row["soh_method"] == "model"
    assert any("implausible" in note for note in row["notes"])
