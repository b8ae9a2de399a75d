"""Fixtures for the API tests: a migrated store with the example fleet, keys, clients."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from fleet.api import sample
from fleet.domain import Fleet
from fleet.fleetfile import load_fleet
from fleet.store import keys as key_store
from fleet.store.engine import make_engine
from fleet.store.migrate import upgrade
from fleet.store.sites import save_fleet
from tests.api.server import http_client, live_server
from tests.conftest import (
    REPO_ROOT,
    _create_pg_database,
    _drop_pg_database,
    _pg_admin_url,
)

EXAMPLE_FLEET = REPO_ROOT / "deploy" / "examples" / "fleet.toml"
ROLES = ("viewer", "scheduler", "admin")


@pytest.fixture(scope="session")
def example_fleet() -> Fleet:
    """The 12-site example fleet of deploy/examples."""
    return load_fleet(EXAMPLE_FLEET)


@pytest.fixture(scope="session")
def _template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied by each module instead of migrating again."""
    path = tmp_path_factory.mktemp("api-template") / "template.sqlite"
    upgrade(f"sqlite:///{path}")
    return path


@dataclass(frozen=True)
class Store:
    """A seeded store: its URL, an engine, and one key per role."""

    url: str
    engine: sa.Engine
    keys: dict[str, str]
    key_ids: dict[str, str]
    fleet: Fleet
    schedule_id: int
    operating_day: dt.date


def _seed(url: str, fleet: Fleet) -> Store:
    engine = make_engine(url)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    day = now.astimezone(dt.timezone(dt.timedelta(hours=-6))).date()
    keys: dict[str, str] = {}
    key_ids: dict[str, str] = {}
    with engine.begin() as conn:
        save_fleet(conn, fleet)
        for role in ROLES:
            new = key_store.create_key(conn, role=role, note=f"test {role}")
            keys[role] = new.secret
            key_ids[role] = new.key.id
        sample.write_telemetry(
            conn,
            fleet.sites,
            start=now - dt.timedelta(hours=6),
            end=now,
            step_s=60,
        )
        schedule_id = sample.write_schedule(
            conn, fleet.sites, market="ERCOT", operating_day=day
        )
        sample.write_awards(conn, fleet.sites, market="ERCOT", operating_day=day)
    return Store(url, engine, keys, key_ids, fleet, schedule_id, day)


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)],
)
def store(
    request: pytest.FixtureRequest,
    _template_db: Path,
    tmp_path_factory: pytest.TempPathFactory,
    example_fleet: Fleet,
) -> Iterator[Store]:
    """A migrated store (SQLite, then PostgreSQL) with the example fleet and data."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("api-store") / "store.sqlite"
        shutil.copy(_template_db, path)
        seeded = _seed(f"sqlite:///{path}", example_fleet)
        yield seeded
        seeded.engine.dispose()
        return
    admin = _pg_admin_url()
    if not admin:
        pytest.skip(
            "BESSFLEET_TEST_DATABASE_URL is not set: PostgreSQL variant skipped"
        )
    url, name = _create_pg_database(admin)
    try:
        upgrade(url)
        seeded = _seed(url, example_fleet)
        yield seeded
        seeded.engine.dispose()
    finally:
        _drop_pg_database(admin, name)


@pytest.fixture(scope="module")
def client(store: Store) -> Iterator[httpx.Client]:
    """A client on a live app (uvicorn, lifespan run) for :func:`store`."""
    with live_server(store.url) as server, http_client(server) as test_client:
        yield test_client


def auth(store: Store, role: str) -> dict[str, str]:
    """Return the Authorization header for the store's key of ``role``."""
    return {"Authorization": f"Bearer {store.keys[role]}"}
