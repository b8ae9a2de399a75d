"""CLI commands: backtest, bids (make, push, export), awards push, dayahead run, intraday run."""

from __future__ import annotations

import csv
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
            "or model_mean (expected value of the quantiles).",
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
            "data folder when it exists.",
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
        shared = Settings().shared_data_dir
        load_dir = shared if shared.is_dir() else None
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
        "AS shortfall [MW-h] / charge [USD]",
        f"{totals['as_shortfall_mwh']:,.1f} / {totals['as_shortfall_usd']:,.0f}",
    )
    for bill in totals.get("btm_bills", []):
        table.add_row(
            f"BTM {bill['site_id']} {bill['billing_month']} savings [USD]",
            f"{bill['savings_usd']:,.0f} ({bill['days']} days)",
        )
    table.add_row("seconds", f"{totals['seconds']:.1f}")
    console.print(table)
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
) -> None:
    """Plan the operating day from stored forecasts and telemetry, store the schedule, make bids."""
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
    outcome = run_dayahead(_engine(db), fleet_obj, rules, operating_day, now=now)
    console = Console()
    if outcome.version is None:
        console.print(
            f"[bold red]{outcome.status}[/]: {escape(str(outcome.reason))}; the previous plan stands"
        )
        raise typer.Exit(1)
    console.print(
        f"{rules.name} {operating_day}: schedule v{outcome.version}, objective "
        f"{outcome.result.objective_usd or 0:,.2f} USD",
        highlight=False,
    )
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
) -> None:
    """Check a bid set against the market rules and the fleet and store it (exit 1 if refused)."""
    from fleet.fleetfile import load_fleet
    from fleet.ops.bids import push_bid_set
    from fleet.ops.dayahead import latest_site_states

    payload = _read_json(file)
    if not isinstance(payload, dict):
        msg = f"{file}: a bid set must be a JSON object with a bids list"
        raise FleetInputError(msg)
    fleet_obj = load_fleet(fleet)
    rules = _rules(market)
    engine = _engine(db)
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    states = latest_site_states(
        engine, [s.id for s in fleet_obj.sites], now_ms=now_ms, stale_after_ms=10**13
    )
    states = {k: v for k, v in states.items() if v.soc is not None}
    stored, refusals = push_bid_set(
        engine,
        fleet_obj,
        rules,
        _day(day, "--day"),
        payload,
        submitted_by=submitted_by,
        states=states,
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
    fmt: Annotated[str, typer.Option("--format", help="json or csv.")] = "json",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File (default stdout).")
    ] = None,
) -> None:
    """Export the newest accepted bid set with the market's resource ids (docs/bids.md)."""
    from dispatch.bids import CSV_COLUMNS, BidSet, bid_rows, export_json, parse_bids
    from fleet.fleetfile import load_fleet
    from fleet.store.bids import latest_accepted_bid_set

    if fmt not in ("json", "csv"):
        msg = f"--format={fmt!r} must be json or csv"
        raise FleetInputError(msg)
    fleet_obj = load_fleet(fleet)
    rules = _rules(market)
    operating_day = _day(day, "--day")
    stored = latest_accepted_bid_set(
        _engine(db), market=rules.name, operating_day=operating_day
    )
    if stored is None:
        msg = f"no accepted {rules.name} bid set for {operating_day}"
        raise FleetInputError(msg)
    bid_set = BidSet(
        market=rules.name,
        operating_day=operating_day,
        bids=parse_bids(stored.payload),
        note=stored.payload.get("note"),
        meta={"bid_version": stored.version},
    )
    ids = {str(s.id): s.resource_id or str(s.id) for s in fleet_obj.sites}
    stream = output.open("w", newline="") if output is not None else sys.stdout
    try:
        if fmt == "json":
            stream.write(json.dumps(export_json(bid_set, rules, ids), indent=1) + "\n")
        else:
            writer = csv.DictWriter(stream, fieldnames=list(CSV_COLUMNS))
            writer.writeheader()
            writer.writerows(bid_rows(bid_set, rules, ids))
    finally:
        if output is not None:
            stream.close()


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
    """Record cleared awards; from then on dispatch honours them as fixed commitments."""
    from fleet.fleetfile import load_fleet
    from fleet.ops.awards import check_awards, read_award_file, store_awards

    award_set = read_award_file(file)
    fleet_obj = load_fleet(fleet)
    rules = _rules(market)
    operating_day = _day(day, "--day")
    ids = [s.id for s in fleet_obj.sites if s.market.value == rules.name]
    check_awards(award_set, rules, operating_day, ids)
    rows = store_awards(_engine(db), award_set, rules, operating_day)
    Console().print(
        f"recorded {rows} awards for {rules.name} {operating_day} v{award_set.version}",
        highlight=False,
    )


