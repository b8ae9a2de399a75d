"""Scenario validation names the field, the bad value and the expected range."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from dispatch.errors import ScenarioError
from dispatch.scenario import load_scenario, parse_scenario
from tests.dispatch.factories import scenario_dict, site


def _base() -> dict:
    return scenario_dict(
        [site("a", services=("energy", "capacity")), site("b")],
        energy=[10.0, 20.0, 30.0, 40.0],
        capacity={"price_usd_per_mw": 1.0, "window": [0, 2], "duration_h": 1.0},
    )


def _with(path: list, value) -> dict:
    data = copy.deepcopy(_base())
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (
            ["sites", 1, "eta_charge"],
            0.0,
            r"sites\[1\]\.eta_charge=0 must be in \(0, 1\]",
        ),
        (
            ["sites", 0, "eta_discharge"],
            1.2,
            r"sites\[0\]\.eta_discharge=1.2 must be in \(0, 1\]",
        ),
        (
            ["markets", "N", "energy"],
            [1.0] * 3,
            r"markets\.N\.energy has 3 values, expected intervals=4",
        ),
        (
            ["capacity", "window"],
            [2, 6],
            r"capacity\.window=\[2, 6\] outside the horizon of 4 intervals",
        ),
        (
            ["fleet"],
            {"poi_groups": [{"sites": ["a", "zz"], "export_mw": 1, "import_mw": 1}]},
            r'fleet\.poi_groups\[0\]\.sites names unknown site "zz"',
        ),
        (
            ["sites", 0, "energy_mwh"],
            -1.0,
            r"sites\[0\]\.energy_mwh=-1\.0: Input should be greater than or equal to 0",
        ),
        (
            ["sites", 1, "degradation_usd_per_mwh"],
            [4.0, 2.0],
            r"sites\[1\]\.degradation_usd_per_mwh=\[4\.0, 2\.0\] must be non-decreasing",
        ),
        (
            ["sites", 1, "degradation_usd_per_mwh"],
            [-1.0],
            r"must have no negative value",
        ),
        (
            ["sites", 0, "services"],
            ["energy", "arbitrage"],
            r"unknown service\(s\) \['arbitrage'\]",
        ),
        (["sites", 0, "node"], "ZZ", r"sites\[0\]\.node='ZZ' is not a key of markets"),
        (["sites", 0, "colour"], "red", r"sites\[0\]\.colour: unknown field"),
        (["sites", 0, "soc_min"], 1.0, r"sites\[0\]\.soc_min=1 must be < soc_max=1"),
        (["schema"], "bess-dispatch-scenario/2", r"schema='bess-dispatch-scenario/2'"),
    ],
)
def test_parse_scenario_names_field_when_input_bad(path, value, match: str) -> None:
    with pytest.raises(ScenarioError, match=match):
        parse_scenario(_with(path, value))


def test_parse_scenario_accepts_base_when_valid() -> None:
    scn = parse_scenario(_base())
    assert scn.delta_h == 1.0
    assert scn.to_json_dict()["schema"] == "bess-dispatch-scenario/1"


def test_load_scenario_gives_line_and_column_when_json_broken(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "schema": "x",\n  oops\n}')
    with pytest.raises(ScenarioError, match=r"invalid JSON at line 3, column 3"):
        load_scenario(path)


def test_load_scenario_says_not_found_when_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="scenario file not found"):
        load_scenario(tmp_path / "nope.json")


def test_scenario_round_trips_when_example_written(spec_examples: Path) -> None:
    path = spec_examples / "varied-parameters.scenario.json"
    scn = load_scenario(path)
    again = parse_scenario(json.loads(json.dumps(scn.to_json_dict())))
    assert again == scn
