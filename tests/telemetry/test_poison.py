"""Poison isolation: one bad message never stops the stream (spec 2 Strings, spec 6).

String rules are checked by the validator (``schema``); a row the database refuses for
any other reason is isolated by splitting the batch and quarantined as
``store_rejected``, the rest of the batch is committed and every message acknowledged.
The integration tests run a real Mosquitto and a real ``bessfleet ingest`` against
SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from fleet.store.engine import make_engine
from fleet.store.migrate import upgrade
from fleet.store.sites import save_fleet
from fleet.store.telemetry import SqlTelemetrySink, from_i64, i64_ranges, to_i64
from telemetry.gaps import GapTracker
from telemetry.ingest import Batch
from telemetry.validation import Context, validate_message
from tests.conftest import (
    Broker,
    _create_pg_database,
    _drop_pg_database,
    start_mosquitto,
    stop_mosquitto,
)
from tests.factories import make_fleet
from tests.telemetry.helpers import (
    IngestProcess,
    Publisher,
    bank_m,
    count,
    encode,
    now_ms,
    registry,
    rows,
    tlm,
    topic,
    wait_until,
)

NOW = now_ms()
STORED = "SELECT count(*) FROM tlm_measurements"
NUL = "\u0000"
LONG = "x" * 257


def _evt(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "v": 1,
        "site": "site-01",
        "sid": 1,
        "ts": NOW - 1000,
        "kind": "alarm_set",
        "code": "cell_v_high",
        "detail": "bank1 cell 3.7 V",
    }
    body.update(extra)
    return body


def _ack(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "cmd_id": "0b7e4d2c-1",
        "status": "rejected",
        "reason": "soc reserve",
        "ts": NOW - 1000,
    }
    body.update(extra)
    return body


def _birth(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "v": 1,
        "site": "site-01",
        "sid": 7,
        "ts": NOW - 1000,
        "firmware": "gw 1.2",
        "devices": ["bank1"],
        "nameplate": {
            "wh_rtg_wh": 2e7,
            "w_cha_rte_max_w": 1e7,
            "w_dis_cha_rte_max_w": 1e7,
            "soc_max_pct": 95,
            "soc_min_pct": 5,
            "cells_in_series": 416,
        },
        "seq_next": {"bank1": 1},
    }
    body.update(extra)
    return body


# (what, topic kind, dev, payload) for every string field and every string rule
BAD_STRINGS: list[tuple[str, str, str | None, dict[str, Any]]] = [
    *[
        (f"m.{key} {label}", "tlm", "bank1", tlm(m=bank_m(**{key: value})))
        for key, good in (
            ("cha_st", "CHARGING"),
            ("state", "CONNECTED"),
            ("loc_rem", "REMOTE"),
        )
        for label, value in (
            ("NUL", good + NUL),
            ("over-long", good * 40),
            ("unknown enum", "WARP_DRIVE"),
            ("control char", good + "\n"),
        )
    ],
    *[
        (f"evt.{key} {label}", "evt", None, _evt(**{key: value}))
        for key in ("code", "detail")
        for label, value in (("NUL", "a" + NUL + "b"), ("over-long", LONG))
    ],
    ("evt.kind unknown enum", "evt", None, _evt(kind="party")),
    *[
        (f"ack.reason {label}", "ack", None, _ack(reason=value))
        for label, value in (("NUL", "no" + NUL), ("over-long", LONG))
    ],
    ("ack.status unknown enum", "ack", None, _ack(status="maybe")),
    ("ack.cmd_id NUL", "ack", None, _ack(cmd_id="a" + NUL)),
    ("birth.firmware NUL", "birth", None, _birth(firmware="gw" + NUL)),
    ("birth.firmware over-long", "birth", None, _birth(firmware="f" * 65)),
    ("birth.temp_source NUL", "birth", None, _birth(temp_source="cell" + NUL)),
    ("birth.seq_next key NUL", "birth", None, _birth(seq_next={"bank1" + NUL: 1})),
]


@pytest.mark.parametrize(
    ("kind", "dev", "body"),
    [(k, d, b) for _w, k, d, b in BAD_STRINGS],
    ids=[w for w, _k, _d, _b in BAD_STRINGS],
)
def test_validate_quarantines_schema_when_string_breaks_rule(
    kind: str, dev: str | None, body: dict[str, Any]
) -> None:
    out = validate_message(
        topic("site-01", kind, dev), encode(body), Context(registry(), NOW)
    )
    assert out.samples == ()
    assert out.evt is None
    assert out.ack is None
    (q,) = out.quarantined
    assert q.reason == "schema"
    assert NUL not in q.detail


def test_validate_accepts_u64_seq_and_sid_when_at_most_2_pow_64_minus_1() -> None:
    top = 2**64 - 1
    ctx = Context(registry(), NOW)
    out = validate_message(
        topic("site-01", "tlm", "bank1"),
        encode(tlm(seq=top, sid=top, ts=NOW - 1000)),
        ctx,
    )
    (sample,) = out.samples
    assert (sample.seq, sample.sid) == (top, top)
    over = validate_message(
        topic("site-01", "tlm", "bank1"), encode(tlm(seq=2**64, ts=NOW - 1000)), ctx
    )
    assert [q.reason for q in over.quarantined] == ["schema"]


def test_validate_quarantines_too_old_when_ts_negative() -> None:
    ctx = Context(registry(), NOW)
    out = validate_message(topic("site-01", "tlm", "bank1"), encode(tlm(ts=-5)), ctx)
    assert [q.reason for q in out.quarantined] == ["too_old"]


def test_i64_mapping_round_trips_and_splits_ranges_when_u64_crosses_2_pow_63() -> None:
    for value in (0, 1, 2**63 - 1, 2**63, 2**64 - 1):
        assert from_i64(to_i64(value)) == value
        assert -(2**63) <= to_i64(value) < 2**63
    assert i64_ranges(5, 9) == [(5, 9)]
    assert i64_ranges(2**63 - 2, 2**63 + 1) == [
        (2**63 - 2, 2**63 - 1),
        (-(2**63), -(2**63) + 1),
    ]


def _migrated(url: str) -> sa.Engine:
    upgrade(url)
    engine = make_engine(url)
    save_fleet(engine, make_fleet(3))
    return engine


def test_sink_stores_u64_seq_and_reloads_tracks_when_seq_above_2_pow_63(
    empty_db_url: str,
) -> None:
    engine = _migrated(empty_db_url)
    try:
        sink = SqlTelemetrySink(engine)
        ctx = Context(registry(), NOW)
        tracker = GapTracker()
        batch = Batch(received_at_ms=NOW)
        base = 2**63 - 2
        for i in (0, 1, 3):  # seq 2**63+1 missing: a gap across the sign boundary
            out = validate_message(
                topic("site-01", "tlm", "bank1"),
                encode(tlm(seq=base + i, sid=2**64 - 1, ts=NOW - 10_000 + i)),
                ctx,
            )
            batch.samples.extend(out.samples)
            for s in out.samples:
                tracker.observe_sample(s.site_id, s.dev_id, s.seq, s.ts_ms, NOW)
        batch.tracks = dict(tracker.draft())
        sink.commit(batch)
        assert sink.stored_seqs("site-01", "bank1", base, base + 10) == [
            (base, NOW - 10_000),
            (base + 1, NOW - 10_000 + 1),
            (base + 3, NOW - 10_000 + 3),
        ]
        (track,) = sink.load().tracks
        assert (track.contiguous_seq, track.max_seq_seen) == (base + 1, base + 3)
        assert track.first_hole() == (base + 2, base + 2)
    finally:
        engine.dispose()


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database (skips when PostgreSQL is not configured)."""
    url, name = _create_pg_database(pg_server_url)
    try:
        yield url
    finally:
        _drop_pg_database(pg_server_url, name)


