from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from fleet.store import audit, bids

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
