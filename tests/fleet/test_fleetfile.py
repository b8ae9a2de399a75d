"""Loading fleet files: the examples load, and every bad input gets one clear line."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from fleet.compliance import compliance_report
from fleet.domain import Market, Meter
from fleet.errors import FleetFileError, FleetInputError
from fleet.fleetfile import load_fleet
from tests.factories import (
    DELETE,
    fleet_data,
    provenance_data,
    site_data,
    write_fleet_file,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "deploy" / "examples"


def _problems(path: Path) -> list[str]:
    with pytest.raises(FleetFileError) as info:
        load_fleet(path)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def _bad_fleet(tmp_path: Path, suffix: str, **site_overrides: Any) -> Path:
    """A 2-site fleet whose second site ("site-02") carries the overrides."""
    data = fleet_data(
        2, sites=[site_data("site-01"), site_data("site-02", **site_overrides)]
    )
    return write_fleet_file(tmp_path, data, suffix)


def test_load_fleet_returns_twelve_sites_when_example_toml() -> None:
    fleet = load_fleet(EXAMPLES / "fleet.toml")
    assert len(fleet.sites) == 12
    front = [s for s in fleet.sites if s.meter is Meter.FRONT]
    assert sum(s.market is Market.ERCOT for s in front) == 7
    assert sum(s.market is Market.CAISO for s in front) == 2
    btm = [s for s in fleet.sites if s.is_btm]
    assert len(btm) == 3
    assert all(1.0 <= s.battery.discharge_mw <= 3.0 for s in btm)
    assert all(
        s.tariff is not None and 10 <= s.tariff.demand_usd_per_kw_month <= 25
        for s in btm
    )
    assert all(10.0 <= s.battery.discharge_mw <= 100.0 for s in front)
    assert all(1.0 <= s.battery.duration_h <= 4.0 for s in fleet.sites)
    assert [len(fleet.poi_group_sites(g.name)) for g in fleet.poi_groups] == [2]


def test_example_fleet_has_a_failing_site_when_checked_for_2026() -> None:
    report = compliance_report(load_fleet(EXAMPLES / "fleet.toml"), 2026)
    failing = [row.site for row in report if not row.passes]
    assert failing == ["tx-corpus-01"]


def test_load_fleet_reads_yaml_when_example_yaml_matches_toml_sites() -> None:
    small = load_fleet(EXAMPLES / "fleet-small.yaml")
    full = load_fleet(EXAMPLES / "fleet.toml")
    assert len(small.sites) == 3
    for site in small.sites:
        assert site == full.by_id(site.id)


def test_example_nodes_and_loads_exist_when_checked_against_shared_data(
    shared_data: Path,
) -> None:
    fleet = load_fleet(EXAMPLES / "fleet.toml")
    ercot_csv = shared_data / "ercot_da_spp" / "ercot_da_spp_hubs_lz_2021_2025.csv.gz"
    with gzip.open(ercot_csv, "rt") as handle:
        ercot_nodes = {line.split(",")[2] for line in handle.readlines()[1:2000]}
    caiso_csv = (
        shared_data / "caiso_dervet_example_2020" / "caiso_da_energy_2020_hourly.csv"
    )
    caiso_nodes = {
        line.split(",")[2] for line in caiso_csv.read_text().splitlines()[1:50]
    }
    for site in fleet.sites:
        nodes = ercot_nodes if site.market is Market.ERCOT else caiso_nodes
        assert site.node in nodes, site.id
        if site.load is not None:
            folder = shared_data / site.load.dataset.value
            text = "".join(p.read_text() for p in folder.glob("*.csv"))
            assert f",{site.load.profile}," in text, site.id


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_load_fleet_names_file_site_and_field_when_type_is_wrong(
    tmp_path: Path, suffix: str
) -> None:
    path = _bad_fleet(tmp_path, suffix, battery={"energy_mwh": "forty"})
    assert _problems(path) == [
        f'{path}: site "site-02": battery.energy_mwh="forty" has the wrong type: '
        "expected a number"
    ]


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_load_fleet_names_file_site_and_field_when_field_is_missing(
    tmp_path: Path, suffix: str
) -> None:
    path = _bad_fleet(tmp_path, suffix, battery={"discharge_mw": DELETE})
    assert _problems(path) == [
        f'{path}: site "site-02": battery.discharge_mw is missing (required)'
    ]


@pytest.mark.parametrize(("field", "value"), [("soc_min", 1.2), ("soc_max", -0.5)])
def test_load_fleet_names_range_when_soc_limit_outside_unit_interval(
    tmp_path: Path, field: str, value: float
) -> None:
    path = _bad_fleet(tmp_path, ".toml", battery={field: value})
    assert _problems(path) == [
        f'{path}: site "site-02": battery.{field}={value} must be within [0, 1]'
    ]


def test_load_fleet_names_both_limits_when_soc_min_not_below_soc_max(
    tmp_path: Path,
) -> None:
    path = _bad_fleet(tmp_path, ".toml", battery={"soc_min": 0.9, "soc_max": 0.2})
    assert _problems(path) == [
        f'{path}: site "site-02": battery.soc_min=0.9 must be less than soc_max=0.2'
    ]


def test_load_fleet_names_both_positions_when_site_id_is_duplicated(
    tmp_path: Path,
) -> None:
    data = fleet_data(
        3,
        sites=[
            site_data("site-01"),
            site_data("site-02"),
            site_data("site-01", resource_id="ERCOT_ESR_OTHER"),
        ],
    )
    path = write_fleet_file(tmp_path, data)
    assert _problems(path) == [
        f'{path}: site "site-01": id="site-01" is a duplicate: site #1 and site #3 '
        "have it; site ids must be unique"
    ]


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_load_fleet_lists_allowed_services_when_service_is_unknown(
    tmp_path: Path, suffix: str
) -> None:
    path = _bad_fleet(tmp_path, suffix, services=["energy", "frequency_response"])
    assert _problems(path) == [
        f'{path}: site "site-02": services[1]="frequency_response" is not a known '
        "service (allowed: energy, reg_up, reg_down, spin, ecrs, nonspin, capacity, peak_shaving)"
    ]


def test_load_fleet_reports_every_problem_once_when_file_has_several(
    tmp_path: Path,
) -> None:
    data = fleet_data(
        3,
        sites=[
            site_data("site-01", battery={"soc_min": 1.2}),
            site_data("site-02", services=["energy", "frequency"], node=DELETE),
            site_data(
                "site-01", resource_id="ERCOT_ESR_OTHER", battery={"energy_mwh": "x"}
            ),
        ],
    )
    path = write_fleet_file(tmp_path, data)
    problems = _problems(path)
    assert len(problems) == 5, problems
    assert all(line.startswith(f"{path}: site ") for line in problems)
    joined = "\n".join(problems)
    for piece in (
        'site "site-01": id="site-01" is a duplicate',
        'site "site-01": battery.soc_min=1.2 must be within [0, 1]',
        'site "site-02": node is missing (required)',
        'site "site-02": services[1]="frequency" is not a known service',
        'site "site-01": battery.energy_mwh="x" has the wrong type',
    ):
        assert piece in joined


def test_load_fleet_names_site_by_position_when_id_is_bad(tmp_path: Path) -> None:
    path = _bad_fleet(tmp_path, ".toml", id="Site Two")
    assert _problems(path) == [
        f'{path}: site #2: id="Site Two" must be 1-32 characters: lowercase letters, '
        "digits, '_' or '-', starting with a letter or digit (it is an MQTT topic level)"
    ]


def test_load_fleet_names_site_by_position_when_id_is_missing(tmp_path: Path) -> None:
    path = _bad_fleet(tmp_path, ".yaml", id=DELETE)
    assert _problems(path) == [f"{path}: site #2: id is missing (required)"]


def test_load_fleet_lists_allowed_fields_when_field_is_unknown(tmp_path: Path) -> None:
    path = _bad_fleet(tmp_path, ".toml", location={"country": "US"})
    assert _problems(path) == [
        f'{path}: site "site-02": location.country is not a known field '
        "(allowed: lat, lon, county, state)"
    ]


def test_load_fleet_names_declared_groups_when_poi_group_is_undeclared(
    tmp_path: Path,
) -> None:
    path = _bad_fleet(tmp_path, ".toml", poi={"group": "west-345"})
    assert _problems(path) == [
        f'{path}: site "site-02": poi.group="west-345" is not declared in poi_groups '
        "(declared: none)"
    ]


def test_load_fleet_names_site_rule_when_btm_site_lacks_tariff(tmp_path: Path) -> None:
    data = fleet_data(1, sites=[site_data("shop-01", btm=True, tariff=DELETE)])
    path = write_fleet_file(tmp_path, data, ".yaml")
    assert _problems(path) == [
        f'{path}: site "shop-01": tariff is required for a behind-the-meter site '
        '(meter="behind")'
    ]


def test_load_fleet_names_line_when_toml_syntax_is_bad(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text('name = "x"\n\n[[sites]]\nid = "a\n')
    (line,) = _problems(path)
    assert line.startswith(f"{path}: TOML syntax error: ")
    assert "line 4" in line


def test_load_fleet_names_line_when_yaml_syntax_is_bad(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("name: x\nsites:\n  - id: a\n   name: b\n")
    (line,) = _problems(path)
    assert line.startswith(f"{path}: YAML syntax error at line 4, column 4: ")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "fleet.json",
            "{}",
            "unknown fleet file type '.json': expected .toml, .yaml or .yml",
        ),
        ("fleet.yaml", "", "the file is empty: expected a table with name and sites"),
        (
            "fleet.yaml",
            "- 1\n- 2\n",
            "the file is a list: expected a table with name and sites",
        ),
    ],
)
def test_load_fleet_explains_when_file_is_not_a_fleet(
    tmp_path: Path, name: str, content: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert _problems(path) == [f"{path}: {expected}"]


def test_load_fleet_says_no_such_file_when_path_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    assert _problems(path) == [f"{path}: no such file"]


def test_fleet_file_error_is_an_input_error_when_caught_by_the_cli() -> None:
    assert issubclass(FleetFileError, FleetInputError)
    assert issubclass(FleetFileError, ValueError)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"battery": {"energy_mwh": "40"}},
            'battery.energy_mwh="40" has the wrong type: expected a number',
        ),
        (
            {"battery": {"strings": 53.5}},
            "battery.strings=53.5 has the wrong type: expected a whole number",
        ),
        (
            {"poi": {"export_mw": True}},
            "poi.export_mw=true has the wrong type: expected a number",
        ),
        (
            {
                "provenance": [
                    {**provenance_data()[0], "feoc": "no"},
                    *provenance_data()[1:],
                ]
            },
            'provenance[0].feoc: "no" has the wrong type: expected true, false or '
            '"unknown"',
        ),
    ],
    ids=["number-as-text", "float-for-int", "bool-for-number", "text-for-bool"],
)
def test_load_fleet_refuses_coercion_when_value_has_another_type(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    path = _bad_fleet(tmp_path, ".yaml", **overrides)
    assert _problems(path) == [f'{path}: site "site-02": {message}']


def test_load_fleet_accepts_integers_and_iso_text_when_numbers_and_dates(
    tmp_path: Path,
) -> None:
    data = fleet_data(
        1,
        sites=[
            site_data("a", battery={"energy_mwh": 20, "commissioned": "2025-06-01"})
        ],
    )
    fleet = load_fleet(write_fleet_file(tmp_path, data, ".yaml"))
    assert fleet.sites[0].battery.energy_mwh == 20.0
    assert fleet.sites[0].battery.commissioned.isoformat() == "2025-06-01"
