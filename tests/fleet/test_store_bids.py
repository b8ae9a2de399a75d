from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from fleet.store import audit, bids
from fleet.store.dml import upsert
from fleet.store.tables import prices as prices_table

DAY = dt.date(2026, 6, 1)


def _awards(mw: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "market": "ERCOT",
            "operating_day": DAY,
            "version": 2,
            "site_id": "tx-a",
            "ts": pd.date_range("2026-06-01T05:00Z", periods=2, freq="h"),
            "product": ["da_energy", "reg_up"],
            "award_mw": [mw, 3.0],
            "price": [41.0, None],
            "unit": ["usd_per_mwh", "usd_per_mw"],
        }
    )


def test_save_bid_set_audits_and_finds_latest_accepted_when_mixed(
    engine: sa.Engine,
) -> None:
    bids.save_bid_set(
        engine,
        market="ERCOT",
        operating_day=DAY,
        version=1,
        status="accepted",
        submitted_by="k1",
        payload={"v": 1},
    )
    refused = bids.save_bid_set(
        engine,
        market="ERCOT",
        operating_day=DAY,
        version=3,
        status="refused",
        submitted_by="k2",
        payload={"v": 3},
        refusal_reason="version 3 is not the latest schedule",
    )
    latest = bids.latest_accepted_bid_set(engine, market="ERCOT", operating_day=DAY)
    assert latest is not None
    assert (latest.version, latest.submitted_by, latest.payload) == (1, "k1", {"v": 1})
    actions = [
        (e.actor, e.action, e.object_id)
        for e in audit.list_entries(engine, object_type="bid_set")
    ]
    assert actions == [
        ("k2", "bids.refused", str(refused.id)),
        ("k1", "bids.accepted", str(latest.id)),
    ]


def test_save_bid_set_raises_when_refused_without_reason(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="refusal_reason"):
        bids.save_bid_set(
            engine,
            market="ERCOT",
            operating_day=DAY,
            version=1,
            status="refused",
            submitted_by="k",
            payload={},
        )
    with pytest.raises(ValueError, match="status='maybe'"):
        bids.save_bid_set(
            engine,
            market="ERCOT",
            operating_day=DAY,
            version=1,
            status="maybe",
            submitted_by="k",
            payload={},
        )


def test_save_awards_updates_in_place_when_saved_twice(engine: sa.Engine) -> None:
    assert bids.save_awards(engine, _awards(10.0)) == 2
    assert bids.save_awards(engine, _awards(12.5)) == 2
    frame = bids.load_awards(engine, market="ERCOT", operating_day=DAY)
    assert frame["award_mw"].tolist() == [12.5, 3.0]
    assert frame["price"].isna().tolist() == [False, True]
    assert frame["ts"].dt.tz is not None
    assert bids.load_awards(engine, market="ERCOT", operating_day=DAY, version=1).empty


def test_upsert_keeps_old_row_when_update_is_empty(engine: sa.Engine) -> None:
    row = {
        "market": "ERCOT",
        "node": "N",
        "product": "rt_energy",
        "ts": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        "interval_minutes": 15,
        "price": 1.0,
        "unit": "usd_per_mwh",
        "imported_at": dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
    }
    key = ["market", "node", "product", "ts"]
    with engine.begin() as conn:
        upsert(conn, prices_table, [row], key)
        upsert(conn, prices_table, [{**row, "price": 2.0}], key, update=())
    with engine.connect() as conn:
        assert conn.execute(sa.select(prices_table.c.price)).scalars().all() == [1.0]
    with engine.begin() as conn:
        upsert(
            conn,
            prices_table,
            [{**row, "price": 3.0}],
            key,
            update=["price"],
            chunk_rows=1,
        )
    with engine.connect() as conn:
        assert conn.execute(sa.select(prices_table.c.price)).scalars().all() == [3.0]


def test_upsert_raises_naming_column_when_unknown(engine: sa.Engine) -> None:
    from fleet.errors import StoreError

    with (
        pytest.raises(StoreError, match=r"no column\(s\) \['price_eur'\]"),
        engine.begin() as conn,
    ):
        upsert(conn, prices_table, [{"price_eur": 1.0}], ["market"])
