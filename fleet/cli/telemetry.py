"""CLI commands: ``bessfleet ingest``, ``bessfleet simulate``, ``bessfleet telemetry …``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from fleet.cli.db import DbOption, fail, resolve_db_url, shown_url
from fleet.errors import StoreError
from telemetry.errors import TelemetryInputError

if TYPE_CHECKING:
    from collections.abc import Callable

    from telemetry.registry import SiteSpec
    from telemetry.simulator import AgingHook

MqttOption = Annotated[
    str | None,
    typer.Option(
        "--mqtt-url",
        metavar="URL",
        help=(
            "Broker URL, mqtt://[user:pass@]host[:port] or mqtts://… "
            "Default: $BESSFLEET_MQTT_URL, else mqtt://127.0.0.1:1883."
        ),
        show_default=False,
    ),
]

telemetry_app = typer.Typer(
    name="telemetry",
    help="Inspect stored telemetry and replay quarantined messages.",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    """Add ``ingest``, ``simulate`` and the ``telemetry`` sub-commands to the root app."""
    root.command("ingest")(ingest)
    root.command("simulate")(simulate)
    root.add_typer(telemetry_app, name="telemetry")


def _mqtt_url(value: str | None) -> str:
    from fleet.config import Settings

    return value or Settings().mqtt_url


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def ingest(
    db: DbOption = None,
    mqtt_url: MqttOption = None,
    client_id: Annotated[
        str, typer.Option(help="Fixed MQTT client id (keys the persistent session).")
    ] = "bessfleet-ingest-1",
    group: Annotated[
        str | None, typer.Option(help="Only this topic group (default: all).")
    ] = None,
    share: Annotated[
        str | None,
        typer.Option(
            help="Share the stream with other workers through the MQTT v5 shared "
            "subscription $share/SHARE/… (scale-out; needs --protocol 5).",
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            min=1,
            max=65535,
            help="Messages per transaction at most (validated in chunks of a "
            "quarter; the writer commits what is ready when it is free).",
        ),
    ] = 4000,
    batch_ms: Annotated[
        int,
        typer.Option(
            min=1, max=60_000, help="Longest wait to fill a validation chunk [ms]."
        ),
    ] = 20,
    inflight_batches: Annotated[
        int,
        typer.Option(
            min=1,
            max=16,
            help="Batches in flight: the next ones are validated while one commits; "
            "each is acknowledged after its own commit.",
        ),
    ] = 3,
    protocol: Annotated[
        str, typer.Option(help="MQTT protocol: 5 or 3.1.1 (e.g. amqtt).")
    ] = "5",
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds.")
    ] = None,
    reorder_timeout_s: Annotated[
        float,
        typer.Option(min=0.0, help="Gap age before a backfill request [s]."),
    ] = 60.0,
    disconnect_after_s: Annotated[
        float,
        typer.Option(
            min=0.0, help="Disconnect when the store stays down this long [s]."
        ),
    ] = 30.0,
    session_expiry_s: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=2**32 - 1,
            help="MQTT 5 session expiry [s]. Default: 7 days alone; 300 s with --share "
            "(a member that never returns leaves the group; what its session held "
            "comes back through the gateways' backfill).",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run an ingest worker: MQTT QoS 1 in, validate, commit, then ack (spec 8).

    Known sites come from the store's ``sites`` table (``bessfleet fleet load``);
    telemetry of other sites goes to quarantine as ``unknown_site``.
    """
    from fleet.store import migrate
    from fleet.store.telemetry import SqlTelemetrySink
    from telemetry.ingest import IngestOptions, IngestWorker, tune_gc_for_ingest

    if protocol not in ("5", "3.1.1"):
        msg = f"--protocol={protocol!r} must be 5 or 3.1.1"
        raise TelemetryInputError(msg)
    if share is not None:
        if protocol != "5":
            msg = "--share needs MQTT v5 shared subscriptions: use --protocol 5"
            raise TelemetryInputError(msg)
        from telemetry.topics import check_id

        check_id(share, "--share")
    _logging(verbose)
    url = resolve_db_url(db)
    try:
        migrate.require_head(url)
        sink = SqlTelemetrySink.from_url(url)
        worker = IngestWorker(
            _mqtt_url(mqtt_url),
            sink,
            IngestOptions(
                client_id=client_id,
                group=group,
                share=share,
                batch_size=batch_size,
                batch_ms=batch_ms,
                inflight_batches=inflight_batches,
                protocol=protocol,
                reorder_timeout_s=reorder_timeout_s,
                disconnect_after_s=disconnect_after_s,
                session_expiry_s=session_expiry_s,
            ),
        )
    except StoreError as exc:
        raise fail(str(exc), 1) from None
    tune_gc_for_ingest()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        worker._stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    logging.getLogger(__name__).info(
        "ingest: %d known sites, store %s", len(worker.registry), shown_url(url)
    )
    from fleet.store.heartbeats import Heartbeat, WorkerCounters

    seen = {"stored": -1, "at": None}

    def counters() -> WorkerCounters:
        stats = worker.stats
        if stats.committed_messages != seen["stored"]:
            seen["stored"] = stats.committed_messages
            seen["at"] = int(time.time() * 1000) if stats.committed_messages else None
        return WorkerCounters(
            received=stats.received,
            stored=stats.committed_messages,
            last_commit_ms=seen["at"],
        )

    heartbeat = Heartbeat(sink.engine, worker.options.client_id, counters)
    heartbeat.start()
    try:
        worker.run_forever(duration)
    finally:
        heartbeat.stop()


