"""CLI commands: ``bessfleet prices import`` and ``bessfleet prices list``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fleet.cli.db import DbOption, fail, resolve_db_url, shown_url
from fleet.errors import FleetInputError, StoreError

if TYPE_CHECKING:
    from fleet.store.price_csv import PriceFile

prices_app = typer.Typer(
    name="prices",
    help="Import market price history (normalized CSV) into the store and list it.",
    no_args_is_help=True,
)

EXIT_CODES_HELP = (
    "Exit codes: 0 every row imported; 1 some rows were bad (the good rows were "
    "imported, the bad ones are listed by line); 2 a file is unusable (missing, "
    "unreadable, a required column missing or an unknown one) or the store is unreachable or not "
    "migrated; nothing is imported from such a file."
)


@prices_app.command("import", epilog=EXIT_CODES_HELP)
def import_(
    csv_files: Annotated[
        list[Path],
        typer.Argument(
            metavar="CSV...",
            help=(
                "Normalized price files (.csv or .csv.gz) with columns timestamp_utc "
                "(ISO-8601 with Z, interval start), market, node, product and "
                "price_usd_per_mwh (energy) or price_usd_per_mw (ancillary "
                "capacity, $/MW-h)."
            ),
            show_default=False,
        ),
    ],
    db: DbOption = None,
    market: Annotated[
        str | None,
        typer.Option(metavar="M", help="Import only rows of this market (e.g. ERCOT)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON.")
    ] = False,
    show: Annotated[
        int, typer.Option(min=0, help="Bad rows listed per file; the rest are counted.")
    ] = 20,
) -> None:
    """Import price CSVs into the store: good rows go in, bad rows are reported by line.

    Re-importing a file is harmless: rows are keyed by (market, node, product, timestamp) and updated in place. The interval length of each series is inferred from its timestamps.
    """
    from fleet.store import audit, migrate, prices
    from fleet.store.engine import make_engine
    from fleet.store.price_csv import read_price_csv

    url = resolve_db_url(db)
    try:
        migrate.require_head(url)
    except StoreError as exc:
        raise fail(str(exc), 2) from exc
    missing = [str(p) for p in csv_files if not p.is_file()]
    if missing:
        msg = f"no such price file: {', '.join(missing)}"
        raise FleetInputError(msg)
    engine = make_engine(url)
    reports: list[dict[str, Any]] = []
    try:
        for path in csv_files:
            started = time.perf_counter()
            parsed = read_price_csv(path, market=market)
            with engine.begin() as conn:
                written = prices.insert_prices(conn, parsed.frame)
                audit.record(
                    conn,
                    actor="cli",
                    action="prices.import",
                    object_type="prices",
                    object_id=path.name,
                    detail={
                        "rows_read": parsed.rows_read,
                        "rows_imported": written,
                        "bad_rows": len(parsed.bad_rows),
                        "rows_skipped": parsed.rows_skipped,
                        "market": market,
                    },
                )
            report = _report(parsed, written, time.perf_counter() - started, show)
            reports.append(report)
            if not as_json:
                _print_report(report)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps({"db": shown_url(url), "files": reports}, indent=2))
    if any(r["bad_row_count"] for r in reports):
        raise typer.Exit(1)


def _report(
    parsed: PriceFile, written: int, seconds: float, show: int
) -> dict[str, Any]:
    series = parsed.frame.groupby(["market", "node", "product"]).ngroups
    return {
        "path": str(parsed.path),
        "unit": parsed.unit,
        "rows_read": parsed.rows_read,
        "rows_imported": written,
        "series": int(series),
        "seconds": round(seconds, 3),
        "rows_skipped_other_markets": parsed.rows_skipped,
        "bad_row_count": len(parsed.bad_rows),
        "bad_rows": [
            {"line": bad.line, "reason": bad.reason} for bad in parsed.bad_rows[:show]
        ],
    }


def _print_report(report: dict[str, Any]) -> None:
    rate = report["rows_imported"] / report["seconds"] if report["seconds"] else 0.0
    typer.echo(
        f"{report['path']}: {report['rows_imported']:,} of {report['rows_read']:,} "
        f"rows imported into {report['series']} series ({report['unit']}) in "
        f"{report['seconds']:.1f} s ({rate:,.0f} rows/s)"
    )
    if report["rows_skipped_other_markets"]:
        typer.echo(
            f"  {report['rows_skipped_other_markets']:,} row(s) of other markets skipped"
        )
    if not report["bad_row_count"]:
        return
    console = Console(stderr=True, soft_wrap=True, highlight=False)
    console.print(
        f"[bold yellow]{report['bad_row_count']:,} bad row(s) not imported:[/]"
    )
    for bad in report["bad_rows"]:
        console.print(f"  line {bad['line']}: {bad['reason']}", markup=False)
    rest = report["bad_row_count"] - len(report["bad_rows"])
    if rest > 0:
        console.print(f"  … and {rest:,} more bad row(s)")


@prices_app.command("list")
def list_(
    db: DbOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the series as JSON.")
    ] = False,
) -> None:
    """List the price series in the store with their count and first/last interval."""
    from fleet.store import migrate, prices
    from fleet.store.engine import make_engine

    url = resolve_db_url(db)
    try:
        migrate.require_head(url)
    except StoreError as exc:
        raise fail(str(exc), 2) from exc
    engine = make_engine(url)
    try:
        series = prices.list_series(engine)
    finally:
        engine.dispose()
    if as_json:
        rows = [
            {
                "market": s.market,
                "node": s.node,
                "product": s.product,
                "unit": s.unit,
                "interval_minutes": s.interval_minutes,
                "count": s.count,
                "first_ts": s.first_ts.isoformat(),
                "last_ts": s.last_ts.isoformat(),
            }
            for s in series
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not series:
        typer.echo(f"store {shown_url(url)}: no price series yet (see `prices import`)")
        return
    table = Table(
        "market",
        "node",
        "product",
        "unit",
        "interval",
        "count",
        "first (UTC)",
        "last (UTC)",
    )
    for s in series:
        table.add_row(
            s.market,
            s.node,
            s.product,
            s.unit,
            f"{s.interval_minutes} min",
            f"{s.count:,}",
            f"{s.first_ts:%Y-%m-%d %H:%M}",
            f"{s.last_ts:%Y-%m-%d %H:%M}",
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(table)


def register(root: typer.Typer) -> None:
    """Add the ``prices`` commands to the root app."""
    root.add_typer(prices_app, name="prices")
