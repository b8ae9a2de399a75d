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
