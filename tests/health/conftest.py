"""Fixtures for the health tests: the assets/health CLI registered on the root app."""

from __future__ import annotations

import pytest

from fleet import cli
from fleet.cli import assets as assets_cli


@pytest.fixture(autouse=True, scope="session")
def _assets_cli_registered() -> None:
    """Register ``assets`` and ``health`` unless fleet/cli/__init__.py already does."""
    names = {group.name for group in cli.app.registered_groups}
    if "assets" not in names:
        assets_cli.register(cli.app)
