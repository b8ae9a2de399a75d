"""What the operator does not own, simulated: real prices, site gateways and the ingest.

The world of the demo and of the operating-day tests: the market's real prices
(imported as a user would), the site gateways (the telemetry simulator over a real
broker) and the ingest worker that stores their telemetry, all on one accelerated clock
shared with the operator.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import sqlalchemy as sa

from fleet.domain import Fleet, Site
from fleet.errors import FleetInputError
from fleet.ops.clock import AcceleratedClock
from fleet.ops.loads import load_profile_mw
from fleet.store.dml import Bind
from fleet.store.heartbeats import Heartbeat, WorkerCounters
from fleet.store.price_csv import read_price_csv
from fleet.store.prices import insert_prices
from fleet.store.telemetry import SqlTelemetrySink
from telemetry.ingest import IngestOptions, IngestWorker
from telemetry.registry import site_spec_from
from telemetry.simulator import SimOptions, Simulator, SiteGateway

CAISO_SHIFT_DAYS = 1827
"""The CAISO example year is 2020: replayed 261 weeks later (same weekdays, 2025)."""

LAYOUTS: dict[str, tuple[tuple[str, tuple[str, ...], int], ...]] = {
    "shared": (
        (
            "ERCOT",
            ("ercot_da_spp", "ercot_as_mcpc", "ercot_rt_da_hourly_15sp_2024_2026"),
            0,
        ),
        ("CAISO", ("caiso_dervet_example_2020",), CAISO_SHIFT_DAYS),
    ),
    # fleet/data/sample: the CAISO year is already shifted onto 2025 there
    "sample": (("ERCOT", ("ercot",), 0), ("CAISO", ("caiso",), 0)),
}
"""Price folders (and day shift) per market, in the shared data and in the sample."""


def _frames(folder: Path) -> list[pd.DataFrame]:
    out = []
    for path in sorted(folder.glob("*.csv*")):
        raw = pd.read_csv(path)
        mwh = "price_usd_per_mwh" in raw
        out.append(
            pd.DataFrame(
                {
                    "market": raw["market"],
                    "node": raw["node"],
                    "product": raw["product"],
                    "ts": pd.to_datetime(raw["timestamp_utc"], utc=True),
                    "interval_minutes": 60,
                    "price": raw["price_usd_per_mwh" if mwh else "price_usd_per_mw"],
                    "unit": "usd_per_mwh" if mwh else "usd_per_mw",
                }
            )
        )
    return out


def import_replay_prices(
    engine: Bind, shared: Path, first: dt.date, last: dt.date, history_days: int = 30
) -> dict[str, int]:
    """Import the real prices a replay of ``first..last`` needs (as a user would).

    ERCOT day-ahead energy, AS clearing prices and real-time energy, and the CAISO
    example year shifted by :data:`CAISO_SHIFT_DAYS`, from the shared data folder
    ``shared`` or the package's sample (``fleet/data/sample``, same files, cut).

    Raises
    ------
    FleetInputError
        When the folder holds neither layout, or no price of a market in the window.
    """
    layout = "shared" if (shared / "caiso_dervet_example_2020").is_dir() else "sample"
    lo = pd.Timestamp(first, tz="UTC") - pd.Timedelta(days=history_days + 2)
    hi = pd.Timestamp(last, tz="UTC") + pd.Timedelta(days=3)
    counts: dict[str, int] = {}
    for market, folders, shift in LAYOUTS[layout]:
        parts = []
        for name in folders:
            for frame in _frames(shared / name):
                frame["ts"] = frame["ts"] + pd.Timedelta(days=shift)
                parts.append(frame[(frame["ts"] >= lo) & (frame["ts"] < hi)])
        if not parts or all(p.empty for p in parts):
            msg = f"--prices-dir {shared}: no {market} prices for {first}..{last}"
            raise FleetInputError(msg)
        frame = pd.concat(parts, ignore_index=True)
        frame = frame.drop_duplicates(["market", "node", "product", "ts"], keep="last")
        counts[market] = insert_prices(
            engine, frame, source=f"{layout} data ({market})"
        )
    return counts


def import_price_csvs(engine: Bind, paths: Sequence[Path]) -> int:
    """Import a user's price CSVs (normalized layout, validated); return rows stored."""
    frames = [read_price_csv(p).frame for p in paths]
    frame = pd.concat(frames, ignore_index=True)
    if frame.empty:
        msg = f"--prices: no good price rows in {', '.join(map(str, paths))}"
        raise FleetInputError(msg)
    return insert_prices(engine, frame, source="your price CSV")


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
