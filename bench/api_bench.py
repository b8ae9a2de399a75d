"""Benchmark the API's read endpoints under an open-loop load.

The API runs under uvicorn in its own process; this process is the load generator: an
open-loop client that sends request ``i`` at ``start + i / rate`` whatever the server
does, and measures each latency from that scheduled time (so a server or client that
falls behind shows up in the latency instead of lowering the offered load). Its HTTP
client is a minimal keep-alive one (:class:`RawClient`, on uvloop when installed), so
the generator spends a fraction of the server's CPU per request (``--client httpx``
for the previous one). The store holds the 12-site example fleet with a month of
telemetry, a schedule per market and day, and awards.

    .venv/bin/python bench/api_bench.py                    # 200 req/s for 20 s
    .venv/bin/python bench/api_bench.py --rate 400 --duration 30 --step-s 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fleet.api import sample  # noqa: E402
from fleet.fleetfile import load_fleet  # noqa: E402
from fleet.store import keys as key_store  # noqa: E402
from fleet.store.engine import make_engine  # noqa: E402
from fleet.store.migrate import upgrade  # noqa: E402
from fleet.store.sites import save_fleet  # noqa: E402

T = TypeVar("T")


def free_port() -> int:
    """Return a free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seed(url: str, days: int, step_s: int) -> tuple[str, list[str]]:
    """Migrate and fill the store; return a viewer key and the site ids."""
    fleet = load_fleet(ROOT / "deploy" / "examples" / "fleet.toml")
    upgrade(url)
    engine = make_engine(url)
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    started = time.perf_counter()
    with engine.begin() as conn:
        save_fleet(conn, fleet)
        secret = key_store.create_key(conn, role="viewer", note="bench").secret
        rows = sample.write_telemetry(
            conn,
            fleet.sites,
            start=now - dt.timedelta(days=days),
            end=now,
            step_s=step_s,
        )
        for market in ("ERCOT", "CAISO"):
            for back in range(days + 2):
                day = (now - dt.timedelta(days=back - 1)).date()
                sample.write_schedule(
                    conn, fleet.sites, market=market, operating_day=day
                )
                sample.write_awards(conn, fleet.sites, market=market, operating_day=day)
    engine.dispose()
    print(
        f"store: {rows:,} telemetry rows ({len(fleet.sites)} sites, {days} days at "
        f"{step_s} s), {2 * (days + 2)} schedules; seeded in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return secret, [s.id for s in fleet.sites]


def start_server(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    """Start uvicorn with the app factory in a separate process."""
    env = {
        **os.environ,
        "BESSFLEET_DATABASE_URL": url,
        "BESSFLEET_MQTT_URL": "none",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "fleet.api.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        env=env,
    )


def wait_ready(base: str, timeout_s: float = 30.0) -> None:
    """Wait until /healthz answers."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    msg = "server did not become ready"
    raise RuntimeError(msg)


class RawClient:
    """A minimal HTTP/1.1 keep-alive client for GET requests on one connection.

    The load generator's own cost per request must stay well below the server's, or
    the generator's delays show up as server latency: httpx spends about 2 ms of CPU
    per request here, more than the server; this client a tenth of that. It sends
    ``GET path`` with fixed headers and reads the status line, the headers and the
    body (``Content-Length`` or chunked).
    """

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host = host
        self.port = port
        self._head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        """Send ``GET path``, read the whole answer, return its status code."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port
            )
        reader, writer = self._reader, self._writer
        assert reader is not None
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{self._head}\r\n".encode()
        )
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            fields = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
            if "content-length" in fields:
                await reader.readexactly(int(fields["content-length"]))
            elif fields.get("transfer-encoding", "").lower() == "chunked":
                while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    await reader.readexactly(size + 2)
                await reader.readuntil(b"\r\n")
            if fields.get("connection", "").lower() == "close":
                await self.close()
        except BaseException:
            await self.close()
            raise
        return status

    async def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        if self._writer is not None:
            writer, self._writer, self._reader = self._writer, None, None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def endpoints(site_ids: list[str], with_realized: bool) -> list[tuple[str, str]]:
    """Return (label, path) pairs cycled through by the load generator."""
    out: list[tuple[str, str]] = []
    for site in site_ids:
        market = "CAISO" if site.startswith("ca-") else "ERCOT"
        out += [
            ("state", f"/v1/sites/{site}/state"),
            ("sites", "/v1/sites"),
            ("schedule", f"/v1/schedules/current?market={market}&site_id={site}"),
        ]
        if with_realized:
            out.append(
                ("schedule-vs-realized", f"/v1/sites/{site}/schedule-vs-realized")
            )
    return out


