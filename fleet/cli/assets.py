"""CLI commands: ``bessfleet assets import|list|passport|swap`` and ``bessfleet health scan|alerts|ack|resolve``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import sqlalchemy as sa

    from fleet.assets import Passport

assets_app = typer.Typer(
    name="assets",
    help=(
        "Serialized asset registry: modules, strings, racks and PCS units with their "
        "provenance, installs and swaps; a unit's passport for second-life buyers."
    ),
    no_args_is_help=True,
)
health_app = typer.Typer(
    name="health",
    help=(
        "Condition monitoring: scan telemetry for cell imbalance, cooling faults, fast "
        "fade, sliding efficiency and bad telemetry; list and acknowledge alerts."
    ),
    no_args_is_help=True,
)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help=(
            "SQLAlchemy URL of the store. Default: $BESSFLEET_DATABASE_URL, else the "
            "SQLite file var/bessfleet.sqlite."
        ),
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def register(root: typer.Typer) -> None:
    """Add the ``assets`` and ``health`` sub-commands to the root app."""
    root.add_typer(assets_app, name="assets")
    root.add_typer(health_app, name="health")


def _engine(db: str | None) -> sa.Engine:
    from fleet.config import Settings
    from fleet.store.engine import make_engine
    from fleet.store.migrate import require_head

    url = db or Settings().database_url
    require_head(url)
    return make_engine(url)


def _parse_time(value: str | None, option: str) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        msg = f"{option}={value!r} is not an ISO time (e.g. 2026-03-01T00:00:00Z)"
        raise typer.BadParameter(msg, param_hint=option) from None
    if parsed.tzinfo is None:
        msg = f"{option}={value!r} must carry a timezone (e.g. Z or +00:00)"
        raise typer.BadParameter(msg, param_hint=option)
    return parsed


ActorOption = Annotated[
    str | None,
    typer.Option(
        "--actor",
        help="Who enters the change (recorded with every event). Default: the OS user.",
        show_default=False,
    ),
]


def _actor(value: str | None) -> str:
    import getpass

    return value if value is not None else getpass.getuser()


@assets_app.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="Assets as .csv, .toml ([[asset]]) or .json."
        ),
    ],
    actor: ActorOption = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (required for a correction).")
    ] = None,
    correction: Annotated[
        bool,
        typer.Option(
            "--correction",
            help="Known serials may change facts (maker, origin, FEOC…): recorded "
            "as correction events.",
        ),
    ] = False,
    db: DbOption = None,
) -> None:
    """Register assets from a file, all or nothing; bad rows exit 2, naming the field.

    A known serial with other facts is refused unless --correction; placements
    change by `assets swap` only.
    """
    from fleet.assets import import_assets, read_asset_file

    items = read_asset_file(file)
    engine = _engine(db)
    try:
        result = import_assets(
            engine,
            items,
            now=dt.datetime.now(dt.UTC),
            actor=_actor(actor),
            reason=reason,
            correction=correction,
        )
    finally:
        engine.dispose()
    typer.echo(
        f"Imported {len(items)} asset(s) from {file}: {result.new} new, "
        f"{result.unchanged} unchanged, {result.corrected} corrected"
    )
    unknown = [
        i.serial for i in items if i.feoc is None or i.country_of_manufacture is None
    ]
    if unknown:
        typer.echo(
            f"Compliance risk: {len(unknown)} asset(s) of unknown FEOC status or "
            f"origin ({', '.join(unknown[:10])}{' …' if len(unknown) > 10 else ''}); "
            "they count as prohibited in the cost ratio"
        )


@assets_app.command("list")
def list_(
    site: Annotated[
        str | None, typer.Option("--site", help="Only this site's assets.")
    ] = None,
    db: DbOption = None,
) -> None:
    """List registered assets: serial, kind, maker, origin, FEOC, site and position."""
    from fleet.store.assets import list_assets

    engine = _engine(db)
    try:
        rows = list_assets(engine, site_id=site)
    finally:
        engine.dispose()
    table = Table(title=f"{len(rows)} asset(s)", title_justify="left")
    for column in ("serial", "kind", "manufacturer", "country", "FEOC", "site", "pos"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.serial,
            row.kind,
            row.manufacturer,
            row.country_of_manufacture or "unknown",
            {True: "yes", False: "no", None: "unknown"}[row.feoc],
            row.site_id or "-",
            row.position or "-",
        )
    console = Console()
    console.print(table)
    unknown = [
        r.serial for r in rows if r.feoc is None or r.country_of_manufacture is None
    ]
    if unknown:
        console.print(
            f"Compliance risk: {len(unknown)} asset(s) of unknown FEOC status or "
            f"origin ({', '.join(unknown[:10])}{' …' if len(unknown) > 10 else ''})",
            highlight=False,
        )


@assets_app.command("passport")
def passport_cmd(
    serial: Annotated[str, typer.Argument(metavar="SERIAL", help="Serial number.")],
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Print a unit's passport: provenance, installs, throughput, cycles, SoH, grade."""
    from fleet.assets import passport

    engine = _engine(db)
    try:
        result = passport(engine, serial)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(result.as_json(), indent=2))
        return
    _print_passport(result)


