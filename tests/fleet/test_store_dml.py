from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from fleet.errors import StoreError
from fleet.store.dml import transaction, upsert
from fleet.store.tables import prices as prices_table
from fleet.store.tables import sites as sites_table

KEY = ["market", "node", "product", "ts"]
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _row(hour: int, price: float) -> dict[str, object]:
    return {
        "market": "ERCOT",
        "node": "N",
        "product": "rt_energy",
        "ts": T0 + dt.timedelta(hours=hour),
        "interval_minutes": 60,
        "price": price,
        "unit": "usd_per_mwh",
        "imported_at": T0,
    }


def _prices(engine: sa.Engine) -> list[float]:
    with engine.connect() as conn:
        query = sa.select(prices_table.c.price).order_by(prices_table.c.ts)
        return list(conn.execute(query).scalars())


@pytest.mark.parametrize("copy_min_rows", [1, 10**9], ids=["copy", "executemany"])
def test_upsert_updates_and_keeps_last_duplicate_when_batch_overlaps(
    engine: sa.Engine, copy_min_rows: int
) -> None:
    with engine.begin() as conn:
        upsert(
            conn,
            prices_table,
            [_row(0, 1.0), _row(1, 1.0)],
            KEY,
            copy_min_rows=copy_min_rows,
        )
        written = upsert(
            conn,
            prices_table,
            [_row(1, 2.0), _row(2, 3.0), _row(2, 4.0)],
            KEY,
            copy_min_rows=copy_min_rows,
            chunk_rows=2,
        )
    assert written == 3
    assert _prices(engine) == [1.0, 2.0, 4.0]


@pytest.mark.parametrize("copy_min_rows", [1, 10**9], ids=["copy", "executemany"])
def test_upsert_keeps_old_row_when_update_is_empty(
    engine: sa.Engine, copy_min_rows: int
) -> None:
    with engine.begin() as conn:
        upsert(conn, prices_table, [_row(0, 1.0)], KEY)
        upsert(
            conn,
            prices_table,
            [_row(0, 2.0), _row(1, 5.0), _row(1, 6.0)],
            KEY,
            update=(),
            copy_min_rows=copy_min_rows,
        )
    assert _prices(engine) == [1.0, 5.0]
    with engine.begin() as conn:
        upsert(
            conn,
            prices_table,
            [_row(0, 3.0)],
            KEY,
            update=["price"],
            copy_min_rows=copy_min_rows,
        )
    assert _prices(engine) == [3.0, 5.0]


@pytest.mark.parametrize("copy_min_rows", [1, 10**9], ids=["copy", "executemany"])
def test_upsert_round_trips_json_when_table_has_json_column(
    engine: sa.Engine, copy_min_rows: int
) -> None:
    config = {
        "battery": {"energy_mwh": 200.0, "soc_min": 0.1},
        "services": ["energy", "reg_up"],
        "note": None,
    }
    row = {
        "id": "tx-a",
        "name": "A",
        "market": "ERCOT",
        "node": "HB_WEST",
        "meter": "front",
        "config": config,
        "updated_at": T0,
    }
    with transaction(engine) as conn:
        upsert(
            conn,
            sites_table,
            [row, {**row, "name": "A2"}],
            ["id"],
            copy_min_rows=copy_min_rows,
        )
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sites_table)).one()
    assert (stored.name, stored.config, stored.updated_at) == ("A2", config, T0)


def test_upsert_raises_naming_column_when_unknown(engine: sa.Engine) -> None:
    with (
        engine.begin() as conn,
        pytest.raises(StoreError, match=r"no column\(s\) \['price_eur'\]"),
    ):
        upsert(conn, prices_table, [{"price_eur": 1.0}], ["market"])


def test_upsert_raises_naming_key_when_rows_lack_it(engine: sa.Engine) -> None:
    row = _row(0, 1.0)
    del row["ts"]
    with (
        engine.begin() as conn,
        pytest.raises(StoreError, match=r"lack key column\(s\) \['ts'\]"),
    ):
        upsert(conn, prices_table, [row], KEY)


def test_upsert_returns_zero_when_no_rows(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        assert upsert(conn, prices_table, [], KEY) == 0


def test_transaction_reuses_open_transaction_when_given_connection(
    engine: sa.Engine,
) -> None:
    with engine.connect() as conn:
        with conn.begin():
            with transaction(conn) as inner:
                assert inner is conn
                upsert(inner, prices_table, [_row(0, 1.0)], KEY)
            assert conn.in_transaction()
        assert _prices(engine) == [1.0]


@pytest.mark.parametrize("copy_min_rows", [1, 10**9], ids=["copy", "executemany"])
def test_upsert_treats_same_instant_as_one_key_when_offsets_differ(
    engine: sa.Engine, copy_min_rows: int
) -> None:
    central = dt.timezone(dt.timedelta(hours=-6))
    same_instant = {**_row(0, 9.0), "ts": T0.astimezone(central)}
    with engine.begin() as conn:
        upsert(
            conn,
            prices_table,
            [_row(0, 1.0), same_instant],
            KEY,
            copy_min_rows=copy_min_rows,
        )
    assert _prices(engine) == [9.0]
