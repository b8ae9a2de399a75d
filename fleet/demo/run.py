"""The demo harness: the production operator (``fleet.ops``) in a simulated world.

It starts a broker, a store, the API and the simulated gateways, and runs
:class:`fleet.ops.operator.Operator` with the replay market (bids cleared at the day's
real prices) on an accelerated clock. Every figure of the summary is read back from
the store the operator wrote (``settlements``, ``setpoints``, ``ops_runs``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from dispatch.markets import load_market_rules
from fleet.config import Settings
from fleet.data.prices import import_price_csvs, import_replay_prices
from fleet.demo.api import ApiServer
from fleet.demo.world import World
from fleet.domain import Fleet
from fleet.errors import FleetInputError
from fleet.fleetfile import load_fleet
from fleet.ops.clock import AcceleratedClock
from fleet.ops.intraday import IntradayConfig, MqttSetpointSink
from fleet.ops.operator import Operator, OperatorOptions
from fleet.ops.runs import load_runs
from fleet.ops.settlement import load_settlements, net_usd
from fleet.store import keys as key_store
from fleet.store import migrate
from fleet.store.dml import transaction
from fleet.store.engine import make_engine
from fleet.store.sites import save_fleet
from fleet.store.tables import setpoints
from fleet.store.telemetry import record_setpoint
from telemetry.broker import BrokerHandle, free_port, start_broker
from telemetry.ingest import make_client, parse_mqtt_url

logger = logging.getLogger(__name__)

DEFAULT_DAY = dt.date(2025, 4, 9)
"""A day both the shared data and the shipped sample cover with 30+ days of history."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """How to run the demo (the CLI's options)."""

    fleet_file: Path
    prices_dir: Path
    """Shared data folder or the shipped sample: prices and BTM load data sets."""
    price_source: str = ""
    """Where the prices come from, as the summary says it."""
    prices_csv: tuple[Path, ...] = ()
    """The user's price CSVs, imported instead of the folder's prices."""
    folder: Path | None = None
    sites: int | None = None
    """Only the first N sites of the fleet file."""
    day: dt.date = DEFAULT_DAY
    days: int = 1
    speed: float = 360.0
    """Simulated seconds per wall second."""
    forecast: Literal["model", "naive"] = "model"
    mqtt_url: str | None = None
    broker: str = "auto"
    database_url: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int | None = None
    rate_hz: float = 8.0
    seed: int = 0

    def check(self) -> None:
        """Raise FleetInputError naming the first option out of range."""
        if not 10 <= self.speed <= 2000:
            msg = f"--speed={self.speed} must be within 10..2000 (simulated s per s)"
            raise FleetInputError(msg)
        if not 1 <= self.days <= 7:
            msg = f"--days={self.days} must be within 1..7"
            raise FleetInputError(msg)
        if self.sites is not None and self.sites < 1:
            msg = f"--sites={self.sites} must be >= 1"
            raise FleetInputError(msg)
        if not 0.5 <= self.rate_hz <= 50:
            msg = f"--rate-hz={self.rate_hz} must be within 0.5..50"
            raise FleetInputError(msg)
        missing = [str(p) for p in self.prices_csv if not p.is_file()]
        if missing:
            msg = f"--prices: no such file: {', '.join(missing)}"
            raise FleetInputError(msg)


@dataclass(slots=True)
class DemoSummary:
    """What the operator did, read from the store (printed, and written as JSON)."""

    folder: str = ""
    price_source: str = ""
    broker: str = ""
    database_url: str = ""
    dashboard_url: str = ""
    viewer_key: str = ""
    days: list[str] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)
    revenue_usd: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per ``market day``: settled amount per item."""
    net_usd: dict[str, float] = field(default_factory=dict)
    awarded_mwh: float = 0.0
    shortfall_mwh: float = 0.0
    shortfall_usd: float = 0.0
    setpoints: dict[str, int] = field(default_factory=dict)
    setpoint_status: dict[str, int] = field(default_factory=dict)
    failed_steps: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Return the summary as a JSON-ready dict."""
        return asdict(self)


