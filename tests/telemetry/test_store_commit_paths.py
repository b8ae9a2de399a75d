"""The sink's commit paths give the same store on SQLite and PostgreSQL.

On PostgreSQL a plain batch goes through the held-connection fast path (``COPY`` and
one pipeline of array upserts); a batch with a key already stored, or twice in the
batch, falls back to the general path, which tells duplicates from conflicts.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

import fleet.store.telemetry as ft
from fleet.store.engine import make_engine
from fleet.store.migrate import upgrade
from fleet.store.sites import save_fleet
from fleet.store.telemetry import SqlTelemetrySink
from telemetry.gaps import GapTracker
from telemetry.ingest import Batch
from telemetry.validation import Context, Quarantined, Sample, validate_message
from tests.factories import make_fleet
from tests.telemetry.helpers import bank_m, encode, now_ms, registry, tlm, topic

NOW = now_ms()


def _samples(seqs: range, soc: float = 50.0, dev: str = "bank1") -> list[Sample]:
    ctx = Context(registry(), NOW)
    out: list[Sample] = []
    for seq in seqs:
        m = (
            bank_m(soc_pct=soc, cha_st="DISCHARGING", evt1=0)
            if dev == "bank1"
            else {"p_ac_w": 5.0}
        )
        body = tlm(dev=dev, seq=seq, ts=NOW - 100_000 + seq, m=m)
        out += validate_message(topic("site-01", "tlm", dev), encode(body), ctx).samples
    return out


def _batch(samples: list[Sample], tracker: GapTracker) -> Batch:
    tracker.begin()
    for s in samples:
        tracker.observe_sample(s.site_id, s.dev_id, s.seq, s.ts_ms, NOW)
    batch = Batch(received_at_ms=NOW, samples=samples, tracks=dict(tracker.draft()))
    tracker.commit()
    return batch


def _one(engine: sa.Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def _fast_sink(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[sa.Engine, SqlTelemetrySink, GapTracker]:
    """A migrated store of 3 sites and a sink that tries the fast path first."""
    monkeypatch.setattr(ft._CopyMode, "staged_left", 0)
    upgrade(url)
    engine = make_engine(url)
    save_fleet(engine, make_fleet(3))
    return engine, SqlTelemetrySink(engine), GapTracker()


def test_sink_commit_counts_duplicates_and_conflicts_when_keys_repeat(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, sink, tracker = _fast_sink(empty_db_url, monkeypatch)
    try:
        bad = Quarantined(
            topic="bess/v1/ercot/site-01/up/tlm/bank1",
            payload=b"{",
            reason="json",
            detail="truncated",
            site_from_topic="site-01",
            schema_v=None,
        )
        first = _batch(
            _samples(range(1, 11)) + _samples(range(1, 4), dev="pcs1"), tracker
        )
        first.quarantined.append(bad)
        sink.commit(first)
        # a redelivery of seqs 9-10, seq 11-12 new, seq 12 twice, seq 8 changed
        again = _samples(range(9, 13)) + _samples(range(12, 13))
        changed = _samples(range(8, 9), soc=51.0)
        sink.commit(_batch(again + changed, tracker))
        # a stored key sent the batch (and the next ones) through the stage
        assert ft._CopyMode.staged_left == (19 if sink._fast else 0)
        ft._CopyMode.staged_left = 0
        sink.commit(_batch(_samples(range(13, 16)), tracker))  # fast path again
        assert _one(engine, "SELECT count(*) FROM tlm_measurements") == [(18,)]
        assert _one(engine, "SELECT stored, duplicates FROM tlm_counters") == [(18, 3)]
        assert _one(
            engine, "SELECT reason, count(*) FROM tlm_quarantine GROUP BY 1 ORDER BY 1"
        ) == [("conflict_dup", 1), ("json", 1)]
        assert _one(
            engine, "SELECT dev_id, seq, soc_pct FROM tlm_latest ORDER BY dev_id"
        ) == [("bank1", 15, 50.0), ("pcs1", 3, None)]
        assert _one(
            engine,
            "SELECT dev_id, contiguous_seq, max_seq_seen FROM tlm_seq_tracker "
            "ORDER BY dev_id",
        ) == [("bank1", 15, 15), ("pcs1", 3, 3)]
        extras = _one(
            engine,
            "SELECT m_extra, p_dc_w FROM tlm_measurements "
            "WHERE dev_id IN ('bank1', 'pcs1') AND seq = 1 ORDER BY dev_id",
        )
        # SQLite answers a JSON column of a text query as text
        assert [(json.loads(x) if isinstance(x, str) else x, p) for x, p in extras] == [
            ({"cha_st": "DISCHARGING", "evt1": 0}, 2_000_000.0),
            (None, None),
        ]
    finally:
        sink.close()
        engine.dispose()


def test_sink_reopens_its_transaction_when_idle_longer_than_the_limit(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, sink, tracker = _fast_sink(empty_db_url, monkeypatch)
    try:
        sink.commit(_batch(_samples(range(1, 3)), tracker))
        opened = sink._open_since
        monkeypatch.setattr(ft, "_HELD_IDLE_S", 0.0)
        sink.commit(_batch(_samples(range(3, 5)), tracker))
        assert sink._fast == (opened is not None)
        sink.close()
        sink.commit(_batch(_samples(range(5, 7)), tracker))
        assert _one(engine, "SELECT count(*) FROM tlm_measurements") == [(6,)]
    finally:
        sink.close()
        engine.dispose()
