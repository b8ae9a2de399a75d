"""The CLI starts without the heavy libraries: they are imported by the commands.

Each check runs in a fresh interpreter, since this test process has long imported
everything. No timing is asserted (the figure is in bench/cli_bench.py); what is
asserted is which modules a start-up and the help screens load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

HEAVY = (
    "sklearn",
    "scipy",
    "pandas",
    "numpy",
    "sqlalchemy",
    "alembic",
    "pyomo",
    "highspy",
    "fastapi",
    "uvicorn",
    "paho",
    "dask",
    "matplotlib",
)
"""Top-level packages no start-up or help screen may import."""

OWN_LIGHT = {
    "fleet.errors",
    "fleet.compliance",
    "dispatch.errors",
    "forecasting.errors",
    "forecasting.types",
    "forecasting.degradation",
    "forecasting.degradation.warranty",
    "telemetry.errors",
}
"""Project modules the CLI may load at start-up besides ``fleet.cli.*``."""

REPORT = """
import json, sys
heavy = {heavy!r}
loaded = sorted(
    name for name in sys.modules if name.split(".")[0] in heavy
)
own = sorted(
    name for name in sys.modules
    if name.split(".")[0] in ("fleet", "dispatch", "forecasting", "telemetry")
    and "." in name and not name.startswith("fleet.cli")
)
print(json.dumps({{"heavy": loaded, "own": own, "runs": runs}}))
"""

IMPORT_ONLY = "import fleet.cli\nruns = []\n"

EVERY_HELP = """
import contextlib, io
import typer.main
from fleet.cli import app, main

def walk(command, path):
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, [*path, name])

runs = []
for path in list(walk(typer.main.get_command(app), [])):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main([*path, "--help"])
            code = 0
        except SystemExit as exc:
            code = exc.code
    runs.append({"path": path, "code": code, "usage": "Usage:" in out.getvalue()})
"""


def _fresh(script: str) -> dict[str, list[Any]]:
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "COLUMNS": "100"}
    done = subprocess.run(
        [sys.executable, "-c", script + REPORT.format(heavy=HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, list[Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_import_of_the_cli_loads_no_heavy_library() -> None:
    result = _fresh(IMPORT_ONLY)
    assert result["heavy"] == []
    assert set(result["own"]) <= OWN_LIGHT, set(result["own"]) - OWN_LIGHT


def test_every_help_screen_loads_no_heavy_library() -> None:
    result = _fresh(EVERY_HELP)
    paths = [run["path"] for run in result["runs"]]
    # the root, its groups and their commands: the walk really covered the tree
    assert [] in paths
    for expected in (["db"], ["db", "upgrade"], ["forecast", "backtest"], ["serve"]):
        assert expected in paths
    assert len(paths) > 40
    failed = [run for run in result["runs"] if run["code"] != 0 or not run["usage"]]
    assert failed == []
    assert result["heavy"] == []
    assert set(result["own"]) <= OWN_LIGHT, set(result["own"]) - OWN_LIGHT


@pytest.mark.parametrize(
    "module",
    ["fleet.errors", "dispatch.errors", "forecasting.errors", "telemetry.errors"],
)
def test_error_modules_import_alone(module: str) -> None:
    result = _fresh(f"import {module}\nruns = []\n")
    assert result["heavy"] == []
    assert result["own"] == [module]
