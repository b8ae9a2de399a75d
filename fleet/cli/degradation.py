"""CLI commands: ``bessfleet degradation project|costs|plot|report``."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from forecasting.degradation.warranty import WarrantyTerms, warranty_status
from forecasting.errors import ForecastInputError

if TYPE_CHECKING:
    import numpy as np

    from fleet.domain import Site
    from forecasting.degradation.aging import AgingPath, AgingState
    from forecasting.degradation.costs import CostInputs

SHALLOW_NOTE = (
    "BLAST-Lite's LFP model was fitted on 80-100% depth-of-discharge cycling at "
    "10-45 degC; shallower cycles and other temperatures are extrapolations."
)

PLAUSIBLE_SOH = (0.5, 1.05)
"""A telemetry SoH outside this range means bad units or sign, not a battery."""

degradation_app = typer.Typer(
    name="degradation",
    help=(
        "LFP aging (NREL BLAST-Lite form): capacity projections, dispatch degradation "
        "costs, their curve, and per-site health and warranty reports.\n\n"
        "Bad input exits with code 2 and a message naming the file, line and field."
    ),
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    """Add the ``degradation`` sub-commands to the root app."""
    root.add_typer(degradation_app, name="degradation")


def _float_field(path: Path, line: int, name: str, text: str | None) -> float:
    """Parse one CSV cell as a finite float or raise naming file, line and column."""
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        msg = f"{path}: line {line}: {name}={text!r} is not a finite number"
        raise ForecastInputError(msg)
    return value


def _csv_text(path: Path) -> str:
    """Return a CSV file's text: UTF-8, with or without a byte-order mark.

    Raises
    ------
    ForecastInputError
        If the file is missing or not UTF-8 (the line and the byte are named).
    """
    if not path.is_file():
        msg = f"{path}: no such file"
        raise ForecastInputError(msg)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        msg = (
            f"{path}: line {line}: byte 0x{data[exc.start]:02x} is not UTF-8; save the "
            "file as UTF-8 (Excel: 'CSV UTF-8')"
        )
        raise ForecastInputError(msg) from None


def read_day_profile(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a one-day SoC profile CSV (columns ``hour``, ``soc``; soc in 0-1).

    Raises
    ------
    ForecastInputError
        If the file is missing, a column is absent, a value is not a number, an hour is
        outside [0, 24) or not increasing, or a SoC is outside [0, 1] (the line is named).
    """
    import numpy as np

    text = _csv_text(path)
    hours: list[float] = []
    socs: list[float] = []
    with io.StringIO(text, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in ("hour", "soc") if c not in columns]
        if missing:
            msg = f"{path}: missing column(s) {', '.join(missing)} (found {columns})"
            raise ForecastInputError(msg)
        for row in reader:
            line = reader.line_num
            row = {k.strip(): v for k, v in row.items() if k is not None}
            hour = _float_field(path, line, "hour", row.get("hour"))
            soc = _float_field(path, line, "soc", row.get("soc"))
            if not 0 <= hour < 24:
                msg = f"{path}: line {line}: hour={hour:g} must be in [0, 24)"
                raise ForecastInputError(msg)
            if hours and hour <= hours[-1]:
                msg = (
                    f"{path}: line {line}: hour={hour:g} must be greater than the "
                    f"previous hour {hours[-1]:g}"
                )
                raise ForecastInputError(msg)
            if not 0 <= soc <= 1:
                hint = " (percent? give fractions 0-1)" if 1 < soc <= 100 else ""
                msg = f"{path}: line {line}: soc={soc:g} must be a fraction in [0, 1]{hint}"
                raise ForecastInputError(msg)
            hours.append(hour)
            socs.append(soc)
    if not hours:
        msg = f"{path}: no data rows"
        raise ForecastInputError(msg)
    return np.array(hours), np.array(socs)