def _print_passport(result: Passport) -> None:
    doc = result.as_json()
    console = Console()
    console.print(
        f"[bold]{doc['serial']}[/] {doc['kind']} by {doc['manufacturer']} "
        f"({doc['country_of_manufacture'] or 'unknown origin'}, FEOC: "
        f"{ {True: 'yes', False: 'no', None: 'unknown'}[doc['feoc']] }), "
        f"nameplate {doc['energy_mwh'] or '?'} MWh",
        highlight=False,
    )
    for inst in doc["installations"]:
        console.print(
            f"  installed at {inst['site_id']} {inst['position'] or ''} "
            f"(device {inst['dev_id'] or '-'}) from {inst['start']} "
            f"to {inst['end'] or 'now'}",
            highlight=False,
        )
    for event in doc["events"]:
        console.print(
            f"  event {event['ts']} {event['kind']}"
            f"{' at ' + event['site_id'] if event['site_id'] else ''}"
            f" by {event['actor'] or '?'} (entered {event['recorded_at'] or '?'})"
            f"{': ' + event['reason'] if event['reason'] else ''}",
            highlight=False,
        )
    efc = "-" if doc["efc"] is None else f"{doc['efc']:.1f}"
    soh = "-" if doc["soh_latest"] is None else f"{doc['soh_latest']:.1%}"
    fade = "-" if doc["fade_per_year"] is None else f"{doc['fade_per_year']:.2%}/year"
    spread = "-" if doc["spread_mv"] is None else f"{doc['spread_mv']:.1f} mV"
    console.print(
        f"  throughput {doc['throughput_mwh']:.3f} MWh, {efc} equivalent full "
        f"cycles, SoH {soh}, fade {fade}, spread {spread}, "
        f"critical alerts {doc['critical_alerts']}",
        highlight=False,
    )
    if doc["grade"] is not None:
        grade = doc["grade"]
        console.print(
            f"  second-life grade [bold]{grade['name']}[/]: "
            f"{', '.join(grade['applications'])}",
            highlight=False,
        )
        for reason in grade["reasons"]:
            console.print(f"    {reason}", highlight=False)


