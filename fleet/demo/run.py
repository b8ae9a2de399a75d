"""Orchestrate the demo: services, forecasts, plans, bids, awards, intraday, summary."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import paho.mqtt.client as mqtt
import pandas as pd
import sqlalchemy as sa

from dispatch.bidcheck import Refusal, check_bid_set
from dispatch.bids import Bid, BidSet, build_bids
from dispatch.markets import load_market_rules
from dispatch.result import Result
from dispatch.scenario import Scenario
from dispatch.solve import SolveOptions, solve
from fleet.config import Settings
from fleet.demo.api import ApiProbe, ApiServer
from fleet.demo.broker import BrokerHandle, free_port, start_broker
from fleet.demo.data import (
    SYSTEM_NODE,
    choose_days,
    find_price_files,
    import_prices,
    local_day_hours,
    needed_series,
    read_prices,
)
from fleet.demo.forecasts import SeriesForecast, forecast_all
from fleet.demo.market import Awards, Settlement, clear_bids, settle
from fleet.demo.planning import (
    INTERVAL_MINUTES,
    PER_HOUR,
    MarketDay,
    baseline_bill_usd,
    build_scenario,
    market_day,
)
from fleet.demo.plant import DemoClock, FleetPlant, wall_ms
from fleet.domain import Fleet, Site
from fleet.errors import FleetInputError
from fleet.fleetfile import load_fleet
from fleet.store import keys as key_store
from fleet.store import migrate
from fleet.store.bids import save_awards, save_bid_set
from fleet.store.engine import make_engine
from fleet.store.schedules import save_schedule
from fleet.store.sites import save_fleet
from fleet.store.telemetry import SqlTelemetrySink, record_setpoint
from fleet.store.telemetry_tables import tlm_latest, tlm_measurements, tlm_quarantine
from forecasting.degradation.aging import ThroughputAging
from telemetry.ingest import IngestOptions, IngestWorker, make_client
from telemetry.registry import SiteRegistry, SiteSpec, site_spec_from
from telemetry.setpoints import SetpointPublisher, build_setpoint

logger = logging.getLogger(__name__)

STAGES: tuple[str, ...] = (
    "broker",
    "store",
    "api",
    "gateways",
    "prices",
    "forecasts",
    "day-ahead",
    "bids",
    "awards",
    "intraday",
    "settlement",
)
"""The demo's stages in order (what the progress display shows)."""
DAY_S = 86_400.0
DEFAULT_SPEED = 720.0
"""Simulated seconds per wall second: a 24-hour day plays in two minutes."""


class Reporter(Protocol):
    """Receives progress (the CLI draws it with rich)."""

    def start(self, stage: str, total: int | None, text: str) -> None:
        """Begin a stage of ``total`` steps (None when unknown)."""

    def advance(self, stage: str, steps: int = 1, text: str | None = None) -> None:
        """Advance a stage."""

    def done(self, stage: str, text: str) -> None:
        """End a stage with its outcome."""


class _NullReporter:
    def start(self, stage: str, total: int | None, text: str) -> None:
        logger.info("%s: %s", stage, text)

    def advance(self, stage: str, steps: int = 1, text: str | None = None) -> None:
        del stage, steps, text

    def done(self, stage: str, text: str) -> None:
        logger.info("%s: %s", stage, text)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """How to run the demo (the CLI's options)."""

    fleet_file: Path
    """Fleet file (.toml/.yaml)."""
    prices_dir: Path
    """Shared data folder: real prices and the behind-the-meter load profiles."""
    prices_csv: tuple[Path, ...] = ()
    """Price CSVs (normalized layout) to use instead of the shared data's."""
    folder: Path | None = None
    """Run folder; ``var/demo-<UTC time>`` when None."""
    sites: int | None = None
    """Take the first N sites of the fleet file (all when None)."""
    hours: int = 24
    """Hours of the operating day to play (1-24)."""
    speed: float = DEFAULT_SPEED
    """Simulated seconds per wall second."""
    day: dt.date | None = None
    """Operating day to replay (each market's latest complete day when None)."""
    mqtt_url: str | None = None
    """Broker to use (``BESSFLEET_MQTT_URL``); an embedded one starts when None."""
    broker: str = "auto"
    """Embedded broker: ``auto``, ``mosquitto`` or ``amqtt``."""
    database_url: str | None = None
    """Store URL (a fresh SQLite file in the run folder when None)."""
    api_host: str = "127.0.0.1"
    """Interface the API listens on."""
    api_port: int | None = None
    """API port (a free one when None)."""
    rate_hz: float | None = None
    """Telemetry samples per second per device (from the speed when None)."""
    resolve_every: int = PER_HOUR
    """Intraday re-solve period [intervals]."""
    seed: int = 0
    """Random seed of the gateways (faults, noise)."""
    price_source: str = ""
    """Where the prices come from, as the summary says it."""

    def check(self) -> None:
        """Raise FleetInputError naming the first option out of range."""
        if not 1 <= self.hours <= 24:
            msg = f"--hours={self.hours} must be within 1..24"
            raise FleetInputError(msg)
        if not 1 <= self.speed <= 100_000:
            msg = f"--speed={self.speed} must be within 1..100000 (simulated s per s)"
            raise FleetInputError(msg)
        if self.sites is not None and self.sites < 1:
            msg = f"--sites={self.sites} must be >= 1"
            raise FleetInputError(msg)
        if self.rate_hz is not None and not 0.1 <= self.rate_hz <= 200:
            msg = f"--rate-hz={self.rate_hz} must be within 0.1..200"
            raise FleetInputError(msg)
        if not 1 <= self.resolve_every <= 96:
            msg = f"--resolve-every={self.resolve_every} must be within 1..96 intervals"
            raise FleetInputError(msg)

    @property
    def effective_rate_hz(self) -> float:
        """Samples per second: at least 5 plant steps per dispatch interval."""
        if self.rate_hz is not None:
            return self.rate_hz
        per_interval_s = INTERVAL_MINUTES * 60 / self.speed
        return float(min(50.0, max(2.0, 5.0 / per_interval_s)))


