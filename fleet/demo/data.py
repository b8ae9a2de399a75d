"""Find and import the real price history, pick each market's day, read load profiles."""

from __future__ import annotations

import datetime as dt
import gzip
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from fleet.errors import FleetInputError
from fleet.store.price_csv import read_price_csv
from fleet.store.prices import insert_prices

if TYPE_CHECKING:
    import sqlalchemy as sa

    from fleet.domain import Site

logger = logging.getLogger(__name__)

PREFERRED_FOLDERS: tuple[str, ...] = (
    "ercot_rt_da_hourly_15sp_2024_2026",
    "caiso_dervet_example_2020",
)
"""Price folders of the shared data the demo imports (the most recent ERCOT years and
the only CAISO year); other folders are used only when these are absent."""

MARKET_TZ: dict[str, str] = {"ERCOT": "America/Chicago", "CAISO": "America/Los_Angeles"}
SYSTEM_NODE = "SYSTEM"
AS_PRODUCTS: dict[str, tuple[str, ...]] = {
    "ERCOT": ("reg_up", "reg_down", "rrs_spin"),
    "CAISO": ("reg_up", "reg_down"),
}
"""Ancillary-service price series per market, as named in the price data."""
SPIN_PRODUCT = "rrs_spin"
"""The price data's product the dispatch model's ``spin`` service is paid at."""
HISTORY_DAYS = 120
"""Days of history before the operating day the demo imports and trains on."""


@dataclass(frozen=True, slots=True)
class PriceImport:
    """What the price import did."""

    files: tuple[Path, ...]
    """CSV files read."""
    rows_read: int
    """Good rows in those files."""
    rows_stored: int
    """Rows written to the store (the fleet's nodes, the training window)."""
    days: dict[str, dt.date]
    """Operating day per market (market-local date)."""


def _is_price_csv(path: Path) -> bool:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as handle:
            header = handle.readline()
    except (OSError, UnicodeDecodeError):
        return False
    return "timestamp_utc" in header and "price_usd_per_mw" in header


def find_price_files(prices_dir: Path) -> list[Path]:
    """Return the price CSVs of the shared data folder the demo imports.

    Raises
    ------
    FleetInputError
        When the folder is absent or holds no price CSV; the message says how to
        point at it or give a CSV instead.
    """
    if not prices_dir.is_dir():
        msg = (
            f"price data folder {prices_dir} not found: set BESSFLEET_SHARED_DATA_DIR "
            "or --prices-dir to the shared data folder, or give your own prices with "
            "--prices CSV (normalized layout: timestamp_utc, market, node, product, "
            "price_usd_per_mwh or price_usd_per_mw)"
        )
        raise FleetInputError(msg)
    files: list[Path] = []
    for name in PREFERRED_FOLDERS:
        folder = prices_dir / name
        if folder.is_dir():
            files.extend(
                p for p in sorted(folder.iterdir()) if p.is_file() and _is_price_csv(p)
            )
    if not files:
        files = [
            p
            for p in sorted(prices_dir.glob("*/*.csv*"))
            if p.is_file() and _is_price_csv(p)
        ]
    if not files:
        msg = (
            f"price data folder {prices_dir} holds no price CSV "
            "(timestamp_utc, …, price_usd_per_mwh); give one with --prices CSV"
        )
        raise FleetInputError(msg)
    return files


def read_prices(files: list[Path]) -> pd.DataFrame:
    """Read and validate price CSVs into one frame (``fleet.store.price_csv`` layout).

    Raises
    ------
    FleetInputError
        When no file has a good row.
    """
    frames = []
    for path in files:
        parsed = read_price_csv(path)
        if parsed.bad_rows:
            logger.warning(
                "%s: %d bad rows left out (first: line %d: %s)",
                path,
                len(parsed.bad_rows),
                parsed.bad_rows[0].line,
                parsed.bad_rows[0].reason,
            )
        frames.append(parsed.frame)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if frame.empty:
        names = ", ".join(str(p) for p in files)
        msg = f"no good price rows in {names}"
        raise FleetInputError(msg)
    return frame


def local_day_hours(day: dt.date, market: str) -> pd.DatetimeIndex:
    """Return the UTC starts of the local hours of ``day`` in ``market`` (23/24/25)."""
    tz = ZoneInfo(MARKET_TZ[market])
    start = pd.Timestamp(dt.datetime.combine(day, dt.time(), tz))
    end = pd.Timestamp(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz))
    return pd.date_range(start, end, freq="h", inclusive="left").tz_convert("UTC")


def needed_series(market: str, nodes: set[str]) -> list[tuple[str, str]]:
    """Return the (node, product) series a market's day needs (energy + AS)."""
    out = [(node, "da_energy") for node in sorted(nodes)]
    out += [
        (SYSTEM_NODE if market == "ERCOT" else next(iter(sorted(nodes))), p)
        for p in AS_PRODUCTS.get(market, ())
    ]
    return out