@degradation_app.command("project")
def project(
    profile: Annotated[
        Path,
        typer.Option(
            "--profile",
            help="CSV of one day: columns hour (0-23.x) and soc (0-1); the day repeats.",
        ),
    ],
    years: Annotated[int, typer.Option("--years", min=1, max=50, help="Years.")],
    temp_c: Annotated[
        float, typer.Option("--temp-c", help="Cell temperature [degC].")
    ] = 25.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Project capacity, year by year, of a battery repeating one day's SoC profile."""
    from forecasting.degradation.aging import load_params, project_day

    hours, socs = read_day_profile(profile)
    if not -40 <= temp_c <= 80:
        msg = f"--temp-c={temp_c:g} must be within [-40, 80] degC"
        raise ForecastInputError(msg)
    result = project_day(hours, socs, years, temp_c)
    notes = [SHALLOW_NOTE, *result.warnings]
    if as_json:
        out: dict[str, Any] = {
            "capacity_fraction": {
                str(y): round(v, 6) for y, v in result.capacity_fraction_by_year.items()
            },
            "efc_per_day": round(result.efc_per_day, 6),
            "mean_cycle_depth": round(result.stress.dod, 6),
            "temp_c": temp_c,
            "model": load_params().source,
            "notes": notes,
        }
        typer.echo(json.dumps(out, indent=2))
        return
    table = Table(title=f"Capacity of {profile.name} repeated daily at {temp_c:g} degC")
    table.add_column("year", justify="right")
    table.add_column("capacity", justify="right")
    for y, v in result.capacity_fraction_by_year.items():
        table.add_row(str(y), f"{v:.4f}")
    console = Console()
    console.print(table)
    console.print(
        f"{result.efc_per_day:.3f} equivalent full cycles a day, mean cycle depth "
        f"{result.stress.dod:.0%}. Model: {load_params().source}."
    )
    for note in notes:
        console.print(f"note: {note}", highlight=False)


FleetOption = Annotated[
    Path | None,
    typer.Option(
        "--fleet",
        help="Fleet file (.toml/.yaml); default: the sites loaded in the store.",
    ),
]
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Store URL (default: BESSFLEET_DATABASE_URL)."),
]


def _store_url(db: str | None) -> str:
    """Return the store URL: the option, else the configured one."""
    from fleet.config import Settings

    return db or Settings().database_url


def _load_sites(fleet_path: Path | None, db: str | None) -> dict[str, Site]:
    """Sites by id, from the fleet file or else from the store's ``sites`` table."""
    import sqlalchemy as sa

    from fleet.domain import Site
    from fleet.errors import FleetInputError
    from fleet.fleetfile import load_fleet
    from fleet.store.engine import make_engine
    from fleet.store.sites import load_site_configs

    if fleet_path is not None:
        return {str(site.id): site for site in load_fleet(fleet_path).sites}
    url = _store_url(db)
    engine = make_engine(url)
    try:
        configs = load_site_configs(engine)
    except sa.exc.SQLAlchemyError as exc:
        msg = (
            f"no --fleet given and the store at {engine.url!r} cannot be read "
            f"({type(exc).__name__}); run `bessfleet db upgrade` and "
            "`bessfleet fleet load FILE`, or give --fleet FILE"
        )
        raise FleetInputError(msg) from None
    finally:
        engine.dispose()
    if not configs:
        msg = (
            f"no --fleet given and the store at {engine.url!r} holds no sites; "
            "run `bessfleet fleet load FILE` or give --fleet FILE"
        )
        raise FleetInputError(msg)
    return {str(cfg["id"]): Site.model_validate(cfg) for cfg in configs}


def _lookup(sites: dict[str, Site], site_id: str) -> Site:
    """Return a site by id; an unknown id is bad input (exit 2)."""
    from fleet.errors import FleetInputError

    if site_id not in sites:
        msg = f"no site {site_id!r} (sites: {', '.join(sites)})"
        raise FleetInputError(msg)
    return sites[site_id]


