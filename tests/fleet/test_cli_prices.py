from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from fleet.cli import main
from fleet.store import audit, prices
from fleet.store.engine import make_engine
from fleet.store.price_csv import read_price_csv

HEADER = "timestamp_utc,market,node,product,price_usd_per_mwh\n"
GOOD = (
    "2024-01-01T00:00:00Z,ERCOT,HB_X,rt_energy,10.5\n"
    "2024-01-01T00:15:00Z,ERCOT,HB_X,rt_energy,-3\n"
    "2024-01-01T00:30:00Z,ERCOT,HB_X,rt_energy,4999.99\n"
    "2024-01-01T00:45:00Z,ERCOT,HB_X,rt_energy,12\n"
)
BAD = (
    HEADER
    + "2024-01-01T00:00:00Z,ERCOT,HB_X,rt_energy,10.5\n"  # 2 good
    + "2024-01-01T00:15:00Z,ERCOT,HB_X,rt_energy,abc\n"  # 3 not a number
    + "2024-01-01T00:30:00,ERCOT,HB_X,rt_energy,12\n"  # 4 no offset
    + "\n"  # 5 blank, ignored
    + "2024-01-01T00:45:00Z,ERCOT,,rt_energy,12\n"  # 6 empty node
    + "2024-13-01T00:45:00Z,ERCOT,HB_X,rt_energy,12\n"  # 7 bad date
    + "2024-01-01T01:00:00Z,ERCOT,HB_X,rt_energy,1e6\n"  # 8 implausible
    + "2024-01-01T01:15:00Z,ERCOT,HB_X,rt_energy,nan\n"  # 9 not finite
    + "2024-01-01T01:30:00Z,ERCOT,HB_X,rt_energy,13,extra\n"  # 10 field count
    + "2024-01-01T00:00:00Z,ERCOT,HB_X,rt_energy,10.7\n"  # 11 duplicate of 2
    + "2024-01-01T02:15:00+01:00,ERCOT,HB_X,rt_energy,-5\n"  # 12 good (01:15Z)
)


