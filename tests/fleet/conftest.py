"""Fixtures for the fleet tests.

The store fixtures (``migrated_db_url``, ``engine``) come from ``tests/store_fixtures.py``,
which the root conftest loads with ``pytest_plugins``.
"""
