"""The compiled path's ready-made ``COPY`` rows store exactly what the general path does.

The validator builds each well-formed sample's binary ``COPY`` row
(``telemetry.compiled.copy_record``); the store streams those rows. Rows are compared
with the ones the store builds itself from the measurements dict (``copy_record_of``)
and with a plain ``INSERT`` (no ``COPY``), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import sqlalchemy as sa

import fleet.store.telemetry as ft
import telemetry.validation as validation
from fleet.store import telemetry_tables as tt
from fleet.store.engine import make_engine
from fleet.store.migrate import upgrade
from fleet.store.sites import save_fleet
from fleet.store.telemetry import SqlTelemetrySink, write_samples
from telemetry.compiled import COPY_COLUMNS, STORE_COLUMNS
from telemetry.gaps import GapTracker, Track
from telemetry.ingest import Batch
from telemetry.validation import (
    Context,
    Sample,
    previous_payload_hash,
    validate_message,
)
from tests.factories import make_fleet
from tests.telemetry.helpers import bank_m, encode, now_ms, registry, tlm, topic

NOW = now_ms()
BIG = 2**64 - 5
"""A u64 above 2**63 (stored wrapped into int64)."""
ROW = (*(c for c in COPY_COLUMNS if c != "m_extra"), "m_extra")
"""Columns of a row as :func:`_rows` reads them."""


def _messages() -> list[tuple[str, bytes]]:
    """Batched, one-sample and hist messages with clamped, null, absent and extra keys."""
    bank = [
        {"seq": 10, "ts": NOW - 9_000, "m": bank_m()},
        {"seq": 11, "ts": NOW - 8_000, "m": bank_m(soc_pct=100.5, soh_pct=-0.5)},
        {"seq": 12, "ts": NOW - 7_000, "m": bank_m(soh_pct=None, cell_v_avg_v=None)},
        {
            "seq": 13,
            "ts": NOW - 6_000,
            "q": "uncertain",
            "m": bank_m(
                cha_st="DISCHARGING",
                state="CONNECTED",
                loc_rem="LOCAL",
                evt1=5,
                evt_vnd2=None,
                wh_avail_wh=1.25e7,
                n_cyc=12,
            ),
        },
        {"seq": 14, "ts": NOW - 5_000, "m": bank_m(i_cha_max_a=1400, evt1=0)},
    ]
    live = {"v": 1, "site": "site-01", "dev": "bank1", "sid": BIG, "samples": bank}
    pcs = {
        "v": 1,
        "site": "site-02",
        "dev": "pcs1",
        "sid": 7,
        "samples": [
            {"seq": BIG - 2 + i, "ts": NOW - 4_000 + i, "m": {"p_ac_w": -5.0 * i}}
            for i in range(2)
        ]
        + [{"seq": BIG, "ts": NOW - 3_990, "m": {"p_ac_w": None, "f_hz": 60.01}}],
    }
    hist = copy.deepcopy(live)
    hist["site"] = "site-03"
    return [
        (topic("site-01", "tlm", "bank1"), encode(live)),
        (topic("site-02", "tlm", "pcs1"), encode(pcs)),
        (topic("site-03", "hist", "bank1"), encode(hist)),
        (
            topic("site-01", "tlm", "meter1"),
            encode(tlm(dev="meter1", seq=3, ts=NOW - 2_000, m={"p_ac_w": 7.5})),
        ),
    ]


def _validated(compiled: bool, monkeypatch: pytest.MonkeyPatch) -> list[Sample]:
    ctx = Context(registry(), NOW)
    with monkeypatch.context() as mp:
        if not compiled:
            mp.setattr(validation, "_fast_tlm", lambda *_a: None)
            mp.setattr(validation, "_fast_batch", lambda *_a: None)
        out: list[Sample] = []
        for t, raw in _messages():
            got = validate_message(t, raw, ctx)
            assert not got.quarantined, got.quarantined
            out += got.samples
    return out


def _rows(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"SELECT {', '.join(ROW)} FROM tlm_measurements "
                "ORDER BY site_id, dev_id, ts_ms"
            )
        ).all()
    out = []
    for r in rows:
        *head, extra = tuple(r)
        out.append((*head, json.loads(extra) if isinstance(extra, str) else extra))
    return out


def _store(
    url: str, samples: list[Sample], monkeypatch: pytest.MonkeyPatch, *, copy_: bool
) -> list[tuple[Any, ...]]:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.delete(tt.tlm_measurements))
            conn.execute(sa.delete(tt.tlm_latest))
        with monkeypatch.context() as mp:
            if not copy_:
                mp.setattr(ft, "_copy_capable", lambda _conn: False)
            mp.setattr(ft._CopyMode, "staged_left", 0)
            mp.setattr(ft, "_COPY_ROWS_PER_WRITE", 3)  # rows span several writes
            with engine.begin() as conn:
                got = write_samples(
                    conn, samples=samples, quarantined=[], received_at_ms=NOW
                )
        assert got.inserted == len(samples)
        return _rows(engine)
    finally:
        engine.dispose()


def test_store_columns_are_the_tables() -> None:
    assert STORE_COLUMNS == tt.MEASUREMENT_COLUMNS
    assert set(COPY_COLUMNS) == {c.name for c in tt.tlm_measurements.columns}


def test_compiled_rows_store_what_the_general_path_stores(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    save_fleet(engine, make_fleet(3))
    engine.dispose()
    fast = _validated(True, monkeypatch)
    slow = _validated(False, monkeypatch)
    assert all(s.row for s in fast)
    assert not any(s.row for s in slow)
    assert len(fast) == len(slow) == 5 + 3 + 5 + 1
    # same samples, field by field
    for a, b in zip(fast, slow, strict=True):
        assert (a.site_id, a.dev_id, a.ts_ms, a.seq, a.sid, a.hist, a.q) == (
            b.site_id,
            b.dev_id,
            b.ts_ms,
            b.seq,
            b.sid,
            b.hist,
            b.q,
        )
        assert (a.flags, a.payload_hash, a.m) == (b.flags, b.payload_hash, b.m)
    by_fast_rows = _store(empty_db_url, fast, monkeypatch, copy_=True)
    by_store_rows = _store(empty_db_url, slow, monkeypatch, copy_=True)
    by_insert = _store(empty_db_url, slow, monkeypatch, copy_=False)
    assert by_fast_rows == by_store_rows == by_insert
    clamped = [r for r in by_insert if r[ROW.index("seq")] == 11]
    assert len(clamped) == 2  # site-01 live and site-03 hist
    soc, soh = (ROW.index(c) for c in ("soc_pct", "soh_pct"))
    assert all((r[soc], r[soh]) == (100.0, 0.0) for r in clamped)
    extra = ROW.index("m_extra")
    (row13,) = [r for r in by_insert if r[0] == "site-01" and r[ROW.index("seq")] == 13]
    assert row13[extra] == {
        "cha_st": "DISCHARGING",
        "state": "CONNECTED",
        "loc_rem": "LOCAL",
        "evt1": 5,
        "evt_vnd2": None,
        "wh_avail_wh": 1.25e7,
        "n_cyc": 12,
    }
    seq = ROW.index("seq")
    assert sorted(r[seq] for r in by_insert if r[1] == "pcs1") == [-7, -6, -5]


def test_fast_sink_streams_the_rows_validation_built(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    save_fleet(engine, make_fleet(3))
    monkeypatch.setattr(ft._CopyMode, "staged_left", 0)
    sink = SqlTelemetrySink(engine)
    try:
        samples = _validated(True, monkeypatch)
        sink.commit(Batch(received_at_ms=NOW, samples=samples))
        first = _rows(engine)
        # a redelivery of everything: duplicates, nothing changes
        sink.commit(Batch(received_at_ms=NOW + 5, samples=samples))
        assert _rows(engine) == first
        with engine.connect() as conn:
            assert conn.execute(
                sa.text("SELECT sum(stored), sum(duplicates) FROM tlm_counters")
            ).one() == (14, 14)
            assert (
                conn.execute(
                    sa.text("SELECT count(*) FROM tlm_quarantine")
                ).scalar_one()
                == 0
            )
    finally:
        sink.close()
        engine.dispose()
    assert first == _store(
        empty_db_url, _validated(False, monkeypatch), monkeypatch, copy_=False
    )


def test_row_with_previous_hash_is_a_duplicate_and_changed_content_a_conflict(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    save_fleet(engine, make_fleet(3))
    try:
        samples = _validated(True, monkeypatch)[:5]
        with engine.begin() as conn:
            write_samples(conn, samples=samples, quarantined=[], received_at_ms=NOW)
            for s in samples:  # as the previous compiled path stored them
                old = previous_payload_hash(s.seq, s.ts_ms, s.q, s.m)
                assert old != s.payload_hash
                conn.execute(
                    sa.text(
                        "UPDATE tlm_measurements SET payload_hash = :h "
                        "WHERE site_id = :s AND dev_id = :d AND ts_ms = :t"
                    ),
                    {"h": old, "s": s.site_id, "d": s.dev_id, "t": s.ts_ms},
                )
        ctx = Context(registry(), NOW)
        body = tlm(seq=10, ts=NOW - 9_000, m=bank_m(soc_pct=51.0))
        (changed,) = validate_message(
            topic("site-01", "tlm", "bank1"), encode(body), ctx
        ).samples
        with engine.begin() as conn:
            again = write_samples(
                conn,
                samples=[*samples[1:], changed],
                quarantined=[],
                received_at_ms=NOW,
            )
        assert (again.inserted, again.duplicates, again.conflicts) == (0, 4, 1)
    finally:
        engine.dispose()


def _observe_each(tracker: GapTracker, samples: list[Sample], now: int) -> None:
    for s in samples:
        tracker.observe_sample(s.site_id, s.dev_id, s.seq, s.ts_ms, now)


@pytest.mark.parametrize(
    ("start", "seqs"),
    [
        (None, [1, 2, 3]),  # a new device
        (5, [6, 7, 8]),  # continues the watermark
        (5, [8, 9, 10]),  # leaves a hole behind
        (5, [3, 4, 5, 6]),  # partly below the watermark
        (5, [6, 8, 9]),  # not consecutive
        ("pending", [6, 7]),  # fills the hole below a pending sample
        ("ahead", [6, 7]),  # a birth announced more than the run holds
    ],
)
def test_gap_tracker_run_equals_sample_by_sample(start: Any, seqs: list[int]) -> None:
    def tracks() -> list[Track]:
        if start is None:
            return []
        if start == "pending":
            t = Track("site-01", "bank1", 0, 5, NOW - 5, 9, NOW - 1)
            t.pending = {9: NOW - 1}
            t.first_gap_seen_at_ms = NOW - 50
            return [t]
        if start == "ahead":
            t = Track("site-01", "bank1", 0, 5, NOW - 5, 12, None)
            t.first_gap_seen_at_ms = NOW - 50
            return [t]
        return [Track("site-01", "bank1", 0, start, NOW - start, start, NOW - start)]

    samples = [
        Sample("site-01", "bank1", NOW - 100 + q, q, 1, False, "good", 0, "h", {})
        for q in seqs
    ]
    each, run = GapTracker(copy.deepcopy(tracks())), GapTracker(copy.deepcopy(tracks()))
    each.begin()
    _observe_each(each, samples, NOW)
    run.begin()
    run.observe_run("site-01", "bank1", samples, NOW)
    assert run.draft() == each.draft()