def _aging_factory() -> Callable[[SiteSpec], AgingHook]:
    """Return a per-site degradation hook factory for the simulator (BLAST-Lite LFP)."""
    from forecasting.degradation.aging import ThroughputAging

    def make(spec: SiteSpec) -> AgingHook:
        return ThroughputAging(spec.energy_mwh)

    return make


def simulate(
    fleet_file: Annotated[
        Path, typer.Option("--fleet", metavar="FILE", help="Fleet file (.toml/.yaml).")
    ],
    rate_hz: Annotated[
        float, typer.Option(min=0.001, max=1000.0, help="Samples/s per device.")
    ] = 1.0,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds.")
    ] = None,
    site: Annotated[
        list[str] | None, typer.Option(help="Simulate only these site ids.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (faults, noise).")] = 0,
    banks: Annotated[
        int,
        typer.Option(
            min=1, max=64, help="Battery devices per site (bank1…bankN, equal share)."
        ),
    ] = 1,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            metavar="SITE[:DEV]:KIND:ONSET_H:RATE",
            help=(
                "Inject a fault (repeatable): KIND is cell_drift (SoC lost per day), "
                "fan_failure (thermal resistance x RATE), fast_fade (aging loss x "
                "RATE) or comm_dropout (fraction of samples bad); ONSET_H hours after "
                "the start; DEV defaults to bank1. E.g. site-01:bank2:fan_failure:1:3"
            ),
        ),
    ] = None,
    live_batch: Annotated[
        int,
        typer.Option(
            min=1,
            max=60,
            help="Live samples per tlm message: 1, or 2-60 for the batched live form "
            "of spec 1.1 (sent at least every 5 s).",
        ),
    ] = 1,
    mqtt_url: MqttOption = None,
    db: DbOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Simulate the fleet's LFP site gateways publishing birth/state/tlm over MQTT."""
    from fleet.fleetfile import load_fleet
    from telemetry.registry import site_spec_from
    from telemetry.simulator import SimOptions, Simulator, parse_fault

    del db  # accepted for a uniform CLI; gateways have no access to the store
    _logging(verbose)
    fleet = load_fleet(fleet_file)
    sites = [s for s in fleet.sites if not site or s.id in site]
    if site:
        unknown = sorted(set(site) - {s.id for s in fleet.sites})
        if unknown:
            msg = f"--site {unknown} not in fleet file {fleet_file}"
            raise TelemetryInputError(msg)
    specs = [site_spec_from(s) for s in sites]
    faults = tuple(parse_fault(text) for text in fault or ())
    sim = Simulator(
        specs,
        _mqtt_url(mqtt_url),
        SimOptions(
            rate_hz=rate_hz,
            seed=seed,
            banks=banks,
            faults=faults,
            live_batch=live_batch,
        ),
        aging=_aging_factory(),
        soc_initial={s.id: s.battery.soc_initial for s in sites},
    )

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        sim.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    report = sim.run(duration)
    typer.echo(
        f"simulated {report.sites} sites: {report.published} samples published, "
        f"{report.acked} acknowledged by the broker, {report.hist_messages} hist batches"
    )


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(
        timespec="milliseconds"
    )


