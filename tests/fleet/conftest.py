"""Fixtures for the fleet tests: the shared store fixtures until the root conftest loads them."""

from __future__ import annotations

from tests.store_fixtures import (  # noqa: F401
    engine,
    migrated_db_url,
    pytest_collection_modifyitems,
)
