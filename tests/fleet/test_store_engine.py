from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from fleet.store.engine import make_engine


def test_make_engine_uses_wal_and_full_sync_when_sqlite_file(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'store.sqlite'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
    assert (tmp_path / "sub" / "store.sqlite").is_file()


def test_make_engine_maps_plain_postgresql_to_psycopg_when_no_driver_given() -> None:
    engine = make_engine("postgresql://user@127.0.0.1:1/db")
    assert engine.url.drivername == "postgresql+psycopg"
    assert isinstance(engine, sa.Engine)
    engine.dispose()
