"""CLI commands: backtest, bids (make, push, export), awards push, dayahead run, intraday run."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fleet.errors import FleetInputError

logger = logging.getLogger(__name__)

bids_app = typer.Typer(
    name="bids", help="Make, push and export day-ahead bid sets.", no_args_is_help=True
)
awards_app = typer.Typer(
    name="awards",
    help="Record cleared awards (fixed commitments).",
    no_args_is_help=True,
)
dayahead_app = typer.Typer(
    name="dayahead", help="The day-ahead cycle.", no_args_is_help=True
)
intraday_app = typer.Typer(
    name="intraday", help="Intraday re-dispatch (MPC).", no_args_is_help=True
)

FleetOpt = Annotated[Path, typer.Option("--fleet", help="Fleet file (TOML or YAML).")]
MarketOpt = Annotated[str, typer.Option("--market", help="Market (ERCOT or CAISO).")]
DayOpt = Annotated[
    str, typer.Option("--day", help="Operating day YYYY-MM-DD (market local).")
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db", help="Store URL; default $BESSFLEET_DATABASE_URL.", show_default=False
    ),
]
MqttOpt = Annotated[
    str | None,
    typer.Option("--mqtt", help="Broker URL; default $BESSFLEET_MQTT_URL."),
]
IntervalMinutesOpt = Annotated[
    int, typer.Option("--interval-minutes", help="Intraday interval: 5 or 15.")
]
ModelIntervalOpt = Annotated[
    int | None,
    typer.Option(
        "--model-interval-minutes",
        help="Interval of the re-solved model (a multiple of --interval-minutes).",
    ),
]
StaleAfterOpt = Annotated[
    float,
    typer.Option(
        "--stale-after-s",
        min=0.1,
        help="A site without telemetry for this many seconds is stale (simulated "
        "seconds on an accelerated clock).",
    ),
]
PricesOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--prices",
        help="Price CSV (normalized layout); repeatable. Default: the shared data.",
    ),
]


def _day(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        msg = f"{option}={value!r} must be a date YYYY-MM-DD"
        raise FleetInputError(msg) from None


def _engine(db: str | None) -> Any:
    from fleet.cli.db import resolve_db_url
    from fleet.store.engine import make_engine

    return make_engine(resolve_db_url(db))


def _price_paths(prices: list[Path] | None) -> list[Path]:
    from fleet.config import Settings
    from fleet.ops.backtest import default_price_files

    if prices:
        return list(prices)
    return default_price_files(Settings().shared_data_dir)


def _rules(market: str) -> Any:
    from dispatch.errors import DispatchInputError
    from dispatch.markets import load_market_rules

    try:
        return load_market_rules(market)
    except DispatchInputError as exc:
        raise FleetInputError(str(exc)) from None


def backtest(
    fleet: FleetOpt,
    start: Annotated[
        str, typer.Option("--start", help="First operating day YYYY-MM-DD.")
    ],
    end: Annotated[str, typer.Option("--end", help="Last operating day YYYY-MM-DD.")],
    prices: PricesOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the JSON report.")
    ] = False,
    market: MarketOpt = "ERCOT",
    site: Annotated[
        list[str] | None, typer.Option("--site", help="Only this site; repeatable.")
    ] = None,
    forecaster: Annotated[
        str,
        typer.Option(
            "--forecaster",
            help="naive_average, seasonal_naive, persistence, median_7d, model (P50) "
            "model_mean (expected value of the quantiles) or perfect (the day's "
            "actual DA prices: hindsight, the ceiling of any forecast's value).",
        ),
    ] = "naive_average",
    refit_days: Annotated[
        int, typer.Option("--refit-days", min=1, help="Model refit cadence [days].")
    ] = 28,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Worker processes for the days.")
    ] = 1,
    realtime: Annotated[
        bool,
        typer.Option(
            "--realtime/--no-realtime",
            help="Re-dispatch hourly in real time (off: meter the DA position).",
        ),
    ] = True,
    load_dir: Annotated[
        Path | None,
        typer.Option(
            "--load-dir",
            help="Folder of the behind-the-meter load data sets; default: the shared "
            "data folder when it exists, else the sample bundled with bessfleet.",
            show_default=False,
        ),
    ] = None,
    hindsight: Annotated[
        str,
        typer.Option(
            "--hindsight",
            help="exact (MILP bound, 0.01 % gap) or relaxed (LP bound, faster).",
        ),
    ] = "exact",
    as_offers: Annotated[
        str,
        typer.Option(
            "--as-offers",
            help="linked (upward reserves offered as one block to every upward "
            "product, awarded to the best-paying mix at the clearing prices) or "
            "fixed (each product awarded as planned).",
        ),
    ] = "linked",
    da_plan: Annotated[
        str,
        typer.Option(
            "--da-plan",
            help="price_taker (plan at the P50 forecast), two_settlement (plus the "
            "median RT premium) or stochastic (against the last 30 days' RT - DA "
            "spreads as scenarios).",
        ),
    ] = "price_taker",
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the CSVs, JSON and plot.")
    ] = Path("backtest-out"),
) -> None:
    """Replay real prices: DA plan, RT re-dispatch, two-settlement, bounds, baselines."""
    from fleet.config import Settings
    from fleet.fleetfile import load_fleet
    from fleet.ops.backtest import (
        BacktestOptions,
        read_prices,
        run_backtest,
        write_outputs,
    )

    first, last = _day(start, "--start"), _day(end, "--end")
    fleet_obj = load_fleet(fleet)
    rules = _rules(market)
    if load_dir is None:
        from fleet.data.sample import SAMPLE_DIR

        shared = Settings().shared_data_dir
        load_dir = shared if shared.is_dir() else SAMPLE_DIR
    elif not load_dir.is_dir():
        msg = f"--load-dir={load_dir} is not a folder"
        raise FleetInputError(msg)
    options = BacktestOptions(
        market=rules.name,
        forecaster=forecaster,
        refit_days=refit_days,
        workers=workers,
        site_ids=tuple(site or ()),
        realtime=realtime,
        load_dir=load_dir,
        hindsight=hindsight,
        as_offers=as_offers,
        da_plan=da_plan,
    )
    frame = read_prices(_price_paths(prices), rules.name)
    if workers > 1:
        from fleet.parallel import make_executor

        with make_executor(workers=workers) as executor:
            report = run_backtest(
                fleet_obj, frame, first, last, options, executor=executor
            )
    else:
        report = run_backtest(fleet_obj, frame, first, last, options)
    paths = write_outputs(report, out)
    totals = report.totals()
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=1) + "\n")
        return
    console = Console()
    table = Table("figure", "value")
    for key, value in totals["revenue_usd"].items():
        table.add_row(f"revenue {key} [USD]", f"{value:,.0f}")
    for key in (
        "degradation_usd",
        "net_usd",
        "hindsight_usd",
        "da_only_perfect_foresight_usd",
        "day_ahead_usd",
    ):
        table.add_row(key, f"{totals[key]:,.0f}")
    for key in ("capture_vs_hindsight", "capture_vs_da_only"):
        value = totals[key]
        table.add_row(key, "n/a" if value is None else f"{value:.3f}")
    for key, value in totals["baselines"].items():
        ratio = totals["value_over_baselines"].get(key)
        shown = "n/a" if ratio is None else f"{ratio:.2f}x"
        table.add_row(f"baseline {key} [USD]", f"{value:,.0f} (ours {shown})")
    if totals["value_of_forecast_usd"] is not None:
        table.add_row(
            "value_of_forecast_usd", f"{totals['value_of_forecast_usd']:,.0f}"
        )
    table.add_row(
        "days replayed / skipped",
        f"{totals['days_replayed']} / {totals['days_skipped']}",
    )
    table.add_row("RT hours missing (excluded)", str(totals["rt_missing_hours"]))
    table.add_row(
        "AS awarded / shortfall [MW-h] / charge [USD]",
        f"{totals['as_awarded_mwh']:,.1f} / {totals['as_shortfall_mwh']:,.1f} / "
        f"{totals['as_shortfall_usd']:,.0f}",
    )
    for bill in totals.get("btm_bills", []):
        table.add_row(
            f"BTM {bill['site_id']} {bill['billing_month']} savings [USD]",
            f"{bill['savings_usd']:,.0f} ({bill['days']} days; bill "
            f"{bill['bill_without_battery_usd']:,.0f} -> "
            f"{bill['bill_with_battery_usd']:,.0f}, peak "
            f"{bill['peak_without_mw']:.3f} -> {bill['peak_with_mw']:.3f} MW)",
        )
    table.add_row("seconds", f"{totals['seconds']:.1f}")
    console.print(table)
    from fleet.ops.degradation_costs import describe_fleet_costs

    ids = set(options.site_ids) or None
    console.print(describe_fleet_costs(fleet_obj, ids), highlight=False)
    console.print(
        f"wrote {escape(str(paths['csv']))}, {escape(str(paths['png']))}",
        highlight=False,
    )


@dayahead_app.command("schedule")
def dayahead_schedule(
    fleet: FleetOpt,
    market: Annotated[
        list[str] | None,
        typer.Option(
            "--market", help="Market to plan (repeatable; default: all in the fleet)."
        ),
    ] = None,
    lead_minutes: Annotated[
        float,
        typer.Option(
            "--lead-minutes",
            min=0.0,
            help="Run this long before the market's day-ahead close [minutes].",
        ),
    ] = 30.0,
    cycles: Annotated[
        int | None,
        typer.Option(
            "--cycles",
            min=1,
            help="Stop after this many days (default: run until stopped).",
        ),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Run the day-ahead cycle of each market every day before its close, until stopped."""
    import signal
    import threading

    from fleet.fleetfile import load_fleet
    from fleet.ops.clock import SystemClock
    from fleet.ops.dayahead import run_dayahead_when_due

    fleet_obj = load_fleet(fleet)
    markets = sorted(
        {str(m).upper() for m in market}
        if market
        else {
            str(s.market.value if hasattr(s.market, "value") else s.market)
            for s in fleet_obj.sites
        }
    )
    rules = [_rules(m) for m in markets]
    engine = _engine(db)
    stop = threading.Event()

    def _stop(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    console = Console()
    console.print(
        f"day-ahead scheduler for {', '.join(markets)}: "
        f"{lead_minutes:g} min before each close; Ctrl-C stops",
        highlight=False,
    )
    threads = [
        threading.Thread(
            target=run_dayahead_when_due,
            args=(engine, fleet_obj, r, SystemClock()),
            kwargs={
                "lead_minutes": lead_minutes,
                "stop": stop,
                "cycles": cycles,
                "on_outcome": lambda o: console.print(
                    f"{o.status}: version {o.version}", highlight=False
                ),
            },
            name=f"dayahead-{r.name}",
            daemon=True,
        )
        for r in rules
    ]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads) and not stop.is_set():
        stop.wait(1.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)