@intraday_app.command("run")
def intraday_run(
    fleet: FleetOpt,
    day: DayOpt,
    market: MarketOpt = "ERCOT",
    db: DbOpt = None,
    mqtt_url: Annotated[
        str | None,
        typer.Option("--mqtt", help="Broker URL; default $BESSFLEET_MQTT_URL."),
    ] = None,
    intervals: Annotated[
        int, typer.Option("--intervals", min=1, help="Steps to run.")
    ] = 96,
    interval_minutes: Annotated[
        int, typer.Option("--interval-minutes", help="5 or 15.")
    ] = 15,
    model_interval_minutes: Annotated[
        int | None,
        typer.Option(
            "--model-interval-minutes",
            help="Interval of the re-solved model (a multiple of --interval-minutes).",
        ),
    ] = None,
    speed: Annotated[
        float,
        typer.Option("--speed", help="Simulated seconds per second (1 = real time)."),
    ] = 1.0,
) -> None:
    """Re-dispatch every interval from telemetry with the awards fixed; publish setpoints."""
    from dispatch.scenario import parse_scenario
    from fleet.config import Settings
    from fleet.fleetfile import load_fleet
    from fleet.ops.awards import commitments_from_awards, latest_awards
    from fleet.ops.clock import AcceleratedClock, SystemClock
    from fleet.ops.intraday import (
        IntradayConfig,
        IntradayDispatcher,
        MqttSetpointSink,
        TelemetryTracker,
        dayahead_prices_on_grid,
        run_intraday,
    )
    from fleet.store.schedules import latest_schedule
    from telemetry.ingest import make_client, parse_mqtt_url

    fleet_obj = load_fleet(fleet)
    rules = _rules(market)
    operating_day = _day(day, "--day")
    engine = _engine(db)
    stored = latest_schedule(engine, market=rules.name, operating_day=operating_day)
    if stored is None or stored.scenario is None:
        msg = f"no {rules.name} schedule for {operating_day}: run `bessfleet dayahead run` first"
        raise FleetInputError(msg)
    da_scn = parse_scenario(stored.scenario)
    config = IntradayConfig(
        interval_minutes=interval_minutes, model_interval_minutes=model_interval_minutes
    )
    url = mqtt_url or Settings().mqtt_url
    clock: Any = SystemClock()
    if speed != 1.0:
        clock = AcceleratedClock(dt.datetime.now(dt.UTC), speed)
    awards = latest_awards(engine, rules, operating_day)
    from fleet.ops.scenario_builder import operating_day_hours, operating_day_start

    n_day = operating_day_hours(rules, operating_day) * 60 // interval_minutes
    commitments = (
        commitments_from_awards(
            awards,
            start=operating_day_start(rules, operating_day),
            interval_minutes=interval_minutes,
            intervals=n_day,
        )
        if not awards.empty
        else {}
    )
    tracker = TelemetryTracker(url)
    tracker.start()
    address = parse_mqtt_url(url)
    client = make_client(address)
    client.connect(address.host, address.port)
    client.loop_start()

    def now_ms() -> int:
        return int(clock.now().timestamp() * 1000)

    sink = MqttSetpointSink(client, fleet_obj, now_ms=now_ms)
    dispatcher = IntradayDispatcher(
        fleet_obj,
        rules,
        operating_day,
        prices=dayahead_prices_on_grid(da_scn),
        states=tracker.snapshot,
        send=sink.send,
        awards=commitments,
        schedule_version=stored.version,
        config=config,
    )
    console = Console()

    def show(report: Any) -> None:
        console.print(
            f"{report.start:%H:%M} {report.status} {report.version} sent {len(report.setpoints_mw)} "
            f"stale {list(report.stale)} shortfall {report.shortfall_mw} {report.solve_seconds:.2f} s",
            highlight=False,
        )

    try:
        run_intraday(dispatcher, clock, intervals, on_interval=show)
    finally:
        tracker.stop()
        client.disconnect()
        client.loop_stop()


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    root.command("backtest")(backtest)
    root.add_typer(bids_app)
    root.add_typer(awards_app)
    root.add_typer(dayahead_app)
    root.add_typer(intraday_app)
