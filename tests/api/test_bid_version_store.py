"""A bid-set version is stored once (revision 0011): the store's unique index backs 409."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from fleet.store import migrate
from fleet.store.bids import BidVersionExistsError, save_bid_set
from fleet.store.engine import make_engine
from fleet.store.tables import bid_sets

DAY = dt.date(2030, 8, 1)


def _row(version: int, status: str) -> dict[str, object]:
    return {
        "market": "ERCOT",
        "operating_day": DAY,
        "version": version,
        "status": status,
        "submitted_by": "test",
        "created_at": dt.datetime(2030, 7, 31, 9, tzinfo=dt.UTC),
        "payload": {"bids": []},
        "refusal_reason": None if status == "accepted" else "test",
    }


def test_store_refuses_a_version_twice_when_the_first_push_was_refused(
    migrated_db_url: str,
) -> None:
    engine = make_engine(migrated_db_url)
    try:
        save_bid_set(engine, **_row(1, "refused"))  # type: ignore[arg-type]
        with pytest.raises(BidVersionExistsError, match=r"version=1 .*\(refused\)"):
            save_bid_set(engine, **_row(1, "accepted"))  # type: ignore[arg-type]
        # The index itself refuses it, whatever the writer checks first.
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.insert(bid_sets).values(**_row(1, "accepted")))
        with engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(bid_sets))
            assert count.scalar_one() == 1
    finally:
        engine.dispose()


def test_upgrade_to_0011_stops_naming_the_version_when_stored_twice(
    empty_db_url: str,
) -> None:
    migrate.upgrade(empty_db_url, "0009")
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(bid_sets).values(**_row(2, "refused")))
            conn.execute(sa.insert(bid_sets).values(**_row(2, "accepted")))
        with pytest.raises(RuntimeError, match="ERCOT 2030-08-01 version=2"):
            migrate.upgrade(empty_db_url)
        assert migrate.current(empty_db_url) == "0009"
        with engine.begin() as conn:
            conn.execute(sa.delete(bid_sets).where(bid_sets.c.status == "refused"))
        migrate.upgrade(empty_db_url, "0011")
        assert migrate.current(empty_db_url) == "0011"
        migrate_down(empty_db_url)
        with engine.begin() as conn:  # 0009 again: a refused push may share a version
            conn.execute(sa.insert(bid_sets).values(**_row(2, "refused")))
    finally:
        engine.dispose()


def migrate_down(url: str) -> None:
    """Downgrade to 0009 (alembic's command; the CLI only upgrades)."""
    from alembic import command

    command.downgrade(migrate.alembic_config(url), "0009")
