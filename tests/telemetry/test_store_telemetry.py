"""The telemetry store: idempotent inserts, conflicts, monotonic latest state, stats."""

from __future__ import annotations

import random
from typing import Any

import sqlalchemy as sa

import fleet.store.telemetry_tables as tt
from fleet.store.sites import save_fleet
from fleet.store.telemetry import (
    SqlTelemetrySink,
    completeness_watermarks,
    load_registry,
    reprocess,
    telemetry_stats,
    write_samples,
)
from telemetry.gaps import GapTracker
from telemetry.ingest import Batch
from telemetry.validation import Context, Sample, validate_message
from tests.factories import make_fleet
from tests.telemetry.helpers import bank_m, encode, now_ms, registry, tlm, topic

NOW = now_ms()


def samples_of(bodies: list[tuple[str, dict[str, Any]]]) -> list[Sample]:
    ctx = Context(registry(), NOW)
    out: list[Sample] = []
    for t, body in bodies:
        out.extend(validate_message(t, encode(body), ctx).samples)
    return out


def table(engine: sa.Engine, name: str, order: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(sa.text(f"SELECT * FROM {name} ORDER BY {order}"))
        ]


def test_write_samples_absorbs_duplicates_when_same_key_and_hash(
    engine: sa.Engine,
) -> None:
    s = samples_of([(topic("site-01", "tlm", "bank1"), tlm(seq=1, ts=NOW - 5000))])
    with engine.begin() as conn:
        first = write_samples(conn, samples=s + s, quarantined=[], received_at_ms=NOW)
    with engine.begin() as conn:
        second = write_samples(conn, samples=s, quarantined=[], received_at_ms=NOW)
    assert (first.inserted, first.duplicates) == (1, 1)
    assert (second.inserted, second.duplicates) == (0, 1)
    with engine.connect() as conn:
        stats = telemetry_stats(conn)
    assert stats[0].rows_stored == 1
    assert stats[0].duplicates_absorbed == 2


def test_write_samples_quarantines_conflict_dup_when_same_key_other_content(
    engine: sa.Engine,
) -> None:
    t = topic("site-01", "tlm", "bank1")
    a = samples_of([(t, tlm(seq=1, ts=NOW - 5000))])
    b = samples_of([(t, tlm(seq=1, ts=NOW - 5000, m=bank_m(soc_pct=51.0)))])
    with engine.begin() as conn:
        write_samples(conn, samples=a, quarantined=[], received_at_ms=NOW)
        result = write_samples(conn, samples=b, quarantined=[], received_at_ms=NOW)
    assert result.conflicts == 1
    with engine.connect() as conn:
        soc = conn.execute(sa.select(tt.tlm_measurements.c.soc_pct)).scalar_one()
        reasons = conn.execute(sa.select(tt.tlm_quarantine.c.reason)).scalars().all()
    assert soc == 50.0  # first write wins
    assert reasons == ["conflict_dup"]


def test_latest_state_moves_only_forward_when_older_sample_arrives_later(
    engine: sa.Engine,
) -> None:
    t = topic("site-01", "tlm", "bank1")
    new = samples_of([(t, tlm(seq=2, ts=NOW - 1000, m=bank_m(soc_pct=60.0)))])
    old = samples_of(
        [(t, tlm(seq=1, ts=NOW - 2000, hist=True, m=bank_m(soc_pct=40.0)))]
    )
    with engine.begin() as conn:
        write_samples(conn, samples=new, quarantined=[], received_at_ms=NOW)
    with engine.begin() as conn:
        write_samples(conn, samples=old, quarantined=[], received_at_ms=NOW)
    with engine.connect() as conn:
        latest = conn.execute(
            sa.select(tt.tlm_latest.c.ts_ms, tt.tlm_latest.c.soc_pct)
        ).one()
    assert tuple(latest) == (NOW - 1000, 60.0)


def _stream(n: int) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for seq in range(1, n + 1):
        ts = NOW - 100_000 + seq * 100
        out.append(
            (
                topic("site-01", "tlm", "bank1"),
                tlm(seq=seq, ts=ts, m=bank_m(soc_pct=seq / 2)),
            )
        )
        out.append((topic("site-01", "tlm", "pcs1"), tlm(dev="pcs1", seq=seq, ts=ts)))
    return out


def _ingest(
    engine: sa.Engine, messages: list[tuple[str, dict[str, Any]]], batch: int
) -> None:
    sink = SqlTelemetrySink(engine)
    tracker = GapTracker()
    for i in range(0, len(messages), batch):
        ctx = Context(registry(), NOW)
        b = Batch(received_at_ms=NOW)
        tracker.begin()
        for t, body in messages[i : i + batch]:
            out = validate_message(t, encode(body), ctx)
            b.samples.extend(out.samples)
            b.quarantined.extend(out.quarantined)
            for s in out.samples:
                tracker.observe_sample(s.site_id, s.dev_id, s.seq, s.ts_ms, NOW)
        b.tracks = dict(tracker.draft())
        sink.commit(b)
        tracker.commit()


