"""Simulator fault → MQTT → ingest → store → scan → stored alert → API → ack.

Two simulated sites of four battery strings each run 30 simulated days on an
accelerated clock (``SiteGateway.step``/``publish_samples`` driven with simulated
times ending at today's midnight, sampled every 15 simulated minutes) through a private
real Mosquitto broker to the real ``bessfleet ingest`` subprocess. On ``site-01`` one
string's fan fails (thermal resistance x 3 from day 24) and another string's weakest
cell drifts (2 % SoC a day from day 15); ``site-02`` stays healthy. The health scan
must raise exactly those two alerts on ``site-01`` and nothing on ``site-02``; the API
lists the alerts, a scheduler acknowledges one and the dashboard shows them.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

import httpx
import pytest

from fleet.health import scan_site
from fleet.store import alerts as alert_store
from fleet.store import keys as key_store
from fleet.store.engine import make_engine
from fleet.store.migrate import upgrade
from fleet.store.sites import save_fleet
from forecasting.degradation.aging import ThroughputAging
from telemetry.registry import site_spec_from
from telemetry.simulator import Fault, SimOptions, SiteGateway
from tests.api.cdp import Browser, chromium_path
from tests.api.server import live_server
from tests.conftest import start_mosquitto, stop_mosquitto
from tests.factories import make_fleet
from tests.telemetry.helpers import IngestProcess, count, rows, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAYS = 30
STEP_MS = 15 * 60_000
PHYSICS_STEPS = 3
DAY_S = 86_400
FAULTS = (
    Fault("site-01", "fan_failure", "bank2", 24 * DAY_S, 3.0),
    Fault("site-01", "cell_drift", "bank3", 15 * DAY_S, 0.02),
)


@dataclass(frozen=True)
class Simulated:
    """The store filled by the simulated month, and its API keys."""

    url: str
    midnight: dt.datetime
    stored: int
    viewer: str
    scheduler: str
    scheduler_id: str


def _drive(gateways: list[SiteGateway], start_ms: int, end_ms: int) -> None:
    """Step every plant and publish one sample per device each simulated step."""
    now = start_ms
    while now + STEP_MS < end_ms:
        now += STEP_MS
        for gw in gateways:
            for j in range(PHYSICS_STEPS, 0, -1):
                sub_ms = now - (j - 1) * STEP_MS // PHYSICS_STEPS
                gw.step(STEP_MS / PHYSICS_STEPS / 1000, sub_ms)
            gw.publish_samples(now)
            gw.serve_backfill(50)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Simulated:
    tmp = tmp_path_factory.mktemp("e2e-sim")
    broker = start_mosquitto(tmp / "broker")
    url = f"sqlite:///{tmp / 'store.sqlite'}"
    upgrade(url)
    fleet = make_fleet(2)
    engine = make_engine(url)
    save_fleet(engine, fleet)
    with engine.begin() as conn:
        viewer = key_store.create_key(conn, role="viewer").secret
        scheduler = key_store.create_key(conn, role="scheduler")
    engine.dispose()
    midnight = dt.datetime.now(dt.UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    end_ms = int(midnight.timestamp() * 1000)
    start_ms = end_ms - DAYS * DAY_S * 1000
    options = SimOptions(
        seed=11,
        banks=4,
        faults=FAULTS,
        comm_loss_per_h=0.0,
        cell_alarm_per_h=0.0,
        local_period_s=4 * 3600.0,
        local_amplitude=0.8,
        local_soc_target=0.5,
    )
    master = random.Random(options.seed)
    gateways = [
        SiteGateway(
            site_spec_from(site),
            broker.url,
            options,
            random.Random(master.random()),
            aging=ThroughputAging(site.battery.energy_mwh),
            started_ms=start_ms,
        )
        for site in fleet.sites
    ]
    ingest = IngestProcess(url, broker.url, tmp / "ingest.log", client_id="e2e-sim")
    try:
        ingest.start()
        for gw in gateways:
            gw.connect()
        wait_until(
            lambda: all(gw.client.is_connected() for gw in gateways),
            15,
            "gateways to connect",
        )
        _drive(gateways, start_ms, end_ms)
        published = sum(gw.published for gw in gateways)
        wait_until(lambda: not any(gw.outbox for gw in gateways), 60, "broker PUBACKs")
        wait_until(
            lambda: count(url, "SELECT count(*) FROM tlm_measurements") >= published,
            120,
            f"{published} stored samples",
        )
    finally:
        for gw in gateways:
            gw.disconnect()
        ingest.stop()
        stop_mosquitto(broker)
    assert rows(url, "SELECT reason, detail FROM tlm_quarantine") == []
    stored = count(url, "SELECT count(*) FROM tlm_measurements")
    return Simulated(url, midnight, stored, viewer, scheduler.secret, scheduler.key.id)


def test_scan_site_alerts_listed_and_acked_through_api_when_simulator_injects_faults(
    simulated: Simulated,
) -> None:
    # 2 sites x 2879 samples x (4 banks + 1 PCS)
    assert simulated.stored == 2 * (DAYS * 96 - 1) * 5
    engine = make_engine(simulated.url)
    viewer = {"Authorization": f"Bearer {simulated.viewer}"}
    scheduler = {"Authorization": f"Bearer {simulated.scheduler}"}
    try:
        result = scan_site(
            engine, "site-01", now=simulated.midnight, site_energy_mwh=20.0
        )
        assert result.day == (simulated.midnight - dt.timedelta(days=1)).date()
        assert sorted((f.dev_id, f.kind.value) for f in result.findings) == [
            ("bank2", "thermal_outlier"),
            ("bank3", "cell_imbalance"),
        ]
        assert len(result.opened) == 2
        thermal = next(f for f in result.findings if f.kind.value == "thermal_outlier")
        assert thermal.value > 3.0  # °C above the peer strings at the same power
        with (
            live_server(simulated.url) as server,
            httpx.Client(base_url=server.url, timeout=30.0) as client,
        ):
            listed = client.get(
                "/v1/alerts", params={"site_id": "site-01"}, headers=viewer
            )
            assert listed.status_code == 200
            items = listed.json()["items"]
            assert sorted((a["dev_id"], a["kind"]) for a in items) == [
                ("bank2", "thermal_outlier"),
                ("bank3", "cell_imbalance"),
            ]
            assert sorted(a["alert_id"] for a in items) == sorted(result.opened)
            fan = next(a for a in items if a["kind"] == "thermal_outlier")
            assert "cooling" in fan["action"]
            assert fan["acknowledged_by"] is None
            refused = client.post(f"/v1/alerts/{fan['alert_id']}/ack", headers=viewer)
            assert refused.status_code == 403
            acked = client.post(f"/v1/alerts/{fan['alert_id']}/ack", headers=scheduler)
            assert acked.status_code == 200
            assert acked.json()["acknowledged_by"] == simulated.scheduler_id
        stored = alert_store.get_alert(engine, fan["alert_id"])
        assert stored.acknowledged_by == simulated.scheduler_id
    finally:
        engine.dispose()


def test_scan_site_finds_nothing_when_simulated_site_healthy(
    simulated: Simulated,
) -> None:
    engine = make_engine(simulated.url)
    try:
        result = scan_site(
            engine, "site-02", now=simulated.midnight, site_energy_mwh=20.0
        )
        assert result.day == (simulated.midnight - dt.timedelta(days=1)).date()
        assert result.findings == ()
        assert alert_store.list_alerts(engine, site_id="site-02") == []
    finally:
        engine.dispose()


@pytest.mark.e2e
def test_dashboard_lists_simulated_fault_alerts_when_scan_opened_them(
    simulated: Simulated,
) -> None:
    binary = chromium_path()
    if binary is None:
        pytest.skip("chromium is not installed (Debian package `chromium`)")
    engine = make_engine(simulated.url)
    try:
        scan_site(engine, "site-01", now=simulated.midnight, site_energy_mwh=20.0)
        ids = {
            a.dev_id: a.id for a in alert_store.list_alerts(engine, site_id="site-01")
        }
    finally:
        engine.dispose()
    assert sorted(ids) == ["bank2", "bank3"]
    browser = Browser(binary)
    try:
        with live_server(simulated.url, poll_interval_s=0.2) as server:
            browser.sign_in(server.url, simulated.viewer)
            for dev, kind in (
                ("bank2", "thermal outlier"),
                ("bank3", "cell imbalance"),
            ):
                row = f"document.querySelector('#alerts tr[data-alert=\"{ids[dev]}\"]')"
                text = browser.wait_for(f"{row} && {row}.innerText")
                assert dev in text
                assert kind in text
            browser.goto("about:blank")
    finally:
        browser.close()
