from __future__ import annotations

import datetime as dt
import json

import pytest

from fleet.cli import main
from fleet.store.migrate import upgrade
from tests.factories import fleet_data, write_fleet_file
from tests.ops.helpers import price_frame

DAY = "2024-03-12"


def run(args, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else (0 if code is None else 1)), out, err


@pytest.fixture
def setup(tmp_path):
    prices = price_frame(dt.date(2024, 2, 20), dt.date(2024, 3, 12))
    out = prices.rename(columns={"price": "price_usd_per_mwh"})
    out["timestamp_utc"] = out["timestamp_utc"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    csv_path = tmp_path / "prices.csv"
    out.to_csv(csv_path, index=False)
    fleet_path = write_fleet_file(tmp_path, fleet_data(2))
    db = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(db)
    return tmp_path, csv_path, fleet_path, db


def test_bids_cli_makes_pushes_and_exports_a_bid_set(setup, capsys, monkeypatch):
    tmp_path, csv_path, fleet_path, db = setup
    bids = tmp_path / "bids.json"
    base = ["--fleet", str(fleet_path), "--day", DAY]
    code, out, err = run(
        ["bids", "make", *base, "--prices", str(csv_path), "-o", str(bids)],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    assert json.loads(bids.read_text())["bids"]
    code, out, err = run(
        ["bids", "push", str(bids), *base, "--db", db], capsys, monkeypatch
    )
    assert code == 0, err
    assert "accepted ERCOT 2024-03-12 v1" in out
    # `bids make` stores no schedule: the market export needs the planned SoC (COP).
    code, out, err = run(
        ["bids", "export", *base, "--db", db, "--out", str(tmp_path / "export")],
        capsys,
        monkeypatch,
    )
    assert code == 2
    assert "no stored ERCOT schedule for 2024-03-12" in err
    assert "Traceback" not in err


def test_bids_push_cli_exits_1_with_the_rule_when_refused(setup, capsys, monkeypatch):
    tmp_path, _, fleet_path, db = setup
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "bids": [
                    {
                        "site_id": "site-01",
                        "product": "energy",
                        "hour_ending": 3,
                        "curve": [[-5.0, 30.0], [5.0, 20.0]],
                    }
                ]
            }
        )
    )
    code, out, _ = run(
        [
            "bids",
            "push",
            str(bad),
            "--fleet",
            str(fleet_path),
            "--day",
            DAY,
            "--db",
            db,
        ],
        capsys,
        monkeypatch,
    )
    assert code == 1
    assert "refused v1" in out
    assert "curve_monotone: site site-01, hour_ending 3, energy" in out


def test_awards_push_cli_records_awards_and_refuses_bad_ones(
    setup, capsys, monkeypatch
):
    tmp_path, _, fleet_path, db = setup
    base = ["--fleet", str(fleet_path), "--day", DAY, "--db", db]
    # Awards answer an accepted bid set: 2024-03-12T10:00Z is hour_ending 6 (CDT).
    bids = tmp_path / "bids.json"
    bids.write_text(
        json.dumps(
            {
                "bids": [
                    {
                        "site_id": "site-01",
                        "product": "reg_up",
                        "hour_ending": 6,
                        "curve": [[3.0, 1.0]],
                    }
                ]
            }
        )
    )
    code, out, err = run(["bids", "push", str(bids), *base], capsys, monkeypatch)
    assert code == 0, err
    good = tmp_path / "awards.json"
    good.write_text(
        json.dumps(
            {
                "version": 1,
                "awards": [
                    {
                        "site_id": "site-01",
                        "ts": "2024-03-12T10:00:00Z",
                        "product": "reg_up",
                        "award_mw": 3.0,
                        "unit": "usd_per_mw",
                    }
                ],
            }
        )
    )
    code, out, err = run(["awards", "push", str(good), *base], capsys, monkeypatch)
    assert code == 0, err
    assert "recorded 1 awards for ERCOT 2024-03-12 v1" in out
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "version": 1,
                "awards": [
                    {
                        "site_id": "ghost",
                        "ts": "2024-03-12T10:00:00Z",
                        "product": "reg_up",
                        "award_mw": 3.0,
                        "unit": "usd_per_mw",
                    }
                ],
            }
        )
    )
    code, _, err = run(["awards", "push", str(bad), *base], capsys, monkeypatch)
    assert code == 2
    assert "awards[0]: site ghost, reg_up, hour_ending 6: site_id='ghost' is not" in err


def test_dayahead_run_cli_stores_a_schedule_and_writes_bids(setup, capsys, monkeypatch):
    import pandas as pd

    from fleet.store.engine import make_engine
    from fleet.store.forecasts import insert_price_forecasts
    from tests.ops.helpers import NODE, daily_prices

    tmp_path, _, fleet_path, db = setup
    day = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=3)
    start = pd.Timestamp(day, tz="America/Chicago").tz_convert("UTC")
    ts = pd.date_range(start, periods=24, freq="h")
    issue = pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=1)
    rows = []
    for node, product, values in [
        (NODE, "da_energy", daily_prices(24, spike=50.0)),
        ("SYSTEM", "reg_up", [6.0] * 24),
        ("SYSTEM", "reg_down", [4.0] * 24),
        ("SYSTEM", "rrs_spin", [3.0] * 24),
    ]:
        for t, v in zip(ts, values, strict=True):
            rows.append(
                {
                    "market": "ERCOT",
                    "node": node,
                    "product": product,
                    "issue_time": issue,
                    "ts": t,
                    "p10": v - 5,
                    "p50": v,
                    "p90": v + 5,
                    "model_version": "test",
                    "unit": "usd_per_mwh" if product == "da_energy" else "usd_per_mw",
                }
            )
    engine = make_engine(db)
    insert_price_forecasts(engine, pd.DataFrame(rows))
    engine.dispose()
    out_file = tmp_path / "dayahead-bids.json"
    code, out, err = run(
        [
            "dayahead",
            "run",
            "--fleet",
            str(fleet_path),
            "--day",
            day.isoformat(),
            "--db",
            db,
            "-o",
            str(out_file),
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    assert f"ERCOT {day}: schedule v1" in out
    assert "degradation costs:" in out
    assert "model at warranty duty for 2 site(s)" in " ".join(out.split())
    exported = json.loads(out_file.read_text())
    assert exported["plan_version"] == 1
    assert {r["resource_id"] for r in exported["resources"]} == {
        "ERCOT_ESR_SITE_01",
        "ERCOT_ESR_SITE_02",
    }


def test_dayahead_schedule_cli_exits_2_naming_market_when_unknown(
    setup, capsys, monkeypatch
):
    _, _, fleet_path, db = setup
    code, _, err = run(
        [
            "dayahead",
            "schedule",
            "--fleet",
            str(fleet_path),
            "--market",
            "NOPE",
            "--db",
            db,
        ],
        capsys,
        monkeypatch,
    )
    assert code == 2
    assert "NOPE" in err
    assert "Traceback" not in err
