"""The ``bessfleet`` command line: one typer app, sub-commands per area."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from dispatch.errors import DispatchInputError
from fleet.cli import (
    assets,
    db,
    degradation,
    demo,
    dispatch,
    fleet,
    forecast,
    operate,
    ops,
    prices,
    serve,
    telemetry,
)
from fleet.errors import FleetInputError
from forecasting.errors import ForecastInputError
from telemetry.errors import TelemetryInputError


def input_errors() -> tuple[type[Exception], ...]:
    """Return the exceptions :func:`main` reports as bad input (exit code 2).

    pydantic is imported here, on the error path, not when the CLI starts: a
    ``ValidationError`` can only have been raised once pydantic is loaded anyway.
    """
    import pydantic

    return (
        FleetInputError,
        DispatchInputError,
        ForecastInputError,
        TelemetryInputError,
        pydantic.ValidationError,
    )


def __getattr__(name: str) -> object:
    """Keep ``INPUT_ERRORS`` importable without importing pydantic at start-up."""
    if name == "INPUT_ERRORS":
        return input_errors()
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


app = typer.Typer(
    name="bessfleet",
    help="Operations and dispatch optimizer for fleets of grid batteries (BESS).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Operations and dispatch optimizer for fleets of grid batteries (BESS)."""


@app.command("version")
def version() -> None:
    """Print the installed bessfleet version."""
    from importlib.metadata import version as dist_version

    typer.echo(f"bessfleet {dist_version('bessfleet')}")


for module in (
    fleet,
    db,
    prices,
    dispatch,
    telemetry,
    degradation,
    forecast,
    ops,
    operate,
    demo,
    serve,
    assets,
):
    module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; bad input exits 2 with a message naming the field, never a traceback."""
    try:
        app(args=argv)
    except Exception as exc:
        if not isinstance(exc, input_errors()):
            raise
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False
        )
        sys.exit(2)