async def load(
    base: str,
    key: str,
    paths: list[tuple[str, str]],
    rate: float,
    duration_s: float,
    connections: int,
    client: str = "raw",
) -> tuple[dict[str, list[float]], int, float, float, float]:
    """Send requests on a fixed schedule (open loop); return latencies [ms] and more.

    Request ``i`` is due at ``start + i / rate``; a scheduler puts it on a queue at
    that time and ``connections`` workers, one keep-alive connection each, send what is
    due. Its latency is measured from the *scheduled* time to the end of its answer, so
    waiting for a free connection or a slow server counts (no coordinated omission).
    A fixed set of workers (rather than one task per request) keeps the load
    generator's own cost flat when the server falls behind.

    Returns
    -------
    latencies, errors, achieved_per_s, worst_send_lag_ms, client_cpu_ms
        Latencies by endpoint label [ms]; answers that were not 200 or failed;
        answered requests per second over the run; the largest delay between a
        request's scheduled time and its send [ms]; this process's CPU per
        request [ms].
    """
    latencies: dict[str, list[float]] = defaultdict(list)
    errors = 0
    send_lag_ms = 0.0
    queue: asyncio.Queue[tuple[float, str, str] | None] = asyncio.Queue()
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    gets: list[Callable[[str], Awaitable[int]]] = []
    closers: list[Callable[[], Awaitable[None]]] = []
    if client == "httpx":
        limits = httpx.Limits(
            max_connections=connections, max_keepalive_connections=connections
        )
        shared = httpx.AsyncClient(
            base_url=base, headers=headers, limits=limits, timeout=30
        )

        async def httpx_get(path: str) -> int:
            return (await shared.get(path)).status_code

        gets = [httpx_get] * connections
        closers = [shared.aclose]
    else:
        url = urlsplit(base)
        raws = [
            RawClient(url.hostname or "127.0.0.1", url.port or 80, headers)
            for _ in range(connections)
        ]
        gets = [r.get for r in raws]
        closers = [r.close for r in raws]

    async def worker(get: Callable[[str], Awaitable[int]]) -> None:
        nonlocal errors, send_lag_ms
        while (item := await queue.get()) is not None:
            due, label, path = item
            send_lag_ms = max(send_lag_ms, (time.perf_counter() - due) * 1000)
            try:
                ok = await asyncio.wait_for(get(path), 30) == 200
            except (OSError, EOFError, ValueError, TimeoutError, httpx.HTTPError):
                ok = False
            latencies[label].append((time.perf_counter() - due) * 1000)
            if not ok:
                errors += 1

    cpu_start = time.process_time()
    workers = [asyncio.create_task(worker(get)) for get in gets]
    start = time.perf_counter()
    n = int(rate * duration_s)
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        label, path = paths[i % len(paths)]
        queue.put_nowait((due, label, path))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    client_cpu_ms = (time.process_time() - cpu_start) * 1000 / max(1, n)
    for close in closers:
        await close()
    done = sum(len(v) for v in latencies.values()) - errors
    return latencies, errors, done / elapsed, send_lag_ms, client_cpu_ms


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when installed (cheaper per request), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def cpu_seconds(pid: int) -> float:
    """Return the user+system CPU time of process ``pid`` [s] (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """Return the CPU time of ``pid`` and its children (uvicorn workers) [s]."""
    total = cpu_seconds(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            total += cpu_seconds(int(child))
    return total


def pct(values: list[float], q: float) -> float:
    """Return the q-quantile (0-1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    """Seed, serve, load, report."""
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="Store URL (default: a new SQLite file in /tmp).")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--step-s", type=int, default=60, help="Telemetry cadence [s].")
    parser.add_argument(
        "--rate", type=float, default=200.0, help="Offered load [req/s]."
    )
    parser.add_argument(
        "--duration", type=float, default=20.0, help="Load duration [s]."
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=16,
        help="Keep-alive connections (waiting for one counts in the latency).",
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers.")
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="Load generator's HTTP client (raw: a minimal keep-alive client).",
    )
    parser.add_argument(
        "--with-realized",
        action="store_true",
        help="Add the dashboard's schedule-vs-realized endpoint to the mix.",
    )
    parser.add_argument("--port", type=int, default=0, help="Default: a free port.")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bessfleet-bench-")
    url = args.db or f"sqlite:///{tmp}/store.sqlite"
    key, site_ids = seed(url, args.days, args.step_s)
    port = args.port or free_port()
    server = start_server(url, port, args.workers)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        paths = endpoints(site_ids, args.with_realized)
        run(load(base, key, paths, 20, 2, args.connections, args.client))  # warm-up
        unloaded, *_ = run(load(base, key, paths, 10, 8, 4, args.client))
        cpu_before = tree_cpu_seconds(server.pid)
        latencies, errors, achieved, send_lag_ms, client_cpu_ms = run(
            load(
                base,
                key,
                paths,
                args.rate,
                args.duration,
                args.connections,
                args.client,
            )
        )
        server_cpu_s = tree_cpu_seconds(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(
        "unloaded (10 req/s) p50 ms: "
        + ", ".join(
            f"{label} {statistics.median(v):.1f}"
            for label, v in sorted(unloaded.items())
        )
    )
    total = sum(len(v) for v in latencies.values())
    print(
        f"open loop: offered {args.rate:.0f} req/s for {args.duration:.0f} s from a "
        f"separate process ({args.client} client, {client_cpu_ms:.2f} ms CPU per "
        f"request), {args.workers} uvicorn worker(s); achieved "
        f"{achieved:.1f} req/s; errors {errors}; longest wait before send {send_lag_ms:.0f} ms; "
        "latency measured from each request's scheduled send time"
    )
    print(
        f"server CPU {server_cpu_s * 1000 / total:.2f} ms per request "
        f"(one core could serve ~{total / server_cpu_s:.0f} req/s of this mix); "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(f"{'endpoint':<24}{'n':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    everything: list[float] = []
    for label, values in sorted(latencies.items()):
        everything += values
        print(
            f"{label:<24}{len(values):>7}{statistics.median(values):>9.1f}"
            f"{pct(values, 0.99):>9.1f}{max(values):>9.1f}"
        )
    print(
        f"{'all':<24}{len(everything):>7}{statistics.median(everything):>9.1f}"
        f"{pct(everything, 0.99):>9.1f}{max(everything):>9.1f}"
    )


if __name__ == "__main__":
    main()
