"""Shared store fixtures: a database migrated to head (SQLite, then PostgreSQL) and its engine.

Load them with ``pytest_plugins = ["tests.store_fixtures"]`` in the root conftest (or
import them in a package conftest). PostgreSQL variants of ``empty_db_url`` are marked
``integration`` here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from fleet.store.engine import make_engine
from fleet.store.migrate import upgrade


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the PostgreSQL variant of every ``empty_db_url``-based test integration."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("empty_db_url") == "postgresql":
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def migrated_db_url(empty_db_url: str) -> str:
    """URL of a fresh database with every migration applied (SQLite, then PostgreSQL)."""
    upgrade(empty_db_url)
    return empty_db_url


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[sa.Engine]:
    """An engine on :func:`migrated_db_url`, disposed after the test."""
    eng = make_engine(migrated_db_url)
    yield eng
    eng.dispose()
