from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.errors import FleetInputError
from fleet.whatif import compare_sourcing, load_whatif
from tests.factories import fleet_data, make_fleet, write_fleet_file

WHATIF = """
year = 2027
itc_rate = 0.30

[[scenario]]
name = "60pct"
site = "tx-new-01"
capex_usd = 10_000_000
{mix60}

[[scenario]]
name = "55pct"
site = "tx-new-01"
capex_usd = 10_000_000
{mix55}

[[scenario]]
name = "augment-75pct"
site = "site-01"
capex_usd = 4_000_000
itc_rate = 0.40
{mix75}
"""


def _mix(feoc_cell_share: float) -> str:
    rest = 1.0 - feoc_cell_share
    parts = [
        ("cell", "CN", True, feoc_cell_share),
        ("module", "US", False, 0.10),
        ("inverter", "US", False, round(rest - 0.30, 10)),
        ("enclosure", "US", False, 0.20),
    ]
    return "\n".join(
        f'[[scenario.component]]\ncomponent = "{kind}"\nmanufacturer = "{kind} co"\n'
        f'country_of_manufacture = "{country}"\nfeoc = {str(feoc).lower()}\n'
        f"cost_share = {share}\n"
        for kind, country, feoc, share in parts
    )


def _write(tmp_path: Path) -> Path:
    path = tmp_path / "whatif.toml"
    path.write_text(
        WHATIF.format(mix60=_mix(0.40), mix55=_mix(0.45), mix75=_mix(0.25)),
        encoding="utf-8",
    )
    return path


def test_compare_sourcing_matches_hand_numbers_when_three_mixes(
    tmp_path: Path,
) -> None:
    rows = compare_sourcing(make_fleet(2), load_whatif(_write(tmp_path)))
    by_name = {r.name: r for r in rows}
    sixty, fifty_five, aug = (
        by_name["60pct"],
        by_name["55pct"],
        by_name["augment-75pct"],
    )
    # 2027 threshold 60 %: 0.6 non-FEOC passes exactly, ITC = 30 % of $10M.
    assert sixty.threshold == pytest.approx(0.60)
    assert sixty.non_feoc_share == pytest.approx(0.60)
    assert sixty.passes
    assert sixty.new_site
    assert sixty.itc_value_usd == pytest.approx(3_000_000)
    assert sixty.net_capex_usd == pytest.approx(7_000_000)
    # 0.55 < 0.60: the whole $3M credit is at risk.
    assert not fifty_five.passes
    assert fifty_five.margin == pytest.approx(-0.05)
    assert fifty_five.itc_value_usd == 0.0
    assert fifty_five.credit_at_risk_usd == pytest.approx(3_000_000)
    assert fifty_five.net_capex_usd == pytest.approx(10_000_000)
    # Existing site re-sourced through compliance_report; 40 % ITC on $4M.
    assert not aug.new_site
    assert aug.non_feoc_share == pytest.approx(0.75)
    assert aug.itc_value_usd == pytest.approx(1_600_000)
    assert aug.net_capex_usd == pytest.approx(2_400_000)


def test_load_whatif_raises_naming_scenario_when_shares_do_not_sum(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path)
    path.write_text(
        path.read_text().replace("cost_share = 0.1\n", "cost_share = 0.2\n")
    )
    with pytest.raises(FleetInputError, match=r"scenario '60pct'.*sum to 1.1"):
        load_whatif(path)


def test_load_whatif_raises_naming_field_when_capex_negative(tmp_path: Path) -> None:
    path = _write(tmp_path)
    path.write_text(path.read_text().replace("10_000_000", "-1", 1))
    with pytest.raises(FleetInputError, match="scenario '60pct': capex_usd"):
        load_whatif(path)


def test_cli_compliance_prints_what_if_json_when_option_given(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet_file = write_fleet_file(tmp_path, fleet_data(2))
    monkeypatch.setenv("COLUMNS", "250")
    with pytest.raises(SystemExit) as info:
        main(
            [
                "fleet",
                "compliance",
                str(fleet_file),
                "--what-if",
                str(_write(tmp_path)),
                "--json",
            ]
        )
    assert info.value.code in (0, None)
    doc = json.loads(capsys.readouterr().out)
    assert doc["year"] == 2027
    assert [s["itc_value_usd"] for s in doc["scenarios"]] == [3e6, 0.0, 1.6e6]
    assert [s["passes"] for s in doc["scenarios"]] == [True, False, True]


def test_cli_compliance_what_if_exits_2_when_year_conflicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet_file = write_fleet_file(tmp_path, fleet_data(2))
    with pytest.raises(SystemExit) as info:
        main(
            [
                "fleet",
                "compliance",
                str(fleet_file),
                "--what-if",
                str(_write(tmp_path)),
                "--year",
                "2030",
            ]
        )
    assert info.value.code == 2
    assert "--year=2030 differs from year=2027" in capsys.readouterr().err


def test_cli_compliance_what_if_prints_table_when_no_json(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    fleet_file = write_fleet_file(tmp_path, fleet_data(2))
    with pytest.raises(SystemExit) as info:
        main(
            ["fleet", "compliance", str(fleet_file), "--what-if", str(_write(tmp_path))]
        )
    assert info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "3,000,000" in out
    assert "lost" in out


@pytest.mark.parametrize(
    ("year", "credit_usd"),
    [(2033, 3_000_000), (2035, 2_250_000), (2036, 1_500_000), (2037, 0.0)],
)
def test_compare_sourcing_applies_credit_phase_down_when_construction_late(
    tmp_path: Path, year: int, credit_usd: float
) -> None:
    # Issue 20: the what-if kept the full credit after the phase-down years.
    path = tmp_path / "late.toml"
    path.write_text(
        f'year = {year}\nitc_rate = 0.30\n[[scenario]]\nname = "all US"\n'
        f'site = "tx-new-01"\ncapex_usd = 10_000_000\n{_mix(0.0)}',
        encoding="utf-8",
    )
    [row] = compare_sourcing(make_fleet(2), load_whatif(path))
    assert row.passes
    assert row.year == year
    assert row.itc_value_usd == pytest.approx(credit_usd)
    assert row.net_capex_usd == pytest.approx(10_000_000 - credit_usd)


def test_load_whatif_names_country_field_when_code_not_iso(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(_write(tmp_path).read_text().replace('"CN"', '"XX"', 1))
    with pytest.raises(FleetInputError) as info:
        load_whatif(path)
    message = str(info.value)
    assert "scenario '60pct': component.0.country_of_manufacture" in message
    assert "ISO 3166-1" in message
    assert "US state" not in message
