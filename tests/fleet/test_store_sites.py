from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from fleet.fleetfile import load_fleet
from fleet.store import sites
from fleet.store.tables import sites as sites_table

EXAMPLE = (
    Path(__file__).resolve().parents[2] / "deploy" / "examples" / "fleet-small.yaml"
)


@pytest.fixture
def fleet():  # the real domain model, loaded from the shipped example
    if not EXAMPLE.is_file():
        pytest.skip(f"example fleet {EXAMPLE} is absent")
    return load_fleet(EXAMPLE)


def test_save_fleet_stores_every_site_config_when_store_empty(
    engine: sa.Engine, fleet
) -> None:
    assert sites.save_fleet(engine, fleet) == len(fleet.sites)
    configs = sites.load_site_configs(engine)
    assert configs == sorted(
        (s.model_dump(mode="json") for s in fleet.sites), key=lambda c: c["id"]
    )
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(sites_table).where(sites_table.c.id == fleet.sites[0].id)
        ).one()
    assert row.market == str(fleet.sites[0].market)
    assert row.meter == str(fleet.sites[0].meter)
    assert row.updated_at.tzinfo is not None


def test_save_fleet_updates_in_place_when_saved_again(engine: sa.Engine, fleet) -> None:
    first = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    sites.save_fleet(engine, fleet, now=first)
    renamed = fleet.model_copy(
        update={
            "sites": [
                fleet.sites[0].model_copy(update={"name": "Renamed site"}),
                *fleet.sites[1:],
            ]
        }
    )
    later = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    assert sites.save_fleet(engine, renamed, now=later) == len(fleet.sites)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sites_table).order_by(sites_table.c.id)).all()
    assert len(rows) == len(fleet.sites)
    by_id = {r.id: r for r in rows}
    assert by_id[fleet.sites[0].id].name == "Renamed site"
    assert by_id[fleet.sites[0].id].config["name"] == "Renamed site"
    assert {r.updated_at for r in rows} == {later}


def test_load_site_configs_filters_when_market_given(engine: sa.Engine, fleet) -> None:
    sites.save_fleet(engine, fleet)
    market = str(fleet.sites[0].market)
    assert {c["market"] for c in sites.load_site_configs(engine, market=market)} == {
        market
    }
    assert sites.load_site_configs(engine, market="NO_SUCH_MARKET") == []
