"""The package boundaries of design.md hold: the math packages do no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "dispatch": {
        "fleet",
        "telemetry",
        "paho",
        "fastapi",
        "sqlalchemy",
        "alembic",
        "uvicorn",
    },
    "forecasting": {
        "fleet",
        "telemetry",
        "paho",
        "fastapi",
        "sqlalchemy",
        "alembic",
        "uvicorn",
    },
    "telemetry": {"dispatch", "forecasting"},
}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_forbidden_when_scanned(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_roots(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, f"{package}/ imports what design.md forbids: {offenders}"


def test_boundary_scan_detects_a_forbidden_import_when_present(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sqlalchemy\nfrom fleet.store import x\n")
    assert _imported_roots(bad) & FORBIDDEN["dispatch"] == {"sqlalchemy", "fleet"}