def summarize(engine: sa.Engine, summary: DemoSummary) -> None:
    """Fill the summary's figures from the ``settlements`` and ``setpoints`` tables."""
    rows = load_settlements(engine)
    if rows.empty:
        return
    for (market, day), part in rows.groupby(["market", "operating_day"]):
        key = f"{market} {day}"
        by_item = part.groupby("item")["amount_usd"].sum()
        summary.revenue_usd[key] = {k: round(float(v), 2) for k, v in by_item.items()}
        summary.net_usd[key] = round(net_usd(summary.revenue_usd[key]), 2)
    from dispatch.markets import load_market_rules

    products = {
        p
        for m in rows["market"].unique()
        for p in load_market_rules(m).reserve_services
    }
    reserve = rows[rows["item"].isin(products)]
    short = rows[rows["item"].str.startswith("as_shortfall")]
    summary.awarded_mwh = round(float(reserve["quantity"].sum()), 3)
    summary.shortfall_mwh = round(float(short["quantity"].sum()), 3)
    summary.shortfall_usd = round(-float(short["amount_usd"].sum()), 2) or 0.0
    runs = load_runs(engine)
    if not runs.empty:
        mine = runs["operating_day"].astype(str).isin(summary.days)
        bad = runs[mine & (runs["status"] != "done")]
        summary.failed_steps = [
            f"{r.market} {r.operating_day} {r.step} {r.status}"
            for r in bad.itertuples()
        ]
    with engine.connect() as conn:
        sent = conn.execute(sa.select(setpoints.c.site_id, setpoints.c.status)).all()
    for site_id, status in sent:
        summary.setpoints[site_id] = summary.setpoints.get(site_id, 0) + 1
        summary.setpoint_status[status] = summary.setpoint_status.get(status, 0) + 1


def clock_start(fleet: Fleet, day: dt.date, lead_minutes: float) -> dt.datetime:
    """Return a start shortly before the first market's day-ahead step of ``day``."""
    starts = []
    for name in {s.market.value for s in fleet.sites}:
        rules = load_market_rules(name)
        close = dt.datetime.combine(
            day - dt.timedelta(days=1),
            rules.day_ahead_close_local,
            tzinfo=ZoneInfo(rules.timezone),
        )
        starts.append(close - dt.timedelta(minutes=lead_minutes + 10))
    return min(starts).astimezone(dt.UTC)