def _site(fleet_path: Path | None, db: str | None, site_id: str) -> Site:
    """Return one site from the fleet file or the store."""
    return _lookup(_load_sites(fleet_path, db), site_id)


def site_cost_inputs(
    site: Site, *, efc_per_day: float | None = None, temp_c: float = 25.0
) -> CostInputs:
    """Cost inputs of a fleet site; expected duty from its warranty when not given."""
    from fleet.ops.degradation_costs import site_cost_inputs as inputs_of

    return inputs_of(site, efc_per_day=efc_per_day, temp_c=temp_c)


def _check_duty(efc_per_day: float | None, temp_c: float) -> None:
    """Refuse a what-if duty out of range, naming the option (exit 2)."""
    if efc_per_day is not None and not (
        math.isfinite(efc_per_day) and 0 < efc_per_day <= 10
    ):
        msg = (
            f"--efc-per-day={efc_per_day:g} must be in (0, 10] equivalent full cycles "
            "a day; omit it to use the duty from the site's history or warranty"
        )
        raise ForecastInputError(msg)
    if not (math.isfinite(temp_c) and -40 <= temp_c <= 80):
        msg = f"--temp-c={temp_c:g} must be within [-40, 80] degC"
        raise ForecastInputError(msg)


def history_efc_per_day(hist: SocHistory, energy_mwh: float) -> float:
    """Equivalent full cycles a day of a history: metered when it has power [1/day]."""
    from forecasting.degradation.cycles import cycle_ledger

    ledger = cycle_ledger(
        hist.soc,
        energy_mwh,
        band="auto",
        time_h=hist.time_h,
        power_mw=hist.power_mw,
    )
    days = float(hist.time_h[-1]) / 24.0
    return ledger.efc / days if days > 0 else 0.0


def _store_duty(db: str, site: Site, as_of: str | None) -> float | None:
    """EFC a day the day-ahead run would read from the store's telemetry, or None."""
    from fleet.ops.degradation_costs import history_efc_per_day as store_efc
    from fleet.store.engine import make_engine

    now = dt.datetime.now(dt.UTC)
    if as_of is not None:
        try:
            now = dt.datetime.fromisoformat(as_of.replace("Z", "+00:00"))
        except ValueError:
            msg = f"--as-of={as_of!r} is not an ISO-8601 time"
            raise ForecastInputError(msg) from None
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.UTC)
    engine = make_engine(db)
    try:
        return store_efc(engine, site, now=now)
    finally:
        engine.dispose()


