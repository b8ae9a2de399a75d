"""CLI commands: ``bessfleet fleet validate|show|compliance|load``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from fleet.compliance import compliance_report, load_thresholds

if TYPE_CHECKING:
    from fleet.compliance import SiteCompliance
    from fleet.domain import Fleet, Site

FleetFileArg = Annotated[
    Path,
    typer.Argument(
        metavar="FILE",
        help="Fleet file: .toml, .yaml or .yml (see deploy/examples/fleet.toml).",
        show_default=False,
    ),
]

fleet_app = typer.Typer(
    name="fleet",
    help=(
        "Check and inspect a fleet file (sites, batteries, services, tariffs, "
        "provenance), its FEOC compliance, and load it into the store.\n\n"
        "A bad fleet file exits with code 2 and one line per problem, naming the "
        "file, the site and the field."
    ),
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    """Add the ``fleet`` sub-commands to the root app."""
    root.add_typer(fleet_app, name="fleet")


def _summary(fleet: Fleet) -> str:
    """Describe a fleet in one line: sites by market and meter, MW and MWh."""
    groups = Counter(
        f"{site.market.value} {'behind the meter' if site.is_btm else 'front of meter'}"
        for site in fleet.sites
    )
    parts = ", ".join(f"{count} {label}" for label, count in groups.items())
    power_mw = sum(site.battery.discharge_mw for site in fleet.sites)
    energy_mwh = sum(site.battery.energy_mwh for site in fleet.sites)
    return f"{parts}; {power_mw:,.1f} MW / {energy_mwh:,.1f} MWh"


@fleet_app.command("validate")
def validate(file: FleetFileArg) -> None:
    """Check a fleet file; print OK and the fleet's size, or every problem found.

    Exit code 0 when the file is valid, 2 when it is not (one line per problem).
    """
    from fleet.fleetfile import load_fleet

    fleet = load_fleet(file)
    count = len(fleet.sites)
    typer.echo(
        f"OK: {count} site{'s' if count != 1 else ''} ({_summary(fleet)}) "
        f'in fleet "{fleet.name}" from {file}'
    )


def _poi_text(site: Site) -> str:
    text = f"{site.poi.export_mw:g}/{site.poi.import_mw:g}"
    return f"{text} ({site.poi.group})" if site.poi.group else text


@fleet_app.command("show")
def show(file: FleetFileArg) -> None:
    """Print the fleet's sites as a table: market, node, size, services, POI."""
    from fleet.fleetfile import load_fleet

    fleet = load_fleet(file)
    table = Table(
        title=f"{fleet.name}: {_summary(fleet)}",
        title_justify="left",
        show_lines=False,
    )
    table.add_column("id", no_wrap=True, style="bold")
    table.add_column("name")
    table.add_column("market")
    table.add_column("node")
    table.add_column("meter")
    table.add_column("MW", justify="right")
    table.add_column("MWh", justify="right")
    table.add_column("h", justify="right")
    table.add_column("services")
    table.add_column("POI MW exp/imp (group)")
    for site in fleet.sites:
        battery = site.battery
        table.add_row(
            site.id,
            site.name,
            site.market.value,
            site.node,
            site.meter.value,
            f"{battery.discharge_mw:g}",
            f"{battery.energy_mwh:g}",
            f"{battery.duration_h:.1f}",
            ", ".join(str(s) for s in site.services),
            _poi_text(site),
        )
    console = Console()
    console.print(table)
    for group in fleet.poi_groups:
        members = ", ".join(fleet.poi_group_sites(group.name))
        console.print(
            f"POI group {group.name}: export {group.export_mw:g} MW, "
            f"import {group.import_mw:g} MW, sites: {members}",
            highlight=False,
        )
    if fleet.capacity_min_mw is not None:
        console.print(
            f"Fleet capacity commitment: at least {fleet.capacity_min_mw:g} MW",
            highlight=False,
        )


