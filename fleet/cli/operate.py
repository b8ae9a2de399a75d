"""CLI command ``bessfleet operate``: the unattended operating day of every market."""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from fleet.cli.ops import (
    DbOpt,
    FleetOpt,
    IntervalMinutesOpt,
    ModelIntervalOpt,
    MqttOpt,
    StaleAfterOpt,
)
from fleet.errors import FleetInputError

logger = logging.getLogger(__name__)


def _when(value: str, option: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        msg = f"{option}: {value!r} is not an ISO time (e.g. 2025-04-09T08:00:00Z)"
        raise FleetInputError(msg) from None
    if when.tzinfo is None:
        msg = f"{option}: {value!r} needs a time zone (Z or +HH:MM)"
        raise FleetInputError(msg)
    return when


def operate(
    fleet: FleetOpt,
    db: DbOpt = None,
    mqtt_url: MqttOpt = None,
    market_mode: Annotated[
        str,
        typer.Option(
            "--market-mode",
            help="replay: clear bids at the day's real prices (no ISO connected); "
            "iso: awards are pushed (API or `bessfleet awards push`).",
        ),
    ] = "replay",
    markets: Annotated[
        list[str] | None,
        typer.Option("--market", help="Only this market (repeatable)."),
    ] = None,
    forecast: Annotated[
        str, typer.Option("--forecast", help="Forecast method: model or naive.")
    ] = "model",
    interval_minutes: IntervalMinutesOpt = 15,
    model_interval_minutes: ModelIntervalOpt = None,
    stale_after_s: StaleAfterOpt = 15.0,
    solve_time_limit_s: Annotated[
        float,
        typer.Option(
            "--solve-time-limit-s",
            min=0.05,
            help="Time for the exact intraday solve before its LP relaxation stands in [s].",
        ),
    ] = 5.0,
    lead_s: Annotated[
        float,
        typer.Option(
            "--lead-s",
            min=0.0,
            help="Plan each interval this long before it starts; its setpoints take "
            "effect at the start [simulated s].",
        ),
    ] = 30.0,
    export_dir: Annotated[
        Path | None,
        typer.Option("--export-dir", help="Write accepted bid sets here."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Load data sets for behind-the-meter sites with no metered load yet.",
        ),
    ] = None,
    days: Annotated[
        int | None,
        typer.Option("--days", min=1, help="Stop after settling this many days."),
    ] = None,
    speed: Annotated[
        float,
        typer.Option(
            "--speed", min=0.001, help="Simulated seconds per second (1 = real time)."
        ),
    ] = 1.0,
    clock_start: Annotated[
        str | None,
        typer.Option(
            "--clock-start",
            help="Simulated start time (ISO with zone); needs --speed or --clock-anchor.",
        ),
    ] = None,
    clock_anchor: Annotated[
        float | None,
        typer.Option(
            "--clock-anchor",
            help="Unix time at which the simulated clock reads --clock-start "
            "(processes given the same start, speed and anchor share one clock).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run every market's day unattended: forecasts, plan, bids, awards, intraday, settle.

    Each step is recorded in the store (``/v1/operations``); a restart picks up where
    the loop was. Setpoints and their gateway acks are stored (``/v1/sites/{id}/commands``).
    """
    from fleet.cli.db import resolve_db_url
    from fleet.config import Settings
    from fleet.fleetfile import load_fleet
    from fleet.ops.clock import AcceleratedClock, SystemClock
    from fleet.ops.intraday import IntradayConfig, MqttSetpointSink
    from fleet.ops.operator import Operator, OperatorOptions
    from fleet.store import migrate
    from fleet.store.dml import transaction
    from fleet.store.engine import make_engine
    from fleet.store.telemetry import record_setpoint
    from telemetry.ingest import make_client, parse_mqtt_url

    if market_mode not in ("replay", "iso"):
        msg = f"--market-mode={market_mode!r} must be replay or iso"
        raise FleetInputError(msg)
    if forecast not in ("model", "naive"):
        msg = f"--forecast={forecast!r} must be model or naive"
        raise FleetInputError(msg)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    fleet_obj = load_fleet(fleet)
    config = IntradayConfig(
        interval_minutes=interval_minutes,
        model_interval_minutes=model_interval_minutes,
        stale_after_s=stale_after_s,
        solve_time_limit_s=solve_time_limit_s,
        lead_s=lead_s,
    )
    clock: Any = SystemClock()
    if clock_start is not None or speed != 1.0 or clock_anchor is not None:
        start = (
            _when(clock_start, "--clock-start")
            if clock_start is not None
            else dt.datetime.now(dt.UTC)
        )
        clock = AcceleratedClock(start, speed, wall_anchor_s=clock_anchor)
    url = resolve_db_url(db)
    migrate.require_head(url)
    engine = make_engine(url)
    settings = Settings()
    address = parse_mqtt_url(mqtt_url or settings.mqtt_url)
    client = make_client(address)
    client.connect(address.host, address.port)
    client.loop_start()

    def record(setpoint: Any) -> None:
        with transaction(engine) as conn:
            record_setpoint(conn, setpoint=setpoint, actor="operator")

    def now_ms() -> int:
        return int(clock.now().timestamp() * 1000)

    sink = MqttSetpointSink(client, fleet_obj, now_ms=now_ms, record=record)
    mode: Literal["replay", "iso"] = "replay" if market_mode == "replay" else "iso"
    method: Literal["model", "naive"] = "model" if forecast == "model" else "naive"
    operator = Operator(
        engine,
        fleet_obj,
        clock,
        send=sink.send,
        options=OperatorOptions(
            market_mode=mode,
            forecast=method,
            intraday=config,
            export_dir=export_dir,
            data_dir=data_dir,
            days=days,
        ),
        markets=markets,
    )
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    console = Console()
    console.print(
        f"operating {', '.join(loop.rules.name for loop in operator.loops)} "
        f"({market_mode} market, {forecast} forecasts) from {clock.now():%Y-%m-%d %H:%M} UTC",
        highlight=False,
    )
    try:
        progress = operator.run(stop)
    finally:
        client.loop_stop()
        client.disconnect()
        engine.dispose()
    for p in progress:
        console.print(
            f"{p.market}: settled {', '.join(str(d) for d in p.settled) or 'no day'}; "
            f"{sum(len(v) for v in p.intervals.values())} intervals commanded, "
            f"{sum(1 for s in p.steps if s[2] == 'failed')} failed steps",
            highlight=False,
        )


def register(root: typer.Typer) -> None:
    """Add ``operate`` to the root app."""
    root.command("operate")(operate)
