"""CLI commands: ``bessfleet serve`` (API + dashboard) and ``bessfleet keys``."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from fleet.errors import StoreError

if TYPE_CHECKING:
    from fleet.config import Settings

logger = logging.getLogger(__name__)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help="SQLAlchemy URL of the store. Default: $BESSFLEET_DATABASE_URL.",
        show_default=False,
    ),
]

keys_app = typer.Typer(
    name="keys",
    help=(
        "Create, list and revoke API keys. Roles: viewer (read), scheduler (push bids "
        "and awards), admin (fleet changes, key management). Only a hash is stored."
    ),
    no_args_is_help=True,
)


def _settings(db: str | None) -> Settings:
    from fleet.config import Settings

    settings = Settings()
    if db:
        settings = settings.model_copy(update={"database_url": db})
    return settings


@keys_app.command("create")
def keys_create(
    role: Annotated[
        str,
        typer.Option("--role", help="viewer, scheduler or admin.", show_default=False),
    ],
    note: Annotated[
        str | None, typer.Option("--note", help="Free text kept with the key.")
    ] = None,
    expires_in_days: Annotated[
        float | None,
        typer.Option(
            "--expires-in-days",
            min=0.001,
            max=36500,
            help="Days until the key stops working (default: it does not expire).",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    from fleet.store import audit
    from fleet.store import keys as key_store
    from fleet.store.engine import make_engine

    engine = make_engine(_settings(db).database_url)
    expires_at = (
        None
        if expires_in_days is None
        else dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_in_days)
    )
    try:
        with engine.begin() as conn:
            new = key_store.create_key(
                conn, role=role, note=note, expires_at=expires_at
            )
            audit.record(
                conn,
                actor="cli",
                action="key.create",
                object_type="api_key",
                object_id=new.key.id,
                detail={
                    "role": role,
                    "expires_at": None
                    if expires_at is None
                    else expires_at.isoformat(),
                },
            )
    finally:
        engine.dispose()
    err = Console(stderr=True)
    until = "" if expires_at is None else f" until {expires_at:%Y-%m-%d %H:%M} UTC"
    err.print(
        f"created key [bold]{new.key.id}[/] with role [bold]{role}[/]{until}; "
        "it is shown once, store it now:",
        highlight=False,
    )
    typer.echo(new.secret)


@keys_app.command("list")
def keys_list(
    db: DbOption = None,
    all_keys: Annotated[
        bool, typer.Option("--all", help="Include revoked keys.")
    ] = False,
) -> None:
    """List API keys (ids, roles, dates; never secrets)."""
    from fleet.store import keys as key_store
    from fleet.store.engine import make_engine

    engine = make_engine(_settings(db).database_url)
    try:
        with engine.connect() as conn:
            keys = key_store.list_keys(conn, include_revoked=all_keys)
    finally:
        engine.dispose()
    table = Table()
    table.add_column("key id", no_wrap=True, min_width=16)
    for name in ("role", "created (UTC)", "expires (UTC)", "revoked (UTC)", "note"):
        table.add_column(name)
    for key in keys:
        table.add_row(
            key.id,
            key.role,
            key.created_at.strftime("%Y-%m-%d %H:%M"),
            key.expires_at.strftime("%Y-%m-%d %H:%M") if key.expires_at else "never",
            key.revoked_at.strftime("%Y-%m-%d %H:%M") if key.revoked_at else "",
            key.note or "",
        )
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Key id (key-…).")],
    db: DbOption = None,
) -> None:
    """Revoke an API key (idempotent)."""
    from fleet.store import audit
    from fleet.store import keys as key_store
    from fleet.store.engine import make_engine

    engine = make_engine(_settings(db).database_url)
    try:
        with engine.begin() as conn:
            key = key_store.revoke_key(conn, key_id)
            audit.record(
                conn,
                actor="cli",
                action="key.revoke",
                object_type="api_key",
                object_id=key_id,
            )
    finally:
        engine.dispose()
    typer.echo(f"revoked {key.id}")


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    db: DbOption = None,
    mqtt: Annotated[
        str | None,
        typer.Option(
            "--mqtt",
            metavar="URL",
            help="Broker for /readyz (default $BESSFLEET_MQTT_URL; 'none' to skip).",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the API and the operator dashboard (http://HOST:PORT/)."""
    import uvicorn

    from fleet.api.app import create_app
    from fleet.store import migrate

    settings = _settings(db)
    if mqtt:
        settings = settings.model_copy(update={"mqtt_url": mqtt})
    try:
        migrate.require_head(settings.database_url)
    except StoreError as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] {exc}", highlight=False
        )
        raise typer.Exit(1) from exc
    app = create_app(settings)
    # an open dashboard keeps its event stream open: do not wait for it forever
    uvicorn.run(
        app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=3
    )


def register(root: typer.Typer) -> None:
    """Add ``serve`` and the ``keys`` sub-commands to the root app."""
    root.command("serve")(serve)
    root.add_typer(keys_app, name="keys")
