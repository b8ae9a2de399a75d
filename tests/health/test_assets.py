from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from fleet.assets import ImportResult, import_assets, passport, read_asset_file
from fleet.cli import main
from fleet.errors import FleetInputError
from fleet.store import assets as asset_store
from forecasting.health.synthetic import EPOCH_2026_MS
from tests.health.helpers import insert_samples
from tests.health.test_features import _day

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

CSV = """serial,kind,manufacturer,model,country_of_manufacture,feoc,energy_mwh,site_id,position,dev_id,installed_at
MOD-1,module,Cell Co,LFP-280,US,false,2.0,s1,rack1/bank1,bank1,2026-01-01T00:00:00Z
MOD-2,module,Cell Co,LFP-280,CN,true,2.0,,,,
PCS-1,pcs,Inverter Co,,US,false,,s1,pcs1,pcs1,2026-01-01T00:00:00Z
"""


def _registry(engine: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "assets.csv"
    path.write_text(CSV, encoding="utf-8")
    result = import_assets(engine, read_asset_file(path), now=T0, actor="ana")
    assert result == ImportResult(new=3, unchanged=0, corrected=0)
    day1 = _day()
    day2 = _day()
    day2["ts_ms"] += 86_400_000
    day2["soh_pct"] = 96.0
    for frame in (day1, day2):
        insert_samples(engine, frame)


def test_passport_matches_hand_numbers_when_module_swapped_after_one_day(
    engine: sa.Engine, tmp_path: Path
) -> None:
    _registry(engine, tmp_path)
    asset_store.swap(
        engine,
        out_serial="MOD-1",
        in_serial="MOD-2",
        at=T0 + dt.timedelta(days=1),
        now=T0 + dt.timedelta(days=2),
        actor="crew-7",
        reason="imbalance",
    )
    old = passport(engine, "MOD-1")
    new = passport(engine, "MOD-2")
    # Each day charges 2.0 MWh and discharges 1.8 MWh: 3.8 MWh, EFC 3.8 / (2 x 2.0).
    assert old.throughput_mwh == pytest.approx(3.8)
    assert old.efc == pytest.approx(0.95)
    assert old.soh_history == ((dt.date(2026, 1, 1), pytest.approx(0.97)),)
    assert new.throughput_mwh == pytest.approx(3.8)
    assert new.soh_history == ((dt.date(2026, 1, 2), pytest.approx(0.96)),)
    assert [e.kind for e in old.events] == ["install", "swap_out"]
    assert [(e.actor, e.reason) for e in old.events] == [
        ("ana", None),
        ("crew-7", "imbalance"),
    ]
    assert old.events[1].recorded_at == T0 + dt.timedelta(days=2)
    assert old.events[1].ts == T0 + dt.timedelta(days=1)
    assert [e.kind for e in new.events] == ["register", "swap_in"]
    assert old.asset.site_id is None
    assert new.asset.position == "rack1/bank1"
    assert old.spread_mv == pytest.approx(12.0)
    assert old.fade_per_year is None
    assert old.grade is not None
    assert old.grade.name == "A"
    doc = new.as_json()
    assert doc["feoc"] is True
    assert doc["installations"][0]["start"] == "2026-01-02T00:00:00+00:00"


def test_passport_counts_both_days_when_module_never_swapped(
    engine: sa.Engine, tmp_path: Path
) -> None:
    _registry(engine, tmp_path)
    result = passport(engine, "MOD-1")
    assert result.throughput_mwh == pytest.approx(7.6)
    assert result.efc == pytest.approx(1.9)
    assert [s for _, s in result.soh_history] == pytest.approx([0.97, 0.96])


def test_swap_raises_when_in_serial_already_installed(
    engine: sa.Engine, tmp_path: Path
) -> None:
    _registry(engine, tmp_path)
    at = T0 + dt.timedelta(hours=1)
    kw = {"at": at, "now": at, "actor": "ana"}
    with pytest.raises(FleetInputError, match="PCS-1' is already installed at s1"):
        asset_store.swap(engine, out_serial="MOD-1", in_serial="PCS-1", **kw)
    asset_store.swap(engine, out_serial="MOD-1", in_serial="MOD-2", **kw)
    with pytest.raises(FleetInputError, match="not installed"):
        asset_store.swap(engine, out_serial="MOD-1", in_serial="MOD-2", **kw)


def test_read_asset_file_names_row_and_field_when_bad(tmp_path: Path) -> None:
    path = tmp_path / "assets.csv"
    path.write_text(CSV.replace(",US,false,2.0,s1", ",USA,false,2.0,s1"))
    with pytest.raises(
        FleetInputError, match=r"asset 1 \(MOD-1\): country_of_manufacture"
    ):
        read_asset_file(path)


def test_read_asset_file_raises_when_installed_without_site(tmp_path: Path) -> None:
    path = tmp_path / "assets.toml"
    path.write_text(
        '[[asset]]\nserial = "X"\nkind = "module"\nmanufacturer = "M"\n'
        'country_of_manufacture = "US"\nfeoc = false\n'
        "installed_at = 2026-01-01T00:00:00Z\n"
    )
    with pytest.raises(FleetInputError, match="site_id is empty"):
        read_asset_file(path)


def test_cli_assets_passport_prints_json_when_asked(
    migrated_db_url: str,
    engine: sa.Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _registry(engine, tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    with pytest.raises(SystemExit) as info:
        main(["assets", "passport", "MOD-1", "--json", "--db", migrated_db_url])
    assert info.value.code in (0, None)
    doc = json.loads(capsys.readouterr().out)
    assert doc["throughput_mwh"] == pytest.approx(7.6)
    assert doc["efc"] == pytest.approx(1.9)
    assert doc["grade"]["name"] == "A"
    with pytest.raises(SystemExit) as info:
        main(["assets", "passport", "MOD-1", "--db", migrated_db_url])
    out = capsys.readouterr().out
    assert "1.9 equivalent full cycles" in out
    assert "second-life grade A" in out
    with pytest.raises(SystemExit) as info:
        main(["assets", "passport", "NOPE", "--db", migrated_db_url])
    assert info.value.code == 2
    assert "serial='NOPE'" in capsys.readouterr().err


def test_cli_assets_import_and_swap_record_events_when_run(
    migrated_db_url: str,
    engine: sa.Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "assets.csv"
    path.write_text(CSV, encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["assets", "import", str(path), "--db", migrated_db_url])
    assert "Imported 3 asset(s)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(
            [
                "assets",
                "swap",
                "MOD-1",
                "MOD-2",
                "--at",
                "2026-02-01T00:00:00+00:00",
                "--db",
                migrated_db_url,
            ]
        )
    assert asset_store.get_asset(engine, "MOD-2").dev_id == "bank1"
    assert int(T0.timestamp() * 1000) == EPOCH_2026_MS


def test_birth_check_lists_differences_when_gateway_reports_other_devices(
    engine: sa.Engine, tmp_path: Path
) -> None:
    from fleet.assets import birth_check
    from fleet.store.telemetry_tables import tlm_site_sessions

    _registry(engine, tmp_path)
    assert birth_check(engine, "s1").birth_devices == ()
    with engine.begin() as conn:
        conn.execute(
            tlm_site_sessions.insert().values(
                site_id="s1",
                grp="ercot",
                sid=1,
                online=True,
                birth_ts_ms=0,
                birth={"devices": ["bank1", "bank2"]},
                updated_at_ms=0,
            )
        )
    result = birth_check(engine, "s1")
    assert result.registered_devices == ("bank1", "pcs1")
    assert result.missing_from_birth == ("pcs1",)
    assert result.unregistered == ("bank2",)
    assert not result.consistent


def test_passport_uses_stored_daily_features_when_raw_telemetry_purged(
    engine: sa.Engine, tmp_path: Path
) -> None:
    from fleet.store.alerts import save_daily_features
    from fleet.store.telemetry_tables import tlm_measurements
    from forecasting.health.features import daily_features

    _registry(engine, tmp_path)
    day1 = _day()
    save_daily_features(engine, daily_features(day1).to_dict("records"), now=T0)
    with engine.begin() as conn:
        conn.execute(
            tlm_measurements.delete().where(
                tlm_measurements.c.ts_ms < EPOCH_2026_MS + 86_400_000
            )
        )
    result = passport(engine, "MOD-1")
    assert result.throughput_mwh == pytest.approx(7.6)
    assert [d for d, _ in result.soh_history] == [
        dt.date(2026, 1, 1),
        dt.date(2026, 1, 2),
    ]


def test_cli_assets_list_and_check_report_registry_when_run(
    migrated_db_url: str,
    engine: sa.Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    _registry(engine, tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["assets", "list", "--site", "s1", "--db", migrated_db_url])
    assert info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "MOD-1" in out
    assert "PCS-1" in out
    assert "MOD-2" not in out
    with pytest.raises(SystemExit) as info:
        main(["assets", "check", "s1", "--db", migrated_db_url])
    assert info.value.code == 1
    assert "installed but not reported: bank1, pcs1" in capsys.readouterr().out


# Issue 20: the registry forgets. Each defect found becomes an assertion.

STOCK = """serial,kind,manufacturer,model,country_of_manufacture,feoc,energy_mwh
MOD-0001,module,Cell Co,LFP-280,US,false,2.0
"""


def _csv(tmp_path: Path, text: str, name: str = "assets.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("flag", ["Y", "maybe", "yes", "1", "no"])
def test_read_asset_file_refuses_feoc_when_not_true_false_unknown(
    tmp_path: Path, flag: str
) -> None:
    path = _csv(tmp_path, STOCK.replace(",false,", f",{flag},"))
    with pytest.raises(
        FleetInputError, match=r"asset 1 \(MOD-0001\): feoc: .*true, false or unknown"
    ):
        read_asset_file(path)


def test_read_asset_file_reads_unknown_when_feoc_or_origin_unknown(
    tmp_path: Path,
) -> None:
    path = _csv(tmp_path, STOCK.replace("US,false", "unknown,Unknown"))
    [item] = read_asset_file(path)
    assert item.feoc is None
    assert item.country_of_manufacture is None


def test_read_asset_file_refuses_country_when_not_iso_code(tmp_path: Path) -> None:
    path = _csv(tmp_path, STOCK.replace(",US,", ",XX,"))
    with pytest.raises(FleetInputError, match=r"country_of_manufacture.*ISO 3166-1"):
        read_asset_file(path)


def test_read_asset_file_normalizes_serials_when_case_or_spaces_differ(
    tmp_path: Path,
) -> None:
    row = STOCK.splitlines()[1]
    text = STOCK + row.replace("MOD-0001", " mod-0001 ") + "\n"
    with pytest.raises(FleetInputError, match=r"duplicate serial.*MOD-0001"):
        read_asset_file(_csv(tmp_path, text))
    [item] = read_asset_file(_csv(tmp_path, STOCK.replace("MOD-0001", " mod-0001 ")))
    assert item.serial == "MOD-0001"
    with pytest.raises(FleetInputError, match="serial"):
        read_asset_file(_csv(tmp_path, STOCK.replace("MOD-0001", "MOD 0001")))


def test_import_refuses_other_facts_unless_correction_when_serial_known(
    engine: sa.Engine, tmp_path: Path
) -> None:
    import_assets(engine, read_asset_file(_csv(tmp_path, STOCK)), now=T0, actor="ana")
    changed = STOCK.replace("Cell Co,LFP-280,US,false", "Other Co,LFP-280,CN,true")
    items = read_asset_file(_csv(tmp_path, changed.replace("MOD-0001", "mod-0001")))
    later = T0 + dt.timedelta(days=3)
    with pytest.raises(
        FleetInputError, match=r"MOD-0001.*other facts.*feoc: False -> True"
    ):
        import_assets(engine, items, now=later, actor="bo")
    asset = asset_store.get_asset(engine, "MOD-0001")
    assert (asset.manufacturer, asset.feoc) == ("Cell Co", False)
    assert [e.kind for e in asset_store.events(engine, "MOD-0001")] == ["register"]
    with pytest.raises(FleetInputError, match="needs a reason"):
        import_assets(engine, items, now=later, actor="bo", correction=True)
    result = import_assets(
        engine, items, now=later, actor="bo", reason="datasheet", correction=True
    )
    assert result.corrected == 1
    history = asset_store.events(engine, " mod-0001 ")
    assert [e.kind for e in history] == ["register", "correct"]
    fix = history[-1]
    assert (fix.actor, fix.reason, fix.recorded_at) == ("bo", "datasheet", later)
    assert fix.detail["before"]["feoc"] is False
    assert fix.detail["after"]["country_of_manufacture"] == "CN"
    # The same facts again change nothing and record nothing.
    again = import_assets(engine, items, now=later, actor="bo")
    assert again == ImportResult(new=0, unchanged=1, corrected=0)
    assert len(asset_store.events(engine, "MOD-0001")) == 2


def test_import_refuses_install_when_future_or_position_taken(
    engine: sa.Engine, tmp_path: Path
) -> None:
    _registry(engine, tmp_path)
    header = CSV.splitlines()[0]
    future = (
        header
        + "\nMOD-9,module,Cell Co,,US,false,2.0,s1,rack1/bank9,bank9,2030-01-01T00:00:00Z\n"
    )
    with pytest.raises(FleetInputError, match=r"MOD-9.*in the future"):
        import_assets(
            engine, read_asset_file(_csv(tmp_path, future)), now=T0, actor="a"
        )
    taken = (
        header
        + "\nMOD-8,module,Cell Co,,US,false,2.0,s1,rack1/bank1,bank1,2026-01-01T00:00:00Z\n"
    )
    with pytest.raises(FleetInputError, match=r"already holds MOD-1.*swap"):
        import_assets(engine, read_asset_file(_csv(tmp_path, taken)), now=T0, actor="a")
    with pytest.raises(FleetInputError, match=r"not registered|is not in"):
        asset_store.get_asset(engine, "MOD-8")


def test_swap_refuses_when_dated_in_future(engine: sa.Engine, tmp_path: Path) -> None:
    _registry(engine, tmp_path)
    with pytest.raises(FleetInputError, match=r"at=2030.*in the future"):
        asset_store.swap(
            engine,
            out_serial="MOD-1",
            in_serial="MOD-2",
            at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
            now=T0 + dt.timedelta(days=5),
            actor="ana",
        )


def test_swap_refuses_backdating_when_installations_would_overlap(
    engine: sa.Engine, tmp_path: Path
) -> None:
    _registry(engine, tmp_path)
    header = CSV.splitlines()[0]
    more = (
        STOCK.replace("MOD-0001", "MOD-3")
        .replace(
            "serial,kind,manufacturer,model,country_of_manufacture,feoc,energy_mwh",
            header,
        )
        .replace(",2.0\n", ",2.0,,,,\n")
        + "MOD-4,module,Cell Co,,US,false,2.0,s1,rack2/bank5,bank5,2026-02-10T00:00:00Z\n"
    )
    now = T0 + dt.timedelta(days=120)
    import_assets(engine, read_asset_file(_csv(tmp_path, more)), now=now, actor="ana")
    day = dt.timedelta(days=1)
    asset_store.swap(
        engine,
        out_serial="MOD-1",
        in_serial="MOD-3",
        at=T0 + 90 * day,
        now=now,
        actor="ana",
    )
    before = passport(engine, "MOD-1")
    assert before.installations[0].end == T0 + 90 * day
    # MOD-1 served at bank1 until day 90: it cannot go in for MOD-4 on day 50.
    with pytest.raises(
        FleetInputError, match="overlaps the history of MOD-1: swap_out"
    ):
        asset_store.swap(
            engine,
            out_serial="MOD-4",
            in_serial="MOD-1",
            at=T0 + 50 * day,
            now=now,
            actor="bo",
        )
    # Nor can MOD-3 leave bank1 before it arrived there.
    with pytest.raises(FleetInputError, match="not after MOD-3 was installed"):
        asset_store.swap(
            engine,
            out_serial="MOD-3",
            in_serial="MOD-2",
            at=T0 + 80 * day,
            now=now,
            actor="bo",
        )
    after = passport(engine, "MOD-1")
    assert after.installations == before.installations
    assert after.throughput_mwh == pytest.approx(before.throughput_mwh)


def test_cli_assets_import_exits_2_naming_feoc_when_value_not_allowed(
    migrated_db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _csv(tmp_path, STOCK.replace(",false,", ",maybe,"))
    with pytest.raises(SystemExit) as info:
        main(["assets", "import", str(path), "--actor", "ana", "--db", migrated_db_url])
    assert info.value.code == 2
    assert "feoc" in capsys.readouterr().err
    ok = _csv(tmp_path, STOCK.replace(",false,", ",unknown,"), name="ok.csv")
    with pytest.raises(SystemExit):
        main(["assets", "import", str(ok), "--actor", "ana", "--db", migrated_db_url])
    out = capsys.readouterr().out
    assert "1 new" in out
    assert "Compliance risk: 1 asset(s) of unknown FEOC status" in out
    with pytest.raises(SystemExit):
        main(["assets", "list", "--db", migrated_db_url])
    listed = capsys.readouterr().out
    assert "unknown" in listed
    assert "Compliance risk: 1 asset(s)" in listed
    with pytest.raises(SystemExit):
        main(["assets", "passport", " mod-0001 ", "--db", migrated_db_url])
    passport_out = capsys.readouterr().out
    assert "FEOC: unknown" in passport_out
    assert "register by ana" in passport_out
