"""Synthetic fleets and a paced telemetry publisher for the scale tests and benchmarks."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from fleet.domain import Fleet
from fleet.fleetfile import fleet_from_data
from tests.conftest import REPO_ROOT

TEMPLATE = REPO_ROOT / "deploy" / "examples" / "fleet-small.yaml"


def synthetic_fleet(n_sites: int, *, group_market: str = "ERCOT") -> Fleet:
    """Return a fleet of ``n_sites`` copies of the example ERCOT site (ids ``s00000``...)."""
    data = yaml.safe_load(TEMPLATE.read_text())
    template = next(s for s in data["sites"] if s["market"] == group_market)
    sites = []
    for k in range(n_sites):
        site = copy.deepcopy(template)
        site["id"] = f"s{k:05d}"
        site["name"] = f"Synthetic site {k}"
        site["resource_id"] = f"SYN_ESR_{k:05d}"
        sites.append(site)
    return fleet_from_data(
        {"name": f"synthetic {n_sites}", "sites": sites}, source="synthetic"
    )


def sample(site: str, seq: int, ts_ms: int, sid: int = 1) -> dict[str, Any]:
    """Return one valid ``bank1`` telemetry sample (spec telemetry.md section 2)."""
    p_dc_w = 1.0e6 if seq % 2 else -1.0e6
    return {
        "v": 1,
        "site": site,
        "dev": "bank1",
        "sid": sid,
        "seq": seq,
        "ts": ts_ms,
        "m": {
            "soc_pct": 50.0 + (seq % 10) / 10,
            "soh_pct": 98.0,
            "p_dc_w": p_dc_w,
            "v_dc_v": 1331.2,
            "i_dc_a": round(p_dc_w / 1331.2, 2),
            "cell_v_max_v": 3.34,
            "cell_v_min_v": 3.31,
            "cell_v_avg_v": 3.325,
            "cell_t_max_c": 31.0,
            "cell_t_min_c": 24.0,
        },
    }


@dataclass
class PublishReport:
    """What :func:`publish_paced` sent."""

    published: int = 0
    acked: int = 0
    keys: set[tuple[str, int]] = field(default_factory=set)
    seconds: float = 0.0


def publish_paced(
    host: str,
    port: int,
    site_ids: Sequence[str],
    *,
    group: str,
    rate_per_site_hz: float,
    duration_s: float,
    clients: int = 4,
    stop: threading.Event | None = None,
) -> PublishReport:
    """Publish one QoS 1 sample per site every ``1/rate`` s for ``duration_s`` seconds.

    Bounded in count and time; returns once every publish is acknowledged (PUBACK) or
    10 s after the last tick.
    """
    report = PublishReport()
    lock = threading.Lock()
    pubs = []
    for k in range(clients):
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"load-{k}-{time.monotonic_ns()}",
            protocol=mqtt.MQTTv5,
        )
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)

        def on_publish(*_args: Any) -> None:
            with lock:
                report.acked += 1

        client.on_publish = on_publish
        client.connect(host, port)
        client.loop_start()
        pubs.append(client)
    period = 1.0 / rate_per_site_hz
    t0 = time.monotonic()
    tick = 0
    base_ms = time.time_ns() // 1_000_000
    try:
        while time.monotonic() - t0 < duration_s and not (stop and stop.is_set()):
            ts_ms = base_ms + int(tick * period * 1000)
            for j, site in enumerate(site_ids):
                body = json.dumps(sample(site, tick, ts_ms), separators=(",", ":"))
                pubs[j % clients].publish(
                    f"bess/v1/{group}/{site}/up/tlm/bank1", body, qos=1
                )
                report.keys.add((site, ts_ms))
                report.published += 1
            tick += 1
            sleep = t0 + tick * period - time.monotonic()
            if sleep > 0:
                time.sleep(sleep)
        deadline = time.monotonic() + 10
        while report.acked < report.published and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        report.seconds = time.monotonic() - t0
        for client in pubs:
            client.loop_stop()
            client.disconnect()
    return report