@dataclass(slots=True)
class DemoSummary:
    """What the demo did and measured (printed as a table, written as JSON)."""

    folder: str = ""
    price_source: str = ""
    broker: str = ""
    broker_url: str = ""
    database_url: str = ""
    api_url: str = ""
    dashboard_url: str = ""
    viewer_key: str = ""
    days: dict[str, str] = field(default_factory=dict)
    hours: int = 0
    speed: float = 0.0
    sites: list[str] = field(default_factory=list)
    sites_dispatched: list[str] = field(default_factory=list)
    sites_moving_energy: list[str] = field(default_factory=list)
    forecasts: list[dict[str, Any]] = field(default_factory=list)
    day_ahead_objective_usd: dict[str, float] = field(default_factory=dict)
    bids: int = 0
    bid_refusals: int = 0
    awards: int = 0
    intraday_resolves: int = 0
    intraday_fallbacks: int = 0
    schedule_versions: dict[str, int] = field(default_factory=dict)
    setpoints_sent: int = 0
    setpoints_received: dict[str, int] = field(default_factory=dict)
    setpoints_accepted: dict[str, int] = field(default_factory=dict)
    revenue_usd: dict[str, float] = field(default_factory=dict)
    per_site_usd: dict[str, float] = field(default_factory=dict)
    revenue_total_usd: float = 0.0
    btm_savings_usd: float = 0.0
    degradation_usd: float = 0.0
    net_usd: float = 0.0
    perfect_foresight_usd: float = 0.0
    capture: float | None = None
    as_shortfall_mwh: float = 0.0
    energy_charged_mwh: float = 0.0
    energy_discharged_mwh: float = 0.0
    telemetry_energy_charged_mwh: float = 0.0
    telemetry_energy_discharged_mwh: float = 0.0
    soh_min: float | None = None
    telemetry_published: int = 0
    telemetry_received: int = 0
    telemetry_stored: int = 0
    telemetry_quarantined: int = 0
    telemetry_lost: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    api_ok: int = 0
    api_failed: int = 0
    api_paths: dict[str, int] = field(default_factory=dict)
    wall_seconds: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return the summary as a JSON-ready dict."""
        return asdict(self)


def default_folder() -> Path:
    """Return a fresh ``var/demo-<UTC time>`` folder path (not created)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    base = Path("var") / f"demo-{stamp}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