def _run(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    code = exit_info.value.code
    return 0 if code is None else int(code)


def _count(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM prices")).scalar_one()
    engine.dispose()
    return int(n)


def test_prices_import_reports_bad_rows_by_line_when_file_has_some(
    migrated_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(BAD)
    assert _run(["prices", "import", str(path), "--db", migrated_db_url]) == 1
    captured = capsys.readouterr()
    assert "2 of 10 rows imported into 1 series" in captured.out
    expected = {
        3: "price_usd_per_mwh='abc' is not a finite number",
        4: "has no UTC offset",
        6: "node is empty",
        7: "timestamp_utc='2024-13-01T00:45:00Z' is not an ISO-8601 timestamp",
        8: "implausible",
        9: "price_usd_per_mwh='nan' is not a finite number",
        10: "expected 5 fields, found 6",
        11: "duplicate of line 2",
    }
    for line, reason in expected.items():
        assert f"line {line}: " in captured.err
        assert reason in captured.err
    assert "line 2:" not in captured.err
    assert "line 12:" not in captured.err
    assert _count(migrated_db_url) == 2


def test_prices_import_lists_first_n_and_counts_rest_when_show_given(
    migrated_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(BAD)
    assert (
        _run(
            [
                "prices",
                "import",
                str(path),
                "--db",
                migrated_db_url,
                "--show",
                "3",
                "--json",
            ]
        )
        == 1
    )
    report = json.loads(capsys.readouterr().out)["files"][0]
    assert [b["line"] for b in report["bad_rows"]] == [3, 4, 6]
    assert report["bad_row_count"] == 8
    assert (report["rows_read"], report["rows_imported"]) == (10, 2)


def test_prices_import_exits_0_and_is_idempotent_when_file_is_good(
    migrated_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "good.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(HEADER + GOOD)
    assert _run(["prices", "import", str(path), "--db", migrated_db_url]) == 0
    assert _run(["prices", "import", str(path), "--db", migrated_db_url]) == 0
    assert _count(migrated_db_url) == 4
    engine = make_engine(migrated_db_url)
    series = prices.load_prices(
        engine, market="ERCOT", node="HB_X", product="rt_energy"
    )
    [info] = prices.list_series(engine)
    entries = audit.list_entries(engine, object_type="prices")
    engine.dispose()
    assert series.tolist() == [10.5, -3.0, 4999.99, 12.0]
    assert info.interval_minutes == 15
    assert len(entries) == 2
    assert entries[0].actor == "cli"
    assert entries[0].detail == {
        "rows_read": 4,
        "rows_imported": 4,
        "bad_rows": 0,
        "rows_skipped": 0,
        "market": None,
    }
    assert "4 of 4 rows imported" in capsys.readouterr().out


def test_prices_import_exits_2_naming_column_when_price_column_missing(
    migrated_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nocol.csv"
    path.write_text(
        "timestamp_utc,market,node,product,price\n2024-01-01T00:00:00Z,ERCOT,X,rt_energy,1\n"
    )
    assert _run(["prices", "import", str(path), "--db", migrated_db_url]) == 2
    assert (
        "missing price column: expected price_usd_per_mwh or price_usd_per_mw"
        in capsys.readouterr().err
    )


def test_prices_import_exits_2_naming_column_when_node_missing(
    migrated_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nonode.csv"
    path.write_text(
        "timestamp_utc,market,product,price_usd_per_mw\n2024-01-01T00:00:00Z,ERCOT,reg_up,1\n"
    )
    assert _run(["prices", "import", str(path), "--db", migrated_db_url]) == 2
    assert "missing column(s) node" in capsys.readouterr().err
    assert _count(migrated_db_url) == 0


def test_prices_import_exits_2_when_file_missing(
    migrated_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        _run(["prices", "import", str(tmp_path / "nope.csv"), "--db", migrated_db_url])
        == 2
    )
    assert "no such price file" in capsys.readouterr().err


def test_prices_import_exits_2_when_gzip_is_corrupt(
    migrated_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(b"not gzip at all")
    assert _run(["prices", "import", str(path), "--db", migrated_db_url]) == 2
    assert "cannot read as gzip CSV" in capsys.readouterr().err


def test_prices_import_exits_2_when_store_not_migrated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "good.csv"
    path.write_text(HEADER + GOOD)
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    assert _run(["prices", "import", str(path), "--db", url]) == 2
    assert "bessfleet db upgrade" in capsys.readouterr().err


def test_prices_import_keeps_only_market_when_market_given(
    migrated_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "two.csv"
    path.write_text(HEADER + GOOD + "2024-01-01T00:00:00Z,CAISO,NP15,da_energy,30\n")
    assert (
        _run(
            [
                "prices",
                "import",
                str(path),
                "--db",
                migrated_db_url,
                "--market",
                "caiso",
            ]
        )
        == 0
    )
    engine = make_engine(migrated_db_url)
    listed = prices.list_series(engine)
    engine.dispose()
    assert [(s.market, s.count, s.interval_minutes) for s in listed] == [
        ("CAISO", 1, 60)
    ]
    assert "4 row(s) of other markets skipped" in capsys.readouterr().out


def test_prices_list_prints_series_when_store_has_prices(
    migrated_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "good.csv"
    path.write_text(HEADER + GOOD)
    assert _run(["prices", "import", str(path), "--db", migrated_db_url]) == 0
    capsys.readouterr()
    assert _run(["prices", "list", "--db", migrated_db_url, "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row == {
        "market": "ERCOT",
        "node": "HB_X",
        "product": "rt_energy",
        "unit": "usd_per_mwh",
        "interval_minutes": 15,
        "count": 4,
        "first_ts": "2024-01-01T00:00:00+00:00",
        "last_ts": "2024-01-01T00:45:00+00:00",
    }
    assert _run(["prices", "list", "--db", migrated_db_url]) == 0
    assert "HB_X" in capsys.readouterr().out


def test_read_price_csv_infers_interval_per_series_when_resolutions_mix(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(
        "timestamp_utc,market,node,product,price_usd_per_mw\n"
        "2024-01-01T00:00:00Z,ERCOT,SYSTEM,reg_up,1\n"
        "2024-01-01T01:00:00Z,ERCOT,SYSTEM,reg_up,2\n"
        "2024-01-01T03:00:00Z,ERCOT,SYSTEM,reg_up,2\n"
        "2024-01-01T04:00:00Z,ERCOT,SYSTEM,reg_up,2\n"
        "2024-01-01T00:00:00Z,ERCOT,SYSTEM,ecrs,1\n"
        "2024-01-01T00:05:00Z,ERCOT,SYSTEM,ecrs,1\n"
    )
    parsed = read_price_csv(path)
    by_product = parsed.frame.groupby("product")["interval_minutes"].unique().to_dict()
    assert {k: list(v) for k, v in by_product.items()} == {"ecrs": [5], "reg_up": [60]}
    assert parsed.unit == "usd_per_mw"


def test_prices_import_loads_real_rt_file_when_shared_data_present(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = (
        shared_data
        / "ercot_rt_spp_hubavg_15min"
        / "ercot_rt_spp_hb_hubavg_15min_2024_2025.csv.gz"
    )
    url = f"sqlite:///{tmp_path / 'real.sqlite'}"
    assert _run(["db", "upgrade", "--db", url]) == 0
    assert _run(["prices", "import", str(path), "--db", url]) == 0
    assert "67,200 of 67,200 rows imported into 1 series" in capsys.readouterr().out
    engine = make_engine(url)
    series = prices.load_prices(
        engine, market="ERCOT", node="HB_HUBAVG", product="rt_energy"
    )
    [info] = prices.list_series(engine)
    engine.dispose()
    assert len(series) == 67_200
    assert series.index.is_monotonic_increasing
    assert series.iloc[0] == pytest.approx(28.55)
    assert str(series.index[0]) == "2024-01-01 00:00:00+00:00"
    assert info.interval_minutes == 15
    assert str(info.last_ts) == "2025-11-30 23:45:00+00:00"


def test_read_price_csv_accepts_bom_and_crlf_when_exported_from_excel(
    tmp_path: Path,
) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + HEADER + GOOD).replace("\n", "\r\n").encode("utf-8"))
    parsed = read_price_csv(path)
    assert parsed.bad_rows == []
    assert parsed.frame["price"].tolist() == [10.5, -3.0, 4999.99, 12.0]
