"""Benchmark the telemetry ingest: Mosquitto -> bessfleet ingest -> SQLite (PostgreSQL).

Prints figures, asserts nothing. Phases on one broker started here:

1. throughput: M messages from N simulated sites are published once at QoS 1 into the
   persistent sessions of ``mosquitto_sub`` (to /dev/null), of one ingest worker and of
   a ``--share`` group of W workers; each drains its backlog alone, timed: messages/s
   and samples/s, ratio to ``mosquitto_sub``, and W workers vs one;
2. live: one worker runs while sites publish at a fixed rate; publish-to-commit
   latency p50/p99 (commit seen by polling the table) and the lost count.

``--batch-samples K`` (K > 1) publishes the batched live form of spec 1.1 (K samples of
one device per message) instead of one sample per message.

Usage::

    .venv/bin/python bench/ingest_bench.py --sites 20 --messages 100000 [--pg URL]
    .venv/bin/python bench/ingest_bench.py --no-sqlite --pg URL --batch-samples 30
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
BESSFLEET = str(REPO / ".venv" / "bin" / "bessfleet")
GROUP = "ercot"
TOPIC_FILTER = "bess/v1/+/+/up/#"
WORKER_ARGS: list[str] = []
"""Extra ``bessfleet ingest`` options (``--worker-args``)."""

CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {data}/
autosave_interval 60
max_queued_messages 0
max_queued_bytes 1073741824
max_inflight_messages 0
persistent_client_expiration 7d
message_size_limit 262144
{user}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def start_broker(data: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    data.mkdir(parents=True, exist_ok=True)
    conf = data / "mosquitto.conf"
    user = "user root" if os.geteuid() == 0 else ""
    conf.write_text(CONF.format(port=port, data=data, user=user))
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    for _ in range(200):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    msg = "mosquitto did not start"
    raise RuntimeError(msg)


def site_ids(n: int) -> list[str]:
    return [f"bench-{i:03d}" for i in range(n)]


def prepare_store(url: str, n_sites: int) -> None:
    from fleet.store.engine import make_engine
    from fleet.store.migrate import upgrade
    from fleet.store.tables import metadata

    upgrade(url)
    engine = make_engine(url)
    sites = metadata.tables["sites"]
    battery = {
        "energy_mwh": 200.0,
        "charge_mw": 100.0,
        "discharge_mw": 100.0,
        "soc_min": 0.05,
        "soc_max": 0.95,
        "cells_in_series": 416,
        "strings": 527,
    }
    import datetime as dt

    with engine.begin() as conn:
        clear_telemetry(conn)
        conn.execute(sa.delete(sites))
        conn.execute(
            sa.insert(sites),
            [
                {
                    "id": s,
                    "name": s,
                    "market": "ERCOT",
                    "node": "HB_WEST",
                    "meter": "front",
                    "config": {"id": s, "mqtt_group": GROUP, "battery": battery},
                    "updated_at": dt.datetime.now(dt.UTC),
                }
                for s in site_ids(n_sites)
            ],
        )
    engine.dispose()


def clear_telemetry(conn: sa.Connection) -> None:
    for name in (
        "tlm_measurements",
        "tlm_latest",
        "tlm_seq_tracker",
        "tlm_quarantine",
        "tlm_counters",
        "tlm_gaps",
    ):
        if conn.dialect.name == "postgresql":
            # DELETE left the dead rows behind (autovacuum may be off on a scratch server)
            conn.execute(sa.text(f"TRUNCATE {name}"))
        else:
            conn.execute(sa.text(f"DELETE FROM {name}"))


def measurements(dev: str, seq: int) -> dict[str, Any]:
    if dev == "bank1":
        m: dict[str, Any] = {
            "soc_pct": 50.0 + (seq % 400) / 10,
            "p_dc_w": -1250000.0,
            "v_dc_v": 1372.8,
            "i_dc_a": -910.5,
            "cell_v_max_v": 3.312,
            "cell_v_min_v": 3.298,
            "cell_t_max_c": 31.5,
            "cell_t_min_c": 24.0,
            "i_cha_max_a": 1400,
            "i_dis_max_a": 1400,
            "cha_st": "CHARGING",
            "state": "CONNECTED",
            "loc_rem": "REMOTE",
            "evt1": 0,
        }
    else:
        m = {"p_ac_w": -1230000.0, "q_ac_var": 0.0, "f_hz": 60.01}
    return m


def payload(site: str, dev: str, seq: int, ts: int, samples: int = 1) -> bytes:
    """One message: a sample, or ``samples`` consecutive ones in the batched form."""
    if samples == 1:
        m = measurements(dev, seq)
        body = {
            "v": 1,
            "site": site,
            "dev": dev,
            "sid": 1,
            "seq": seq,
            "ts": ts,
            "m": m,
        }
    else:
        first = (seq - 1) * samples + 1
        body = {
            "v": 1,
            "site": site,
            "dev": dev,
            "sid": 1,
            "samples": [
                {"seq": q, "ts": ts + (q - first), "m": measurements(dev, q)}
                for q in range(first, first + samples)
            ],
        }
    return json.dumps(body, separators=(",", ":")).encode()


def publisher(
    port: int,
    sites: list[str],
    per_site: int,
    seq0: int,
    rate: float | None,
    tag: str,
    samples: int = 1,
) -> None:
    """Publish ``per_site`` messages per site (alternating bank1/pcs1) at QoS 1."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"bench-pub-{tag}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(2000)
    client.max_queued_messages_set(0)
    acked = [0]
    client.on_publish = lambda *_a: acked.__setitem__(0, acked[0] + 1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    last: dict[tuple[str, str], int] = {}
    base = now_ms() - 3_000_000
    start = time.monotonic()
    sent = 0
    for k in range(per_site):
        for site in sites:
            dev = "bank1" if k % 2 == 0 else "pcs1"
            seq = seq0 + k // 2 + 1
            if rate is None:
                ts = base + seq * samples
            else:
                ts = max(now_ms(), last.get((site, dev), 0) + samples)
                last[(site, dev)] = ts
            client.publish(
                f"bess/v1/{GROUP}/{site}/up/tlm/{dev}",
                payload(site, dev, seq, ts, samples),
                qos=1,
            )
            sent += 1
            if rate is not None:
                # pace in 10 ms ticks: a sleep per message cost the publisher more
                # CPU than the worker under test spends on the message
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0.01:
                    time.sleep(ahead)
    while acked[0] < sent:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def raw_publisher(
    port: int,
    sites: list[str],
    per_site: int,
    seq0: int,
    rate: float,
    tag: str,
    samples: int = 1,
) -> None:
    """The live phase's publisher: MQTT 3.1.1 QoS 1 over a plain socket, in 10 ms ticks.

    A paho publisher paced per message spent 110-245 µs of CPU per message (its
    network thread, locks, a wake-up per publish): at 5,000 msg/s more than a core
    of the two this machine has, taken from the worker under test. This one writes
    each tick's PUBLISH packets in one ``send`` and counts the 4-byte PUBACKs.
    """
    import threading

    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cid = f"bench-raw-{tag}".encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x00" + len(cid).to_bytes(2, "big") + cid
    sock.sendall(b"\x10" + _remaining_length(len(body)) + body)
    connack = b""
    while len(connack) < 4:
        connack += sock.recv(4 - len(connack))
    if connack[3] != 0:
        msg = f"broker refused the publisher: {connack!r}"
        raise RuntimeError(msg)
    received = [0]

    def read_acks() -> None:
        while True:
            data = sock.recv(65536)
            if not data:
                return
            received[0] += len(data)

    reader = threading.Thread(target=read_acks, daemon=True)
    reader.start()
    last: dict[tuple[str, str], int] = {}
    start = time.monotonic()
    sent = 0
    mid = 0
    out: list[bytes] = []
    for k in range(per_site):
        for site in sites:
            dev = "bank1" if k % 2 == 0 else "pcs1"
            seq = seq0 + k // 2 + 1
            ts = max(now_ms(), last.get((site, dev), 0) + samples)
            last[(site, dev)] = ts
            topic = f"bess/v1/{GROUP}/{site}/up/tlm/{dev}".encode()
            mid = mid % 65535 + 1
            variable = len(topic).to_bytes(2, "big") + topic + mid.to_bytes(2, "big")
            data = payload(site, dev, seq, ts, samples)
            out.append(
                b"\x32" + _remaining_length(len(variable) + len(data)) + variable + data
            )
            sent += 1
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0.01:
                sock.sendall(b"".join(out))
                out.clear()
                time.sleep(ahead)
    if out:
        sock.sendall(b"".join(out))
    while received[0] < 4 * sent:
        time.sleep(0.01)
    sock.sendall(b"\xe0\x00")
    sock.close()


def publish(
    port: int,
    n_sites: int,
    total: int,
    procs: int,
    seq0: int,
    rate: float | None,
    samples: int = 1,
) -> float:
    sites = site_ids(n_sites)
    chunks = [sites[i::procs] for i in range(procs)]
    per_site = total // n_sites
    start = time.monotonic()
    ctx = mp.get_context("spawn")
    workers = [
        ctx.Process(
            target=publisher if rate is None else raw_publisher,
            args=(
                port,
                chunk,
                per_site,
                seq0,
                None if rate is None else rate / procs,
                f"{seq0}-{i}",
                samples,
            ),
        )
        for i, chunk in enumerate(chunks)
        if chunk
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.monotonic() - start


def count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(sa.text("SELECT count(*) FROM tlm_measurements")).scalar_one()
        )


def committed(engine: sa.Engine) -> int:
    """Samples stored so far, from the per-site counters the worker keeps in the same
    transactions (a ``count(*)`` of the growing table every 0.1 s took CPU from the
    worker under test)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT coalesce(sum(stored), 0) FROM tlm_counters")
            ).scalar_one()
        )


def start_ingest(
    db: str,
    port: int,
    log: Path,
    client_id: str = "bench-ingest",
    share: str | None = None,
) -> subprocess.Popen[bytes]:
    fh = log.open("ab")
    args = [
        BESSFLEET,
        "ingest",
        "--db",
        db,
        "--mqtt-url",
        f"mqtt://127.0.0.1:{port}",
        "--client-id",
        client_id,
    ]
    if share:
        args += ["--share", share, "--session-expiry-s", "3600"]
    args += WORKER_ARGS
    size = log.stat().st_size if log.exists() else 0
    proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT)
    for _ in range(1200):
        if b"subscribed to" in log.read_bytes()[size:]:
            return proc
        time.sleep(0.05)
    raise RuntimeError(log.read_text()[-2000:])


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def backend_pids(engine: sa.Engine) -> list[int]:
    """PostgreSQL backends connected to the bench's database, other than this one."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
        )
        return [int(r[0]) for r in rows]


