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
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from fleet.errors import FleetInputError

if TYPE_CHECKING:
    from fleet.demo.run import DemoSummary

logger = logging.getLogger(__name__)

DEFAULT_FLEET = Path("deploy/examples/fleet.toml")


def register(root: typer.Typer) -> None:
    """Add the ``demo`` command to the root app."""
    root.command("demo")(demo)


class RichReporter:
    """Draw each stage of the demo as a rich progress row."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def start(self, stage: str, total: int | None, text: str) -> None:
        """Add the stage's row."""
        self.tasks[stage] = self.progress.add_task(
            f"[bold]{stage:<10}[/] {escape(text)}", total=total
        )

    def advance(self, stage: str, steps: int = 1, text: str | None = None) -> None:
        """Move the stage's bar."""
        task = self.tasks.get(stage)
        if task is None:
            return
        self.progress.advance(task, steps)
        if text is not None:
            self.progress.update(
                task, description=f"[bold]{stage:<10}[/] {escape(text)}"
            )

    def done(self, stage: str, text: str) -> None:
        """Complete the stage's row with its outcome."""
        task = self.tasks.get(stage)
        if task is None:
            return
        total = self.progress.tasks[task].total
        self.progress.update(
            task,
            total=total or 1,
            completed=total or 1,
            description=f"[green]✓[/] [bold]{stage:<10}[/] {escape(text)}",
        )


def _usd(value: float) -> str:
    return f"${value:,.0f}" if value >= 0 else f"-${-value:,.0f}"


def summary_table(summary: DemoSummary) -> Table:
    """Return the demo's summary as a rich table."""
    days = ", ".join(f"{m} {d}" for m, d in sorted(summary.days.items()))
    table = Table(
        title=f"bessfleet demo: {len(summary.sites)} sites, {summary.hours} h of {days}",
        show_header=True,
        header_style="bold",
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    for service, usd in summary.revenue_usd.items():
        table.add_row(f"revenue: {service}", _usd(usd))
    table.add_row(
        "[bold]revenue, wholesale total[/]",
        f"[bold]{_usd(summary.revenue_total_usd)}[/]",
    )
    table.add_row("behind-the-meter bill savings", _usd(summary.btm_savings_usd))
    table.add_row(
        "degradation cost (rainflow, aging model)", _usd(-summary.degradation_usd)
    )
    table.add_row("[bold]net value[/]", f"[bold]{_usd(summary.net_usd)}[/]")
    table.add_row("perfect foresight for that day", _usd(summary.perfect_foresight_usd))
    capture = "n/a" if summary.capture is None else f"{100 * summary.capture:.1f} %"
    table.add_row("capture vs perfect foresight", capture)
    table.add_row("energy charged (metered)", f"{summary.energy_charged_mwh:,.1f} MWh")
    table.add_row(
        "energy discharged (metered)", f"{summary.energy_discharged_mwh:,.1f} MWh"
    )
    table.add_row(
        "energy charged / discharged (telemetry)",
        f"{summary.telemetry_energy_charged_mwh:,.1f} / "
        f"{summary.telemetry_energy_discharged_mwh:,.1f} MWh",
    )
    if summary.as_shortfall_mwh:
        table.add_row("awarded AS not held", f"{summary.as_shortfall_mwh:,.1f} MW-h")
    table.add_row(
        "sites dispatched", f"{len(summary.sites_dispatched)} of {len(summary.sites)}"
    )
    receiving = sum(1 for n in summary.setpoints_received.values() if n > 0)
    table.add_row(
        "setpoints sent / sites receiving",
        f"{summary.setpoints_sent:,} / {receiving} of {len(summary.sites)}",
    )
    table.add_row("day-ahead bids / awards", f"{summary.bids:,} / {summary.awards:,}")
    table.add_row(
        "intraday re-solves (fallbacks)",
        f"{summary.intraday_resolves} ({summary.intraday_fallbacks})",
    )
    table.add_row("telemetry samples published", f"{summary.telemetry_published:,}")
    table.add_row("telemetry messages received", f"{summary.telemetry_received:,}")
    table.add_row("telemetry samples stored", f"{summary.telemetry_stored:,}")
    reasons = ", ".join(
        f"{k} {v}" for k, v in sorted(summary.quarantine_reasons.items())
    )
    table.add_row(
        "quarantined",
        f"{summary.telemetry_quarantined:,}" + (f" ({reasons})" if reasons else ""),
    )
    lost_style = "green" if summary.telemetry_lost == 0 else "red"
    table.add_row("[bold]lost[/]", f"[bold {lost_style}]{summary.telemetry_lost:,}[/]")
    table.add_row(
        "API answers during the run (failed)",
        f"{summary.api_ok:,} ({summary.api_failed})",
    )
    table.add_row("price data", summary.price_source)
    table.add_row("broker", f"{summary.broker} {summary.broker_url}")
    table.add_row("store", summary.database_url)
    return table


def _parse_day(value: str | None) -> dt.date | None:
    if value is None:
        return None
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
            help="Simulated seconds per wall second (720: a day in 2 minutes)."
        ),
    ] = 720.0,
    hours: Annotated[
        int, typer.Option(help="Hours of the operating day to play (1-24).")
    ] = 24,
    sites: Annotated[
        int | None, typer.Option(help="Only the first N sites of the fleet file.")
    ] = None,
    day: Annotated[
        str | None,
        typer.Option(
            help="Operating day YYYY-MM-DD (default: each market's latest complete day)."
        ),
    ] = None,
    prices_dir: Annotated[
        Path | None,
        typer.Option(
            "--prices-dir",
            metavar="DIR",
            help="Shared data folder (default: $BESSFLEET_SHARED_DATA_DIR or ../shared/data).",
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
        float | None,
        typer.Option(help="Telemetry samples/s per device (default: from --speed)."),
    ] = None,
    resolve_every: Annotated[
        int, typer.Option(help="Intraday re-solve period [15-min intervals].")
    ] = 4,
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
    """Run the whole fleet loop on one machine and print what it earned.

    Starts an embedded MQTT broker (unless $BESSFLEET_MQTT_URL names one), a fresh
    store, the API and dashboard, the example fleet as simulated site gateways and the
    ingest; imports the real price history, trains the forecasters, solves the
    day-ahead plan, makes and checks bids, clears them at that day's real prices, and
    plays the day on an accelerated clock with intraday re-solves and setpoints. The
    API stays up after the summary until Ctrl-C (or ends with --exit).
    """
    from fleet.config import Settings
    from fleet.demo.run import Demo, DemoOptions

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
            f"the sample bundled with bessfleet ({SAMPLE_DIR}; {data_dir} not found): "
            "ERCOT 2025-02-01..04-19, CAISO example 2020 replayed on 2025 dates"
        )
        data_dir = SAMPLE_DIR
    options = DemoOptions(
        fleet_file=fleet_file,
        prices_dir=data_dir,
        price_source=source,
        prices_csv=tuple(prices or ()),
        folder=folder,
        sites=sites,
        hours=hours,
        speed=speed,
        day=_parse_day(day),
        mqtt_url=settings.mqtt_url if "mqtt_url" in settings.model_fields_set else None,
        broker=broker,
        database_url=db,
        api_host=host,
        api_port=port,
        rate_hz=rate_hz,
        resolve_every=resolve_every,
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
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    runner = Demo(options, RichReporter(progress), stop=stop)
    log_file = _logging(runner.folder, verbose)
    try:
        with progress:
            summary = runner.run()
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
