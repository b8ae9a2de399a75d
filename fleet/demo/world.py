"""What the operator does not own, simulated: real prices, site gateways and the ingest.

The world of the demo and of the operating-day tests: the site gateways (the telemetry
simulator over a real broker, BTM sites with their real load data sets) and the ingest
worker that stores their telemetry, on one accelerated clock shared with the operator.
The real prices are imported by :mod:`fleet.data.prices`.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import sqlalchemy as sa

from fleet.domain import Fleet, Site
from fleet.ops.clock import AcceleratedClock
from fleet.ops.loads import load_profile_mw
from fleet.store.heartbeats import Heartbeat, WorkerCounters
from fleet.store.telemetry import SqlTelemetrySink
from telemetry.ingest import IngestOptions, IngestWorker
from telemetry.registry import site_spec_from
from telemetry.simulator import SimOptions, Simulator, SiteGateway


def load_profile(site: Site, shared: Path) -> Callable[[int], float]:
    """Return a behind-the-meter site's facility load [MW] at a time [ms] from its data set."""
    tz = ZoneInfo(site.timezone)
    cache: dict[dt.date, np.ndarray] = {}

    def load(now_ms: int) -> float:
        local = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).astimezone(tz)
        day = local.date()
        if day not in cache:
            cache[day] = load_profile_mw(site, day, shared, 15, 96)
        i = min(95, (local.hour * 60 + local.minute) // 15)
        return float(cache[day][i])

    return load


@dataclass
class World:
    """Gateways and an ingest worker on one accelerated clock."""

    fleet: Fleet
    mqtt_url: str
    engine: sa.Engine
    clock: AcceleratedClock
    shared: Path
    rate_hz: float = 8.0
    soc_initial: dict[str, float] = field(default_factory=dict)
    protocol: str = "5"
    """MQTT protocol of the broker (``5``, or ``3.1.1`` for amqtt)."""
    seed: int = 0
    client_id: str = "e2e-ingest-1"
    simulator: Simulator | None = None
    ingest: IngestWorker | None = None
    heartbeat: Heartbeat | None = None
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        """Start the ingest worker (with its heartbeat) and the gateways."""
        sink = SqlTelemetrySink(self.engine)
        worker = self.ingest = IngestWorker(
            self.mqtt_url,
            sink,
            IngestOptions(client_id=self.client_id, protocol=self.protocol),
            clock=self.clock.now_ms,
        )
        self.heartbeat = Heartbeat(
            self.engine,
            self.client_id,
            lambda: WorkerCounters(
                worker.stats.received, worker.stats.committed_messages, None
            ),
        )
        self.heartbeat.start()
        self._thread(worker.run_forever, "world-ingest")
        loads = {
            str(s.id): load_profile(s, self.shared)
            for s in self.fleet.sites
            if s.is_btm
        }
        sim = self.simulator = Simulator(
            [site_spec_from(s) for s in self.fleet.sites],
            self.mqtt_url,
            SimOptions(
                rate_hz=self.rate_hz,
                seed=self.seed,
                comm_loss_per_h=0.0,
                cell_alarm_per_h=0.0,
                local_amplitude=0.0,
                history_samples=20_000,
                protocol=self.protocol,
            ),
            soc_initial=self.soc_initial,
            loads=loads,
            started_ms=self.clock.now_ms(),
        )
        self._thread(
            lambda: sim.run(clock_ms=self.clock.now_ms, drain_timeout_s=5.0),
            "world-gateways",
        )

    def _thread(self, target: Callable[[], object], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def gateway(self, site_id: str) -> SiteGateway:
        """Return one site's simulated gateway."""
        assert self.simulator is not None
        return next(g for g in self.simulator.gateways if g.spec.site_id == site_id)

    def stop(self) -> None:
        """Stop gateways, ingest and heartbeat."""
        if self.simulator is not None:
            self.simulator.stop()
        if self.ingest is not None:
            self.ingest._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        if self.heartbeat is not None:
            self.heartbeat.stop()