def _report_json(
    fleet: Fleet, year: int | None, report: list[SiteCompliance], source: str
) -> str:
    return json.dumps(
        {
            "fleet": fleet.name,
            "year": year,
            "source": source,
            "passes": all(row.passes for row in report),
            "sites": [
                {
                    "site": row.site,
                    "year": row.year,
                    "year_source": row.year_source,
                    "non_feoc_share": round(row.non_feoc_share, 9),
                    "threshold": row.threshold,
                    "margin": round(row.margin, 9),
                    "passes": row.passes,
                    "feoc_components": list(row.feoc_components),
                    "unknown_share": round(row.unknown_share, 9),
                    "warnings": list(row.warnings),
                }
                for row in report
            ],
        },
        indent=2,
    )


@fleet_app.command("compliance")
def compliance(
    file: FleetFileArg,
    year: Annotated[
        int | None,
        typer.Option(
            "--year",
            help=(
                "Default year construction began, for sites without "
                "construction_start in the fleet file (a site's own date wins); the "
                "threshold of that year applies (55% in 2026 rising to 75% in 2030)."
            ),
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the report as JSON instead of a table."),
    ] = False,
    what_if: Annotated[
        Path | None,
        typer.Option(
            "--what-if",
            metavar="FILE",
            help=(
                "Compare sourcing mixes of a planned augmentation or new site (TOML, "
                "see docs/health.md): non-FEOC share against the year's threshold, "
                "whether the ITC applies, its value and the credit at risk."
            ),
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check each site's material assistance cost ratio against its threshold.

    The ratio is (total - prohibited) / total over the provenance entries' cost
    shares, parts of unknown origin counted as prohibited; the threshold is that of
    the year the site's construction began (construction_start, else --year).
    Exit code 0 when every site reaches its threshold, 1 when any site is below it,
    2 for a bad fleet file, a site without a year, or a year outside the threshold
    table. With --what-if, print the scenario comparison instead (exit 0 when valid).
    """
    from fleet.fleetfile import load_fleet

    fleet = load_fleet(file)
    table_data = load_thresholds()
    if what_if is not None:
        _what_if(fleet, what_if, year, as_json)
        return
    report = compliance_report(fleet, year, table=table_data)
    failing = [row for row in report if not row.passes]
    if as_json:
        typer.echo(_report_json(fleet, year, report, table_data.source))
    else:
        _print_compliance(fleet, report)
    if failing:
        raise typer.Exit(code=1)


def _what_if(fleet: Fleet, path: Path, year: int | None, as_json: bool) -> None:
    from fleet.errors import FleetInputError
    from fleet.whatif import compare_sourcing, load_whatif

    whatif = load_whatif(path)
    if year is not None and year != whatif.year:
        msg = f"--year={year} differs from year={whatif.year} in {path}"
        raise FleetInputError(msg)
    rows = compare_sourcing(fleet, whatif)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "fleet": fleet.name,
                    "year": whatif.year,
                    "scenarios": [
                        {
                            "name": r.name,
                            "site": r.site,
                            "new_site": r.new_site,
                            "capex_usd": r.capex_usd,
                            "non_feoc_share": round(r.non_feoc_share, 9),
                            "threshold": r.threshold,
                            "margin": round(r.margin, 9),
                            "passes": r.passes,
                            "year": r.year,
                            "itc_rate": r.itc_rate,
                            "phase_down": r.phase_down,
                            "itc_value_usd": round(r.itc_value_usd, 2),
                            "credit_at_risk_usd": round(r.credit_at_risk_usd, 2),
                            "net_capex_usd": round(r.net_capex_usd, 2),
                        }
                        for r in rows
                    ],
                },
                indent=2,
            )
        )
        return
    table = Table(
        title=f"{fleet.name}: sourcing what-if, construction beginning {whatif.year}",
        title_justify="left",
    )
    for column in (
        "scenario",
        "site",
        "year",
        "capex $",
        "ratio",
        "threshold",
        "ITC",
        "credit left",
    ):
        table.add_column(
            column, justify="left" if column in {"scenario", "site"} else "right"
        )
    table.add_column("credit $", justify="right")
    table.add_column("at risk $", justify="right")
    table.add_column("net capex $", justify="right")
    for r in rows:
        table.add_row(
            r.name,
            f"{r.site}{' (new)' if r.new_site else ''}",
            str(r.year),
            f"{r.capex_usd:,.0f}",
            f"{r.non_feoc_share:.1%}",
            f"{r.threshold:.0%}",
            "[green]applies[/]" if r.passes else "[bold red]lost[/]",
            f"{r.phase_down:.0%}",
            f"{r.itc_value_usd:,.0f}",
            f"{r.credit_at_risk_usd:,.0f}",
            f"{r.net_capex_usd:,.0f}",
        )
    Console().print(table)


def _print_compliance(fleet: Fleet, report: list[SiteCompliance]) -> None:
    table = Table(
        title=(
            f"{fleet.name}: material assistance cost ratio, "
            "(total - prohibited) / total, by the year construction began"
        ),
        title_justify="left",
    )
    table.add_column("site", no_wrap=True, style="bold")
    table.add_column("began", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("threshold", justify="right")
    table.add_column("margin", justify="right")
    table.add_column("FEOC parts")
    table.add_column("unknown", justify="right")
    table.add_column("result")
    for row in report:
        table.add_row(
            row.site,
            f"{row.year}{'' if row.year_source == 'construction_start' else '*'}",
            f"{row.non_feoc_share:.1%}",
            f"{row.threshold:.0%}",
            f"{row.margin * 100:+.1f} pts",
            ", ".join(row.feoc_components) or "-",
            f"{row.unknown_share:.0%}" if row.unknown_share else "-",
            "[green]PASS[/]" if row.passes else "[bold red]FAIL[/]",
        )
    console = Console()
    console.print(table)
    if any(row.year_source != "construction_start" for row in report):
        console.print("* --year (no construction_start in the fleet file)")
    for row in report:
        for warning in row.warnings:
            console.print(f"[yellow]{row.site}: {warning}[/]", highlight=False)
    years = {row.year for row in report}
    which = f"the {years.pop()}" if len(years) == 1 else "their"
    failing = [row.site for row in report if not row.passes]
    if failing:
        console.print(
            f"[bold red]{len(failing)} of {len(report)} sites below {which} "
            f"threshold:[/] {', '.join(failing)}",
            highlight=False,
        )
    else:
        console.print(
            f"[green]All {len(report)} sites reach {which} threshold.[/]",
            highlight=False,
        )


@fleet_app.command("load")
def load(
    file: FleetFileArg,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="URL",
            help=(
                "SQLAlchemy URL of the store. Default: $BESSFLEET_DATABASE_URL, else "
                "the SQLite file var/bessfleet.sqlite. Run `bessfleet db upgrade` first."
            ),
            show_default=False,
        ),
    ] = None,
) -> None:
    """Validate a fleet file, then save its sites (with their configuration) to the store.

    Sites are upserted by id; sites already stored but absent from the file are kept.
    """
    import sqlalchemy as sa

    from fleet.config import Settings
    from fleet.fleetfile import load_fleet
    from fleet.store.engine import make_engine
    from fleet.store.sites import save_fleet

    fleet = load_fleet(file)
    url = db or Settings().database_url
    try:
        shown = sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        msg = (
            f"--db={url!r} is not a database URL (e.g. sqlite:///var/bessfleet.sqlite)"
        )
        raise typer.BadParameter(msg, param_hint="--db") from None
    engine = make_engine(url)
    try:
        saved = save_fleet(engine, fleet)
    except sa.exc.SQLAlchemyError as exc:
        reason = str(exc).splitlines()[0]
        Console(stderr=True).print(
            f"[bold red]error:[/] cannot save the fleet to {shown}: {reason} "
            "(is the store migrated? run `bessfleet db upgrade`)",
            highlight=False,
        )
        raise typer.Exit(code=1) from None
    finally:
        engine.dispose()
    typer.echo(f'Saved {saved} site(s) of fleet "{fleet.name}" to {shown}')