@pytest.mark.integration
def test_sink_calls_nul_a_refusal_and_no_server_an_outage_when_postgresql(
    pg_url: str,
) -> None:
    engine = _migrated(pg_url)
    down = SqlTelemetrySink(
        make_engine(pg_url.replace("127.0.0.1:5432", "127.0.0.1:1"))
    )
    try:
        sink = SqlTelemetrySink(engine)
        out = validate_message(
            topic("site-01", "tlm", "bank1"),
            encode(tlm(ts=NOW - 1000)),
            Context(registry(), NOW),
        )
        (good,) = out.samples
        # past the validator, straight to the store: a value PostgreSQL cannot hold
        poisoned = dataclasses.replace(good, m={**good.m, "cha_st": "CHARGING" + NUL})
        with pytest.raises((sa.exc.SQLAlchemyError, psycopg.Error)) as refused:
            sink.commit(Batch(received_at_ms=NOW, samples=[poisoned]))
        assert sink.is_refusal(refused.value)
        with pytest.raises(sa.exc.SQLAlchemyError) as lost:
            down.commit(Batch(received_at_ms=NOW, samples=[good]))
        assert not down.is_refusal(lost.value)
        sink.commit(Batch(received_at_ms=NOW, samples=[good]))
        assert count(pg_url, STORED) == 1
    finally:
        engine.dispose()
        down.engine.dispose()


# -- real broker, real ingest ------------------------------------------------------


@pytest.fixture
def store_url(empty_db_url: str) -> str:
    _migrated(empty_db_url).dispose()
    return empty_db_url


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = start_mosquitto(tmp_path / "broker")
    yield b
    stop_mosquitto(b)


def _good(i: int, site: str = "site-01") -> tuple[str, bytes]:
    body = tlm(site, "bank1", seq=1000 + i, ts=NOW - 600_000 + i)
    return topic(site, "tlm", "bank1"), encode(body)