class Demo:
    """One run of the demo: :meth:`run` plays it; :meth:`close` stops everything."""

    def __init__(
        self,
        options: DemoOptions,
        say: Callable[[str], None] = logger.info,
        stop: threading.Event | None = None,
    ) -> None:
        options.check()
        self.options = options
        self.say = say
        self.stop = stop or threading.Event()
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        self.folder = options.folder or Path("var") / f"demo-{stamp}"
        self.summary = DemoSummary(price_source=options.price_source)
        self.broker: BrokerHandle | None = None
        self.engine: sa.Engine | None = None
        self.api: ApiServer | None = None
        self.world: World | None = None
        self.clock: AcceleratedClock | None = None
        self._closers: list[Callable[[], object]] = []

    def _store(self, fleet: Fleet) -> sa.Engine:
        url = self.options.database_url or f"sqlite:///{self.folder / 'store.sqlite'}"
        migrate.upgrade(url)
        engine = self.engine = make_engine(url)
        self._closers.append(engine.dispose)
        save_fleet(engine, fleet)
        with engine.begin() as conn:
            key = key_store.create_key(conn, role="viewer", note="bessfleet demo")
        self.summary.viewer_key = key.secret
        self.summary.database_url = engine.url.render_as_string(hide_password=True)
        return engine

    def run(self) -> DemoSummary:
        """Play the configured days; return the summary (the API keeps running)."""
        o, s, t0 = self.options, self.summary, time.monotonic()
        self.folder.mkdir(parents=True, exist_ok=True)
        s.folder = str(self.folder)
        fleet = load_fleet(o.fleet_file)
        if o.sites is not None:
            ids = {x.id for x in fleet.sites[: o.sites]}
            groups = [
                g for g in fleet.poi_groups if set(fleet.poi_group_sites(g.name)) <= ids
            ]
            fleet = fleet.model_copy(
                update={"sites": fleet.sites[: o.sites], "poi_groups": groups}
            )
        s.sites = [x.id for x in fleet.sites]
        days = [o.day + dt.timedelta(days=i) for i in range(o.days)]
        s.days = [str(d) for d in days]
        broker = self.broker = start_broker(
            self.folder, external_url=o.mqtt_url, prefer=o.broker
        )
        self._closers.append(broker.stop)
        s.broker = f"{broker.kind} {broker.url}"
        self.say(f"broker: {s.broker}")
        engine = self._store(fleet)
        self.say(f"store: {s.database_url} ({len(fleet.sites)} sites)")
        if o.prices_csv:
            n = import_price_csvs(engine, o.prices_csv)
        else:
            n = sum(
                import_replay_prices(engine, o.prices_dir, days[0], days[-1]).values()
            )
        self.say(f"prices: {n:,} rows from {o.price_source}")
        api_url = engine.url.render_as_string(hide_password=False)
        settings = Settings(database_url=api_url, mqtt_url=broker.url)
        api = self.api = ApiServer(settings, o.api_host, o.api_port or free_port())
        api.start()
        self._closers.append(api.stop)
        s.dashboard_url = f"{api.url}/"
        self.say(f"api: {api.url} (dashboard at /)")
        options = OperatorOptions(
            market_mode="replay",
            forecast=o.forecast,
            data_dir=o.prices_dir,
            days=o.days,
            # wall-time budgets scaled to simulated time: the steps keep up at any speed
            # (the production 15-minute re-dispatch model: an hourly one leaves reserve
            # short where its hours straddle the award hours, docs/operations.md)
            intraday=IntradayConfig(
                stale_after_s=max(15.0, 2.5 * o.speed),
                solve_time_limit_s=1.0,
                lead_s=1.7 * o.speed,
            ),
        )
        start = clock_start(fleet, days[0], options.lead_minutes)
        clock = self.clock = AcceleratedClock(
            start, o.speed, wall_anchor_s=time.time() + 2.0
        )
        world = self.world = World(
            fleet,
            broker.url,
            engine,
            clock,
            o.prices_dir,
            rate_hz=o.rate_hz,
            soc_initial={x.id: x.battery.soc_initial for x in fleet.sites},
            protocol=broker.protocol,
            seed=o.seed,
            client_id=f"demo-ingest-{self.folder.name}"[:64],
        )
        world.start()
        self._closers.append(world.stop)
        self.say(
            f"gateways: {len(fleet.sites)} simulated sites from {start:%F %H:%M} UTC"
        )
        address = parse_mqtt_url(broker.url)
        client = make_client(
            address,
            client_id=f"demo-dispatch-{self.folder.name}"[:64],
            protocol=broker.protocol,
        )
        client.connect(address.host, address.port)
        client.loop_start()
        self._closers.append(client.loop_stop)

        def record(setpoint: Any) -> None:
            with transaction(engine) as conn:
                record_setpoint(conn, setpoint=setpoint, actor="operator")

        sink = MqttSetpointSink(client, fleet, now_ms=clock.now_ms, record=record)
        operator = Operator(engine, fleet, clock, send=sink.send, options=options)
        self.say(f"operator: replay market, {o.forecast} forecasts, {o.speed:g}x clock")
        operator.run(self.stop)
        summarize(engine, s)
        s.wall_s = round(time.monotonic() - t0, 1)
        return s

    def close(self) -> None:
        """Stop everything this run started, last started first (idempotent)."""
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except Exception:
                logger.exception("stopping %s failed", closer)
