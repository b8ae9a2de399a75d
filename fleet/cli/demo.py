"""CLI command ``bessfleet demo``: the whole fleet loop on one machine."""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fleet.errors import FleetInputError

if TYPE_CHECKING:
    from fleet.demo.run import DemoSummary

logger = logging.getLogger(__name__)

DEFAULT_FLEET = Path("deploy/examples/fleet.toml")


def register(root: typer.Typer) -> None:
    """Add the ``demo`` command to the root app."""
    root.command("demo")(demo)


def _usd(value: float) -> str:
    return f"${value:,.0f}" if value >= 0 else f"-${-value:,.0f}"


def summary_table(summary: DemoSummary) -> Table:
    """Return the demo's summary (read from the store) as a rich table."""
    table = Table(
        title=f"bessfleet demo: {len(summary.sites)} sites, "
        f"{', '.join(summary.days)} (settled by fleet.ops)",
        show_header=True,
        header_style="bold",
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, items in summary.revenue_usd.items():
        for item, usd in sorted(items.items()):
            table.add_row(f"{key}: {item}", _usd(usd))
        table.add_row(f"[bold]{key}: net[/]", f"[bold]{_usd(summary.net_usd[key])}[/]")
    table.add_row("reserves awarded", f"{summary.awarded_mwh:,.1f} MW-h")
    share = (
        f" ({100 * summary.shortfall_mwh / summary.awarded_mwh:.2f} %)"
        if summary.awarded_mwh
        else ""
    )
    table.add_row("reserve shortfall", f"{summary.shortfall_mwh:,.1f} MW-h{share}")
    table.add_row("shortfall charge", _usd(-summary.shortfall_usd))
    receiving = sum(1 for n in summary.setpoints.values() if n > 0)
    table.add_row(
        "setpoints stored / sites receiving",
        f"{sum(summary.setpoints.values()):,} / {receiving} of {len(summary.sites)}",
    )
    acks = ", ".join(f"{k} {v:,}" for k, v in sorted(summary.setpoint_status.items()))
    table.add_row("setpoint acks", acks or "none")
    failed = ", ".join(summary.failed_steps) or "none"
    table.add_row("steps not done", failed)
    table.add_row("price data", summary.price_source)
    table.add_row("broker", summary.broker)
    table.add_row("store", summary.database_url)
    table.add_row("wall time", f"{summary.wall_s:,.0f} s")
    return table


def _parse_day(value: str | None) -> dt.date:
    from fleet.demo.run import DEFAULT_DAY

    if value is None:
        return DEFAULT_DAY
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        msg = f"--day={value!r} must be a date YYYY-MM-DD"
        raise FleetInputError(msg) from None


def demo(
    fleet_file: Annotated[
        Path, typer.Option("--fleet", metavar="FILE", help="Fleet file (.toml/.yaml).")
    ] = DEFAULT_FLEET,
    speed: Annotated[
        float,
        typer.Option(
            help="Simulated seconds per wall second (360: an hour in 10 s; one day, from "
            "the day-ahead step before it to its settlement, in about 7 minutes)."
        ),
    ] = 360.0,
    days: Annotated[
        int, typer.Option(help="Operating days to run and settle (1-7).")
    ] = 1,
    sites: Annotated[
        int | None, typer.Option(help="Only the first N sites of the fleet file.")
    ] = None,
    day: Annotated[
        str | None,
        typer.Option(
            help="First operating day YYYY-MM-DD (default 2025-04-09, in the sample)."
        ),
    ] = None,
    forecast: Annotated[
        str, typer.Option(help="Price forecasts of the day-ahead plan: naive or model.")
    ] = "model",
    prices_dir: Annotated[
        Path | None,
        typer.Option(
            "--prices-dir",
            metavar="DIR",
            help="Shared data folder (default: $BESSFLEET_SHARED_DATA_DIR or "
            "../shared/data, else the sample shipped with bessfleet).",
            show_default=False,
        ),
    ] = None,
    prices: Annotated[
        list[Path] | None,
        typer.Option(
            "--prices",
            metavar="CSV",
            help="Your own price CSV (normalized layout); repeat for several files.",
        ),
    ] = None,
    folder: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Run folder (default: var/demo-<UTC time>).",
            show_default=False,
        ),
    ] = None,
    broker: Annotated[
        str,
        typer.Option(
            help="Embedded broker: auto (Mosquitto if installed), mosquitto, amqtt."
        ),
    ] = "auto",
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="URL",
            help="Store URL, e.g. PostgreSQL (default: a fresh SQLite file in the run folder).",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Interface the API listens on.")
    ] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(help="API port (default: a free one).", show_default=False),
    ] = None,
    rate_hz: Annotated[
        float, typer.Option(help="Telemetry samples per wall second per device.")
    ] = 8.0,
    exit_after: Annotated[
        bool, typer.Option("--exit", help="End after the summary (API not kept up).")
    ] = False,
    summary_json: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Also write the summary as JSON here."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the gateways.")] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the production operator on one machine against simulated sites.

    Starts an embedded MQTT broker (unless $BESSFLEET_MQTT_URL names one), a fresh
    store, the API and dashboard, the fleet as simulated site gateways and the ingest;
    imports the real prices; then runs `bessfleet operate`'s operator with the replay
    market (bids cleared at the day's real prices) on an accelerated clock: forecasts,
    day-ahead plan, bids, awards, intraday setpoints to every site, settlement from
    metered telemetry. The summary is read from the store. The API stays up after it
    until Ctrl-C (or ends with --exit).
    """
    from fleet.config import Settings
    from fleet.demo.run import Demo, DemoOptions

    if forecast not in ("model", "naive"):
        msg = f"--forecast={forecast!r} must be model or naive"
        raise FleetInputError(msg)
    settings = Settings()
    data_dir = prices_dir or settings.shared_data_dir
    if prices:
        source = "your price CSV(s): " + ", ".join(str(p) for p in prices)
    elif data_dir.is_dir():
        source = f"shared data folder {data_dir}"
    elif prices_dir is not None:
        msg = f"--prices-dir {prices_dir}: folder not found"
        raise FleetInputError(msg)
    else:
        from fleet.data.sample import SAMPLE_DIR

        source = (
            f"the sample shipped with bessfleet ({SAMPLE_DIR}; {data_dir} not found): "
            "ERCOT 2025-02-01..04-19, CAISO example 2020 replayed on 2025 dates"
        )
    if not data_dir.is_dir():
        from fleet.data.sample import SAMPLE_DIR

        data_dir = SAMPLE_DIR
    options = DemoOptions(
        fleet_file=fleet_file,
        prices_dir=data_dir,
        price_source=source,
        prices_csv=tuple(prices or ()),
        folder=folder,
        sites=sites,
        day=_parse_day(day),
        days=days,
        speed=speed,
        forecast="model" if forecast == "model" else "naive",
        mqtt_url=settings.mqtt_url if "mqtt_url" in settings.model_fields_set else None,
        broker=broker,
        database_url=db,
        api_host=host,
        api_port=port,
        rate_hz=rate_hz,
        seed=seed,
    )
    console = Console()
    stop = threading.Event()

    def _interrupt(_signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGTERM, _interrupt)
    interrupted = False
    finished = False

    def say(text: str) -> None:
        console.print(f"[green]✓[/] {escape(text)}", highlight=False, soft_wrap=True)

    runner = Demo(options, say, stop=stop)
    log_file = _logging(runner.folder, verbose)
    try:
        with console.status("operating (see the dashboard, or the log)"):
            summary = runner.run()
        if stop.is_set():
            raise KeyboardInterrupt
        console.print(summary_table(summary))
        console.print(
            f"dashboard: [bold]{summary.dashboard_url}[/] "
            "(sign in there with the viewer key)\n"
            f"viewer key: {summary.viewer_key}\nrun folder: {summary.folder} "
            f"(log: {log_file})",
            highlight=False,
            soft_wrap=True,
        )
        line = json.dumps(summary.to_json(), default=str)
        typer.echo(f"SUMMARY_JSON {line}")
        if summary_json is not None:
            summary_json.write_text(
                json.dumps(summary.to_json(), indent=1, default=str) + "\n"
            )
        finished = True
        if not exit_after:
            console.print("The API stays up; press Ctrl-C to stop.")
            while not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        console.print("\ninterrupted: stopping")
    finally:
        runner.close()
        signal.signal(signal.SIGTERM, previous)
    if interrupted and not finished:
        raise typer.Exit(130)


def _logging(folder: Path, verbose: bool) -> Path:
    """Log everything to ``folder/demo.log``; only errors (or all, -v) to the terminal."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo.log"
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    to_file = logging.FileHandler(path)
    to_file.setFormatter(fmt)
    to_file.setLevel(logging.INFO)
    to_term = logging.StreamHandler()
    to_term.setFormatter(fmt)
    to_term.setLevel(logging.INFO if verbose else logging.ERROR)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(to_file)
    root.addHandler(to_term)
    # the API probe asks every second; its request lines would drown the log
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return path