def complete_days(
    frame: pd.DataFrame, market: str, series: list[tuple[str, str]]
) -> list[dt.date]:
    """Return the local days on which every series of ``series`` has all its hours."""
    tz = MARKET_TZ[market]
    sub = frame[frame["market"] == market]
    common: set[dt.date] | None = None
    for node, product in series:
        rows = sub[(sub["node"] == node) & (sub["product"] == product)]
        if rows.empty:
            return []
        local = pd.DatetimeIndex(rows["ts"]).tz_convert(tz)
        counts = pd.Series(1, index=local).groupby(local.date).count()
        full = {d for d, n in counts.items() if n >= 23 and n >= _hours_in(d, tz)}
        common = full if common is None else common & full
    return sorted(common or set())


def _hours_in(day: dt.date, tz: str) -> int:
    zone = ZoneInfo(tz)
    a = dt.datetime.combine(day, dt.time(), zone)
    b = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
    return round((b - a).total_seconds() / 3600)


def choose_days(
    frame: pd.DataFrame,
    nodes_by_market: dict[str, set[str]],
    requested: dt.date | None = None,
) -> dict[str, dt.date]:
    """Pick each market's operating day: ``requested`` when complete, else the latest.

    A day qualifies when every needed series has all its hours that day and there are
    at least 30 days of history before it.

    Raises
    ------
    FleetInputError
        When a market of the fleet has no complete day in the data.
    """
    days: dict[str, dt.date] = {}
    for market, nodes in sorted(nodes_by_market.items()):
        series = needed_series(market, nodes)
        full = complete_days(frame, market, series)
        if full:
            first = full[0] + dt.timedelta(days=30)
            full = [d for d in full if d >= first]
        if not full:
            names = ", ".join(f"{n}/{p}" for n, p in series)
            msg = (
                f"market {market}: the price data has no complete day for {names} "
                "(with 30 days of history before it); give prices with --prices CSV"
            )
            raise FleetInputError(msg)
        if requested is not None and requested in full:
            days[market] = requested
        else:
            if requested is not None:
                logger.warning(
                    "--day %s is not a complete day of %s data; using %s",
                    requested,
                    market,
                    full[-1],
                )
            days[market] = full[-1]
    return days


def import_prices(
    engine: sa.Engine,
    frame: pd.DataFrame,
    nodes_by_market: dict[str, set[str]],
    days: dict[str, dt.date],
    *,
    history_days: int = HISTORY_DAYS,
) -> int:
    """Store the series the fleet needs over the training window and the day.

    Returns
    -------
    int
        Rows written.
    """
    parts = []
    for market, day in days.items():
        names = nodes_by_market[market] | {SYSTEM_NODE}
        hours = local_day_hours(day, market)
        start = hours[0] - pd.Timedelta(days=history_days + 16)
        end = hours[-1] + pd.Timedelta(hours=1)
        ts = pd.DatetimeIndex(frame["ts"])
        mask = (
            (frame["market"] == market)
            & frame["node"].isin(names)
            & np.asarray(ts >= start)
            & np.asarray(ts < end)
        )
        parts.append(frame[mask])
    wanted = pd.concat(parts, ignore_index=True)
    return insert_prices(engine, wanted, source="bessfleet demo (shared data)")


def load_profile_mw(
    site: Site, day: dt.date, data_dir: Path, interval_minutes: int, intervals: int
) -> np.ndarray:
    """Return a behind-the-meter site's load [MW] over the day, from its real data set.

    The data set's year rarely matches the operating day: the profile is taken from the
    same weekday nearest to the same day of the year in the data set, on the local
    clock of the site's market.

    Raises
    ------
    FleetInputError
        When the data set file or the site's profile is missing.
    """
    if site.load is None:
        msg = f"site {site.id}: load is missing (behind-the-meter site)"
        raise FleetInputError(msg)
    folder = data_dir / site.load.dataset.value
    files = sorted(folder.glob("*.csv*")) if folder.is_dir() else []
    if not files:
        msg = f"site {site.id}: load data set folder {folder} has no CSV"
        raise FleetInputError(msg)
    raw = pd.read_csv(files[0], usecols=["timestamp_utc", "site", "load_kw"])
    raw = raw[raw["site"] == site.load.profile]
    if raw.empty:
        msg = f"site {site.id}: load.profile={site.load.profile!r} not in {files[0]}"
        raise FleetInputError(msg)
    tz = MARKET_TZ[site.market.value]
    series = pd.Series(
        raw["load_kw"].to_numpy(float),
        index=pd.DatetimeIndex(
            pd.to_datetime(raw["timestamp_utc"], utc=True)
        ).tz_convert(tz),
    ).sort_index()
    series = series[~series.index.duplicated()]
    available = sorted(set(series.index.date))
    target_doy = day.timetuple().tm_yday
    candidates = [d for d in available if d.weekday() == day.weekday()] or available
    source_day = min(candidates, key=lambda d: abs(d.timetuple().tm_yday - target_doy))
    day_values = series[series.index.date == source_day]
    minutes = np.asarray(
        day_values.index.hour * 60 + day_values.index.minute, dtype=float
    )
    grid = np.arange(intervals) * interval_minutes
    # step-hold the data's own resolution onto the scenario's intervals
    pos = np.searchsorted(minutes, grid, side="right") - 1
    pos = np.clip(pos, 0, len(day_values) - 1)
    kw = day_values.to_numpy(float)[pos]
    kw = np.nan_to_num(kw, nan=float(np.nanmean(kw)) if np.isfinite(kw).any() else 0.0)
    out: np.ndarray = np.maximum(kw, 0.0) * site.load.scale / 1000.0
    return out
