"""CLI commands: ``bessfleet dispatch solve`` and ``bessfleet dispatch plot``."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dispatch.errors import DispatchInputError

logger = logging.getLogger(__name__)

dispatch_app = typer.Typer(
    name="dispatch", help="Solve and inspect dispatch scenarios.", no_args_is_help=True
)


@dispatch_app.command("solve")
def solve_cmd(
    scenario: Annotated[
        Path, typer.Argument(help="Scenario JSON (spec/dispatch-model.md).")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Result JSON to write.")
    ],
    time_limit: Annotated[
        float | None, typer.Option("--time-limit", help="Time limit [s].", min=0.0)
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Worker processes for independent sites (default: one per CPU for "
            "large fleets, else 1).",
            min=1,
        ),
    ] = None,
    mip_gap: Annotated[
        float, typer.Option("--mip-gap", help="Relative MIP gap.", min=0.0, max=1.0)
    ] = 1e-6,
    monolithic: Annotated[
        bool,
        typer.Option("--monolithic", help="Solve one model instead of decomposing."),
    ] = False,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            metavar="SCHEDULER_ADDRESS",
            help="Send the independent subproblems to this Dask scheduler "
            "(default: BESSFLEET_DASK_ADDRESS, else this machine).",
        ),
    ] = None,
) -> None:
    """Solve a scenario; exit 0 optimal/feasible, 1 infeasible/error, 2 bad input."""
    from dispatch.scenario import load_scenario
    from dispatch.solve import SolveOptions, solve
    from fleet.config import Settings
    from fleet.parallel import make_executor, resolve_dask_address

    scn = load_scenario(scenario)
    options = SolveOptions(
        time_limit_s=time_limit,
        workers=workers,
        mip_rel_gap=mip_gap,
        decompose=not monolithic,
    )
    address = resolve_dask_address(dask, Settings())
    if address is None or monolithic:
        result = solve(scn, options)
    else:
        with make_executor(address, workers) as executor:
            result = solve(scn, dataclasses.replace(options, executor=executor))
    try:
        result.write(output)
    except OSError as exc:
        msg = f"{output}: cannot write result ({exc.strerror})"
        raise DispatchInputError(msg) from None
    console = Console()
    objective = "-" if result.objective_usd is None else f"{result.objective_usd:,.2f}"
    console.print(
        f"[bold]{result.status}[/]  objective {objective} USD  path {escape(result.solve.path)}"
        f"  {result.solve.seconds:.3f} s  gap {result.solve.mip_gap:.2g}",
        highlight=False,
    )
    if result.reason:
        console.print(f"reason: {escape(result.reason)}", highlight=False)
    if result.revenue_usd:
        table = Table("service", "USD")
        for key, value in result.revenue_usd.items():
            table.add_row(key, f"{value:,.2f}")
        console.print(table)
    if result.status not in ("optimal", "feasible"):
        raise typer.Exit(1)


@dispatch_app.command("plot")
def plot_cmd(
    result_path: Annotated[
        Path, typer.Argument(help="Result JSON written by `dispatch solve`.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG file to write.")],
    scenario: Annotated[
        Path | None,
        typer.Option("--scenario", help="Scenario, for prices and time axis."),
    ] = None,
    max_sites: Annotated[
        int, typer.Option("--max-sites", help="Sites to draw.", min=1)
    ] = 8,
) -> None:
    """Plot SoC, power and awards per site, and revenue by service, to a PNG."""
    from dispatch.plot import plot_result
    from dispatch.result import load_result
    from dispatch.scenario import load_scenario

    result = load_result(result_path)
    scn = load_scenario(scenario) if scenario is not None else None
    if not result.sites:
        msg = f"{result_path}: result has no schedule to plot (status {result.status})"
        raise DispatchInputError(msg)
    plot_result(result, output, scn=scn, max_sites=max_sites)
    Console().print(f"wrote {output}", highlight=False)


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    root.add_typer(dispatch_app)
