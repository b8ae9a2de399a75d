"""``bessfleet fleet …``: exit codes, messages without tracebacks, tables and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleet.cli import main
from tests.factories import (
    DELETE,
    fleet_data,
    provenance_data,
    site_data,
    write_fleet_file,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "deploy" / "examples" / "fleet.toml"
EXAMPLE_YAML = REPO_ROOT / "deploy" / "examples" / "fleet-small.yaml"
BESSFLEET = Path(sys.executable).parent / "bessfleet"


def run_cli(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """Run ``bessfleet`` in-process through ``main``; return (exit code, out, err)."""
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps at 80 columns otherwise
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else (0 if code is None else 1)), out, err


def _bad_file(tmp_path: Path, **site_overrides: Any) -> Path:
    data = fleet_data(
        2, sites=[site_data("site-01"), site_data("site-02", **site_overrides)]
    )
    return write_fleet_file(tmp_path, data)


def test_validate_exits_0_with_site_count_when_example_fleet(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run_cli(["fleet", "validate", str(EXAMPLE)], capsys, monkeypatch)
    assert code == 0
    assert out.startswith(
        "OK: 12 sites (7 ERCOT front of meter, 2 CAISO front of meter"
    )


def test_validate_exits_0_when_example_yaml(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run_cli(
        ["fleet", "validate", str(EXAMPLE_YAML)], capsys, monkeypatch
    )
    assert (code, out.split(" (")[0]) == (0, "OK: 3 sites")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"battery": {"energy_mwh": "forty"}},
            'battery.energy_mwh="forty" has the wrong type: expected a number',
        ),
        ({"battery": {"charge_mw": DELETE}}, "battery.charge_mw is missing (required)"),
        ({"battery": {"soc_max": 1.5}}, "battery.soc_max=1.5 must be within [0, 1]"),
        (
            {"battery": {"soc_min": 0.5, "soc_max": 0.4}},
            "battery.soc_min=0.5 must be less than soc_max=0.4",
        ),
        (
            {"services": ["energy", "arbitrage"]},
            'services[1]="arbitrage" is not a known service (allowed: energy, reg_up, reg_down, spin, ecrs, nonspin, capacity, peak_shaving)',
        ),
        (
            {"id": "site-01", "resource_id": "ERCOT_ESR_X"},
            'id="site-01" is a duplicate: site #1 and site #2 have it; site ids must be unique',
        ),
    ],
    ids=[
        "wrong-type",
        "missing-field",
        "soc-outside-0-1",
        "soc-min-ge-max",
        "unknown-service",
        "duplicate-id",
    ],
)
def test_validate_exits_2_with_one_line_per_problem_when_file_is_bad(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    overrides: dict[str, Any],
    message: str,
) -> None:
    path = _bad_file(tmp_path, **overrides)
    code, out, err = run_cli(["fleet", "validate", str(path)], capsys, monkeypatch)
    assert code == 2
    assert "Traceback" not in out + err
    site = "site-01" if "duplicate" in message else "site-02"
    assert err.strip() == f'error: {path}: site "{site}": {message}'


def test_cli_exits_2_without_traceback_when_run_as_a_program(tmp_path: Path) -> None:
    path = _bad_file(tmp_path, battery={"soc_min": 1.2})
    env = {**os.environ, "COLUMNS": "250"}
    done = subprocess.run(
        [str(BESSFLEET), "fleet", "validate", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert (
        f'{path}: site "site-02": battery.soc_min=1.2 must be within [0, 1]'
        in done.stderr
    )


def test_compliance_exits_1_with_table_when_a_site_is_below_threshold(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run_cli(
        ["fleet", "compliance", str(EXAMPLE), "--year", "2026"], capsys, monkeypatch
    )
    assert code == 1
    rows = [line for line in out.splitlines() if "tx-" in line or "ca-" in line]
    assert len(rows) == 13  # 12 table rows + the summary naming the failing site
    (corpus,) = [line for line in rows if "tx-corpus-01" in line and "FAIL" in line]
    assert "42.0%" in corpus
    assert "55%" in corpus
    assert "-13.0 pts" in corpus
    assert "1 of 12 sites below the 2026 threshold: tx-corpus-01" in out


def test_compliance_exits_0_when_every_site_passes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run_cli(
        ["fleet", "compliance", str(EXAMPLE), "--year", "2025"], capsys, monkeypatch
    )
    assert code == 0
    assert "All 12 sites reach the 2025 threshold." in out


def test_compliance_prints_json_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = fleet_data(
        2,
        sites=[
            site_data("a", provenance=provenance_data(("cell",))),
            site_data("b", provenance=provenance_data(("cell", "module"))),
        ],
    )
    path = write_fleet_file(tmp_path, data, ".yaml")
    code, out, _ = run_cli(
        ["fleet", "compliance", str(path), "--year", "2027", "--json"],
        capsys,
        monkeypatch,
    )
    report = json.loads(out)
    assert code == 1
    assert report["year"] == 2027
    assert report["passes"] is False
    assert [(s["site"], s["passes"]) for s in report["sites"]] == [
        ("a", True),
        ("b", False),
    ]
    assert report["sites"][0]["non_feoc_share"] == pytest.approx(0.6)
    assert report["sites"][1]["margin"] == pytest.approx(-0.1)


def test_compliance_exits_2_when_year_outside_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_cli(
        ["fleet", "compliance", str(EXAMPLE), "--year", "1999"], capsys, monkeypatch
    )
    assert code == 2
    assert "year=1999 is outside the FEOC threshold table" in err
    assert "Traceback" not in err


def test_show_lists_every_site_when_example_fleet(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run_cli(["fleet", "show", str(EXAMPLE)], capsys, monkeypatch)
    assert code == 0
    for site_id in (
        "tx-odessa-01",
        "tx-pecos-02",
        "ca-blythe-01",
        "ca-fresno-foods-01",
    ):
        assert site_id in out
    assert (
        "POI group pecos-345kv: export 80 MW, import 80 MW, sites: tx-pecos-01, tx-pecos-02"
        in out
    )
    assert "50/50 (pecos-345kv)" in out


def test_fleet_help_lists_the_commands_when_asked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run_cli(["fleet", "--help"], capsys, monkeypatch)
    assert code == 0
    for command in ("validate", "show", "compliance", "load"):
        assert command in out
    code, out, _ = run_cli(["fleet", "compliance", "--help"], capsys, monkeypatch)
    assert "--year" in out
    assert "--json" in out
    assert "threshold" in out


def _load_and_read(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]]:
    from fleet.store.engine import make_engine
    from fleet.store.migrate import upgrade
    from fleet.store.sites import load_site_configs

    upgrade(url)
    code, out, _ = run_cli(
        ["fleet", "load", str(EXAMPLE), "--db", url], capsys, monkeypatch
    )
    assert code == 0
    assert out.startswith(
        'Saved 12 site(s) of fleet "Lone Star & Golden State storage fleet"'
    )
    engine = make_engine(url)
    try:
        return load_site_configs(engine)
    finally:
        engine.dispose()


def test_load_saves_every_site_when_store_is_migrated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleet.domain import Site
    from fleet.fleetfile import load_fleet

    configs = _load_and_read(
        f"sqlite:///{tmp_path / 'store.sqlite'}", capsys, monkeypatch
    )
    fleet = load_fleet(EXAMPLE)
    stored = {c["id"]: Site.model_validate(c) for c in configs}
    assert stored == {site.id: site for site in fleet.sites}


@pytest.mark.integration
def test_load_saves_every_site_when_store_is_sqlite_or_postgresql(
    empty_db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configs = _load_and_read(empty_db_url, capsys, monkeypatch)
    assert len(configs) == 12


def test_load_exits_1_with_hint_when_store_is_not_migrated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    code, _, err = run_cli(
        ["fleet", "load", str(EXAMPLE), "--db", url], capsys, monkeypatch
    )
    assert code == 1
    assert "cannot save the fleet to sqlite:///" in err
    assert "bessfleet db upgrade" in err
    assert "Traceback" not in err
