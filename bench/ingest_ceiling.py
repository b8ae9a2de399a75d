"""Where one ingest worker's CPU goes: a bare paho subscriber vs the worker, no database.

Prints figures, asserts nothing. One broker started here; the same backlog of M QoS 1
messages is drained by

1. a bare paho 2 subscriber with ``manual_ack=True`` that acknowledges each message (the
   ceiling of any Python worker on paho), and
2. :class:`telemetry.ingest.IngestWorker` with a store that keeps nothing (validation,
   batching, gap tracking, acks; no database),

each reported in messages (samples) per CPU-second of this process and per wall second.

Usage::

    PYTHONPATH=$PWD .venv/bin/python bench/ingest_ceiling.py --messages 20000 [--batch-samples 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--batch-samples", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    import ingest_bench as ib
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from fleet.store.telemetry import registry_from_rows
    from telemetry.gaps import Track
    from telemetry.ingest import (
        Batch,
        IngestOptions,
        IngestWorker,
        SinkState,
        tune_gc_for_ingest,
    )
    from telemetry.registry import SiteRegistry

    battery = {
        "energy_mwh": 200.0,
        "charge_mw": 100.0,
        "discharge_mw": 100.0,
        "soc_min": 0.05,
        "soc_max": 0.95,
        "cells_in_series": 416,
        "strings": 527,
    }
    registry = registry_from_rows(
        {
            "id": s,
            "market": "ERCOT",
            "config": {"id": s, "mqtt_group": ib.GROUP, "battery": battery},
        }
        for s in ib.site_ids(args.sites)
    )

    class NullSink:
        """Keeps nothing: counts the samples of each committed batch."""

        def __init__(self) -> None:
            self.samples = 0

        def load(self) -> SinkState:
            return SinkState(registry, {}, {}, [])

        def load_registry(self) -> SiteRegistry:
            return registry

        def commit(self, batch: Batch) -> None:
            self.samples += len(batch.samples)

        def save_tracks(
            self, tracks: Mapping[tuple[str, str], Track], now_ms: int
        ) -> None:
            del tracks, now_ms

        def is_refusal(self, exc: Exception) -> bool:
            del exc
            return False

    def bare(port: int) -> tuple[mqtt.Client, list[int]]:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="bench-bare",
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        got = [0]

        def on_message(c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            got[0] += 1
            c.ack(msg.mid, 1)

        client.on_message = on_message
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        client.connect("127.0.0.1", port, clean_start=False, properties=props)
        client.subscribe(ib.TOPIC_FILTER, qos=1)
        return client, got

    k = args.batch_samples
    n = (args.messages // args.sites) * args.sites
    with tempfile.TemporaryDirectory() as tmp:
        broker, port = ib.start_broker(Path(tmp))
        try:
            # register both persistent sessions, then publish the backlog into them
            client, _ = bare(port)
            client.loop_start()
            time.sleep(0.5)
            client.disconnect()
            client.loop_stop()
            url = f"mqtt://127.0.0.1:{port}"
            options = IngestOptions(client_id="bench-null")
            worker = IngestWorker(url, NullSink(), options)
            worker.start()
            worker.wait_connected(10)
            time.sleep(0.5)
            worker.stop()
            ib.publish(port, args.sites, n, 2, 0, None, k)

            client, got = bare(port)
            cpu0, wall0 = time.process_time(), time.monotonic()
            client.loop_start()
            while got[0] < n:
                time.sleep(0.01)
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            client.disconnect()
            client.loop_stop()
            print(
                f"bare paho, manual ack: {n / cpu:,.0f} msg per CPU-second, "
                f"{n / wall:,.0f} msg/s wall"
            )

            sink = NullSink()
            tune_gc_for_ingest()  # as `bessfleet ingest` does
            worker = IngestWorker(url, sink, options)
            cpu0, wall0 = time.process_time(), time.monotonic()
            worker.start()
            while sink.samples < n * k:
                time.sleep(0.01)
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            worker.stop()
            print(
                f"IngestWorker, null store, {k} sample(s)/message: "
                f"{n / cpu:,.0f} msg = {n * k / cpu:,.0f} samples per CPU-second, "
                f"{n * k / wall:,.0f} samples/s wall"
            )
        finally:
            broker.terminate()
            broker.wait(10)


if __name__ == "__main__":
    main()
