"""Reliability of the ingest against a real Mosquitto and a real database.

The ingest runs as a real ``bessfleet ingest`` subprocess; messages are published at
QoS 1 by a paho client with a persistent session.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.store.engine import make_engine
from fleet.store.migrate import upgrade
from fleet.store.sites import save_fleet
from tests.conftest import Broker, start_mosquitto, stop_mosquitto
from tests.factories import make_fleet
from tests.telemetry.helpers import (
    BESSFLEET,
    IngestProcess,
    Publisher,
    count,
    encode,
    now_ms,
    rows,
    tlm,
    topic,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    save_fleet(engine, make_fleet(3))
    engine.dispose()
    return url


# Started as root, Mosquitto drops to the ``mosquitto`` user and then cannot write its
# persistence file under pytest's 0700 tmp dirs: keep it root so persistence is real.
KEEP_USER = "user root\n"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = start_mosquitto(tmp_path / "broker", extra_conf=KEEP_USER)
    yield b
    stop_mosquitto(b)


def stream(
    n: int, sites: tuple[str, ...] = ("site-01", "site-02")
) -> list[tuple[str, bytes]]:
    """``n`` valid tlm messages spread over sites and devices, unique (site, dev, ts)."""
    base = now_ms() - 60_000
    out = []
    per = len(sites) * 2
    for i in range(n):
        site = sites[i % len(sites)]
        dev = "bank1" if (i // len(sites)) % 2 == 0 else "pcs1"
        seq = i // per + 1
        out.append(
            (topic(site, "tlm", dev), encode(tlm(site, dev, seq=seq, ts=base + seq)))
        )
    return out


STORED = "SELECT count(*) FROM tlm_measurements"


def test_ingest_stores_valid_and_quarantines_invalid_when_streamed(
    store_url: str, broker: Broker, tmp_path: Path
) -> None:
    ingest = IngestProcess(store_url, broker.url, tmp_path / "ingest.log").start()
    pub = Publisher(broker.host, broker.port, "pub-basic")
    try:
        good = stream(1000)
        bad = [
            (topic("site-01", "tlm", "bank1"), b"{oops"),
            (topic("site-01", "tlm", "bank1"), b'{"v":1,"x":NaN}'),
            (topic("site-02", "tlm", "bank1"), encode(tlm("site-01"))),
            (topic("site-77", "tlm", "bank1"), encode(tlm("site-77"))),
            (topic("site-01", "tlm", "bank1"), encode(tlm(v=9))),
        ]
        mids = pub.publish_all(good + bad)
        pub.wait_acked(mids)
        wait_until(lambda: count(store_url, STORED) == 1000, 60, "1000 rows")
        wait_until(
            lambda: count(store_url, "SELECT count(*) FROM tlm_quarantine") == 5,
            30,
            "5 quarantine rows",
        )
        reasons = sorted(
            r[0] for r in rows(store_url, "SELECT reason FROM tlm_quarantine")
        )
        assert reasons == [
            "bad_json",
            "nan_inf",
            "topic_mismatch",
            "unknown_site",
            "unknown_version",
        ]
        raw = rows(
            store_url, "SELECT payload FROM tlm_quarantine WHERE reason='bad_json'"
        )
        assert bytes(raw[0][0]) == b"{oops"
        out = subprocess.run(
            [str(BESSFLEET), "telemetry", "stats", "--json", "--db", store_url],
            check=True,
            capture_output=True,
            timeout=60,
        )
        stats = {s["site_id"]: s for s in json.loads(out.stdout)["sites"]}
        assert stats["site-01"]["rows_stored"] == 500
        assert stats["site-02"]["quarantined"] == {"topic_mismatch": 1}
        assert stats["site-77"]["quarantined"] == {"unknown_site": 1}
    finally:
        pub.close()
        ingest.stop()


@pytest.mark.slow
def test_ingest_stores_every_message_once_when_killed_mid_batch(
    store_url: str, broker: Broker, tmp_path: Path
) -> None:
    log = tmp_path / "ingest.log"
    ingest = IngestProcess(store_url, broker.url, log).start()
    pub = Publisher(broker.host, broker.port, "pub-kill")
    n = 12_000
    try:
        mids = pub.publish_all(stream(n))
        wait_until(
            lambda: count(store_url, STORED) >= 1500, 60, "ingest to be mid-stream"
        )
        ingest.kill()
        at_kill = count(store_url, STORED)
        assert at_kill < n, "the kill came too late to test anything"
        pub.wait_acked(mids)
        ingest = IngestProcess(store_url, broker.url, log).start()
        wait_until(
            lambda: count(store_url, STORED) >= n, 120, f"{n} rows after restart"
        )
        time.sleep(0.5)
        assert count(store_url, STORED) == n
        dup = rows(store_url, "SELECT sum(duplicates) FROM tlm_counters")[0][0] or 0
        assert dup >= 0
    finally:
        pub.close()
        ingest.stop()


@pytest.mark.slow
def test_ingest_stores_every_message_once_when_broker_restarted_mid_stream(
    store_url: str, tmp_path: Path
) -> None:
    b = start_mosquitto(tmp_path / "broker", extra_conf=KEEP_USER)
    log = tmp_path / "ingest.log"
    ingest = IngestProcess(store_url, b.url, log).start()
    pub = Publisher(b.host, b.port, "pub-restart")
    n = 6_000
    msgs = stream(n)
    try:
        first = pub.publish_all(msgs[: n // 2])
        wait_until(
            lambda: count(store_url, STORED) >= 500, 60, "ingest to be mid-stream"
        )
        stop_mosquitto(b)
        assert (b.data_dir / "mosquitto.db").exists(), "broker persistence is off"
        b = start_mosquitto(b.data_dir, port=b.port, extra_conf=KEEP_USER)
        second = pub.publish_all(msgs[n // 2 :])
        pub.wait_acked(first + second, timeout_s=90)
        wait_until(
            lambda: count(store_url, STORED) >= n, 120, f"{n} rows after broker restart"
        )
        time.sleep(0.5)
        assert count(store_url, STORED) == n
    finally:
        pub.close()
        ingest.stop()
        stop_mosquitto(b)


@pytest.mark.slow
def test_ingest_holds_then_catches_up_when_database_locked(
    store_url: str, broker: Broker, tmp_path: Path
) -> None:
    log = tmp_path / "ingest.log"
    ingest = IngestProcess(store_url, broker.url, log).start()
    pub = Publisher(broker.host, broker.port, "pub-lock")
    path = store_url.removeprefix("sqlite:///")
    lock = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        warm = stream(200, sites=("site-03",))
        pub.wait_acked(pub.publish_all(warm))
        wait_until(lambda: count(store_url, STORED) == 200, 60, "warm-up rows")
        lock.execute("BEGIN EXCLUSIVE")
        mids = pub.publish_all(stream(3000))
        pub.wait_acked(mids)
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            time.sleep(0.5)
        assert b"commit failed" in log.read_bytes()
        lock.execute("ROLLBACK")
        wait_until(
            lambda: count(store_url, STORED) == 3200, 90, "catch-up after the lock"
        )
    finally:
        lock.close()
        pub.close()
        ingest.stop()


@pytest.mark.slow
def test_ingest_disconnects_then_resumes_when_database_down_for_long(
    store_url: str, broker: Broker, tmp_path: Path
) -> None:
    log = tmp_path / "ingest.log"
    ingest = IngestProcess(
        store_url, broker.url, log, extra=("--disconnect-after-s", "2")
    ).start()
    pub = Publisher(broker.host, broker.port, "pub-outage")
    path = store_url.removeprefix("sqlite:///")
    lock = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        mids = pub.publish_all(stream(2000))
        pub.wait_acked(mids)
        wait_until(
            lambda: b"disconnecting" in log.read_bytes(), 60, "the ingest to let go"
        )
        lock.execute("ROLLBACK")
        wait_until(
            lambda: count(store_url, STORED) == 2000, 90, "catch-up after the outage"
        )
        assert b"store back: reconnecting" in log.read_bytes()
    finally:
        lock.close()
        pub.close()
        ingest.stop()


def test_ingest_records_birth_and_ignores_stale_will_when_sid_differs(
    store_url: str, broker: Broker, tmp_path: Path
) -> None:
    ingest = IngestProcess(store_url, broker.url, tmp_path / "ingest.log").start()
    pub = Publisher(broker.host, broker.port, "pub-birth")
    birth = {
        "v": 1,
        "site": "site-01",
        "sid": 200,
        "ts": now_ms(),
        "firmware": "t",
        "devices": ["bank1"],
        "nameplate": {
            "wh_rtg_wh": 2e7,
            "w_cha_rte_max_w": 1e7,
            "w_dis_cha_rte_max_w": 1e7,
            "soc_max_pct": 95,
            "soc_min_pct": 5,
            "cells_in_series": 416,
        },
        "seq_next": {"bank1": 10},
    }
    sess = "SELECT sid, online FROM tlm_site_sessions WHERE site_id='site-01'"
    try:
        pub.wait_acked(pub.publish_all([(topic("site-01", "birth"), encode(birth))]))
        wait_until(lambda: rows(store_url, sess) == [(200, 1)], 30, "birth recorded")
        stale = {"online": False, "sid": 150, "ts": now_ms()}
        pub.wait_acked(pub.publish_all([(topic("site-01", "state"), encode(stale))]))
        time.sleep(1.0)
        assert rows(store_url, sess) == [(200, 1)]
        will = {"online": False, "sid": 200, "ts": now_ms()}
        pub.wait_acked(pub.publish_all([(topic("site-01", "state"), encode(will))]))
        wait_until(lambda: rows(store_url, sess) == [(200, 0)], 30, "site offline")
    finally:
        pub.close()
        ingest.stop()