@pytest.mark.integration
def test_ingest_quarantines_bad_strings_and_stores_neighbours_when_streamed(
    store_url: str, broker: Broker, tmp_path: Path
) -> None:
    ingest = IngestProcess(store_url, broker.url, tmp_path / "ingest.log").start()
    pub = Publisher(broker.host, broker.port, "pub-poison")
    try:
        messages: list[tuple[str, bytes]] = []
        for i, (_w, kind, dev, body) in enumerate(BAD_STRINGS):
            if kind == "tlm":
                body = {**body, "seq": 5000 + i, "ts": NOW - 300_000 + i}
            messages.append(_good(2 * i))
            messages.append((topic("site-01", kind, dev), encode(body)))
            messages.append(_good(2 * i + 1, "site-02"))
        # a valid 256-character event code fits the store on every backend
        messages.append((topic("site-01", "evt"), encode(_evt(code="c" * 256))))
        pub.wait_acked(pub.publish_all(messages))
        n_good = 2 * len(BAD_STRINGS)
        wait_until(lambda: count(store_url, STORED) == n_good, 90, "good rows")
        wait_until(
            lambda: count(store_url, "SELECT count(*) FROM tlm_events") == 1,
            30,
            "the long-code event",
        )
        reasons = rows(
            store_url, "SELECT reason, count(*) FROM tlm_quarantine GROUP BY reason"
        )
        assert reasons == [("schema", len(BAD_STRINGS))]
    finally:
        pub.close()
        ingest.stop()


def _refuse_soc(url: str, soc_pct: float) -> None:
    """Make the database refuse measurement rows with ``soc_pct`` (not the ingest)."""
    engine = make_engine(url)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.text(
                    "ALTER TABLE tlm_measurements ADD CONSTRAINT test_refuse_soc "
                    f"CHECK (soc_pct IS DISTINCT FROM {soc_pct})"
                )
            )
        else:
            conn.execute(
                sa.text(
                    "CREATE TRIGGER test_refuse_soc BEFORE INSERT ON tlm_measurements "
                    f"WHEN NEW.soc_pct = {soc_pct} "
                    "BEGIN SELECT RAISE(ABORT, 'test_refuse_soc'); END"
                )
            )
    engine.dispose()


@pytest.mark.integration
def test_ingest_quarantines_store_rejected_and_acks_all_when_db_refuses_one_row(
    store_url: str, broker: Broker, tmp_path: Path
) -> None:
    _refuse_soc(store_url, 42.42)
    log = tmp_path / "ingest.log"
    # large batches: the refused row sits inside a batch of hundreds of good ones
    extra = ("--batch-size", "500")
    ingest = IngestProcess(store_url, broker.url, log, extra=extra).start()
    pub = Publisher(broker.host, broker.port, "pub-refuse")
    try:
        messages = [_good(i) for i in range(300)]
        poison = tlm("site-01", "bank1", seq=2000, ts=NOW - 1000)
        poison["m"] = bank_m(soc_pct=42.42)
        messages.insert(150, (topic("site-01", "tlm", "bank1"), encode(poison)))
        messages += [_good(i, "site-02") for i in range(300)]
        pub.wait_acked(pub.publish_all(messages))
        wait_until(lambda: count(store_url, STORED) == 600, 90, "600 good rows")
        wait_until(
            lambda: count(store_url, "SELECT count(*) FROM tlm_quarantine") == 1,
            30,
            "the refused row in quarantine",
        )
        ((reason, detail, payload),) = rows(
            store_url, "SELECT reason, detail, payload FROM tlm_quarantine"
        )
        assert reason == "store_rejected"
        assert "test_refuse_soc" in detail
        assert bytes(payload) == encode(poison)
        gaps = rows(store_url, "SELECT from_seq, to_seq, reason FROM tlm_gaps")
        assert gaps == [(2000, 2000, "store_rejected")]
        ingest.stop()
        # every message was acknowledged: a restarted worker gets no redelivery
        ingest = IngestProcess(store_url, broker.url, log, extra=extra).start()
        pub.wait_acked(pub.publish_all([_good(900, "site-03")]))
        wait_until(lambda: count(store_url, STORED) == 601, 60, "the sentinel row")
        assert count(store_url, "SELECT count(*) FROM tlm_quarantine") == 1
        assert (
            count(store_url, "SELECT coalesce(sum(duplicates), 0) FROM tlm_counters")
            == 0
        )
    finally:
        pub.close()
        ingest.stop()


def test_buffered_socket_serves_small_reads_from_one_recv_when_bytes_wait() -> None:
    import socket

    from telemetry.ingest import _BufferedSocket

    left, right = socket.socketpair()
    try:
        buffered = _BufferedSocket(left)
        right.sendall(b"\x30\x05hello\x30\x03abc")
        assert buffered.recv(1) == b"\x30"
        assert buffered.pending() == 11  # the rest came in with the first recv
        assert buffered.recv(1) == b"\x05"
        assert buffered.recv(5) == b"hello"
        assert buffered.recv(100) == b"\x30\x03abc"
        assert buffered.pending() == 0
        buffered.setblocking(False)
        with pytest.raises(BlockingIOError):
            buffered.recv(1)
        right.close()
        buffered.setblocking(True)
        assert buffered.recv(1) == b""  # end of stream, as from the socket
    finally:
        left.close()
