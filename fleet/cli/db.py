"""CLI commands: ``bessfleet db upgrade`` and ``bessfleet db current``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from fleet.errors import StoreError

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help=(
            "SQLAlchemy URL of the store, e.g. sqlite:///var/bessfleet.sqlite or "
            "postgresql+psycopg://user@host/db. Default: $BESSFLEET_DATABASE_URL, "
            "else the SQLite file var/bessfleet.sqlite."
        ),
        show_default=False,
    ),
]

db_app = typer.Typer(
    name="db",
    help="Create or migrate the store (SQLite or PostgreSQL) with its Alembic migrations.",
    no_args_is_help=True,
)


def resolve_db_url(db: str | None) -> str:
    """Return ``db`` or, when not given, the configured ``database_url``."""
    from fleet.config import Settings

    return db or Settings().database_url


def shown_url(url: str) -> str:
    """Return ``url`` with any password masked, for messages."""
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def fail(message: str, code: int) -> typer.Exit:
    """Print ``message`` as an error on stderr and return the Exit to raise."""
    Console(stderr=True, soft_wrap=True).print(
        f"[bold red]error:[/] {message}", highlight=False
    )
    return typer.Exit(code)


@db_app.command("upgrade")
def upgrade(
    db: DbOption = None,
    revision: Annotated[
        str, typer.Option(help="Target revision id (default: the newest).")
    ] = "head",
) -> None:
    """Apply the store's migrations up to the newest revision (safe to re-run).

    Creates the SQLite file when it does not exist. Prints the revision reached. Exit code 1 when the store is unreachable or a migration fails.
    """
    from fleet.store import migrate

    url = resolve_db_url(db)
    try:
        before = migrate.current(url)
        migrate.upgrade(url, revision)
        after = migrate.current(url)
    except StoreError as exc:
        raise fail(str(exc), 1) from exc
    if before == after:
        typer.echo(f"store {shown_url(url)}: already at revision {after}")
    else:
        typer.echo(
            f"store {shown_url(url)}: upgraded from {before or 'empty'} to {after}"
        )


@db_app.command("current")
def current(db: DbOption = None) -> None:
    """Print the store's current revision and whether it is the newest.

    Exit code 1 when the store is unreachable or behind the newest revision.
    """
    from fleet.store import migrate

    url = resolve_db_url(db)
    try:
        at = migrate.current(url)
        head = migrate.head_revision()
    except StoreError as exc:
        raise fail(str(exc), 1) from exc
    if at == head:
        typer.echo(f"store {shown_url(url)}: revision {at} (newest)")
        return
    typer.echo(
        f"store {shown_url(url)}: revision {at or 'none (empty)'}; newest is {head}: "
        "run `bessfleet db upgrade`"
    )
    raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    """Add the ``db`` commands to the root app."""
    root.add_typer(db_app, name="db")