def cpu_of(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            out[pid] = cpu_s(pid)
    return out


@dataclass
class Drain:
    took: float
    """Wall seconds from the workers' start to the last commit."""
    cpu: float
    """CPU seconds of the workers."""
    stored: int
    pg_cpu: float
    """CPU seconds of the database's client backends (the workers' and the poll's)."""
    broker_cpu: float
    """CPU seconds of Mosquitto."""
    before: int
    """Samples already committed when timing started (a ``--share`` worker drains
    while the next one starts): left out of the rates and of the CPU per sample."""

    @property
    def measured(self) -> int:
        """Samples committed while timed."""
        return max(self.stored - self.before, 1)


def drain(
    db: str,
    port: int,
    engine: sa.Engine,
    log: Path,
    n_samples: int,
    workers: int,
    broker: subprocess.Popen[bytes] | None = None,
) -> Drain:
    """Start ``workers`` ingest workers on their backlog; measure until all is stored."""
    if workers == 1:
        procs = [start_ingest(db, port, log)]
    else:
        procs = [
            start_ingest(db, port, log, f"bench-share-{i}", "bench")
            for i in range(workers)
        ]
    cpu0 = sum(cpu_s(p.pid) for p in procs)
    broker0 = cpu_s(broker.pid) if broker is not None else 0.0
    backends = cpu_of(backend_pids(engine))
    t0 = time.monotonic()
    before = committed(engine)
    polls = 0
    while committed(engine) < n_samples and time.monotonic() - t0 < 900:
        time.sleep(0.05)
        polls += 1
        if polls % 10 == 0:  # backends opened after the start (e.g. a reconnect)
            for pid, c in cpu_of(backend_pids(engine)).items():
                backends.setdefault(pid, c)
    took = time.monotonic() - t0
    cpu = sum(cpu_s(p.pid) for p in procs) - cpu0
    broker_cpu = (cpu_s(broker.pid) - broker0) if broker is not None else 0.0
    pg_cpu = sum(c - backends[pid] for pid, c in cpu_of(list(backends)).items())
    stored = count(engine)
    for p in procs:
        stop(p)
    return Drain(took, cpu, stored, pg_cpu, broker_cpu, before)


def run(db: str, label: str, args: argparse.Namespace, tmp: Path) -> None:
    from fleet.store.engine import make_engine

    prepare_store(db, args.sites)
    broker, port = start_broker(tmp / f"broker-{label}")
    engine = make_engine(db)
    log = tmp / f"ingest-{label}.log"
    k = args.batch_samples
    form = (
        "one sample per message"
        if k == 1
        else f"batched live form, {k} samples/message"
    )
    try:
        # register every persistent session, then publish the backlog into them once
        subprocess.run(
            [
                "mosquitto_sub",
                "-p",
                str(port),
                "-t",
                TOPIC_FILTER,
                "-q",
                "1",
                "-c",
                "-i",
                "bench-sub",
                "-E",
            ],
            check=True,
        )
        stop(start_ingest(db, port, log))
        if args.share_workers > 1:
            for i in range(args.share_workers):
                stop(start_ingest(db, port, log, f"bench-share-{i}", "bench"))
        n = (args.messages // args.sites) * args.sites
        n_samples = n * k
        pub_s = publish(port, args.sites, n, args.publishers, 0, None, k)
        print(
            f"[{label}] published {n:,} QoS 1 messages ({n_samples:,} samples, {form}) "
            f"from {args.sites} sites in {pub_s:.1f} s ({n / pub_s:,.0f} msg/s)"
        )

        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        subprocess.run(
            [
                "mosquitto_sub",
                "-p",
                str(port),
                "-t",
                TOPIC_FILTER,
                "-q",
                "1",
                "-c",
                "-i",
                "bench-sub",
                "-C",
                str(n),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        sub_rate = n / (time.monotonic() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        sub_cpu = (after.ru_utime + after.ru_stime) - (
            before.ru_utime + before.ru_stime
        )
        print(
            f"[{label}] mosquitto_sub (QoS 1, to /dev/null) drained at {sub_rate:,.0f} msg/s"
        )

        one = drain(db, port, engine, log, n_samples, 1, broker)
        took, ingest_cpu, stored = one.took, one.cpu, one.stored
        one_rate = one.measured / took
        print(
            f"[{label}] 1 worker drained and committed {one_rate / k:,.0f} msg/s = "
            f"{one_rate:,.0f} samples/s (ratio to mosquitto_sub in messages "
            f"{one_rate / k / sub_rate:.2f}); lost {n_samples - stored}"
        )
        print(
            f"[{label}] per CPU-second (load-independent): ingest {one.measured / max(ingest_cpu, 1e-9):,.0f} samples, "
            f"mosquitto_sub {n / max(sub_cpu, 1e-9):,.0f} msg; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        per = 1e6 / one.measured
        total = one.cpu + one.pg_cpu + one.broker_cpu
        print(
            f"[{label}] CPU per sample: worker {one.cpu * per:.2f} µs, database "
            f"backends {one.pg_cpu * per:.2f} µs, mosquitto {one.broker_cpu * per:.2f} µs "
            f"= {total * per:.2f} µs; {total / took:.2f} cores busy during the drain; "
            f"100,000 samples/s would need {total * per / 10:.2f} cores"
        )
        if args.share_workers > 1:
            with engine.begin() as conn:
                clear_telemetry(conn)
            w = args.share_workers
            shared = drain(db, port, engine, log, n_samples, w, broker)
            took, stored = shared.took, shared.stored
            rate = shared.measured / took
            print(
                f"[{label}] {w} workers (--share) drained {rate:,.0f} samples/s = "
                f"{rate / one_rate:.2f}x one worker ({shared.before:,} samples "
                f"committed while the workers started, not timed); lost "
                f"{n_samples - stored}; load average {os.getloadavg()[0]:.1f}"
            )
            per = 1e6 / shared.measured
            total = shared.cpu + shared.pg_cpu + shared.broker_cpu
            print(
                f"[{label}] {w} workers: CPU per sample: workers {shared.cpu * per:.2f} µs, "
                f"database backends {shared.pg_cpu * per:.2f} µs, mosquitto "
                f"{shared.broker_cpu * per:.2f} µs; {total / took:.2f} cores busy"
            )
        if args.live_seconds <= 0:
            return

        # live phase: fixed publish rate, latency from publish (payload ts) to visible commit
        proc = start_ingest(db, port, log)
        live_n = int(args.live_rate * args.live_seconds)
        live_n = (live_n // args.sites) * args.sites
        seen: dict[tuple[str, str, int], int] = {}
        before_n = count(engine)
        ctx = mp.get_context("spawn")
        pub = ctx.Process(
            target=publish,
            args=(port, args.sites, live_n, args.publishers, 10**7, args.live_rate, k),
        )
        t_start = now_ms()
        pub.start()
        lat: list[int] = []
        deadline = time.monotonic() + args.live_seconds + 60
        # each poll reads only what is new: one primary-key range scan per device
        # above the newest sample time seen (a device's samples commit in ts order);
        # a scan of every row received since the start (the earlier poll) grew to
        # 50,000 rows every 20 ms and took CPU from the worker under test
        newest = {
            (site, dev): t_start - 1000
            for site in site_ids(args.sites)
            for dev in ("bank1", "pcs1")
        }
        pg = engine.dialect.name == "postgresql"
        poll = sa.text(
            "SELECT m.site_id, m.dev_id, m.ts_ms FROM unnest("
            "CAST(:s AS text[]), CAST(:d AS text[]), CAST(:t AS int8[])) AS v(s, d, t) "
            "JOIN LATERAL (SELECT site_id, dev_id, ts_ms FROM tlm_measurements "
            "WHERE site_id = v.s AND dev_id = v.d AND ts_ms > v.t) m ON true"
        )
        live_stored = 0
        while time.monotonic() < deadline:
            keys = list(newest)
            with engine.connect() as conn:
                if pg:
                    new = conn.execute(
                        poll,
                        {
                            "s": [key[0] for key in keys],
                            "d": [key[1] for key in keys],
                            "t": [newest[key] for key in keys],
                        },
                    ).all()
                else:
                    new = []
                    for site, dev in keys:
                        new += conn.execute(
                            sa.text(
                                "SELECT site_id, dev_id, ts_ms FROM tlm_measurements "
                                "WHERE site_id = :s AND dev_id = :d AND ts_ms > :t"
                            ),
                            {"s": site, "d": dev, "t": newest[(site, dev)]},
                        ).all()
            t_seen = now_ms()
            for site, dev, ts in new:
                if (site, dev, ts) not in seen:
                    seen[(site, dev, ts)] = t_seen
                    lat.append(t_seen - ts)
                    live_stored += 1
                    if ts > newest[(site, dev)]:
                        newest[(site, dev)] = ts
            if not pub.is_alive() and live_stored >= live_n * k:
                break
            time.sleep(0.02)
        pub.join()
        lost = live_n * k - (count(engine) - before_n)
        lat.sort()
        if lat:
            p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
            print(
                f"[{label}] live {args.live_rate:,.0f} msg/s ({form}) for {args.live_seconds:.0f} s: "
                f"publish-to-commit p50 {p50} ms, p99 {p99} ms (20 ms polling), lost {lost}; "
                f"load average {os.getloadavg()[0]:.1f}"
            )
        stop(proc)
    finally:
        engine.dispose()
        broker.terminate()
        broker.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Telemetry ingest benchmark (figures, not assertions)."
    )
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--live-rate", type=float, default=5000.0)
    parser.add_argument(
        "--batch-samples",
        type=int,
        default=1,
        help="samples per message: 1, or 2-60 for the batched live form (spec 1.1)",
    )
    parser.add_argument(
        "--share-workers",
        type=int,
        default=2,
        help="also drain the backlog with this many --share workers (1: skip)",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument(
        "--worker-args",
        default="",
        help="extra options for every bessfleet ingest worker, e.g. "
        "'--batch-size 2000 --inflight-batches 6'",
    )
    parser.add_argument("--live-seconds", type=float, default=10.0)
    parser.add_argument(
        "--pg",
        help="PostgreSQL URL to bench as well (a scratch database: tables are emptied)",
    )
    args = parser.parse_args()
    WORKER_ARGS.extend(args.worker_args.split())
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print(
            f"machine: {os.cpu_count()} CPUs; sites={args.sites} messages={args.messages:,}"
        )
        if not args.no_sqlite:
            run(f"sqlite:///{tmp / 'bench.sqlite'}", "sqlite", args, tmp)
        if args.pg:
            run(args.pg, "postgresql", args, tmp)


if __name__ == "__main__":
    main()