@dayahead_app.command("run")
def dayahead_run(
    fleet: FleetOpt,
    market: MarketOpt = "ERCOT",
    day: Annotated[
        str | None,
        typer.Option("--day", help="Operating day; default tomorrow (market local)."),
    ] = None,
    db: DbOpt = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the bid set JSON here.")
    ] = None,
    forecast: Annotated[
        str,
        typer.Option(
            "--forecast",
            help="When no forecast of the day is stored: make them with this method "
            "(model or naive) from the stored prices; none: refuse.",
        ),
    ] = "model",
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Load data sets for behind-the-meter sites with no metered load yet.",
        ),
    ] = None,
) -> None:
    """Plan the operating day from stored forecasts and telemetry, store the schedule, make bids.

    Forecasts missing for the day are made first from the stored prices (``--forecast``).
    """
    from dispatch.bids import export_json
    from fleet.fleetfile import load_fleet
    from fleet.ops.dayahead import run_dayahead

    fleet_obj = load_fleet(fleet)
    rules = _rules(market)
    now = dt.datetime.now(dt.UTC)
    if day is None:
        from zoneinfo import ZoneInfo

        local_today = now.astimezone(ZoneInfo(rules.timezone)).date()
        operating_day = local_today + dt.timedelta(days=1)
    else:
        operating_day = _day(day, "--day")
    if forecast not in ("model", "naive", "none"):
        msg = f"--forecast={forecast!r} must be model, naive or none"
        raise FleetInputError(msg)
    method: Any = None if forecast == "none" else forecast
    outcome = run_dayahead(
        _engine(db),
        fleet_obj,
        rules,
        operating_day,
        now=now,
        forecast=method,
        data_dir=data_dir,
    )
    console = Console()
    if outcome.version is None:
        console.print(
            f"[bold red]{outcome.status}[/]: {escape(str(outcome.reason))}; the previous plan stands"
        )
        raise typer.Exit(1)
    console.print(
        f"{rules.name} {operating_day}: schedule v{outcome.version}, objective "
        f"{outcome.result.objective_usd or 0:,.2f} USD ({outcome.forecast_source} "
        f"forecasts)",
        highlight=False,
    )
    from fleet.ops.degradation_costs import describe_fleet_costs

    used = {s.id: list(s.degradation_usd_per_mwh) for s in outcome.scenario.sites}
    console.print(describe_fleet_costs(fleet_obj, set(used), used), highlight=False)
    for refusal in outcome.refusals:
        console.print(f"[bold red]own bid refused[/]: {escape(str(refusal))}")
    if outcome.refusals:
        raise typer.Exit(1)
    if output is not None and outcome.bids is not None:
        ids = {str(s.id): s.resource_id or str(s.id) for s in fleet_obj.sites}
        output.write_text(
            json.dumps(export_json(outcome.bids, rules, ids), indent=1) + "\n"
        )
        console.print(f"wrote {escape(str(output))}", highlight=False)


