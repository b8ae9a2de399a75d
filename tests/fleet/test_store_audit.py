from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from fleet.store import audit


def test_record_appends_entries_newest_first_when_listed(engine: sa.Engine) -> None:
    when = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=-6)))
    first = audit.record(
        engine,
        actor="cli",
        action="prices.import",
        object_type="prices",
        object_id="a.csv",
        ts=when,
    )
    second = audit.record(
        engine,
        actor="key-1",
        action="bids.accepted",
        object_type="bid_set",
        object_id=7,
        detail={"version": 3},
    )
    assert second > first
    entries = audit.list_entries(engine)
    assert [e.id for e in entries] == [second, first]
    assert entries[1].ts == dt.datetime(2026, 3, 1, 18, 0, tzinfo=dt.UTC)
    assert entries[0].object_id == "7"
    assert entries[0].detail == {"version": 3}
    assert [e.actor for e in audit.list_entries(engine, actor="cli")] == ["cli"]


def test_record_rolls_back_with_the_write_when_transaction_fails(
    engine: sa.Engine,
) -> None:
    def write_then_fail() -> None:
        with engine.begin() as conn:
            audit.record(conn, actor="system", action="x", object_type="y")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()
    assert audit.list_entries(engine) == []


def test_record_raises_when_actor_empty(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="actor"):
        audit.record(engine, actor="", action="x", object_type="y")


def test_record_refuses_naive_timestamp_when_given(engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        audit.record(
            engine, actor="cli", action="x", object_type="y", ts=dt.datetime(2026, 1, 1)
        )
