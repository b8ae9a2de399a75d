"""Three ingest workers share the stream ($share/...); one is killed mid-stream: none lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from fleet.store import migrate
from fleet.store.engine import make_engine
from fleet.store.sites import save_fleet
from telemetry.registry import site_spec_from
from telemetry.simulator import SimOptions, Simulator
from tests.conftest import Broker, start_mosquitto, stop_mosquitto
from tests.factories import make_fleet
from tests.scale.telemetry_load import publish_paced, synthetic_fleet

BESSFLEET = Path(sys.executable).with_name("bessfleet")
SHARE_GROUP = "bessfleet-ingest"
N_SITES = 100
RATE_HZ = 2.0
DURATION_S = 6.0


@pytest.fixture(scope="module")
def share_option() -> None:
    """Skip (before any broker or database is set up) when ingest lacks ``--share``."""
    help_text = subprocess.run(
        [str(BESSFLEET), "ingest", "--help"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    if "--share" not in help_text:
        pytest.skip("bessfleet ingest has no --share GROUP option (telemetry/ owns it)")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    # log_type all: the broker logs every PUBLISH it sends, per client id; user root
    # (ignored unless started as root) keeps it able to write its log in pytest's tmp
    b = start_mosquitto(tmp_path / "broker", extra_conf="log_type all\nuser root\n")
    yield b
    stop_mosquitto(b)


def _start_worker(
    name: str,
    db_url: str,
    broker: Broker,
    log_dir: Path,
    extra: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    log = (log_dir / f"{name}.log").open("ab")
    return subprocess.Popen(
        [
            str(BESSFLEET),
            "ingest",
            "--db",
            db_url,
            "--mqtt-url",
            broker.url,
            "--client-id",
            name,
            "--share",
            SHARE_GROUP,
            "--verbose",
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _count(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


def _wait_subscribed(log_dir: Path, names: list[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all("subscribed" in (log_dir / f"{n}.log").read_text() for n in names):
            return
        time.sleep(0.2)
    logs = {n: (log_dir / f"{n}.log").read_text()[-2000:] for n in names}
    pytest.fail(f"workers did not subscribe within {timeout_s} s: {logs}")


@pytest.mark.integration
@pytest.mark.slow
def test_shared_ingest_loses_and_duplicates_nothing_when_a_worker_is_killed(
    share_option: None, empty_db_url: str, broker: Broker, tmp_path: Path
) -> None:
    migrate.upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    fleet = synthetic_fleet(N_SITES)
    save_fleet(engine, fleet)
    logs = tmp_path / "logs"
    logs.mkdir()
    names = ["ingest-a", "ingest-b", "ingest-c"]
    workers = {n: _start_worker(n, empty_db_url, broker, logs) for n in names}
    try:
        _wait_subscribed(logs, names)
        result = {}

        def publish() -> None:
            result["report"] = publish_paced(
                broker.host,
                broker.port,
                [s.id for s in fleet.sites],
                group="ercot",
                rate_per_site_hz=RATE_HZ,
                duration_s=DURATION_S,
            )

        publisher = threading.Thread(target=publish)
        publisher.start()
        # kill one worker mid-stream, without any chance to ack what it holds
        time.sleep(DURATION_S / 2)
        stored_before_kill = _count(engine, "SELECT count(*) FROM tlm_measurements")
        workers["ingest-b"].send_signal(signal.SIGKILL)
        workers["ingest-b"].wait(timeout=10)
        publisher.join(timeout=DURATION_S + 30)
        report = result["report"]
        assert report.acked == report.published
        # the dead worker's persistent session holds its unacked and queued messages;
        # restarting it under the same client id (what a StatefulSet does) drains them
        workers["ingest-b"] = _start_worker("ingest-b", empty_db_url, broker, logs)
        deadline = time.monotonic() + 60
        stored = 0
        while time.monotonic() < deadline:
            stored = _count(engine, "SELECT count(*) FROM tlm_measurements")
            if stored >= report.published:
                break
            time.sleep(0.5)
        time.sleep(1.0)  # let any redelivered duplicates arrive
        stored = _count(engine, "SELECT count(*) FROM tlm_measurements")
        distinct = _count(
            engine,
            "SELECT count(*) FROM (SELECT DISTINCT site_id, dev_id, ts_ms FROM tlm_measurements) k",
        )
        quarantined = _count(engine, "SELECT count(*) FROM tlm_quarantine")
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in workers.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        engine.dispose()
    assert 0 < stored_before_kill < report.published
    assert quarantined == 0
    assert (
        stored
        == distinct
        == report.published
        == N_SITES * len({ts for _, ts in report.keys})
    )
    broker_log = (broker.data_dir / "mosquitto.log").read_text(errors="replace")
    per_worker = {
        n: sum(
            1
            for line in broker_log.splitlines()
            if f"Sending PUBLISH to {n} " in line and "'bess/v1/" in line
        )
        for n in names
    }
    assert all(per_worker.values()), (
        f"every worker must have taken a share: {per_worker}"
    )
    # shared, not fanned out: each message went to one member (plus redeliveries)
    assert sum(per_worker.values()) < 2 * report.published


ORPHAN_WAIT_S = 90
"""Stated bound: every sample is stored this long after the stream ends, although a
worker was killed and never restarted (session expiry 5 s, reorder timeout 2 s here)."""


@pytest.mark.integration
@pytest.mark.slow
def test_shared_ingest_loses_nothing_when_a_worker_is_killed_and_never_restarted(
    share_option: None, empty_db_url: str, broker: Broker, tmp_path: Path
) -> None:
    migrate.upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    fleet = make_fleet(3)
    save_fleet(engine, fleet)
    logs = tmp_path / "logs"
    logs.mkdir()
    names = ["ingest-a", "ingest-b"]
    # a short session: the dead member leaves the group; its share comes back
    # through backfill from the gateways' history buffers
    extra = ("--session-expiry-s", "5", "--reorder-timeout-s", "2")
    workers = {n: _start_worker(n, empty_db_url, broker, logs, extra) for n in names}
    specs = [site_spec_from(s) for s in fleet.sites]
    sim = Simulator(specs, broker.url, SimOptions(rate_hz=20, seed=11))
    runner = threading.Thread(target=sim.run, kwargs={"duration_s": 25})
    # run() disconnects the gateways at its end: a second simulator with the same
    # history buffers and seqs answers the backfill requests, as live gateways would
    sim2 = Simulator(specs, broker.url, SimOptions(rate_hz=2, seed=11))
    answer = threading.Thread(target=sim2.run, kwargs={"duration_s": ORPHAN_WAIT_S})
    try:
        _wait_subscribed(logs, names)
        runner.start()
        deadline = time.monotonic() + 30
        while _count(engine, "SELECT count(*) FROM tlm_measurements") < 200:
            assert time.monotonic() < deadline, "the stream did not start"
            time.sleep(0.2)
        workers["ingest-b"].send_signal(signal.SIGKILL)
        workers["ingest-b"].wait(timeout=10)
        runner.join(timeout=90)
        # what the first run published (the second one adds samples of its own)
        next_seq = {
            (gw.spec.site_id, dev): gw.seq[dev]
            for gw in sim.gateways
            for dev in gw.devices
        }
        total = sum(n - 1 for n in next_seq.values())
        for old, new in zip(sim.gateways, sim2.gateways, strict=True):
            new.history, new.seq, new.last_ts = old.history, old.seq, old.last_ts
        answer.start()

        def stored_once() -> int:
            return sum(
                _count(
                    engine,
                    "SELECT count(DISTINCT seq) FROM tlm_measurements WHERE "
                    f"site_id='{site}' AND dev_id='{dev}' AND seq < {n}",
                )
                for (site, dev), n in next_seq.items()
            )

        stored = 0
        deadline = time.monotonic() + ORPHAN_WAIT_S
        while time.monotonic() < deadline and stored < total:
            time.sleep(0.5)
            stored = stored_once()
        replayed = _count(engine, "SELECT count(*) FROM tlm_measurements WHERE hist")
    finally:
        sim.stop()
        sim2.stop()
        if runner.is_alive() or runner.ident is not None:
            runner.join(timeout=30)
        if answer.ident is not None:
            answer.join(timeout=30)
        for proc in workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in workers.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        engine.dispose()
    assert stored == total, f"{total - stored} of {total} samples missing"
    assert replayed > 0, "the dead worker held nothing: the kill proved nothing"