@assets_app.command("swap")
def swap_cmd(
    out_serial: Annotated[str, typer.Argument(metavar="OUT", help="Serial removed.")],
    in_serial: Annotated[str, typer.Argument(metavar="IN", help="Serial installed.")],
    at: Annotated[
        str | None,
        typer.Option("--at", help="When (ISO time with zone). Default: now."),
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why.")] = None,
    actor: ActorOption = None,
    db: DbOption = None,
) -> None:
    """Record a swap: IN takes OUT's site, position and telemetry device.

    Refused when --at is in the future or overlaps either unit's history.
    """
    from fleet.store.assets import swap

    now = dt.datetime.now(dt.UTC)
    when = _parse_time(at, "--at") if at is not None else now
    engine = _engine(db)
    try:
        swap(
            engine,
            out_serial=out_serial,
            in_serial=in_serial,
            at=when,
            now=now,
            actor=_actor(actor),
            reason=reason,
        )
    finally:
        engine.dispose()
    typer.echo(f"Swapped {out_serial} -> {in_serial} at {when.isoformat()}")


@assets_app.command("check")
def check(
    site: Annotated[str, typer.Argument(metavar="SITE", help="Site id.")],
    db: DbOption = None,
) -> None:
    """Compare installed assets with the devices the site's gateway reports at birth.

    Exit code 1 when they disagree.
    """
    from fleet.assets import birth_check

    engine = _engine(db)
    try:
        result = birth_check(engine, site)
    finally:
        engine.dispose()
    typer.echo(
        f"{site}: birth lists {', '.join(result.birth_devices) or 'nothing'}; "
        f"registry has {', '.join(result.registered_devices) or 'nothing'}"
    )
    if result.missing_from_birth:
        typer.echo(
            f"  installed but not reported: {', '.join(result.missing_from_birth)}"
        )
    if result.unregistered:
        typer.echo(f"  reported but not registered: {', '.join(result.unregistered)}")
    if not result.consistent:
        raise typer.Exit(code=1)


@health_app.command("scan")
def scan(
    site: Annotated[
        list[str] | None,
        typer.Option("--site", help="Scan this site (repeatable). Default: all."),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option("--now", help="End of the scanned window (ISO). Default: now."),
    ] = None,
    lookback_days: Annotated[
        int,
        typer.Option(
            "--lookback-days", min=1, help="Most days of raw telemetry read per site."
        ),
    ] = 35,
    anomaly: Annotated[
        bool, typer.Option("--anomaly", help="Also run the IsolationForest detector.")
    ] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Scan recent telemetry; open, refresh or close alerts; print what changed."""
    from fleet.health import HealthPolicy, scan_fleet

    when = _parse_time(now, "--now")
    policy = HealthPolicy(lookback_days=lookback_days, anomaly_model=anomaly)
    engine = _engine(db)
    try:
        results = scan_fleet(engine, now=when, site_ids=site, policy=policy)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "site_id": r.site_id,
                        "day": r.day.isoformat() if r.day else None,
                        "findings": [
                            {"kind": f.kind.value, "severity": f.severity.value}
                            | f.as_detail()
                            for f in r.findings
                        ],
                        "opened": list(r.opened),
                        "refreshed": list(r.refreshed),
                        "closed": list(r.closed),
                    }
                    for r in results
                ],
                indent=2,
            )
        )
        return
    console = Console()
    for r in results:
        typer.echo(
            f"{r.site_id}: day {r.day or '-'}, {len(r.findings)} finding(s), "
            f"{len(r.opened)} opened, {len(r.refreshed)} still open, "
            f"{len(r.closed)} closed"
        )
        if not r.findings:
            continue
        table = Table(show_header=True)
        for column in ("severity", "kind", "device", "serial", "statistic", "action"):
            table.add_column(column, overflow="fold")
        for f in r.findings:
            table.add_row(
                f.severity.value,
                f.kind.value,
                f.dev_id,
                str(f.detail.get("serial") or "-"),
                f"{f.statistic} = {f.value:.4g} (threshold {f.threshold:.4g})",
                f.action,
            )
        console.print(table)


@health_app.command("alerts")
def alerts_cmd(
    site: Annotated[str | None, typer.Option("--site", help="Only this site.")] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Include closed alerts.")
    ] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """List alerts (open ones by default), newest first."""
    from fleet.store.alerts import list_alerts

    engine = _engine(db)
    try:
        rows = list_alerts(engine, site_id=site, open_only=not show_all)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "id": a.id,
                        "site_id": a.site_id,
                        "kind": a.kind,
                        "severity": a.severity,
                        "opened_at": a.opened_at.isoformat(),
                        "closed_at": a.closed_at.isoformat() if a.closed_at else None,
                        "acknowledged_by": a.acknowledged_by,
                        "detail": a.detail,
                    }
                    for a in rows
                ],
                indent=2,
            )
        )
        return
    table = Table(title=f"{len(rows)} alert(s)", title_justify="left")
    columns = (
        "id",
        "site",
        "position",
        "device",
        "serials",
        "kind",
        "severity",
        "state",
        "episodes",
        "opened",
        "ack",
        "action",
    )
    for column in columns:
        table.add_column(column, overflow="fold")
    for a in rows:
        serials = a.detail.get("serials") or ([a.serial] if a.serial else [])
        table.add_row(
            str(a.id),
            a.site_id or "-",
            str(a.detail.get("position") or "-"),
            a.dev_id,
            ", ".join(str(x) for x in serials) or "-",
            a.kind,
            a.severity,
            a.state,
            str(a.detail.get("occurrences", 1)),
            a.opened_at.strftime("%Y-%m-%d %H:%M"),
            a.acknowledged_by or "-",
            str(a.detail.get("action") or "-"),
        )
    Console().print(table)


@health_app.command("ack")
def ack(
    alert_id: Annotated[int, typer.Argument(metavar="ID", help="Alert id.")],
    by: Annotated[
        str, typer.Option("--by", help="Who acknowledges it (operator name).")
    ] = "cli",
    db: DbOption = None,
) -> None:
    """Acknowledge an alert (the first acknowledgement is kept)."""
    from fleet.store.alerts import acknowledge

    engine = _engine(db)
    try:
        alert = acknowledge(engine, alert_id, by=by, now=dt.datetime.now(dt.UTC))
    finally:
        engine.dispose()
    typer.echo(f"Alert {alert.id} acknowledged by {alert.acknowledged_by}")


@health_app.command("resolve")
def resolve_cmd(
    alert_id: Annotated[int, typer.Argument(metavar="ID", help="Alert id.")],
    note: Annotated[
        str, typer.Option("--note", help="What was done (e.g. 'fan replaced').")
    ],
    by: Annotated[
        str, typer.Option("--by", help="Who did it (crew or operator name).")
    ] = "cli",
    db: DbOption = None,
) -> None:
    """Record a repair; the alert closes once its condition has cleared."""
    from fleet.store.alerts import resolve

    engine = _engine(db)
    try:
        alert = resolve(engine, alert_id, by=by, note=note, now=dt.datetime.now(dt.UTC))
    finally:
        engine.dispose()
    state = "closed" if alert.closed_at else "open until its condition clears"
    typer.echo(f"Alert {alert.id} resolved by {by}: {state}")
