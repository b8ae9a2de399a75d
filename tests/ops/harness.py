"""A simulated world for operating-day tests: real prices, gateways, ingest, one clock.

The world is what the operator does not own: the market's real prices (imported as a
user would), the site gateways (the telemetry simulator over a real broker) and the
ingest worker that stores their telemetry. Everything runs on one accelerated clock
that the operator process shares through ``--clock-start/--speed/--clock-anchor``.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from fleet.domain import Fleet, Site
from fleet.ops.clock import AcceleratedClock
from fleet.store.heartbeats import Heartbeat, WorkerCounters
from fleet.store.prices import insert_prices
from fleet.store.telemetry import SqlTelemetrySink
from telemetry.ingest import IngestOptions, IngestWorker
from telemetry.registry import site_spec_from
from telemetry.simulator import SimOptions, Simulator

CAISO_SHIFT_DAYS = 1827
"""The CAISO example year is 2020: replayed 261 weeks later (same weekdays, 2025)."""

ERCOT_FILES = (
    ("ercot_da_spp", "usd_per_mwh"),
    ("ercot_as_mcpc", "usd_per_mw"),
    ("ercot_rt_da_hourly_15sp_2024_2026", None),
)
CAISO_FILES = (("caiso_dervet_example_2020", None),)


def _frames(folder: Path, unit: str | None) -> list[pd.DataFrame]:
    out = []
    for path in sorted(folder.glob("*.csv*")):
        raw = pd.read_csv(path)
        value_col = (
            "price_usd_per_mwh" if "price_usd_per_mwh" in raw else "price_usd_per_mw"
        )
        frame = pd.DataFrame(
            {
                "market": raw["market"],
                "node": raw["node"],
                "product": raw["product"],
                "ts": pd.to_datetime(raw["timestamp_utc"], utc=True),
                "interval_minutes": 60,
                "price": raw[value_col].astype(float),
                "unit": unit
                or (
                    "usd_per_mwh" if value_col == "price_usd_per_mwh" else "usd_per_mw"
                ),
            }
        )
        out.append(frame)
    return out


def import_replay_prices(
    engine: object, shared: Path, first: dt.date, last: dt.date, history_days: int = 30
) -> dict[str, int]:
    """Import the real prices a replay of ``first..last`` needs (as a user would).

    ERCOT day-ahead energy, AS clearing prices and real-time energy from the shared
    data; the CAISO example year shifted by :data:`CAISO_SHIFT_DAYS`.
    """
    lo = pd.Timestamp(first, tz="UTC") - pd.Timedelta(days=history_days + 2)
    hi = pd.Timestamp(last, tz="UTC") + pd.Timedelta(days=3)
    counts: dict[str, int] = {}
    for market, files, shift in (
        ("ERCOT", ERCOT_FILES, 0),
        ("CAISO", CAISO_FILES, CAISO_SHIFT_DAYS),
    ):
        parts = []
        for name, unit in files:
            for frame in _frames(shared / name, unit):
                frame["ts"] = frame["ts"] + pd.Timedelta(days=shift)
                parts.append(frame[(frame["ts"] >= lo) & (frame["ts"] < hi)])
        frame = pd.concat(parts, ignore_index=True)
        frame = frame.drop_duplicates(["market", "node", "product", "ts"], keep="last")
        counts[market] = insert_prices(engine, frame, source=f"shared data ({market})")  # type: ignore[arg-type]
    return counts


def load_profile(site: Site, shared: Path) -> Callable[[int], float]:
    """Return a behind-the-meter site's facility load [MW] at a time [ms] from its data set."""
    from fleet.demo.data import load_profile_mw

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
    engine: object
    clock: AcceleratedClock
    shared: Path
    rate_hz: float = 8.0
    soc_initial: dict[str, float] = field(default_factory=dict)
    simulator: Simulator | None = None
    ingest: IngestWorker | None = None
    heartbeat: Heartbeat | None = None
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        """Start the ingest worker (with its heartbeat) and the gateways."""
        sink = SqlTelemetrySink(self.engine)  # type: ignore[arg-type]
        self.ingest = IngestWorker(
            self.mqtt_url,
            sink,
            IngestOptions(client_id="e2e-ingest-1"),
            clock=self.clock.now_ms,
        )
        worker = self.ingest
        self.heartbeat = Heartbeat(
            self.engine,  # type: ignore[arg-type]
            "e2e-ingest-1",
            lambda: WorkerCounters(
                worker.stats.received, worker.stats.committed_messages, None
            ),
        )
        self.heartbeat.start()
        t = threading.Thread(target=worker.run_forever, name="e2e-ingest", daemon=True)
        t.start()
        self._threads.append(t)
        loads = {
            s.id: load_profile(s, self.shared) for s in self.fleet.sites if s.is_btm
        }
        self.simulator = Simulator(
            [site_spec_from(s) for s in self.fleet.sites],
            self.mqtt_url,
            SimOptions(
                rate_hz=self.rate_hz,
                comm_loss_per_h=0.0,
                cell_alarm_per_h=0.0,
                local_amplitude=0.0,
                history_samples=20_000,
            ),
            soc_initial=self.soc_initial,
            loads=loads,
            started_ms=self.clock.now_ms(),
        )
        sim = self.simulator
        t = threading.Thread(
            target=lambda: sim.run(clock_ms=self.clock.now_ms, drain_timeout_s=5.0),
            name="e2e-gateways",
            daemon=True,
        )
        t.start()
        self._threads.append(t)

    def gateway(self, site_id: str):  # type: ignore[no-untyped-def]
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