@bids_app.command("make")
def bids_make(
    fleet: FleetOpt,
    day: DayOpt,
    market: MarketOpt = "ERCOT",
    prices: PricesOpt = None,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Bid set JSON to write (API layout).")
    ] = Path("bids.json"),
) -> None:
    """Make the day's bids from the price history (naive forecast issued on D-1), no store."""
    from dispatch.bids import build_bids, with_energy_prices
    from dispatch.solve import solve
    from fleet.fleetfile import load_fleet
    from fleet.ops.backtest import BacktestOptions, DayInputs, prepare_days, read_prices
    from fleet.ops.scenario_builder import (
        ScenarioInputs,
        build_scenario,
        operating_day_start,
    )

    fleet_obj = load_fleet(fleet)
    rules = _rules(market)
    operating_day = _day(day, "--day")
    frame = read_prices(_price_paths(prices), rules.name)
    prepared = prepare_days(
        fleet_obj,
        frame,
        operating_day,
        operating_day,
        BacktestOptions(market=rules.name),
    )
    inputs = prepared[0]
    if not isinstance(inputs, DayInputs):
        msg = f"--day={operating_day}: {inputs.status}"
        raise FleetInputError(msg)
    scn = build_scenario(
        fleet_obj,
        rules,
        ScenarioInputs(
            start=operating_day_start(rules, operating_day),
            interval_minutes=60,
            intervals=inputs.hours,
            prices=inputs.forecast,
        ),
    )
    result = solve(scn)
    if not result.sites:
        Console(stderr=True).print(
            f"solve {result.status}: {escape(str(result.reason))}"
        )
        raise typer.Exit(1)
    alternatives = []
    for factor in (0.8, 1.25):
        alt_scn = with_energy_prices(
            scn,
            {n: [v * factor for v in (p.energy or [])] for n, p in scn.markets.items()},
        )
        alternatives.append((alt_scn, solve(alt_scn)))
    bid_set = build_bids(scn, result, rules, operating_day, alternatives=alternatives)
    output.write_text(json.dumps(bid_set.to_payload(), indent=1) + "\n")
    Console().print(
        f"wrote {len(bid_set.bids)} bids to {escape(str(output))}", highlight=False
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        msg = f"{path}: file not found"
        raise FleetInputError(msg) from None
    except json.JSONDecodeError as exc:
        msg = (
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        )
        raise FleetInputError(msg) from None


@bids_app.command("push")
def bids_push(
    file: Annotated[Path, typer.Argument(help="Bid set JSON (API BidSetIn layout).")],
    fleet: FleetOpt,
    day: DayOpt,
    market: MarketOpt = "ERCOT",
    db: DbOpt = None,
    submitted_by: Annotated[
        str, typer.Option("--by", help="Submitter recorded in the audit log.")
    ] = "cli",
    version: Annotated[
        int | None,
        typer.Option(
            "--version",
            min=1,
            help="Bid-set version (default: the next free one; a stored one exits 2).",
        ),
    ] = None,
) -> None:
    """Check a bid set against the market rules and the fleet and store it (exit 1 if refused)."""
    from fleet.fleetfile import load_fleet
    from fleet.ops.bids import planned_start_states, push_bid_set
    from fleet.ops.dayahead import latest_site_states

    payload = _read_json(file)
    if not isinstance(payload, dict):
        msg = f"{file}: a bid set must be a JSON object with a bids list"
        raise FleetInputError(msg)
    fleet_obj = load_fleet(fleet)
    rules = _rules(market)
    engine = _engine(db)
    operating_day = _day(day, "--day")
    # The bids are checked from the state the day's plan started from (its SoC, SoH
    # and derate); telemetry now is a day older than the operating day it bids for.
    states = planned_start_states(engine, rules, operating_day)
    if not states:
        now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        telemetry = latest_site_states(
            engine,
            [s.id for s in fleet_obj.sites],
            now_ms=now_ms,
            stale_after_ms=10**13,
        )
        states = {k: v for k, v in telemetry.items() if v.soc is not None}
    stored, refusals = push_bid_set(
        engine,
        fleet_obj,
        rules,
        operating_day,
        payload,
        submitted_by=submitted_by,
        states=states,
        version=version,
    )
    console = Console()
    if refusals:
        console.print(f"[bold red]refused[/] v{stored.version}:", highlight=False)
        for r in refusals[:20]:
            console.print(f"  {escape(r.rule)}: {escape(r.message)}", highlight=False)
        raise typer.Exit(1)
    console.print(
        f"accepted {rules.name} {stored.operating_day} v{stored.version}",
        highlight=False,
    )


@bids_app.command("export")
def bids_export(
    fleet: FleetOpt,
    day: DayOpt,
    market: MarketOpt = "ERCOT",
    db: DbOpt = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="Folder; the export goes to OUT/<MARKET>_<YYYYMMDD>_v<N>/."
        ),
    ] = Path("bids-export"),
    version: Annotated[
        int | None,
        typer.Option("--version", min=1, help="Bid-set version (default: newest)."),
    ] = None,
) -> None:
    """Write the accepted bid set as the market's upload files (docs/bids.md)."""
    from fleet.fleetfile import load_fleet
    from fleet.ops.export import export_bid_set

    fleet_obj = load_fleet(fleet)
    rules = _rules(market)
    operating_day = _day(day, "--day")
    written = export_bid_set(
        _engine(db), fleet_obj, rules, operating_day, out, version=version
    )
    console = Console()
    for item in written.files:
        console.print(
            f"{escape(str(item.path))}  {item.rows} rows  sha256 {item.sha256[:12]}",
            highlight=False,
        )
    console.print(f"manifest {escape(str(written.manifest))}", highlight=False)


