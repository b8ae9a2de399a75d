"""Liveness an operator can see: a stopped site is stale in seconds; a dead ingest is red.

Real time (speed 1), a real Mosquitto, a real ingest worker (``bessfleet ingest`` as
a process for the kill test), SQLite.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dispatch.markets import load_market_rules
from fleet.ops.clock import SystemClock
from fleet.ops.intraday import IntradayConfig, IntradayDispatcher
from fleet.ops.metering import latest_soc
from fleet.ops.operator import monitor_ingest
from fleet.store.alerts import list_alerts
from fleet.store.engine import make_engine
from fleet.store.heartbeats import ingest_liveness
from fleet.store.migrate import upgrade
from fleet.store.sites import save_fleet
from fleet.store.telemetry import SqlTelemetrySink
from telemetry.ingest import IngestOptions, IngestWorker
from telemetry.registry import site_spec_from
from telemetry.simulator import SimOptions, Simulator
from tests.api.server import http_client, live_server
from tests.conftest import REPO_ROOT
from tests.ops.helpers import NODE, fleet

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

RULES = load_market_rules("ERCOT")


def _prices(start: dt.datetime, n: int, minutes: int) -> dict:
    return {NODE: {"energy": [30.0 + (i % 8) for i in range(n)]}}


def test_a_stopped_site_is_stale_within_15_s_and_still_commanded(own_broker, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    two = fleet(2)
    save_fleet(engine, two)
    worker = IngestWorker(
        own_broker.url, SqlTelemetrySink(engine), IngestOptions(client_id="live-1")
    )
    sim = Simulator(
        [site_spec_from(s) for s in two.sites],
        own_broker.url,
        SimOptions(rate_hz=1.0, comm_loss_per_h=0.0, cell_alarm_per_h=0.0),
    )
    threads = [
        threading.Thread(target=worker.run_forever, daemon=True),
        threading.Thread(target=sim.run, daemon=True),
    ]
    for t in threads:
        t.start()
    ids = [s.id for s in two.sites]
    now = SystemClock().now()
    sent: list[tuple[str, float]] = []
    dispatcher = IntradayDispatcher(
        two,
        RULES,
        now.astimezone(__import__("zoneinfo").ZoneInfo(RULES.timezone)).date(),
        prices=_prices,
        states=lambda: latest_soc(engine, ids),
        send=lambda sid, p, *_: sent.append((sid, p)),
        config=IntradayConfig(stale_after_s=15.0),
    )
    try:
        deadline = time.monotonic() + 20
        while set(latest_soc(engine, ids)) != set(ids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert dispatcher.step(SystemClock().now()).stale == ()
        sim.gateways[1].paused = True
        stopped = time.monotonic()
        seen_stale = None
        while time.monotonic() - stopped < 25:
            report = dispatcher.step(SystemClock().now())
            if report.stale:
                seen_stale = time.monotonic() - stopped
                break
            time.sleep(0.5)
        assert seen_stale is not None
        assert seen_stale <= 15.0 + 2.0  # one sample period and one step of slack
        assert report.stale == ("site-02",)
        # Still commanded: told to hold.
        assert report.setpoints_mw == {
            "site-01": report.setpoints_mw["site-01"],
            "site-02": 0.0,
        }
        assert sent[-2:][0][0] in ids
    finally:
        sim.stop()
        worker._stop.set()
        for t in threads:
            t.join(timeout=20)


def test_a_killed_ingest_turns_readyz_red_and_raises_an_alert(
    own_broker, tmp_path: Path
):
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    save_fleet(engine, fleet(1))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "BESSFLEET_DATABASE_URL": url}
    cmd = [
        sys.executable,
        "-m",
        "fleet",
        "ingest",
        "--mqtt-url",
        own_broker.url,
        "--client-id",
        "ingest-kill-test",
    ]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 30
        while ingest_liveness(engine).alive == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ingest_liveness(engine).alive == 1
        with live_server(url) as server, http_client(server) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["ingest"] is True
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            killed = time.monotonic()
            while time.monotonic() - killed < 20:
                ready = client.get("/readyz")
                if ready.status_code == 503:
                    break
                time.sleep(0.5)
            assert ready.status_code == 503
            body = ready.json()
            assert body["checks"]["ingest"] is False
            assert "ingest-kill-test" in body["detail"]["ingest"]
        monitor = threading.Thread(
            target=monitor_ingest, args=(engine, stop, 0.2), daemon=True
        )
        monitor.start()
        deadline = time.monotonic() + 10
        alerts = []
        while time.monotonic() < deadline:
            alerts = [
                a
                for a in list_alerts(engine, open_only=False)
                if a.kind == "ingest_down"
            ]
            if alerts:
                break
            time.sleep(0.2)
        assert alerts
        assert alerts[0].severity == "critical"
        assert alerts[0].closed_at is None
        # A worker back: the alert closes.
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            alerts = [
                a
                for a in list_alerts(engine, open_only=False)
                if a.kind == "ingest_down"
            ]
            if alerts and alerts[0].closed_at is not None:
                break
            time.sleep(0.3)
        assert alerts[0].closed_at is not None
    finally:
        stop.set()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=15)
