"""FEOC compliance: hand-checked shares, the threshold table and what-if overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.compliance import (
    ThresholdTable,
    compliance_report,
    load_thresholds,
    non_feoc_share,
)
from fleet.domain import Component
from fleet.errors import FleetInputError
from tests.factories import make_fleet, provenance_data, site_data


def _fleet_with_mixes():
    """site-a: cell FEOC (non-FEOC 0.6); site-b: none FEOC (1.0); site-c: cell+module (0.5)."""
    return make_fleet(
        3,
        sites=[
            site_data("site-a", provenance=provenance_data(("cell",))),
            site_data("site-b", provenance=provenance_data(())),
            site_data("site-c", provenance=provenance_data(("cell", "module"))),
        ],
    )


@pytest.mark.parametrize(
    ("year", "threshold"),
    [
        (2022, 0.0),
        (2025, 0.0),
        (2026, 0.55),
        (2027, 0.60),
        (2028, 0.65),
        (2029, 0.70),
        (2030, 0.75),
        (2040, 0.75),
    ],
)
def test_threshold_follows_the_table_when_year_is_in_range(
    year: int, threshold: float
) -> None:
    assert load_thresholds().threshold(year) == pytest.approx(threshold)


@pytest.mark.parametrize("year", [2021, 2041])
def test_threshold_raises_input_error_when_year_outside_table(year: int) -> None:
    with pytest.raises(
        FleetInputError, match=f"year={year} is outside the FEOC threshold table"
    ):
        load_thresholds().threshold(year)


def test_threshold_table_names_its_source_when_loaded() -> None:
    table = load_thresholds()
    assert "material assistance" in table.source
    assert table.note


def test_compliance_report_matches_hand_computation_when_year_2026() -> None:
    report = compliance_report(_fleet_with_mixes(), 2026)
    assert [row.site for row in report] == ["site-a", "site-b", "site-c"]
    # cost shares: cell 0.4, module 0.1, inverter 0.3, enclosure 0.2
    assert [row.non_feoc_share for row in report] == pytest.approx([0.6, 1.0, 0.5])
    assert [row.threshold for row in report] == pytest.approx([0.55] * 3)
    assert [row.margin for row in report] == pytest.approx([0.05, 0.45, -0.05])
    assert [row.passes for row in report] == [True, True, False]
    assert report[2].feoc_components == ("cell", "module")
    assert report[1].feoc_components == ()


def test_compliance_report_fails_more_sites_when_year_is_later() -> None:
    report = compliance_report(_fleet_with_mixes(), 2028)
    assert [row.passes for row in report] == [False, True, False]
    assert report[0].margin == pytest.approx(-0.05)


def test_compliance_report_passes_all_when_year_before_requirement() -> None:
    assert all(row.passes for row in compliance_report(_fleet_with_mixes(), 2025))


def test_compliance_report_passes_when_share_equals_threshold() -> None:
    # 0.3 + 0.25 is 0.55 only up to float rounding
    fleet = make_fleet(
        1,
        sites=[
            site_data(
                "a",
                provenance=provenance_data(("cell", "module"), (0.3, 0.15, 0.3, 0.25)),
            )
        ],
    )
    (row,) = compliance_report(fleet, 2026)
    assert row.non_feoc_share == pytest.approx(0.55)
    assert row.passes


def test_compliance_report_uses_what_if_mix_when_provenance_override_given() -> None:
    fleet = _fleet_with_mixes()
    domestic = [Component.model_validate(c) for c in provenance_data(())]
    report = compliance_report(fleet, 2030, provenance={"site-c": domestic})
    assert [row.passes for row in report] == [False, True, True]
    assert report[2].non_feoc_share == pytest.approx(1.0)


def test_compliance_report_raises_when_override_names_unknown_site() -> None:
    with pytest.raises(FleetInputError, match="provenance names sites not in fleet"):
        compliance_report(_fleet_with_mixes(), 2026, provenance={"ghost": []})


def test_compliance_report_uses_given_table_when_passed() -> None:
    table = ThresholdTable(
        thresholds={2026: 0.9}, min_year=2020, max_year=2030, source="test", note="test"
    )
    report = compliance_report(_fleet_with_mixes(), 2027, table=table)
    assert [row.passes for row in report] == [False, True, False]


def test_non_feoc_share_sums_non_feoc_costs_when_given_components() -> None:
    components = [Component.model_validate(c) for c in provenance_data(("inverter",))]
    assert non_feoc_share(components) == pytest.approx(0.7)
    assert non_feoc_share([]) == 0.0


def test_load_thresholds_reads_custom_file_when_path_given(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(
        'source = "s"\nnote = "n"\nmin_year = 2020\nmax_year = 2035\n'
        "[thresholds]\n2024 = 0.4\n2030 = 0.8\n"
    )
    table = load_thresholds(path)
    assert [table.threshold(y) for y in (2023, 2024, 2029, 2030, 2035)] == [
        0.0,
        0.4,
        0.4,
        0.8,
        0.8,
    ]


def test_load_thresholds_names_each_problem_when_file_is_malformed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.toml"
    path.write_text(
        'source = "s"\nmin_year = 2020\n[thresholds]\n2026 = 55\n2027 = 0.5\n2028 = 0.4\n'
    )
    with pytest.raises(FleetInputError) as info:
        load_thresholds(path)
    lines = str(info.value).splitlines()
    assert f"{path}: thresholds.2026=55 must be within [0, 1]" in lines
    assert any("must not decrease" in line for line in lines)
    assert f"{path}: max_year=None must be a year" in lines
    assert f"{path}: note must be a non-empty text" in lines


# Issue 20: compliance as the law computes it.


def _component(kind: str, share: float, **overrides: object) -> dict[str, object]:
    return {
        "component": kind,
        "manufacturer": f"{kind.title()} Co",
        "country_of_manufacture": "US",
        "feoc": False,
        "cost_share": share,
        **overrides,
    }


def test_compliance_ratio_is_total_minus_prohibited_over_total_when_shares_drift() -> (
    None
):
    mix = [
        _component("cell", 0.45000045, feoc=True, country_of_manufacture="CN"),
        _component("inverter", 0.55000045),
    ]
    fleet = make_fleet(1, sites=[site_data("a", provenance=mix)])
    (row,) = compliance_report(fleet, 2026)
    # The sum of non-FEOC shares (0.55000045) would pass; the law's ratio does not.
    assert row.non_feoc_share == pytest.approx(0.54999996, abs=1e-8)
    assert not row.passes
    assert fleet.sites[0].non_feoc_share == pytest.approx(row.non_feoc_share)


def test_compliance_threshold_follows_each_site_construction_start() -> None:
    mix = provenance_data(("cell",))  # ratio 0.6
    fleet = make_fleet(
        3,
        sites=[
            site_data("early", provenance=mix, construction_start="2026-05-01"),
            site_data("late", provenance=mix, construction_start="2028-02-01"),
            site_data("undated", provenance=mix),
        ],
    )
    report = compliance_report(fleet, 2030)
    assert [(r.site, r.year, r.year_source) for r in report] == [
        ("early", 2026, "construction_start"),
        ("late", 2028, "construction_start"),
        ("undated", 2030, "default"),
    ]
    assert [r.threshold for r in report] == pytest.approx([0.55, 0.65, 0.75])
    assert [r.passes for r in report] == [True, False, False]
    with pytest.raises(FleetInputError, match="undated have no construction_start"):
        compliance_report(fleet)


def test_compliance_counts_unknown_origin_against_ratio_when_declared() -> None:
    mix = [
        _component("cell", 0.3, feoc="unknown"),
        _component("module", 0.1, country_of_manufacture="unknown"),
        _component("inverter", 0.4),
        _component("enclosure", 0.2, country_of_manufacture="CN"),
    ]
    fleet = make_fleet(1, sites=[site_data("a", provenance=mix)])
    (row,) = compliance_report(fleet, 2026)
    assert row.non_feoc_share == pytest.approx(0.6)
    assert row.unknown_share == pytest.approx(0.4)
    assert row.feoc_components == ()
    assert any("origin or FEOC status unknown" in w for w in row.warnings)
    # A CN-made part flagged feoc=false no longer passes silently.
    assert any("enclosure" in w and "covered nation" in w for w in row.warnings)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("country_of_manufacture", "XX", "ISO 3166-1 alpha-2 country code"),
        ("country_of_manufacture", "cn", "ISO 3166-1 alpha-2 country code"),
        ("feoc", "maybe", 'expected true, false or "unknown"'),
    ],
)
def test_component_refuses_value_naming_field_when_origin_bad(
    field: str, value: str, expected: str
) -> None:
    with pytest.raises(ValueError, match=field) as info:
        Component.model_validate(_component("cell", 1.0, **{field: value}))
    assert expected in str(info.value)
    assert "US state" not in str(info.value)


def test_fleet_file_names_country_field_when_code_invalid(tmp_path: Path) -> None:
    from fleet.fleetfile import load_fleet
    from tests.factories import fleet_data, write_fleet_file

    data = fleet_data(1)
    data["sites"][0]["provenance"][0]["country_of_manufacture"] = "XX"
    path = write_fleet_file(tmp_path, data, ".toml")
    with pytest.raises(FleetInputError) as info:
        load_fleet(path)
    message = str(info.value)
    assert "provenance[0].country_of_manufacture" in message
    assert "ISO 3166-1" in message
    assert "US state" not in message


@pytest.mark.parametrize(
    ("year", "fraction"),
    [(2030, 1.0), (2033, 1.0), (2034, 1.0), (2035, 0.75), (2036, 0.5), (2037, 0.0)],
)
def test_credit_phase_down_follows_table_when_construction_late(
    year: int, fraction: float
) -> None:
    assert load_thresholds().credit_fraction(year) == pytest.approx(fraction)


def test_cli_compliance_uses_construction_start_and_exits_2_when_undated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleet.cli import main
    from tests.factories import fleet_data, write_fleet_file

    monkeypatch.setenv("COLUMNS", "200")
    mix = provenance_data(("cell",))  # ratio 0.6
    dated = fleet_data(
        2,
        sites=[
            site_data("early", provenance=mix, construction_start="2026-05-01"),
            site_data("late", provenance=mix, construction_start="2028-02-01"),
        ],
    )
    with pytest.raises(SystemExit) as info:
        main(["fleet", "compliance", str(write_fleet_file(tmp_path, dated, ".toml"))])
    assert info.value.code == 1
    out = capsys.readouterr().out
    assert "1 of 2 sites below their threshold: late" in out
    undated = fleet_data(1)
    (tmp_path / "u").mkdir()
    path = write_fleet_file(tmp_path / "u", undated, ".yaml")
    with pytest.raises(SystemExit) as info:
        main(["fleet", "compliance", str(path)])
    assert info.value.code == 2
    assert "construction_start" in capsys.readouterr().err