MEAS = (
    "site_id, dev_id, ts_ms, seq, sid, q, flags, payload_hash, soc_pct, p_dc_w, p_ac_w"
)


def test_store_same_table_when_out_of_order_duplicated_and_backfilled(
    engine: sa.Engine, empty_db_url: str
) -> None:
    from fleet.store.migrate import upgrade

    stream = _stream(60)
    _ingest(engine, stream, batch=7)
    expected = table(
        engine, f"(SELECT {MEAS} FROM tlm_measurements) x", "site_id, dev_id, ts_ms"
    )
    expected_latest = table(engine, "tlm_latest", "site_id, dev_id")
    expected_tracks = table(engine, "tlm_seq_tracker", "site_id, dev_id")

    # second store: shuffled, every message twice, and bank1's 20..40 only via hist
    other_url = empty_db_url + "-other" if empty_db_url.startswith("sqlite") else None
    if other_url is None:
        with engine.begin() as conn:
            for name in (
                "tlm_measurements",
                "tlm_latest",
                "tlm_seq_tracker",
                "tlm_counters",
            ):
                conn.execute(sa.text(f"DELETE FROM {name}"))
        other = engine
    else:
        upgrade(other_url)
        from fleet.store.engine import make_engine

        other = make_engine(other_url)
    rng = random.Random(4)
    live = [
        m for m in stream if not (m[0].endswith("bank1") and 20 <= m[1]["seq"] <= 40)
    ]
    messy = live + rng.sample(live, len(live) // 2)
    rng.shuffle(messy)
    hist = {
        "v": 1,
        "site": "site-01",
        "dev": "bank1",
        "sid": 1,
        "samples": [
            {"seq": b["seq"], "ts": b["ts"], "m": b["m"]}
            for t, b in stream
            if t.endswith("bank1") and 20 <= b["seq"] <= 40
        ],
    }
    messy.insert(len(messy) // 2, (topic("site-01", "hist", "bank1"), hist))
    _ingest(other, messy, batch=11)
    got = table(
        other, f"(SELECT {MEAS} FROM tlm_measurements) x", "site_id, dev_id, ts_ms"
    )
    assert got == expected
    assert (
        table(other, "tlm_latest", "site_id, dev_id")[0][:8] == expected_latest[0][:8]
    )
    tracks = table(other, "tlm_seq_tracker", "site_id, dev_id")
    # same watermark (contiguous_seq, contiguous_ts, max_seq) as the in-order run
    assert [r[2:6] for r in tracks] == [r[2:6] for r in expected_tracks]
    if other is not engine:
        other.dispose()


def test_stats_and_watermark_report_per_site_when_data_stored(
    engine: sa.Engine,
) -> None:
    _ingest(engine, _stream(5), batch=3)
    bad = validate_message(
        topic("site-02", "tlm", "bank1"),
        encode(tlm(site="site-01")),
        Context(registry(), NOW),
    )
    with engine.begin() as conn:
        write_samples(
            conn, samples=[], quarantined=list(bad.quarantined), received_at_ms=NOW
        )
    with engine.connect() as conn:
        stats = {s.site_id: s for s in telemetry_stats(conn)}
        marks = completeness_watermarks(conn)
    assert stats["site-01"].rows_stored == 10
    assert stats["site-01"].latest_ts_ms == NOW - 100_000 + 500
    assert stats["site-02"].quarantined == {"topic_mismatch": 1}
    assert marks["site-01"] == NOW - 100_000 + 500


def test_reprocess_stores_rows_when_site_added_after_quarantine(
    engine: sa.Engine,
) -> None:
    ctx = Context(registry(1), NOW)  # site-02 unknown at first
    out = validate_message(
        topic("site-02", "tlm", "bank1"),
        encode(tlm(site="site-02", ts=NOW - 1000)),
        ctx,
    )
    assert out.quarantined[0].reason == "unknown_site"
    with engine.begin() as conn:
        write_samples(
            conn, samples=[], quarantined=list(out.quarantined), received_at_ms=NOW
        )
    save_fleet(engine, make_fleet(3))
    with engine.connect() as conn:
        assert "site-02" in load_registry(conn)
    result = reprocess(engine, reason="unknown_site", now=NOW)
    assert (result.examined, result.stored, result.still_bad) == (1, 1, 0)
    with engine.connect() as conn:
        stats = {s.site_id: s for s in telemetry_stats(conn)}
    assert stats["site-02"].rows_stored == 1
    assert stats["site-02"].quarantined == {}
    assert reprocess(engine, reason="unknown_site", now=NOW).examined == 0