class Demo:
    """One run of the demo. :meth:`run` plays it; :meth:`close` stops everything."""

    def __init__(
        self,
        options: DemoOptions,
        reporter: Reporter | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        options.check()
        self.options = options
        self.reporter: Reporter = reporter or _NullReporter()
        self.stop_event = stop or threading.Event()
        self.summary = DemoSummary(hours=options.hours, speed=options.speed)
        self.folder = options.folder or default_folder()
        self.broker: BrokerHandle | None = None
        self.engine: sa.Engine | None = None
        self.api: ApiServer | None = None
        self.probe: ApiProbe | None = None
        self.ingest: IngestWorker | None = None
        self.plant: FleetPlant | None = None
        self.dispatcher: mqtt.Client | None = None
        self.publisher: SetpointPublisher | None = None
        self.fleet: Fleet | None = None
        self.sites: list[Site] = []
        self.specs: dict[str, SiteSpec] = {}
        self.days: dict[str, dt.date] = {}
        self.market_days: dict[str, MarketDay] = {}
        self.forecasts: dict[tuple[str, str, str], SeriesForecast] = {}
        self.plans: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        self.awards: dict[str, Awards] = {}
        self.versions: dict[str, int] = {}
        self._closed = False
        self._price_files: list[Path] = []
        self._t0 = time.monotonic()

    # -- helpers ---------------------------------------------------------------
    def _check_stop(self) -> None:
        if self.stop_event.is_set():
            raise KeyboardInterrupt
        if self.plant is not None and self.plant.error is not None:
            msg = f"the simulated gateways failed: {self.plant.error}"
            raise RuntimeError(msg)

    def _sleep_until_ms(self, target_ms: int) -> None:
        while True:
            self._check_stop()
            remaining = (target_ms - wall_ms()) / 1000
            if remaining <= 0:
                return
            time.sleep(min(remaining, 0.1))

    def _stage(self, name: str, t0: float) -> None:
        self.summary.wall_seconds[name] = round(time.monotonic() - t0, 2)

    @property
    def _engine(self) -> sa.Engine:
        assert self.engine is not None
        return self.engine

    # -- stages ----------------------------------------------------------------
    def run(self) -> DemoSummary:
        """Play every stage; return the summary (the API keeps running)."""
        # the price files first: no service starts when there is nothing to replay
        self._price_files = (
            list(self.options.prices_csv)
            if self.options.prices_csv
            else find_price_files(self.options.prices_dir)
        )
        missing = [str(p) for p in self._price_files if not p.is_file()]
        if missing:
            msg = f"--prices: no such file: {', '.join(missing)}"
            raise FleetInputError(msg)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.summary.folder = str(self.folder)
        for name, step in (
            ("broker", self._start_broker),
            ("store", self._start_store),
            ("api", self._start_api),
            ("gateways", self._start_gateways),
            ("prices", self._import_prices),
            ("forecasts", self._forecast),
            ("day-ahead", self._day_ahead),
            ("bids", self._bids),
            ("awards", self._awards),
            ("intraday", self._intraday),
            ("settlement", self._settle),
        ):
            self._check_stop()
            t0 = time.monotonic()
            step()
            self._stage(name, t0)
        self.summary.wall_seconds["total"] = round(time.monotonic() - self._t0, 2)
        path = self.folder / "summary.json"
        path.write_text(
            json.dumps(self.summary.to_json(), indent=1, default=str) + "\n"
        )
        self.summary.files["summary"] = str(path)
        return self.summary

    def _start_broker(self) -> None:
        r = self.reporter
        r.start("broker", None, "starting the MQTT broker")
        self.broker = start_broker(
            self.folder, external_url=self.options.mqtt_url, prefer=self.options.broker
        )
        self.summary.broker = self.broker.kind
        self.summary.broker_url = self.broker.url
        r.done(
            "broker", f"{self.broker.kind} at {self.broker.url} ({self.broker.detail})"
        )

    def _start_store(self) -> None:
        r = self.reporter
        url = (
            self.options.database_url or f"sqlite:///{self.folder / 'bessfleet.sqlite'}"
        )
        r.start("store", None, "migrating the store")
        migrate.upgrade(url)
        self.engine = make_engine(url)
        fleet = load_fleet(self.options.fleet_file)
        sites = list(fleet.sites)
        if self.options.sites is not None:
            sites = sites[: self.options.sites]
        ids = {s.id for s in sites}
        groups = [
            g for g in fleet.poi_groups if set(fleet.poi_group_sites(g.name)) <= ids
        ]
        self.fleet = fleet.model_copy(update={"sites": sites, "poi_groups": groups})
        self.sites = sites
        self.specs = {s.id: site_spec_from(s) for s in sites}
        save_fleet(self.engine, self.fleet)
        with self.engine.begin() as conn:
            new = key_store.create_key(conn, role="viewer", note="bessfleet demo")
        self.summary.viewer_key = new.secret
        self.summary.database_url = self.engine.url.render_as_string(hide_password=True)
        self.summary.sites = [s.id for s in sites]
        r.done("store", f"{self.summary.database_url}: {len(sites)} sites, viewer key")

    def _start_api(self) -> None:
        r = self.reporter
        assert self.broker is not None
        r.start("api", None, "starting the API and dashboard")
        settings = Settings(
            database_url=str(self._engine.url.render_as_string(hide_password=False)),
            mqtt_url=self.broker.url,
        )
        port = self.options.api_port or free_port()
        self.api = ApiServer(settings, self.options.api_host, port)
        self.api.start()
        self.summary.api_url = self.api.url
        self.summary.dashboard_url = f"{self.api.url}/"
        paths = ["/readyz", "/v1/fleet", "/v1/sites"]
        paths += [f"/v1/sites/{s.id}/state" for s in self.sites[:3]]
        self.probe = ApiProbe(
            self.api.url, self.summary.viewer_key, paths, period_s=1.0
        )
        self.probe.start()
        r.done("api", f"{self.api.url} (dashboard at /)")

    def _start_gateways(self) -> None:
        r = self.reporter
        assert self.broker is not None
        r.start("gateways", len(self.sites), "connecting ingest and site gateways")
        sink = SqlTelemetrySink(self._engine)
        self.ingest = IngestWorker(
            self.broker.url,
            sink,
            IngestOptions(
                client_id=f"bessfleet-demo-{self.folder.name}"[:64],
                protocol=self.broker.protocol,
            ),
        )
        self.ingest.start()
        if not self.ingest.wait_connected(15.0):
            msg = f"the ingest worker could not connect to {self.broker.url}"
            raise RuntimeError(msg)
        clock_days: list[Callable[[], float]] = []

        def _aging(site: Site) -> Callable[[float, float, float], float]:
            model = ThroughputAging(site.battery.energy_mwh, window_h=1.0)

            def hook(_t_days: float, throughput_mwh: float, soc: float) -> float:
                plant = self.plant
                days = (
                    plant.clock.sim_days(wall_ms())
                    if plant is not None and plant.clock
                    else 0.0
                )
                return model(days, throughput_mwh, soc)

            return hook

        del clock_days
        self.plant = FleetPlant(
            list(self.specs.values()),
            self.broker.url,
            protocol=self.broker.protocol,
            rate_hz=self.options.effective_rate_hz,
            intervals=self.options.hours * PER_HOUR,
            soc_initial={s.id: s.battery.soc_initial for s in self.sites},
            aging={s.id: _aging(s) for s in self.sites},
            seed=self.options.seed,
        )
        if not self.plant.connect():
            msg = f"not every simulated gateway connected to {self.broker.url}"
            raise RuntimeError(msg)
        r.advance("gateways", len(self.sites))
        address = self.ingest.address
        client = make_client(
            address,
            client_id=f"bessfleet-dispatch-{self.folder.name}"[:64],
            protocol=self.broker.protocol,
            persistent=False,
        )
        client.connect(address.host, address.port, keepalive=30)
        client.loop_start()
        self.dispatcher = client
        self.publisher = SetpointPublisher(client, SiteRegistry.of(self.specs.values()))
        r.done(
            "gateways",
            f"{len(self.sites)} gateways online, ingest ({self.broker.protocol}) "
            f"and dispatcher connected; {self.options.effective_rate_hz:g} samples/s "
            "per device",
        )

    def _nodes_by_market(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for site in self.sites:
            nodes = out.setdefault(site.market.value, set())
            if not (site.is_btm and not site.wholesale_services):
                nodes.add(site.node)
        return out

    def _import_prices(self) -> None:
        r = self.reporter
        files = self._price_files
        r.start("prices", len(files), f"reading {len(files)} price files")
        frame = read_prices(files)
        r.advance("prices", len(files))
        nodes = self._nodes_by_market()
        for market, names in nodes.items():
            if not names:
                # behind-the-meter only: the day needs no wholesale series
                names.add(next(s.node for s in self.sites if s.market.value == market))
        self.days = choose_days(frame, nodes, self.options.day)
        rows = import_prices(self._engine, frame, nodes, self.days)
        for market, day in self.days.items():
            sites = [s for s in self.sites if s.market.value == market]
            self.market_days[market] = market_day(
                self.fleet or load_fleet(self.options.fleet_file),
                sites,
                market,
                day,
                self.options.hours,
                self.options.prices_dir,
                local_day_hours(day, market),
            )
        self.summary.days = {m: d.isoformat() for m, d in self.days.items()}
        self.summary.price_source = self.options.price_source or (
            f"{len(files)} CSV file(s) from {self.options.prices_dir}"
        )
        days = ", ".join(f"{m} {d}" for m, d in sorted(self.days.items()))
        r.done("prices", f"{len(frame):,} rows read, {rows:,} stored; days: {days}")

    def _forecast(self) -> None:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        r = self.reporter
        nodes = self._nodes_by_market()
        series = [
            (market, node, product)
            for market in sorted(self.days)
            for node, product in needed_series(market, nodes[market])
        ]
        r.start("forecasts", len(series), "training quantile forecasters")

        def _done(fc: SeriesForecast) -> None:
            r.advance("forecasts", 1, f"{fc.market} {fc.node} {fc.product}")
            self.summary.forecasts.append(
                {
                    "market": fc.market,
                    "node": fc.node,
                    "product": fc.product,
                    "model_version": fc.model_version,
                    "mae": round(fc.mae, 3),
                }
            )

        # one thread per fit: several OpenMP pools on a shared machine thrash
        with threadpool_limits(1):
            self.forecasts = forecast_all(
                self._engine, series, self.days, on_done=_done
            )
        r.done("forecasts", f"{len(series)} series forecast (P10/P50/P90), stored")

    def _prices(self, market: str, which: str) -> dict[tuple[str, str], np.ndarray]:
        out: dict[tuple[str, str], np.ndarray] = {}
        n = len(self.market_days[market].hours)
        for (m, node, product), fc in self.forecasts.items():
            if m == market:
                out[(node, product)] = np.asarray(getattr(fc, which), dtype=float)[:n]
        return out

    def _as_node(self, market: str) -> dict[str, str]:
        md = self.market_days[market]
        node = SYSTEM_NODE if market == "ERCOT" else md.sites[0].node
        return dict.fromkeys(("reg_up", "reg_down", "spin"), node)

    def _save(self, market: str, scn: Scenario, res: Result, actor: str) -> int:
        md = self.market_days[market]
        rows = []
        for sid, sched in res.sites.items():
            ts = pd.date_range(
                scn.start, periods=scn.intervals, freq=f"{INTERVAL_MINUTES}min"
            )
            rows.append(
                pd.DataFrame(
                    {
                        "site_id": sid,
                        "ts": ts,
                        "charge_mw": sched.charge_mw,
                        "discharge_mw": sched.discharge_mw,
                        "reg_up_mw": sched.reg_up_mw,
                        "reg_down_mw": sched.reg_down_mw,
                        "spin_mw": sched.spin_mw,
                        "soc": sched.soc[:-1],
                        "energy_value_usd_per_mwh": sched.energy_value_usd_per_mwh,
                    }
                )
            )
        version = save_schedule(
            self._engine,
            market=market,
            operating_day=md.day,
            status=str(res.status),
            scenario=scn.model_dump(mode="json", by_alias=True, exclude_none=True),
            result=res.to_json_dict(),
            objective_usd=res.objective_usd,
            solve_path=res.solve.path,
            intervals=pd.concat(rows, ignore_index=True) if rows else None,
            actor=actor,
        )
        self.versions[market] = version
        self.summary.schedule_versions[market] = version
        return version

    def _day_ahead(self) -> None:
        r = self.reporter
        r.start(
            "day-ahead", len(self.days) * 3, "solving day-ahead plans (P10/P50/P90)"
        )
        self._alternatives: dict[str, list[tuple[Scenario, Result]]] = {}
        self._da: dict[str, tuple[Scenario, Result]] = {}
        for market in sorted(self.days):
            md = self.market_days[market]
            results = {}
            for q in ("p50", "p10", "p90"):
                # hourly, as the day-ahead market clears: the bids are the plan
                scn = build_scenario(md, self._prices(market, q), hourly=True)
                res = solve(scn, SolveOptions(time_limit_s=60.0))
                results[q] = (scn, res)
                r.advance("day-ahead", 1, f"{market} {q}: {res.status}")
            scn, res = results["p50"]
            if not res.sites:
                msg = f"{market} day-ahead solve: {res.status} ({res.reason})"
                raise RuntimeError(msg)
            self._da[market] = (scn, res)
            self._alternatives[market] = [
                results[q] for q in ("p10", "p90") if results[q][1].sites
            ]
            self._save(market, scn, res, actor="demo.day-ahead")
            hours = np.arange(len(md.hours) + 1, dtype=float)
            quarters = np.arange(md.intervals + 1, dtype=float) / PER_HOUR
            self.plans[market] = {
                sid: {
                    "charge": np.repeat(np.asarray(s.charge_mw, dtype=float), PER_HOUR),
                    "discharge": np.repeat(
                        np.asarray(s.discharge_mw, dtype=float), PER_HOUR
                    ),
                    "reg_up": np.repeat(np.asarray(s.reg_up_mw, dtype=float), PER_HOUR),
                    "reg_down": np.repeat(
                        np.asarray(s.reg_down_mw, dtype=float), PER_HOUR
                    ),
                    "spin": np.repeat(np.asarray(s.spin_mw, dtype=float), PER_HOUR),
                    "soc": np.interp(quarters, hours, np.asarray(s.soc, dtype=float)),
                }
                for sid, s in res.sites.items()
            }
            self.summary.day_ahead_objective_usd[market] = round(
                res.objective_usd or 0.0, 2
            )
            (self.folder / f"dayahead-{market.lower()}.scenario.json").write_text(
                json.dumps(
                    scn.model_dump(mode="json", by_alias=True, exclude_none=True)
                )
            )
            res.write(self.folder / f"dayahead-{market.lower()}.result.json")
            self.summary.files[f"dayahead_{market.lower()}"] = str(
                self.folder / f"dayahead-{market.lower()}.result.json"
            )
        text = ", ".join(
            f"{m} ${self.summary.day_ahead_objective_usd[m]:,.0f}"
            for m in sorted(self.days)
        )
        r.done("day-ahead", f"plans stored (objective at P50: {text})")

    def _bids(self) -> None:
        r = self.reporter
        r.start("bids", len(self._da), "building and checking bids")
        self._bid_sets: dict[str, BidSet] = {}
        for market, (scn, res) in sorted(self._da.items()):
            md = self.market_days[market]
            rules = load_market_rules(market)
            bid_set = build_bids(
                scn,
                res,
                rules,
                md.day,
                alternatives=self._alternatives[market],
                note=f"demo day-ahead schedule v{self.versions[market]}",
            )
            refusals = check_bid_set(bid_set.bids, scn, rules) if bid_set.bids else []
            refused_total = len(refusals)
            for _ in range(3):
                if not refusals or not bid_set.bids:
                    break
                # keep the refused set on record, push the rest (a scheduler's fix)
                save_bid_set(
                    self._engine,
                    market=market,
                    operating_day=md.day,
                    version=self.versions[market],
                    status="refused",
                    submitted_by="demo-scheduler",
                    payload=bid_set.to_payload(),
                    refusal_reason="; ".join(str(x) for x in refusals[:5]),
                )
                bid_set = without_refused(bid_set, refusals)
                refusals = (
                    check_bid_set(bid_set.bids, scn, rules) if bid_set.bids else []
                )
                refused_total += len(refusals)
            status = "refused" if refusals else "accepted"
            if refusals:
                bid_set = BidSet(bid_set.market, bid_set.operating_day, ())
            if bid_set.bids:
                save_bid_set(
                    self._engine,
                    market=market,
                    operating_day=md.day,
                    version=self.versions[market],
                    status=status,
                    submitted_by="demo-scheduler",
                    payload=bid_set.to_payload(),
                )
            self._bid_sets[market] = bid_set
            self.summary.bids += len(bid_set.bids)
            self.summary.bid_refusals += refused_total
            r.advance("bids", 1, f"{market}: {len(bid_set.bids)} bids {status}")
        r.done(
            "bids",
            f"{self.summary.bids} bids, {self.summary.bid_refusals} refused by the checks",
        )

    def _awards(self) -> None:
        r = self.reporter
        r.start("awards", len(self._bid_sets), "clearing bids at the day's real prices")
        for market, bid_set in sorted(self._bid_sets.items()):
            md = self.market_days[market]
            awards = clear_bids(
                bid_set,
                md,
                self._prices(market, "actual"),
                self.versions[market],
                self._as_node(market),
            )
            self.awards[market] = awards
            if not awards.frame.empty:
                self.summary.awards += save_awards(self._engine, awards.frame)
            r.advance("awards", 1, f"{market}: {len(awards.frame)} awards")
        r.done(
            "awards", f"{self.summary.awards} awards stored (cleared at real prices)"
        )

    # -- intraday ----------------------------------------------------------------
    def _telemetered_soc(self) -> dict[str, float]:
        query = sa.select(tlm_latest.c.site_id, tlm_latest.c.soc_pct).where(
            tlm_latest.c.dev_id == "bank1", tlm_latest.c.soc_pct.is_not(None)
        )
        with self._engine.connect() as conn:
            return {
                row.site_id: float(row.soc_pct) / 100 for row in conn.execute(query)
            }

    def _resolve(self, first: int) -> None:
        assert self.plant is not None
        soc = self._telemetered_soc()
        delta_h = INTERVAL_MINUTES / 60
        for market, md in sorted(self.market_days.items()):
            plan = self.plans[market]
            # telemetered now (early in interval first-1), plus what the plan still
            # moves in that interval
            soc0: dict[str, float] = {
                s.id: soc[s.id]
                + float(plan[s.id]["soc"][first] - plan[s.id]["soc"][first - 1])
                if s.id in soc
                else float(plan[s.id]["soc"][first])
                for s in md.sites
            }
            peaks: dict[str, float] = {}
            for s in md.sites:
                if s.is_btm and s.id in md.btm_load_mw:
                    done = first - 1  # metered intervals so far
                    net = (
                        self.plant.export_mwh[s.id][:done]
                        - self.plant.import_mwh[s.id][:done]
                    ) / delta_h
                    grid = md.btm_load_mw[s.id][:done] - net
                    peaks[s.id] = float(max(0.0, grid.max())) if done > 0 else 0.0
            awards = self.awards[market].service_mw
            kept = {
                sid: {k: np.minimum(v, plan[sid][k]) for k, v in per.items()}
                for sid, per in awards.items()
            }
            # awards first; then with the end-of-day SoC relaxed; then the awards the
            # plan can still hold; last, no commitments (the shortfall is reported)
            attempts: list[tuple[dict[str, dict[str, np.ndarray]] | None, bool]] = [
                (awards, False),
                (awards, True),
                ({}, True),  # the sites that can still hold their awards (lazily)
                (kept, True),
                (None, True),
            ]
            res: Result | None = None
            scn: Scenario | None = None
            used = 0
            for index, (attempt, relax) in enumerate(attempts):
                used = index
                if index == 2:
                    attempt = self._holdable(md, first, soc0, peaks, awards)
                scn = build_scenario(
                    md,
                    self._prices(market, "actual"),
                    first=first,
                    soc_initial=soc0,
                    awards=attempt,
                    peak_so_far_mw=peaks,
                    as_prices=False,
                    relax_terminal=relax,
                )
                res = solve(scn, SolveOptions(time_limit_s=20.0))
                if res.sites:
                    break
                logger.info(
                    "%s intraday from %d (attempt %d): %s",
                    market,
                    first,
                    index,
                    res.reason,
                )
                if index == 0:
                    path = (
                        self.folder
                        / f"intraday-{market.lower()}-{first}.infeasible.json"
                    )
                    path.write_text(
                        json.dumps(
                            scn.model_dump(
                                mode="json", by_alias=True, exclude_none=True
                            )
                        )
                    )
            if res is None or scn is None or not res.sites:
                self.summary.intraday_fallbacks += 1
                logger.warning(
                    "%s intraday from %d: previous plan stands", market, first
                )
                continue
            if used >= 3:
                self.summary.intraday_fallbacks += 1
            for sid, sched in res.sites.items():
                p = plan[sid]
                p["charge"][first:] = sched.charge_mw
                p["discharge"][first:] = sched.discharge_mw
                p["soc"][first:] = sched.soc
                # what the re-solve holds of the awards (it sells no more)
                p["reg_up"][first:] = sched.reg_up_mw
                p["reg_down"][first:] = sched.reg_down_mw
                p["spin"][first:] = sched.spin_mw
            self._save(market, scn, res, actor="demo.intraday")
        self.summary.intraday_resolves += 1

    def _holdable(
        self,
        md: MarketDay,
        first: int,
        soc0: dict[str, float],
        peaks: dict[str, float],
        awards: dict[str, dict[str, np.ndarray]],
    ) -> dict[str, dict[str, np.ndarray]]:
        """Return the awards of the sites that can still hold theirs alone."""
        out = {}
        actual = self._prices(md.market, "actual")
        for sid, per in awards.items():
            single = MarketDay(
                market=md.market,
                day=md.day,
                sites=tuple(s for s in md.sites if s.id == sid),
                hours=md.hours,
                btm_load_mw=md.btm_load_mw,
                btm_tariff_usd_per_mwh=md.btm_tariff_usd_per_mwh,
                degradation=md.degradation,
            )
            scn = build_scenario(
                single,
                actual,
                first=first,
                soc_initial=soc0,
                awards={sid: per},
                peak_so_far_mw=peaks,
                as_prices=False,
                relax_terminal=True,
            )
            if solve(scn, SolveOptions(time_limit_s=5.0)).sites:
                out[sid] = per
            else:
                logger.info(
                    "%s from %d: %s cannot hold its awards", md.market, first, sid
                )
        return out

    def _send_setpoints(self, i: int, clock: DemoClock) -> None:
        assert self.publisher is not None
        now = wall_ms()
        expires = max(clock.wall_ms_of(i + 1), now + 1000) + 1500
        setpoints = []
        rules = {m: load_market_rules(m) for m in self.market_days}
        for market, md in self.market_days.items():
            if i >= md.intervals:
                continue
            plan = self.plans[market]
            for site in md.sites:
                spec = self.specs[site.id]
                p = plan[site.id]
                # the plan's net power plus the regulation energy it expects deployed
                # (the mean of the AGC signal the simulated site stands in for)
                net_mw = float(
                    p["discharge"][i]
                    - p["charge"][i]
                    + rules[market].deploy_up * p["reg_up"][i]
                    - rules[market].deploy_down * p["reg_down"][i]
                )
                net_mw = min(spec.discharge_mw, max(-spec.charge_mw, net_mw))
                setpoints.append(
                    (
                        build_setpoint(
                            spec,
                            p_ac_w_setpoint=round(net_mw * 1e6, 1),
                            issued_ts=now,
                            valid_from=now,
                            expires_at=expires,
                            source=f"demo {market} v{self.versions.get(market, 0)}",
                        ),
                        self.versions.get(market),
                    )
                )
        with self._engine.begin() as conn:
            for sp, version in setpoints:
                record_setpoint(
                    conn, setpoint=sp, schedule_version=version, actor="demo.intraday"
                )
        for sp, _version in setpoints:
            self.publisher.send(sp, now_ms=now)
        self.summary.setpoints_sent += len(setpoints)

    def _intraday(self) -> None:
        assert self.plant is not None
        r = self.reporter
        n = self.options.hours * PER_HOUR
        r.start(
            "intraday",
            n,
            f"playing {self.options.hours} h at {self.options.speed:g}x "
            f"(re-solve every {self.options.resolve_every} intervals)",
        )
        clock = DemoClock(
            t0_ms=wall_ms() + 500,
            speed=self.options.speed,
            interval_s=INTERVAL_MINUTES * 60,
        )
        self.plant.start(clock)
        every = self.options.resolve_every
        for i in range(n):
            self._sleep_until_ms(clock.wall_ms_of(i))
            self._send_setpoints(i, clock)
            if (i + 1) % every == 0 and i + 1 < n:
                # re-plan from the next interval now, so its setpoints leave on time
                self._resolve(i + 1)
            hh = i * INTERVAL_MINUTES
            r.advance("intraday", 1, f"{hh // 60:02d}:{hh % 60:02d} simulated")
        self._sleep_until_ms(clock.wall_ms_of(n))
        self.plant.stop()
        self._drain()
        r.done(
            "intraday",
            f"{self.summary.setpoints_sent} setpoints sent, "
            f"{self.summary.intraday_resolves} re-solves "
            f"({self.summary.intraday_fallbacks} fallbacks)",
        )

    def _drain(self, timeout_s: float = 60.0) -> None:
        """Wait until the ingest has stored (or quarantined) every published sample."""
        assert self.plant is not None
        published = sum(self.plant.published.values())
        deadline = time.monotonic() + timeout_s
        stored = quarantined = 0
        while time.monotonic() < deadline:
            stored, quarantined = self._counts()
            if stored + quarantined >= published:
                break
            time.sleep(0.2)
        self.summary.telemetry_published = published

    def _counts(self) -> tuple[int, int]:
        with self._engine.connect() as conn:
            stored = conn.execute(
                sa.select(sa.func.count()).select_from(tlm_measurements)
            ).scalar_one()
            quarantined = conn.execute(
                sa.select(sa.func.count())
                .select_from(tlm_quarantine)
                .where(tlm_quarantine.c.topic.like("%/up/tlm/%"))
            ).scalar_one()
        return int(stored), int(quarantined)

    # -- summary -----------------------------------------------------------------
    def _settle(self) -> None:
        assert self.plant is not None
        assert self.ingest is not None
        r = self.reporter
        r.start(
            "settlement", len(self.market_days), "settling at the day's real prices"
        )
        settlement = Settlement()
        pf_value = 0.0
        for market, md in sorted(self.market_days.items()):
            actual = self._prices(market, "actual")
            plan = self.plans[market]
            held = {
                sid: {k: plan[sid][k] for k in ("reg_up", "reg_down", "spin")}
                for sid in plan
            }
            settle(
                settlement,
                md,
                actual,
                self._as_node(market),
                self.plant.export_mwh,
                self.plant.import_mwh,
                self.plant.soc_path,
                self.awards[market],
                held,
            )
            pf = solve(build_scenario(md, actual), SolveOptions(time_limit_s=60.0))
            baseline = sum(
                baseline_bill_usd(md, s.id) for s in md.sites if s.id in md.btm_load_mw
            )
            pf_value += (pf.objective_usd or 0.0) + baseline
            r.advance("settlement", 1, market)
        s = self.summary
        s.revenue_usd = {
            k: round(v, 2) for k, v in sorted(settlement.revenue_usd.items())
        }
        s.revenue_total_usd = round(sum(settlement.revenue_usd.values()), 2)
        s.per_site_usd = {k: round(v, 2) for k, v in settlement.per_site_usd.items()}
        s.btm_savings_usd = round(settlement.btm_savings_usd, 2)
        s.degradation_usd = round(settlement.degradation_usd, 2)
        s.net_usd = round(settlement.net_usd, 2)
        s.perfect_foresight_usd = round(pf_value, 2)
        s.capture = round(settlement.net_usd / pf_value, 4) if pf_value > 0 else None
        s.as_shortfall_mwh = round(settlement.as_shortfall_mwh, 3)
        s.energy_charged_mwh = round(settlement.charged_mwh, 3)
        s.energy_discharged_mwh = round(settlement.discharged_mwh, 3)
        s.setpoints_received = self.plant.setpoints_received()
        s.setpoints_accepted = self.plant.setpoints_accepted()
        # dispatched: planned by the optimizer and following its setpoints
        planned = {sid for plans in self.plans.values() for sid in plans}
        s.sites_dispatched = sorted(
            sid for sid in planned if s.setpoints_accepted.get(sid, 0) > 0
        )
        s.sites_moving_energy = sorted(
            sid for sid in planned if settlement_energy(self.plant, sid) > 1e-3
        )
        self._telemetry_figures()
        if self.probe is not None:
            s.api_ok = self.probe.stats.ok
            s.api_failed = self.probe.stats.failed
            s.api_paths = dict(self.probe.stats.paths)
        r.done("settlement", f"net ${s.net_usd:,.0f}")

    def _telemetry_figures(self) -> None:
        assert self.ingest is not None
        s = self.summary
        stored, quarantined_tlm = self._counts()
        with self._engine.connect() as conn:
            reasons = {
                row.reason: int(row.n)
                for row in conn.execute(
                    sa.select(
                        tlm_quarantine.c.reason, sa.func.count().label("n")
                    ).group_by(tlm_quarantine.c.reason)
                )
            }
            latest = conn.execute(
                sa.select(tlm_latest.c.site_id, tlm_latest.c.dev_id, tlm_latest.c.m)
            ).all()
        s.telemetry_received = self.ingest.stats.received
        s.telemetry_stored = stored
        s.telemetry_quarantined = sum(reasons.values())
        s.quarantine_reasons = reasons
        s.telemetry_lost = max(0, s.telemetry_published - stored - quarantined_tlm)
        exp = imp = 0.0
        sohs = []
        for row in latest:
            m = row.m or {}
            if row.dev_id == "pcs1":
                exp += float(m.get("e_exp_wh") or 0.0) / 1e6
                imp += float(m.get("e_imp_wh") or 0.0) / 1e6
            elif m.get("soh_pct") is not None:
                sohs.append(float(m["soh_pct"]) / 100)
        s.telemetry_energy_discharged_mwh = round(exp, 3)
        s.telemetry_energy_charged_mwh = round(imp, 3)
        s.soh_min = round(min(sohs), 6) if sohs else None

    # -- shutdown ----------------------------------------------------------------
    def close(self) -> None:
        """Stop everything this run started, in dependency order (idempotent)."""
        if self._closed:
            return
        self._closed = True
        steps: list[tuple[str, Callable[[], None]]] = []
        if self.probe is not None:
            steps.append(("api probe", self.probe.stop))
        if self.plant is not None:
            steps.append(
                ("gateways", lambda: self.plant.stop(5.0) if self.plant else None)
            )
        if self.dispatcher is not None:
            client = self.dispatcher

            def _stop_dispatcher() -> None:
                client.disconnect()
                client.loop_stop()

            steps.append(("dispatcher", _stop_dispatcher))
        if self.ingest is not None:
            steps.append(("ingest", self.ingest.stop))
        if self.api is not None:
            steps.append(("api", self.api.stop))
        if self.broker is not None:
            steps.append(("broker", self.broker.stop))
        if self.engine is not None:
            steps.append(("store", self.engine.dispose))
        for name, stop in steps:
            try:
                stop()
            except Exception:
                logger.exception("stopping %s failed", name)
        logger.info("demo stopped")


def without_refused(bid_set: BidSet, refusals: list[Refusal]) -> BidSet:
    """Return the bid set without the bids the checks refused."""

    def refused(bid: Bid) -> bool:
        return any(
            x.site_id == bid.site_id
            and (x.hour_ending is None or x.hour_ending == bid.hour_ending)
            and (x.product is None or x.product == bid.product)
            for x in refusals
        )

    kept = tuple(b for b in bid_set.bids if not refused(b))
    return BidSet(
        bid_set.market,
        bid_set.operating_day,
        kept,
        note=f"{bid_set.note or ''} (less {len(bid_set.bids) - len(kept)} refused bids)",
        meta=bid_set.meta,
    )


def settlement_energy(plant: FleetPlant, site_id: str) -> float:
    """Return the energy a site moved (charged plus discharged), metered [MWh]."""
    return float(plant.export_mwh[site_id].sum() + plant.import_mwh[site_id].sum())


__all__ = [
    "DEFAULT_SPEED",
    "STAGES",
    "Demo",
    "DemoOptions",
    "DemoSummary",
    "Reporter",
]