@telemetry_app.command("stats")
def stats(
    db: DbOption = None,
    mqtt_url: MqttOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per site: rows stored, quarantined by reason, duplicates, gaps, latest sample."""
    import sqlalchemy as sa

    from fleet.store.engine import make_engine
    from fleet.store.telemetry import telemetry_stats

    del mqtt_url
    url = resolve_db_url(db)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = telemetry_stats(conn)
    except sa.exc.SQLAlchemyError as exc:
        msg = f"cannot read telemetry from {shown_url(url)}: {exc}"
        raise fail(msg, 1) from None
    finally:
        engine.dispose()
    if as_json:
        out = [
            dataclasses.asdict(r)
            | {
                "latest_ts": _iso(r.latest_ts_ms),
                "complete_until_ts": _iso(r.complete_until_ts_ms),
            }
            for r in rows
        ]
        typer.echo(json.dumps({"sites": out}, indent=2))
        return
    table = Table(title="telemetry by site")
    for col in (
        "site",
        "rows",
        "duplicates",
        "quarantined",
        "gaps open",
        "latest",
        "complete until",
        "online",
    ):
        table.add_column(col)
    for r in rows:
        quarantined = ", ".join(f"{k}={v}" for k, v in r.quarantined.items()) or "-"
        table.add_row(
            r.site_id,
            f"{r.rows_stored:,}",
            f"{r.duplicates_absorbed:,}",
            quarantined,
            str(r.gaps_open),
            _iso(r.latest_ts_ms) or "-",
            _iso(r.complete_until_ts_ms) or "-",
            "-" if r.online is None else ("yes" if r.online else "no"),
        )
    Console().print(table)


def _parse_since(value: str | None) -> int | None:
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        msg = f"--since={value!r} must be ISO 8601 (e.g. 2026-11-29T00:00:00Z) or epoch ms"
        raise TelemetryInputError(msg) from None
    if parsed.tzinfo is None:
        msg = f"--since={value!r} needs a UTC offset (e.g. Z or +00:00)"
        raise TelemetryInputError(msg)
    return int(parsed.timestamp() * 1000)


@telemetry_app.command("reprocess")
def reprocess(
    reason: Annotated[str, typer.Option(help="Quarantine reason to replay.")],
    since: Annotated[
        str | None, typer.Option(help="Only rows received at/after (ISO 8601 or ms).")
    ] = None,
    db: DbOption = None,
    mqtt_url: MqttOption = None,
) -> None:
    """Replay quarantined messages of one reason through today's validation."""
    from fleet.store.engine import make_engine
    from fleet.store.telemetry import reprocess as run_reprocess
    from telemetry.validation import REASONS

    del mqtt_url
    if reason not in REASONS:
        msg = f"--reason={reason!r} must be one of {', '.join(REASONS)}"
        raise TelemetryInputError(msg)
    since_ms = _parse_since(since)
    engine = make_engine(resolve_db_url(db))
    try:
        result = run_reprocess(engine, reason=reason, since_ms=since_ms)
    finally:
        engine.dispose()
    typer.echo(
        f"reprocessed {result.examined} rows of reason {reason}: "
        f"{result.stored} stored, {result.still_bad} still quarantined"
    )
