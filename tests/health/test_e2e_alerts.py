"""Fault-bearing telemetry → Mosquitto → ingest worker → store → scan → alert → API.

This test publishes the synthetic generator's telemetry (a failed fan on one string) as
``hist`` batches (the same path driven by the real site simulator's fault injection is
``test_e2e_simulator.py``) through a real Mosquitto broker to the real
``bessfleet ingest`` process; the health scan then reads it back from the store and opens the alert, which the API pushes on
``/v1/stream`` as an ``alarm`` event, lists on ``GET /v1/alerts`` and lets a scheduler
acknowledge (``POST /v1/alerts/{id}/ack``: audit-logged, an ``alert`` event).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from fleet.health import dispatch_limits, scan_site
from fleet.store import alerts as alert_store
from fleet.store import audit
from fleet.store import keys as key_store
from fleet.store.engine import make_engine
from fleet.store.migrate import upgrade
from fleet.store.sites import save_fleet
from forecasting.health.synthetic import InjectedFault, SyntheticSite, simulate_site
from tests.api.server import live_server
from tests.api.test_stream import StreamReader
from tests.conftest import Broker
from tests.factories import make_fleet
from tests.telemetry.helpers import (
    IngestProcess,
    Publisher,
    count,
    topic,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAYS = 12
SITE = SyntheticSite("site-01", step_minutes=30)
FAULT = InjectedFault("fan_failure", "bank2", 7, 3.0)


@dataclass(frozen=True)
class Keys:
    """The store URL and its viewer and scheduler keys."""

    url: str
    viewer: str
    scheduler: str
    scheduler_id: str


@pytest.fixture
def store(tmp_path: Path) -> Keys:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    save_fleet(engine, make_fleet(1))
    with engine.begin() as conn:
        viewer = key_store.create_key(conn, role="viewer").secret
        scheduler = key_store.create_key(conn, role="scheduler")
    engine.dispose()
    return Keys(url, viewer, scheduler.secret, scheduler.key.id)


def _batches(midnight: dt.datetime) -> tuple[list[tuple[str, bytes]], int]:
    start_ms = int(midnight.timestamp() * 1000) - DAYS * 86_400_000
    frame = simulate_site(
        SITE, DAYS, rng=np.random.default_rng(5), faults=(FAULT,), start_ms=start_ms
    )
    messages = []
    for dev_id, device in frame.groupby("dev_id"):
        samples = [
            {
                "seq": i + 1,
                "ts": int(r.ts_ms),
                "q": r.q,
                # A bad sample carries no measurement (null), as gateways send it.
                "m": {
                    k: (None if math.isnan(v) else v)
                    for k, v in {
                        "soc_pct": float(r.soc_pct),
                        "soh_pct": float(r.soh_pct),
                        "p_dc_w": float(r.p_dc_w),
                        "v_dc_v": 1372.8,
                        "i_dc_a": float(r.p_dc_w) / 1372.8,
                        "cell_v_max_v": float(r.cell_v_max_v),
                        "cell_v_min_v": float(r.cell_v_min_v),
                        "cell_t_max_c": float(r.cell_t_max_c),
                        "cell_t_min_c": float(r.cell_t_min_c),
                    }.items()
                },
            }
            for i, r in enumerate(device.itertuples(index=False))
        ]
        for k in range(0, len(samples), 400):
            body = {
                "v": 1,
                "site": "site-01",
                "dev": dev_id,
                "sid": 1,
                "samples": samples[k : k + 400],
            }
            messages.append(
                (topic("site-01", "hist", str(dev_id)), json.dumps(body).encode())
            )
    return messages, len(frame)


def test_fan_fault_is_listed_and_acked_through_api_when_streamed_through_ingest(
    store: Keys, mosquitto: Broker, tmp_path: Path
) -> None:
    url = store.url
    midnight = dt.datetime.now(dt.UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    messages, expected = _batches(midnight)
    ingest = IngestProcess(url, mosquitto.url, tmp_path / "ingest.log").start()
    pub = Publisher(mosquitto.host, mosquitto.port, "health-e2e-pub")
    try:
        pub.wait_acked(pub.publish_all(messages))
        wait_until(
            lambda: count(url, "SELECT count(*) FROM tlm_measurements") == expected,
            120,
            f"{expected} stored samples",
        )
    finally:
        pub.close()
        ingest.stop()
    engine = make_engine(url)
    viewer = {"Authorization": f"Bearer {store.viewer}"}
    scheduler = {"Authorization": f"Bearer {store.scheduler}"}
    try:
        with (
            live_server(url, poll_interval_s=0.1) as server,
            httpx.Client(base_url=server.url, timeout=30.0) as client,
        ):
            reader = StreamReader(server.url, viewer)
            try:
                assert reader.opened.wait(10)
                assert reader.status == 200
                result = scan_site(engine, "site-01", now=midnight, site_energy_mwh=4.0)
                assert result.day == (midnight - dt.timedelta(days=1)).date()
                assert [(f.dev_id, f.kind.value) for f in result.findings] == [
                    ("bank2", "thermal_outlier")
                ]
                alarm = reader.wait_for("alarm", timeout_s=30)
                assert alarm["kind"] == "thermal_outlier"
                assert alarm["site_id"] == "site-01"
                assert alarm["alert_id"] == result.opened[0]
                alert_id = result.opened[0]

                listed = client.get(
                    "/v1/alerts", params={"site_id": "site-01"}, headers=viewer
                )
                assert listed.status_code == 200
                items = listed.json()["items"]
                assert [(a["alert_id"], a["dev_id"], a["kind"]) for a in items] == [
                    (alert_id, "bank2", "thermal_outlier")
                ]
                assert "cooling" in items[0]["action"]
                assert items[0]["acknowledged_by"] is None

                again = scan_site(engine, "site-01", now=midnight, site_energy_mwh=4.0)
                assert again.opened == ()
                assert again.refreshed == result.opened
                one = client.get(f"/v1/alerts/{alert_id}", headers=viewer).json()
                # Seen again in the same episode; the API carries the evidence.
                assert one["detail"]["occurrences"] == 1
                evidence = one["detail"]["evidence"]
                assert set(evidence["series"]) == {"temp_at_power_c", "peer_median_c"}
                assert len(evidence["days"]) == len(
                    evidence["series"]["temp_at_power_c"]
                )
                if one["severity"] == "critical":
                    assert dispatch_limits(engine, ["site-01"]) == {"site-01": 0.5}

                refused = client.post(f"/v1/alerts/{alert_id}/ack", headers=viewer)
                assert refused.status_code == 403
                acked = client.post(f"/v1/alerts/{alert_id}/ack", headers=scheduler)
                assert acked.status_code == 200
                assert acked.json()["acknowledged_by"] == store.scheduler_id
                event = reader.wait_for("alert", timeout_s=30)
                assert event["alert_id"] == alert_id
                assert event["acknowledged_by"] == store.scheduler_id
            finally:
                reader.close()
        stored = alert_store.list_alerts(engine, site_id="site-01")
        assert [(a.id, a.acknowledged_by) for a in stored] == [
            (alert_id, store.scheduler_id)
        ]
        entries = audit.list_entries(engine, object_type="alert")
        assert [(e.actor, e.action, e.object_id) for e in entries] == [
            (store.scheduler_id, "alert.ack", str(alert_id))
        ]
    finally:
        engine.dispose()
