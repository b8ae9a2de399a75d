"""The ``bessfleet dispatch`` commands: exit codes and files, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SPEC_EXAMPLES

BESSFLEET = Path(sys.executable).with_name("bessfleet")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BESSFLEET), "dispatch", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_solve_exits_0_and_writes_result_when_example_feasible(
    spec_examples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    proc = _run(
        "solve",
        str(spec_examples / "three-sites-stacked.scenario.json"),
        "-o",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["status"] == "optimal"
    assert data["objective_usd"] == pytest.approx(5139.3904, rel=2e-4)
    assert "optimal" in proc.stdout
    png = tmp_path / "r.png"
    proc = _run(
        "plot",
        str(out),
        "-o",
        str(png),
        "--scenario",
        str(spec_examples / "three-sites-stacked.scenario.json"),
    )
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_solve_exits_1_with_reason_when_infeasible(
    spec_examples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    proc = _run(
        "solve",
        str(spec_examples / "fleet-capacity-infeasible.scenario.json"),
        "-o",
        str(out),
    )
    assert proc.returncode == 1
    assert "capacity_min_mw" in proc.stdout
    assert json.loads(out.read_text())["status"] == "infeasible"


def test_cli_solve_exits_2_when_scenario_invalid(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "bess-dispatch-scenario/1",\n "intervals": }')
    proc = _run("solve", str(bad), "-o", str(tmp_path / "r.json"))
    assert proc.returncode == 2
    assert "line 2" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _run("solve", str(tmp_path / "missing.json"), "-o", str(tmp_path / "r.json"))
    assert proc.returncode == 2
    assert "not found" in proc.stderr


@pytest.mark.parametrize(
    "name",
    sorted(
        p.name.removesuffix(".scenario.json")
        for p in SPEC_EXAMPLES.glob("*.scenario.json")
    ),
)
def test_cli_solve_writes_spec_result_when_run_on_each_example(
    name: str, spec_examples: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from fleet.cli import app

    expected = json.loads((spec_examples / "expected.json").read_text())[name]
    out = tmp_path / "r.json"
    run = CliRunner().invoke(
        app,
        [
            "dispatch",
            "solve",
            str(spec_examples / f"{name}.scenario.json"),
            "-o",
            str(out),
        ],
    )
    assert run.exit_code == (0 if expected["status"] == "optimal" else 1), run.output
    data = json.loads(out.read_text())
    assert data["schema"] == "bess-dispatch-result/1"
    assert data["status"] == expected["status"]
    assert {"seconds", "mip_gap", "solver"} <= set(data["solve"])
    if expected["status"] == "optimal":
        assert data["objective_usd"] == pytest.approx(
            expected["objective_usd"], rel=2e-4
        )
        scn = json.loads((spec_examples / f"{name}.scenario.json").read_text())
        n = scn["intervals"]
        for site in scn["sites"]:
            sched = data["sites"][site["id"]]
            for key in (
                "charge_mw",
                "discharge_mw",
                "reg_up_mw",
                "reg_down_mw",
                "spin_mw",
            ):
                assert len(sched[key]) == n
            assert len(sched["soc"]) == n + 1
            assert ("grid_import_mw" in sched) == (site.get("btm") is not None)
    else:
        assert data["reason"]
