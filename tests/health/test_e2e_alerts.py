"""Fault-bearing telemetry → Mosquitto → ingest worker → store → scan → alert → API.

The site simulator has no fault hooks (telemetry/simulator.py), so this test publishes
the synthetic generator's telemetry (a failed fan on one string) as ``hist`` batches
through a real Mosquitto broker to the real ``bessfleet ingest`` process; the health
scan then reads it back from the store and opens the alert, which the API pushes on
``/v1/stream`` as an ``alarm`` event.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from fleet.health import dispatch_limits, scan_site
from fleet.store import alerts as alert_store
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


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    save_fleet(engine, make_fleet(1))
    with engine.begin() as conn:
        secret = key_store.create_key(conn, role="viewer").secret
    engine.dispose()
    return url, secret


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
                "m": {
                    "soc_pct": float(r.soc_pct),
                    "soh_pct": float(r.soh_pct),
                    "p_dc_w": float(r.p_dc_w),
                    "v_dc_v": 1372.8,
                    "i_dc_a": float(r.p_dc_w) / 1372.8,
                    "cell_v_max_v": float(r.cell_v_max_v),
                    "cell_v_min_v": float(r.cell_v_min_v),
                    "cell_t_max_c": float(r.cell_t_max_c),
                    "cell_t_min_c": float(r.cell_t_min_c),
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


def test_fan_fault_reaches_api_as_alarm_when_streamed_through_ingest(
    store: tuple[str, str], mosquitto: Broker, tmp_path: Path
) -> None:
    url, secret = store
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
    try:
        with live_server(url, poll_interval_s=0.1) as server:
            reader = StreamReader(server.url, {"Authorization": f"Bearer {secret}"})
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
            finally:
                reader.close()
        again = scan_site(engine, "site-01", now=midnight, site_energy_mwh=4.0)
        assert again.opened == ()
        assert again.refreshed == result.opened
        stored = alert_store.list_alerts(engine, site_id="site-01")
        assert len(stored) == 1
        assert stored[0].detail["occurrences"] == 2
        if stored[0].severity == "critical":
            assert dispatch_limits(engine, ["site-01"]) == {"site-01": 0.5}
        acked = alert_store.acknowledge(
            engine, stored[0].id, by="operator", now=midnight
        )
        assert acked.acknowledged_by == "operator"
    finally:
        engine.dispose()
