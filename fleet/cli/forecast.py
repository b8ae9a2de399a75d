"""CLI commands: ``bessfleet forecast backtest | train | predict``."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from fleet.cli.db import DbOption, resolve_db_url
from forecasting.errors import ForecastInputError
from forecasting.types import PRODUCTS, canonical_product

if TYPE_CHECKING:
    import pandas as pd

    from forecasting.backtest import BacktestResult
    from forecasting.data import DataQualityReport
    from forecasting.price import PriceForecaster

logger = logging.getLogger(__name__)

forecast_app = typer.Typer(
    name="forecast",
    help="Price forecasts: rolling backtest against baselines, train, predict.",
    no_args_is_help=True,
)

MarketOpt = Annotated[
    str, typer.Option("--market", metavar="M", help="ISO, e.g. ERCOT or CAISO.")
]
NodeOpt = Annotated[
    str,
    typer.Option(
        "--node",
        metavar="NODE",
        help="Settlement point; AS at the market's as_price_node (ERCOT SYSTEM, CAISO the site's node).",
    ),
]
ProductOpt = Annotated[
    str,
    typer.Option(
        "--product",
        metavar="P",
        help=f"One of {', '.join(PRODUCTS)} (aliases: spin, energy_da, energy_rt).",
    ),
]
PricesOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--prices",
        metavar="CSV",
        help=(
            "Read prices from this CSV (layout of shared/data; repeat to combine "
            "files) instead of the store."
        ),
    ),
]


def _parse_day(value: str, option: str) -> dt.date:
    import pandas as pd

    msg = f"{option}: {value!r} is not a date (YYYY-MM-DD)"
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ForecastInputError(msg) from exc
    if pd.isna(stamp):
        raise ForecastInputError(msg)
    day: dt.date = stamp.date()
    return day


def load_series(
    *,
    market: str,
    node: str,
    product: str,
    prices: list[Path] | None,
    db: str | None,
) -> tuple[pd.Series, DataQualityReport]:
    """Read one price series from CSV files or the store, hourly and cleaned."""
    import pandas as pd

    from forecasting.data import clean_series, read_price_csv, select_series, to_hourly

    canon = canonical_product(product)
    if canon not in PRODUCTS:
        msg = (
            f"--product: unknown product {product!r}; expected one of {list(PRODUCTS)}"
        )
        raise ForecastInputError(msg)
    if prices:
        frame = pd.concat([read_price_csv(p, node=None) for p in prices])
        raw = select_series(frame, market=market, node=node, product=canon)
    else:
        from fleet.store.engine import make_engine
        from fleet.store.prices import load_prices

        engine = make_engine(resolve_db_url(db))
        try:
            raw = load_prices(engine, market=market, node=node, product=canon)
        finally:
            engine.dispose()
        if raw.empty:
            msg = (
                f"--market/--node/--product: no prices stored for "
                f"{market}/{node}/{canon}; run `bessfleet prices import` or pass --prices"
            )
            raise ForecastInputError(msg)
    raw.name = f"{market}/{node}/{canon}"
    return clean_series(to_hourly(raw))


def _store_forecasts(
    forecasts: pd.DataFrame, *, market: str, node: str, product: str, db: str | None
) -> int:
    import pandas as pd

    from fleet.store.engine import make_engine
    from fleet.store.forecasts import insert_price_forecasts

    frame = pd.DataFrame(
        {
            "market": market,
            "node": node,
            "product": product,
            "ts": pd.DatetimeIndex(forecasts["timestamp_utc"]),
            "issue_time": pd.DatetimeIndex(forecasts["issue_time_utc"]),
            "model_version": forecasts["model_version"].to_numpy(),
            "horizon_h": forecasts["horizon_h"].to_numpy(float),
            "p10": forecasts["p10"].to_numpy(float),
            "p50": forecasts["p50"].to_numpy(float),
            "p90": forecasts["p90"].to_numpy(float),
            "unit": "usd_per_mwh" if product.endswith("energy") else "usd_per_mw",
        }
    )
    engine = make_engine(resolve_db_url(db))
    try:
        return insert_price_forecasts(engine, frame)
    finally:
        engine.dispose()


def _print_scores(result: BacktestResult, title: str) -> None:
    import pandas as pd

    table = Table(title=title)
    columns = [
        ("mae", "MAE"),
        ("rmse", "RMSE"),
        ("pinball_mean", "pinball"),
        ("coverage_p10_p90", "P10-P90 cov"),
        ("spread_corr", "spread corr"),
        ("top4_hit", "top/bottom-4 hit"),
        ("top4_exact", "exact"),
        ("mae_vs_best_baseline", "MAE vs best base"),
    ]
    table.add_column("method")
    for _, label in columns:
        table.add_column(label, justify="right")
    for method, row in result.scores.iterrows():
        cells = []
        for key, _ in columns:
            value = row[key]
            if pd.isna(value):
                cells.append("-")
            elif key in (
                "coverage_p10_p90",
                "top4_hit",
                "top4_exact",
                "mae_vs_best_baseline",
            ):
                cells.append(f"{value:.1%}")
            else:
                cells.append(f"{value:.3f}" if key == "spread_corr" else f"{value:.2f}")
        table.add_row(str(method), *cells)
    Console(width=max(Console().width, 150)).print(table)


@forecast_app.command("backtest")
def backtest(
    market: MarketOpt,
    node: NodeOpt,
    product: ProductOpt,
    start: Annotated[str, typer.Option("--start", help="First operating day (local).")],
    end: Annotated[str, typer.Option("--end", help="Last operating day (local).")],
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE.csv", help="Write every forecast."),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", metavar="FILE.png", help="Write the plot.")
    ] = None,
    prices: PricesOpt = None,
    db: DbOption = None,
    refit_days: Annotated[
        int, typer.Option("--refit-days", min=1, help="Days between refits.")
    ] = 7,
    train_days: Annotated[
        int,
        typer.Option("--train-days", min=60, help="Trailing training window [days]."),
    ] = 730,
    store: Annotated[
        bool, typer.Option("--store", help="Also store every forecast in the store.")
    ] = False,
) -> None:
    """Rolling-origin backtest: the model and the naive baselines side by side."""
    from forecasting.backtest import (
        plot_backtest,
        rolling_backtest,
        write_forecasts_csv,
    )
    from forecasting.features import local_days
    from forecasting.price import PriceForecaster

    first = _parse_day(start, "--start")
    last = _parse_day(end, "--end")
    if last < first:
        msg = f"--end {last} is before --start {first}"
        raise ForecastInputError(msg)
    local_days(first, last)
    canon = canonical_product(product)
    y, report = load_series(
        market=market, node=node, product=product, prices=prices, db=db
    )
    Console(stderr=True).print(f"data: {report.summary()}", highlight=False)

    def make() -> PriceForecaster:
        return PriceForecaster(
            market=market, node=node, product=canon, train_days=train_days
        )

    make()  # validates market/product before the long run
    result = rolling_backtest(
        y, make, start=first, end=last, refit_days=refit_days, clock=time.perf_counter
    )
    title = f"{market} {node} {canon} {first}..{last}"
    _print_scores(result, title)
    typer.echo(
        f"{result.n_refits} refits, {result.fit_seconds:.1f} s fitting; "
        f"{len(result.forecasts)} hourly forecasts"
    )
    if out is not None:
        typer.echo(f"forecasts: {write_forecasts_csv(result, out)}")
    if plot is not None:
        tz = make().tz
        typer.echo(f"plot: {plot_backtest(result, plot, title=title, tz=tz)}")
    if store:
        n = _store_forecasts(
            result.forecasts, market=market, node=node, product=canon, db=db
        )
        typer.echo(f"stored {n} forecast rows")


@forecast_app.command("train")
def train(
    market: MarketOpt,
    node: Annotated[
        list[str],
        typer.Option(
            "--node",
            metavar="NODE",
            help="Settlement point (repeat to train many nodes in parallel).",
        ),
    ],
    product: ProductOpt,
    registry: Annotated[
        Path, typer.Option("--registry", metavar="DIR", help="Model registry folder.")
    ],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Train as of this operating day's issue time (default: all).",
        ),
    ] = None,
    prices: PricesOpt = None,
    db: DbOption = None,
    train_days: Annotated[int, typer.Option("--train-days", min=60)] = 730,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Local worker processes (many nodes)."),
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            metavar="ADDRESS",
            help="Dask scheduler for many nodes (default: $BESSFLEET_DASK_ADDRESS).",
        ),
    ] = None,
) -> None:
    """Fit models and save each (joblib + JSON card) under the registry."""
    from forecasting.parallel import fit_many
    from forecasting.price import PriceForecaster
    from forecasting.registry import save_model

    canon = canonical_product(product)
    probe = PriceForecaster(market=market, product=canon, train_days=train_days)
    issue = probe.issue_time(_parse_day(as_of, "--as-of")) if as_of else None
    series: dict[tuple[str, str, str], pd.Series] = {}
    for one in dict.fromkeys(node):
        y, report = load_series(
            market=market, node=one, product=canon, prices=prices, db=db
        )
        Console(stderr=True).print(f"{one}: {report.summary()}", highlight=False)
        series[(market, one, canon)] = y
    started = time.perf_counter()
    if len(series) == 1:
        ((key, y),) = series.items()
        model = PriceForecaster(
            market=market, node=key[1], product=canon, train_days=train_days
        )
        models = {key: model.fit(y, issue_time=issue)}
    else:
        from fleet.config import Settings
        from fleet.parallel import make_executor

        address = dask or Settings().dask_address
        with make_executor(address, workers) as executor:
            models = fit_many(
                series,
                params={"train_days": train_days},
                issue_time=issue,
                executor=executor,
            )
    elapsed = time.perf_counter() - started
    for fitted in models.values():
        folder = save_model(fitted, registry)
        typer.echo(
            f"model {fitted.model_version_} on {fitted.n_train_} hours: {folder}"
        )
    typer.echo(f"{len(models)} model(s) fitted in {elapsed:.1f} s")


@forecast_app.command("predict")
def predict(
    model_dir: Annotated[
        Path, typer.Option("--model", metavar="DIR", help="A saved model folder.")
    ],
    day: Annotated[
        str, typer.Option("--day", help="Operating day to forecast (local).")
    ],
    prices: PricesOpt = None,
    db: DbOption = None,
    out: Annotated[Path | None, typer.Option("--out", metavar="FILE.csv")] = None,
    store: Annotated[bool, typer.Option("--store", help="Store the forecast.")] = False,
) -> None:
    """Forecast one operating day with a saved model (no refit)."""
    import pandas as pd

    from forecasting.price import PriceForecaster
    from forecasting.registry import load_model

    model, card = load_model(model_dir)
    if not isinstance(model, PriceForecaster):
        msg = f"--model: {model_dir} is not a price model ({card.kind})"
        raise ForecastInputError(msg)
    y, _ = load_series(
        market=model.market,
        node=model.node,
        product=model.product,
        prices=prices,
        db=db,
    )
    target = _parse_day(day, "--day")
    forecast = model.predict(y, target)
    frame = forecast.reset_index(names="timestamp_utc")
    frame["model_version"] = model.model_version_
    for _, row in frame.iterrows():
        typer.echo(
            f"{row['timestamp_utc']:%Y-%m-%dT%H:%MZ}  p10={row['p10']:9.2f}  "
            f"p50={row['p50']:9.2f}  p90={row['p90']:9.2f}"
        )
    if out is not None:
        csv = frame.copy()
        for col in ("timestamp_utc", "issue_time_utc"):
            csv[col] = pd.DatetimeIndex(csv[col]).strftime("%Y-%m-%dT%H:%M:%SZ")
        csv.to_csv(out, index=False)
        typer.echo(f"forecast: {out}")
    if store:
        n = _store_forecasts(
            frame, market=model.market, node=model.node, product=model.product, db=db
        )
        typer.echo(f"stored {n} forecast rows")


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    root.add_typer(forecast_app)