@awards_app.command("push")
def awards_push(
    file: Annotated[
        Path, typer.Argument(help="Award set JSON (API AwardSetIn layout).")
    ],
    fleet: FleetOpt,
    day: DayOpt,
    market: MarketOpt = "ERCOT",
    db: DbOpt = None,
) -> None:
    """Record awards checked against their accepted bid set and the sites (else exit 2)."""
    from fleet.fleetfile import load_fleet
    from fleet.ops.awards import check_awards, read_award_file, store_awards

    award_set = read_award_file(file)
    fleet_obj = load_fleet(fleet)
    rules = _rules(market)
    operating_day = _day(day, "--day")
    engine = _engine(db)
    check_awards(engine, award_set, rules, operating_day, fleet_obj)
    rows = store_awards(engine, award_set, rules, operating_day)
    Console().print(
        f"recorded {rows} awards for {rules.name} {operating_day} v{award_set.version}",
        highlight=False,
    )


@intraday_app.command("run")
def intraday_run(
    fleet: FleetOpt,
    market: MarketOpt = "ERCOT",
    day: Annotated[
        str | None,
        typer.Option("--day", help="Operating day; default today (market local)."),
    ] = None,
    db: DbOpt = None,
    mqtt_url: MqttOpt = None,
    intervals: Annotated[
        int | None,
        typer.Option(
            "--intervals", min=1, help="Steps to run (default: the rest of the day)."
        ),
    ] = None,
    interval_minutes: IntervalMinutesOpt = 15,
    model_interval_minutes: ModelIntervalOpt = None,
    stale_after_s: StaleAfterOpt = 15.0,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Load data sets for behind-the-meter sites."),
    ] = None,
) -> None:
    """Re-dispatch every interval of the day from stored telemetry; command every site.

    The same intraday step as ``bessfleet operate`` (awards soft at the charge-back,
    behind-the-meter sites included, setpoints and acks stored). A day that is over
    exits 2.
    """
    import threading
    from zoneinfo import ZoneInfo

    from fleet.config import Settings
    from fleet.fleetfile import load_fleet
    from fleet.ops.clock import SystemClock
    from fleet.ops.intraday import IntradayConfig, MqttSetpointSink
    from fleet.ops.market import IsoMarket
    from fleet.ops.operator import MarketLoop, OperatorOptions, store_states
    from fleet.store.dml import transaction
    from fleet.store.telemetry import record_setpoint
    from telemetry.ingest import make_client, parse_mqtt_url

    fleet_obj = load_fleet(fleet)
    rules = _rules(market)
    clock = SystemClock()
    operating_day = (
        _day(day, "--day")
        if day is not None
        else clock.now().astimezone(ZoneInfo(rules.timezone)).date()
    )
    engine = _engine(db)
    config = IntradayConfig(
        interval_minutes=interval_minutes,
        model_interval_minutes=model_interval_minutes,
        stale_after_s=stale_after_s,
    )
    address = parse_mqtt_url(mqtt_url or Settings().mqtt_url)
    client = make_client(address)

    def record(setpoint: Any) -> None:
        with transaction(engine) as conn:
            record_setpoint(conn, setpoint=setpoint, actor="intraday")

    def now_ms() -> int:
        return int(clock.now().timestamp() * 1000)

    sink = MqttSetpointSink(client, fleet_obj, now_ms=now_ms, record=record)
    ids = [s.id for s in fleet_obj.sites if s.market.value == rules.name]
    loop = MarketLoop(
        engine,
        fleet_obj,
        rules,
        clock,
        send=sink.send,
        states=store_states(engine)(ids),
        options=OperatorOptions(intraday=config, data_dir=data_dir),
        market=IsoMarket(),
    )
    console = Console()

    def show(report: Any) -> None:
        console.print(
            f"{report.start:%H:%M} {report.status} {report.version} sent "
            f"{len(report.setpoints_mw)} stale {list(report.stale)} shortfall "
            f"{report.shortfall_mw} {report.solve_seconds:.2f} s",
            highlight=False,
        )

    stop = threading.Event()
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        loop.run_intraday_day(
            operating_day, stop, on_interval=show, intervals=intervals
        )
    except KeyboardInterrupt:
        stop.set()
    finally:
        client.disconnect()
        client.loop_stop()


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    root.command("backtest")(backtest)
    root.add_typer(bids_app)
    root.add_typer(awards_app)
    root.add_typer(dayahead_app)
    root.add_typer(intraday_app)