@degradation_app.command("costs")
def costs(
    site_id: Annotated[str, typer.Argument(metavar="SITE", help="Site id.")],
    fleet_file: FleetOption = None,
    db: DbOption = None,
    segments: Annotated[int, typer.Option("--segments", min=1, max=50)] = 4,
    efc_per_day: Annotated[
        float | None,
        typer.Option(
            "--efc-per-day",
            help="What-if expected full cycles a day (> 0); default: the site's "
            "history (--soc-csv) or its warranty, as dispatch uses.",
        ),
    ] = None,
    soc_csv: Annotated[
        Path | None,
        typer.Option(
            "--soc-csv",
            help="SoC history (timestamp_utc, soc [, power_mw]): expected duty from it.",
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="With --db: the time the day-ahead run would read the last 30 days "
            "of telemetry at (ISO-8601 UTC; default now).",
        ),
    ] = None,
    temp_c: Annotated[
        float, typer.Option("--temp-c", help="Cell temperature [degC].")
    ] = 25.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Print the degradation_usd_per_mwh dispatch uses for a site, and where it came from.

    Without a fleet-file override dispatch uses the aging model at the site's
    replacement cost and expected duty: EFC a day of the last 30 days of telemetry in
    the store (--db; at least 7 days) or of a --soc-csv history, else its warranty's. A
    degradation_usd_per_mwh in the fleet file overrides the model; both are printed
    then. --efc-per-day and --temp-c ask what-if questions of the model.
    """
    from fleet.ops.degradation_costs import site_segment_costs

    _check_duty(efc_per_day, temp_c)
    site = _site(fleet_file, db, site_id)
    history = None
    if soc_csv is not None:
        history = history_efc_per_day(
            read_soc_history(soc_csv), site.battery.energy_mwh
        )
    elif db is not None:
        history = _store_duty(db, site, as_of)
    chosen = site_segment_costs(
        site,
        n_segments=segments,
        efc_per_day=efc_per_day,
        history_efc_per_day=history,
        temp_c=temp_c,
    )
    model = chosen.costs
    what_if = efc_per_day is not None or temp_c != 25.0 or segments != 4
    out: dict[str, Any] = {
        "site": site_id,
        # A what-if asks the model; without one, this is what dispatch uses.
        "degradation_usd_per_mwh": [
            round(c, 4)
            for c in (chosen.model_usd_per_mwh if what_if else chosen.usd_per_mwh)
        ],
        "source": chosen.source,
        "description": chosen.description,
        "model_degradation_usd_per_mwh": [
            round(c, 4) for c in chosen.model_usd_per_mwh
        ],
        "efc_per_day": round(chosen.efc_per_day, 4),
        "duty_source": chosen.duty_source,
        "temp_c": temp_c,
        "calendar_usd_per_day": round(model.calendar_usd_per_day, 2),
        "life_years": round(model.life_years, 2),
        "efc_to_eol": round(model.efc_to_eol, 1),
        "what_if": what_if,
        "warnings": [SHALLOW_NOTE, *model.warnings],
    }
    if history is not None:
        out["history_efc_per_day"] = round(history, 4)
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    head = "what-if (not what dispatch uses)" if what_if else "dispatch uses"
    curve = out["degradation_usd_per_mwh"]
    typer.echo(f"{site_id}: {head}: degradation_usd_per_mwh = {curve} $/MWh")
    typer.echo(f"source: {chosen.description}")
    for key in ("calendar_usd_per_day", "life_years", "efc_to_eol"):
        typer.echo(f"{key}: {out[key]}")
    for note in out["warnings"]:
        typer.echo(f"warning: {note}")


@degradation_app.command("plot")
def plot(
    site_id: Annotated[str, typer.Argument(metavar="SITE", help="Site id.")],
    fleet_file: FleetOption = None,
    db: DbOption = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="PNG file to write.")
    ] = None,
    segments: Annotated[int, typer.Option("--segments", min=1, max=50)] = 4,
    efc_per_day: Annotated[float | None, typer.Option("--efc-per-day")] = None,
    temp_c: Annotated[float, typer.Option("--temp-c")] = 25.0,
) -> None:
    """Plot the cycle-depth cost curve and the dispatch segment costs of a site."""
    import matplotlib
    import numpy as np

    from forecasting.degradation.costs import cycle_fade, degradation_costs

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _check_duty(efc_per_day, temp_c)
    site = _site(fleet_file, db, site_id)
    inputs = site_cost_inputs(site, efc_per_day=efc_per_day, temp_c=temp_c)
    result = degradation_costs(inputs, segments)
    depth = np.linspace(0.0, 1.0, 101)
    cycle_usd = result.usd_per_fade * cycle_fade(
        depth, inputs, result.fade_per_efc_scale
    )
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(depth * 100, cycle_usd)
    ax1.set_xlabel("cycle depth [% of capacity]")
    ax1.set_ylabel("cost of one cycle [$]")
    ax1.set_title(f"{site_id}: cycle cost vs depth")
    band = inputs.soc_max - inputs.soc_min
    edges = np.linspace(0, band, segments + 1) * 100
    ax2.stairs(result.segment_usd_per_mwh, edges)
    ax2.set_xlabel("depth below soc_max [% of capacity]")
    ax2.set_ylabel("marginal cost [$/MWh discharged]")
    ax2.set_title(f"segments (calendar {result.calendar_usd_per_day:.0f} $/day)")
    fig.tight_layout()
    path = output or Path(f"degradation-{site_id}.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    typer.echo(f"wrote {path}")


@dataclass(frozen=True, slots=True)
class SocHistory:
    """An SoC history read from CSV."""

    time_h: np.ndarray
    soc: np.ndarray
    power_mw: np.ndarray | None
    temp_c: np.ndarray | None
    start: dt.datetime
    end: dt.datetime


def read_soc_history(path: Path) -> SocHistory:
    """Read ``timestamp_utc,soc[,power_mw][,temp_c]`` (ISO-8601 UTC, soc in 0-1)."""
    import numpy as np

    text = _csv_text(path)
    stamps: list[dt.datetime] = []
    socs: list[float] = []
    powers: list[float] = []
    temps: list[float] = []
    with io.StringIO(text, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in ("timestamp_utc", "soc") if c not in columns]
        if missing:
            msg = f"{path}: missing column(s) {', '.join(missing)} (found {columns})"
            raise ForecastInputError(msg)
        has_power, has_temp = "power_mw" in columns, "temp_c" in columns
        for row in reader:
            line = reader.line_num
            row = {k.strip(): v for k, v in row.items() if k is not None}
            text = (row.get("timestamp_utc") or "").strip()
            try:
                stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                msg = f"{path}: line {line}: timestamp_utc={text!r} is not ISO-8601"
                raise ForecastInputError(msg) from None
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=dt.UTC)
            if stamps and stamp <= stamps[-1]:
                msg = f"{path}: line {line}: timestamp_utc={text} is not after the previous row"
                raise ForecastInputError(msg)
            soc = _float_field(path, line, "soc", row.get("soc"))
            if not 0 <= soc <= 1:
                msg = f"{path}: line {line}: soc={soc:g} must be a fraction in [0, 1]"
                raise ForecastInputError(msg)
            stamps.append(stamp)
            socs.append(soc)
            if has_power:
                powers.append(_float_field(path, line, "power_mw", row.get("power_mw")))
            if has_temp:
                temps.append(_float_field(path, line, "temp_c", row.get("temp_c")))
    if len(stamps) < 2:
        msg = f"{path}: need at least 2 rows, got {len(stamps)}"
        raise ForecastInputError(msg)
    t0 = stamps[0]
    time_h = np.array([(s - t0).total_seconds() / 3600.0 for s in stamps])
    return SocHistory(
        time_h=time_h,
        soc=np.array(socs),
        power_mw=np.array(powers) if powers else None,
        temp_c=np.array(temps) if temps else None,
        start=stamps[0],
        end=stamps[-1],
    )


def read_store_history(url: str, site_id: str, dev_id: str) -> SocHistory | None:
    """Read a site's SoC, DC power and cell temperature history from the store.

    Returns None when the store holds fewer than two samples with a SoC for the
    device. ``soc_pct`` becomes a fraction (clipped to 0-1), ``p_dc_w`` MW.
    """
    import numpy as np
    import sqlalchemy as sa

    from fleet.store.engine import make_engine
    from fleet.store.telemetry_tables import tlm_measurements as tlm

    engine = make_engine(url)
    try:
        query = (
            sa.select(
                tlm.c.ts_ms,
                tlm.c.soc_pct,
                tlm.c.p_dc_w,
                tlm.c.cell_t_avg_c,
                tlm.c.cell_t_min_c,
                tlm.c.cell_t_max_c,
            )
            .where(
                tlm.c.site_id == site_id,
                tlm.c.dev_id == dev_id,
                tlm.c.soc_pct.is_not(None),
            )
            .order_by(tlm.c.ts_ms)
        )
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    finally:
        engine.dispose()
    if len(rows) < 2:
        return None
    ts_ms = np.array([r.ts_ms for r in rows], dtype=np.float64)
    soc = np.clip(np.array([r.soc_pct for r in rows], dtype=np.float64) / 100.0, 0, 1)
    power = np.array(
        [0.0 if r.p_dc_w is None else r.p_dc_w / 1e6 for r in rows], dtype=np.float64
    )
    temps = [
        r.cell_t_avg_c
        if r.cell_t_avg_c is not None
        else (
            0.5 * (r.cell_t_min_c + r.cell_t_max_c)
            if r.cell_t_min_c is not None and r.cell_t_max_c is not None
            else math.nan
        )
        for r in rows
    ]
    temp = np.array(temps, dtype=np.float64)
    temp_c = (
        None
        if np.all(np.isnan(temp))
        else np.where(np.isnan(temp), np.nanmean(temp), temp)
    )
    start = dt.datetime.fromtimestamp(ts_ms[0] / 1000, tz=dt.UTC)
    return SocHistory(
        time_h=(ts_ms - ts_ms[0]) / 3.6e6,
        soc=soc,
        power_mw=power,
        temp_c=temp_c,
        start=start,
        end=dt.datetime.fromtimestamp(ts_ms[-1] / 1000, tz=dt.UTC),
    )


def _pre_age(hist: SocHistory, gap_days: float, temp: np.ndarray | float) -> AgingState:
    """Age a new battery over the untracked days before the history, at its stress."""
    from forecasting.degradation.aging import AgingState, step, window_stress

    if gap_days <= 0:
        return AgingState()
    stress = window_stress(hist.time_h, hist.soc, temp)
    per_day = 1.0 / stress.duration_days
    assumed = replace(
        stress,
        duration_days=gap_days,
        swing=stress.swing * per_day * gap_days,
    )
    return step(AgingState(), assumed)


def _parse_site_paths(items: list[str]) -> dict[str, Path]:
    """Parse ``SITE=PATH`` options."""
    out: dict[str, Path] = {}
    for item in items:
        site_id, sep, path = item.partition("=")
        if not sep or not site_id or not path:
            msg = f"--soc-csv {item!r} must be SITE=PATH"
            raise ForecastInputError(msg)
        out[site_id.strip()] = Path(path.strip())
    return out


def _prior_at_hours(path: AgingPath, time_h: np.ndarray) -> np.ndarray:
    """Return the model's capacity fraction at times in hours."""
    return path.capacity_at_days(time_h / 24.0)


def _eol_date(
    path: AgingPath,
    hist: SocHistory,
    temp: np.ndarray | float,
    start: dt.datetime,
    eol: float,
) -> dt.date | None:
    """Continue the history's average duty with the model until capacity reaches ``eol``."""
    from forecasting.degradation.aging import step, window_stress

    state = path.final
    if state.capacity_fraction <= eol:
        return (start + dt.timedelta(days=state.t_days)).date()
    stress = window_stress(hist.time_h, hist.soc, temp)
    week = replace(
        stress, duration_days=7.0, swing=stress.swing * 7.0 / stress.duration_days
    )
    for _ in range(52 * 60):
        state = step(state, week)
        if state.capacity_fraction <= eol:
            return (start + dt.timedelta(days=state.t_days)).date()
    return None


@degradation_app.command("report")
def report(
    fleet_file: FleetOption = None,
    soc_csv: Annotated[
        list[str] | None,
        typer.Option(
            "--soc-csv",
            help="SITE=PATH: SoC history (timestamp_utc, soc [, power_mw, temp_c]); "
            "repeat per site.",
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Store URL: read the sites' telemetry (tlm_measurements); also the "
            "sites when --fleet is absent (default then: BESSFLEET_DATABASE_URL).",
        ),
    ] = None,
    dev_id: Annotated[
        str, typer.Option("--dev", help="Battery device id in the store.")
    ] = "bank1",
    result_file: Annotated[
        Path | None,
        typer.Option(
            "--result", help="Dispatch result JSON: cost its schedule's wear."
        ),
    ] = None,
    interval_minutes: Annotated[
        float, typer.Option("--interval-minutes", min=1, help="Interval of --result.")
    ] = 15.0,
    eol: Annotated[
        float, typer.Option("--eol", help="End-of-life capacity (0-1).")
    ] = 0.8,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Per site: SoH, fade rate, EFC/year, warranty headroom, end of life, wear cost."""
    import numpy as np

    from forecasting.degradation.aging import simulate, validity_warnings
    from forecasting.degradation.costs import schedule_wear
    from forecasting.degradation.cycles import cycle_ledger
    from forecasting.degradation.soh import capacity_measurements, estimate_soh

    sites = _load_sites(fleet_file, db)
    if fleet_file is None:
        db = _store_url(db)
    paths = _parse_site_paths(soc_csv or [])
    for site_id in paths:
        _lookup(sites, site_id)
    histories: dict[str, SocHistory] = {
        k: read_soc_history(v) for k, v in paths.items()
    }
    skipped: list[str] = []
    if db is not None:
        for site_id in sites:
            if site_id in histories:
                continue
            found = read_store_history(db, site_id, dev_id)
            if found is None:
                skipped.append(site_id)
            else:
                histories[site_id] = found
    if not histories:
        msg = "no SoC history: give --soc-csv SITE=PATH or --db URL with telemetry"
        raise ForecastInputError(msg)
    schedules: dict[str, Any] = {}
    interval_h = interval_minutes / 60.0
    if result_file is not None:
        from dispatch.result import load_result

        res = load_result(result_file)
        schedules = dict(res.sites)
    rows: list[dict[str, Any]] = []
    for site_id, hist in histories.items():
        site = _lookup(sites, site_id)
        battery = site.battery
        temp = hist.temp_c if hist.temp_c is not None else 25.0
        commissioned = dt.datetime.combine(
            battery.commissioned, dt.time(), tzinfo=dt.UTC
        )
        gap_days = (hist.start - commissioned).total_seconds() / 86400.0
        aging = simulate(
            hist.time_h, hist.soc, temp, initial=_pre_age(hist, gap_days, temp)
        )
        model_soh = float(aging.capacity_fraction[-1])
        soh, soh_std, method = model_soh, float("nan"), "model"
        checks: list[str] = []
        if hist.power_mw is not None:
            ms = capacity_measurements(
                hist.time_h, hist.power_mw, hist.soc, battery.energy_mwh
            )
            if ms:
                measured = float(np.median([m.capacity_fraction for m in ms]))
                if PLAUSIBLE_SOH[0] <= measured <= PLAUSIBLE_SOH[1]:
                    est = estimate_soh(ms, partial(_prior_at_hours, aging))
                    soh, soh_std, method = est.latest, est.latest_std, "telemetry"
                else:
                    checks.append(
                        f"telemetry measures a capacity of {measured:.2f} x "
                        f"energy_mwh={battery.energy_mwh:g}: implausible, check the "
                        "power_mw units and sign (+ discharge); SoH from the model"
                    )
        days = float(hist.time_h[-1] / 24.0)
        life_days = float(aging.t_days[-1])
        ledger = cycle_ledger(
            hist.soc,
            battery.energy_mwh,
            band="auto",
            time_h=hist.time_h,
            power_mw=hist.power_mw,
        )
        # Battery-side discharge (metered DC power where the history has it, else the
        # filtered SoC) times the discharge efficiency: throughput at the meter.
        used_mwh = ledger.discharge_mwh * battery.eta_discharge
        age_days = max((hist.end.date() - battery.commissioned).days, 0)
        terms = WarrantyTerms(
            years=battery.warranty.years,
            throughput_mwh=battery.warranty.throughput_mwh,
            energy_mwh=battery.energy_mwh,
            max_average_soc=battery.warranty.max_average_soc,
            max_c_rate_per_h=battery.warranty.max_c_rate_per_h,
        )
        c_rate = (
            float(np.max(np.abs(hist.power_mw))) / battery.energy_mwh
            if hist.power_mw is not None
            else None
        )
        avg_soc = float(np.trapezoid(hist.soc, hist.time_h) / hist.time_h[-1])
        status = warranty_status(
            terms,
            age_days=age_days,
            used_mwh=used_mwh,
            average_soc=avg_soc,
            max_c_rate_per_h=c_rate,
        )
        fade_per_year = (1.0 - model_soh) / life_days * 365.0 if life_days > 0 else 0.0
        origin = commissioned if gap_days > 0 else hist.start
        eol_date = _eol_date(aging, hist, temp, origin, eol)
        row: dict[str, Any] = {
            "site": site_id,
            "soh": round(soh, 4),
            "soh_std": None if math.isnan(soh_std) else round(soh_std, 4),
            "soh_method": method,
            "model_soh": round(model_soh, 4),
            "fade_pct_per_year": round(fade_per_year * 100, 3),
            "efc_per_year": round(ledger.efc / days * 365.0, 1) if days > 0 else 0.0,
            "warranty_used_mwh": round(status.used_mwh, 1),
            "warranty_headroom_mwh": round(status.headroom_mwh, 1),
            "warranty_remaining_mwh": round(status.remaining_mwh, 1),
            "warranty_violations": list(status.violations),
            "end_of_life": eol_date.isoformat() if eol_date else None,
            "history_days": round(days, 2),
            "notes": [
                *checks,
                *validity_warnings(aging.mean_dod, aging.mean_temp_c, ledger.efc),
                *(
                    [
                        f"history starts {gap_days:.0f} days after commissioning: "
                        "those days are assumed to have the history's duty"
                    ]
                    if gap_days > 1
                    else []
                ),
            ],
        }
        if site_id in schedules:
            inputs = site_cost_inputs(site)
            wear = schedule_wear(schedules[site_id].soc, interval_h, inputs)
            row["schedule_wear_usd"] = round(wear.total_usd, 2)
            row["schedule_cycle_wear_usd"] = round(wear.cycle_usd, 2)
            revenue = schedules[site_id].revenue_usd
            if revenue:
                gross = sum(v for k, v in revenue.items() if k != "degradation")
                row["schedule_revenue_usd"] = round(gross, 2)
                row["schedule_planned_degradation_usd"] = round(
                    -revenue.get("degradation", 0.0), 2
                )
                row["schedule_net_of_wear_usd"] = round(gross - wear.cycle_usd, 2)
        rows.append(row)
    if as_json:
        typer.echo(json.dumps({"sites": rows, "no_telemetry": skipped}, indent=2))
        return
    table = Table(title="Degradation report")
    for col in (
        "site",
        "soh",
        "fade %/yr",
        "EFC/yr",
        "headroom MWh",
        "end of life",
        "wear $",
        "net of wear $",
    ):
        table.add_column(col)
    for row in rows:
        table.add_row(
            row["site"],
            f"{row['soh']:.4f} ({row['soh_method']})",
            f"{row['fade_pct_per_year']:.2f}",
            f"{row['efc_per_year']:.0f}",
            f"{row['warranty_headroom_mwh']:.0f}",
            str(row["end_of_life"]),
            str(row.get("schedule_wear_usd", "-")),
            str(row.get("schedule_net_of_wear_usd", "-")),
        )
    console = Console()
    console.print(table)
    for row in rows:
        for note in row["notes"] + row["warranty_violations"]:
            console.print(f"{row['site']}: {note}", highlight=False)
    if skipped:
        console.print(f"no telemetry in the store for: {', '.join(skipped)}")
