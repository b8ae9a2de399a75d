"""Read the normalized price/load CSV layout and clean a series explicitly."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.errors import ForecastInputError
from forecasting.types import PRODUCTS, canonical_product

logger = logging.getLogger(__name__)

PRICE_COLUMNS: tuple[str, ...] = ("timestamp_utc", "market", "node", "product")
"""Columns every price CSV of the normalized layout carries."""

VALUE_COLUMNS: tuple[str, ...] = ("price_usd_per_mwh", "price_usd_per_mw")
"""One of these holds the price (energy in USD/MWh, capacity in USD/MW-h)."""

ABSURD_PRICE_USD: float = 50_000.0
"""|price| above this is an outlier: far beyond any US ISO offer cap (ERCOT 9,000 in
2021, 5,000 since; CAISO bid cap 2,000, soft cap 1,000)."""


@dataclass(frozen=True, slots=True)
class DataQualityReport:
    """What cleaning found in a series; nothing here was filled in."""

    n_input: int
    """Rows received."""
    n_duplicates: int
    """Rows dropped because their timestamp repeated (first kept)."""
    n_conflicting_duplicates: int
    """Of those, how many carried a different value than the kept row."""
    n_nan: int
    """Rows whose value was NaN or not a number."""
    outliers: tuple[pd.Timestamp, ...]
    """Timestamps whose value was absurd (|x| > the limit) and set to missing."""
    gaps: tuple[tuple[pd.Timestamp, pd.Timestamp], ...] = field(default=())
    """Missing stretches ``(first missing, last missing)`` of the regular grid [UTC]."""
    n_missing: int = 0
    """Grid intervals without a usable value (gaps + NaN + outliers)."""

    def summary(self) -> str:
        """Return a one-line human-readable summary."""
        return (
            f"{self.n_input} rows: {self.n_duplicates} duplicate timestamps "
            f"({self.n_conflicting_duplicates} conflicting), {self.n_nan} NaN, "
            f"{len(self.outliers)} outliers, {len(self.gaps)} gaps, "
            f"{self.n_missing} missing intervals (left missing, not filled)"
        )


def read_price_csv(
    path: str | Path,
    *,
    market: str | None = None,
    node: str | None = None,
    product: str | None = None,
) -> pd.DataFrame:
    """Read a price CSV of the normalized layout into a long DataFrame.

    Parameters
    ----------
    path
        CSV or CSV.GZ with columns ``timestamp_utc, market, node, product`` and
        ``price_usd_per_mwh`` or ``price_usd_per_mw``.
    market, node, product
        Optional filters (``product`` accepts aliases such as ``spin``).

    Returns
    -------
    pandas.DataFrame
        Columns ``timestamp_utc`` (UTC datetime), ``market``, ``node``, ``product``,
        ``price`` [USD/MWh or USD/MW-h].

    Raises
    ------
    ForecastInputError
        When the file is missing, a column is absent or a timestamp does not parse.
    """
    csv_path = Path(path)
    if not csv_path.is_file():
        msg = f"--prices: file {csv_path} does not exist"
        raise ForecastInputError(msg)
    try:
        frame = pd.read_csv(csv_path)
    except (ValueError, OSError) as exc:
        msg = f"--prices: {csv_path} is not a readable CSV: {exc}"
        raise ForecastInputError(msg) from exc
    missing = [c for c in PRICE_COLUMNS if c not in frame.columns]
    value_cols = [c for c in VALUE_COLUMNS if c in frame.columns]
    if missing or not value_cols:
        msg = (
            f"{csv_path}: missing column(s) {missing or list(VALUE_COLUMNS)}; "
            f"expected {list(PRICE_COLUMNS)} + one of {list(VALUE_COLUMNS)}"
        )
        raise ForecastInputError(msg)
    price = pd.to_numeric(frame[value_cols[0]], errors="coerce")
    for extra in value_cols[1:]:
        price = price.fillna(pd.to_numeric(frame[extra], errors="coerce"))
    try:
        stamps = pd.to_datetime(frame["timestamp_utc"], utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        msg = f"{csv_path}: column timestamp_utc has an unparseable value: {exc}"
        raise ForecastInputError(msg) from exc
    out = pd.DataFrame(
        {
            "timestamp_utc": stamps,
            "market": frame["market"].astype(str),
            "node": frame["node"].astype(str),
            "product": frame["product"].astype(str),
            "price": price.astype(float),
        }
    )
    if market is not None:
        out = out[out["market"] == market]
    if node is not None:
        out = out[out["node"] == node]
    if product is not None:
        out = out[out["product"] == canonical_product(product)]
    return out.reset_index(drop=True)


def select_series(
    frame: pd.DataFrame, *, market: str, node: str, product: str
) -> pd.Series:
    """Pick one (market, node, product) price series out of a long frame.

    Parameters
    ----------
    frame
        Output of :func:`read_price_csv`.
    market, node, product
        The series key; ``product`` accepts aliases.

    Returns
    -------
    pandas.Series
        Prices on a UTC DatetimeIndex, sorted; duplicates are kept for
        :func:`clean_series` to report.

    Raises
    ------
    ForecastInputError
        Naming the option (``--market``, ``--node``, ``--product``) that matches no row,
        with the values that exist.
    """
    canon = canonical_product(product)
    if canon not in PRODUCTS:
        msg = (
            f"--product: unknown product {product!r}; expected one of {list(PRODUCTS)}"
        )
        raise ForecastInputError(msg)
    for option, column, value in (
        ("--market", "market", market),
        ("--node", "node", node),
        ("--product", "product", canon),
    ):
        if not (frame[column] == value).any():
            known = sorted(frame[column].unique().tolist())[:40]
            msg = f"{option}: no price rows for {column}={value!r}; known: {known}"
            raise ForecastInputError(msg)
        frame = frame[frame[column] == value]
    series = pd.Series(
        frame["price"].to_numpy(dtype=float),
        index=pd.DatetimeIndex(frame["timestamp_utc"]),
        name=f"{market}/{node}/{canon}",
    )
    return series.sort_index(kind="stable")


def to_hourly(series: pd.Series) -> pd.Series:
    """Average a sub-hourly series onto hour-start UTC intervals.

    Parameters
    ----------
    series
        Values on a UTC DatetimeIndex, e.g. 15-min RT prices [USD/MWh].

    Returns
    -------
    pandas.Series
        Hourly means; an hour with no values is absent (not filled). Hourly input
        comes back unchanged.
    """
    if len(series) < 2:
        return series
    step = pd.Series(series.index).diff().dropna().median()
    if step >= pd.Timedelta(hours=1):
        return series
    hourly = series.groupby(series.index.floor("h")).mean()
    return hourly.dropna()


def clean_series(
    series: pd.Series,
    *,
    freq: str = "h",
    abs_limit: float = ABSURD_PRICE_USD,
) -> tuple[pd.Series, DataQualityReport]:
    """Return ``series`` on a regular UTC grid with bad values marked missing.

    Duplicated timestamps keep their first value, NaN and absurd values
    (``|x| > abs_limit``) become missing, and gaps stay missing: nothing is
    forward-filled, so a model never trains on an invented value.

    Parameters
    ----------
    series
        Values on a DatetimeIndex (UTC, or naive meaning UTC).
    freq
        The grid step (pandas offset alias), hourly by default.
    abs_limit
        Magnitude above which a value is an outlier [same unit as the series].

    Returns
    -------
    tuple[pandas.Series, DataQualityReport]
        The series reindexed on the full grid from its first to its last timestamp
        (missing = NaN), and the report of what was found.

    Raises
    ------
    ForecastInputError
        When the index is not a DatetimeIndex.
    """
    if not isinstance(series.index, pd.DatetimeIndex):
        msg = "series: index must be a DatetimeIndex of UTC timestamps"
        raise ForecastInputError(msg)
    index = series.index
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    values = pd.to_numeric(pd.Series(series.to_numpy(), index=index), errors="coerce")
    values = values.astype(float).sort_index(kind="stable")
    n_input = len(values)
    dup_mask = values.index.duplicated(keep="first")
    n_dup = int(dup_mask.sum())
    n_conflict = 0
    if n_dup:
        firsts = values[~dup_mask]
        dups = values[dup_mask]
        kept = firsts.reindex(dups.index).to_numpy()
        same = np.isclose(kept, dups.to_numpy(), equal_nan=True)
        n_conflict = int((~same).sum())
        logger.warning(
            "%s: %d duplicated timestamps dropped (%d with conflicting values)",
            series.name,
            n_dup,
            n_conflict,
        )
    values = values[~dup_mask]
    n_nan = int(values.isna().sum())
    outlier_mask = values.abs() > abs_limit
    outliers = tuple(values.index[outlier_mask.to_numpy()])
    if outliers:
        logger.warning(
            "%s: %d absurd values (|x| > %g) excluded, first at %s",
            series.name,
            len(outliers),
            abs_limit,
            outliers[0],
        )
    values = values.mask(outlier_mask)
    if len(values) == 0:
        report = DataQualityReport(n_input, n_dup, n_conflict, n_nan, outliers)
        return values, report
    grid = pd.date_range(values.index[0], values.index[-1], freq=freq, tz="UTC")
    off_grid = values.index.difference(grid)
    if len(off_grid):
        msg = (
            f"series {series.name}: {len(off_grid)} timestamps are off the {freq!r} "
            f"grid (first {off_grid[0]}); resample before cleaning"
        )
        raise ForecastInputError(msg)
    regular = values.reindex(grid)
    absent = ~grid.isin(values.index)
    gaps = _runs(grid, absent)
    if gaps:
        logger.warning(
            "%s: %d gaps in the series, left missing", series.name, len(gaps)
        )
    report = DataQualityReport(
        n_input=n_input,
        n_duplicates=n_dup,
        n_conflicting_duplicates=n_conflict,
        n_nan=n_nan,
        outliers=outliers,
        gaps=gaps,
        n_missing=int(regular.isna().sum()),
    )
    regular.name = series.name
    return regular, report


def _runs(
    grid: pd.DatetimeIndex, mask: np.ndarray
) -> tuple[tuple[pd.Timestamp, pd.Timestamp], ...]:
    """Return (first, last) timestamps of each run of True in ``mask``."""
    if not mask.any():
        return ()
    flags = np.concatenate([[False], mask, [False]]).astype(int)
    edges = np.diff(flags)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return tuple((grid[s], grid[e]) for s, e in zip(starts, ends, strict=True))
