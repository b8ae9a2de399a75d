"""Read a normalized price CSV (``shared/data`` layout), keeping good rows, listing bad ones.

Layout: ``timestamp_utc, market, node, product`` and exactly one of
``price_usd_per_mwh`` (energy) or ``price_usd_per_mw`` (capacity-type ancillary
services, $/MW-h); ``timestamp_utc`` is the interval start, ISO-8601 with an offset
(``Z``). Files may be gzip-compressed (``.csv.gz``).
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fleet.errors import FleetInputError

logger = logging.getLogger(__name__)

KEY_COLUMNS = ("timestamp_utc", "market", "node", "product")
#: Outside price column → stored unit: the single mapping at this boundary.
PRICE_COLUMNS = {"price_usd_per_mwh": "usd_per_mwh", "price_usd_per_mw": "usd_per_mw"}
#: Largest |price| accepted as plausible [$/MWh or $/MW-h]; ERCOT's cap is $5,000.
MAX_ABS_PRICE = 1e5
DEFAULT_INTERVAL_MINUTES = 60
_OFFSET_PATTERN = r"(?:Z|z|[+-]\d{2}:?\d{2})$"


@dataclass(frozen=True, slots=True)
class BadRow:
    """A CSV row that was not imported."""

    line: int
    """Line number in the file (the header is line 1)."""
    reason: str
    """Why, naming the column and the value."""


@dataclass(frozen=True, slots=True)
class PriceFile:
    """The result of reading one price CSV."""

    path: Path
    """The file read."""
    unit: str
    """``usd_per_mwh`` or ``usd_per_mw``."""
    rows_read: int
    """Data rows in the file (blank lines excluded)."""
    frame: pd.DataFrame
    """Good rows: ``market, node, product, ts, interval_minutes, price, unit, source``."""
    bad_rows: list[BadRow] = field(default_factory=list)
    """Rows left out, in file order."""
    rows_skipped: int = 0
    """Good rows of other markets, left out because a market was asked for."""


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        for record in reader:
            if len(record) > 1 or (record and record[0].strip()):
                yield reader.line_num, record


def read_price_csv(path: Path | str, *, market: str | None = None) -> PriceFile:
    """Parse and validate a normalized price CSV.

    Parameters
    ----------
    path
        ``.csv`` or ``.csv.gz`` file.
    market
        Keep only rows of this market (case-insensitive); other rows are skipped
        silently, they are not bad.

    Returns
    -------
    PriceFile
        Good rows ready for :func:`fleet.store.prices.insert_prices` and the bad rows
        by line with their reason.

    Raises
    ------
    FleetInputError
        When the file is unusable: missing, unreadable, not CSV/gzip, or a required
        column is missing (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        msg = f"{path}: no such price file"
        raise FleetInputError(msg)
    try:
        records = _records(path)
        first = next(records, None)
        if first is None:
            msg = f"{path}: empty file, expected a header {', '.join(KEY_COLUMNS)}, price_usd_per_mwh|price_usd_per_mw"
            raise FleetInputError(msg)
        header = [name.strip() for name in first[1]]
        price_column, unit = _check_header(path, header)
        lines: list[int] = []
        cells: list[list[str]] = []
        bad: list[BadRow] = []
        width = len(header)
        rows_read = 0
        for line, record in records:
            rows_read += 1
            if len(record) != width:
                bad.append(
                    BadRow(line, f"expected {width} fields, found {len(record)}")
                )
                continue
            lines.append(line)
            cells.append(record)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error, zlib.error) as exc:
        msg = f"{path}: cannot read as {'gzip ' if path.suffix == '.gz' else ''}CSV: {exc}"
        raise FleetInputError(msg) from exc
    raw = pd.DataFrame(cells, columns=header, dtype=object)
    raw["line"] = np.asarray(lines, dtype=np.int64)
    frame, row_bad = _validate(raw, price_column)
    skipped = 0
    if market is not None:
        wanted = frame["market"].str.upper() == market.upper()
        skipped = int((~wanted).sum())
        frame = frame[wanted].copy()
    bad = sorted(bad + row_bad, key=lambda b: b.line)
    frame["interval_minutes"] = infer_interval_minutes(frame)
    frame["unit"] = unit
    frame["source"] = path.name
    frame = frame.drop(columns="line").reset_index(drop=True)
    result = PriceFile(path, unit, rows_read, frame, bad, skipped)
    logger.info(
        "%s: %d rows read, %d good, %d bad",
        path,
        result.rows_read,
        len(frame),
        len(bad),
    )
    return result


def _check_header(path: Path, header: list[str]) -> tuple[str, str]:
    missing = [c for c in KEY_COLUMNS if c not in header]
    if missing:
        msg = (
            f"{path}: missing column(s) {', '.join(missing)}; header is "
            f"{', '.join(header)}"
        )
        raise FleetInputError(msg)
    present = [c for c in PRICE_COLUMNS if c in header]
    if not present:
        msg = (
            f"{path}: missing price column: expected price_usd_per_mwh or "
            f"price_usd_per_mw; header is {', '.join(header)}"
        )
        raise FleetInputError(msg)
    if len(present) > 1:
        msg = f"{path}: both {' and '.join(present)} present; a file holds one unit"
        raise FleetInputError(msg)
    unknown = [c for c in header if c not in (*KEY_COLUMNS, *PRICE_COLUMNS)]
    if unknown:
        msg = f"{path}: unknown column(s) {', '.join(unknown)}"
        raise FleetInputError(msg)
    if len(set(header)) != len(header):
        msg = f"{path}: repeated column name in header {', '.join(header)}"
        raise FleetInputError(msg)
    return present[0], PRICE_COLUMNS[present[0]]


def _validate(
    raw: pd.DataFrame, price_column: str
) -> tuple[pd.DataFrame, list[BadRow]]:
    text = {c: raw[c].astype(str).str.strip() for c in (*KEY_COLUMNS, price_column)}
    stamp = text["timestamp_utc"]
    ts = pd.to_datetime(stamp, utc=True, format="ISO8601", errors="coerce")
    price = pd.to_numeric(text[price_column], errors="coerce")
    reasons = pd.Series(pd.NA, index=raw.index, dtype=object)

    def flag(mask: pd.Series, template: str, values: pd.Series) -> None:
        todo = mask & reasons.isna()
        reasons[todo] = [template.format(v) for v in values[todo]]

    for column in ("market", "node", "product"):
        flag(text[column] == "", f"{column} is empty", text[column])
    flag(
        ts.isna(),
        "timestamp_utc={!r} is not an ISO-8601 timestamp",
        stamp,
    )
    flag(
        ~stamp.str.contains(_OFFSET_PATTERN, regex=True),
        "timestamp_utc={!r} has no UTC offset (expected e.g. 2024-01-01T06:00:00Z)",
        stamp,
    )
    finite = pd.Series(np.isfinite(price.to_numpy(dtype=float)), index=raw.index)
    flag(~finite, f"{price_column}={{!r}} is not a finite number", text[price_column])
    flag(
        finite & (price.abs() > MAX_ABS_PRICE),
        f"{price_column}={{}} is implausible (|price| > {MAX_ABS_PRICE:g})",
        text[price_column],
    )
    frame = pd.DataFrame(
        {
            "market": text["market"],
            "node": text["node"],
            "product": text["product"],
            "ts": ts,
            "price": price.astype(float),
            "line": raw["line"],
        }
    )
    good = reasons.isna()
    key = ["market", "node", "product", "ts"]
    candidates = frame[good]
    first_line = candidates.groupby(key, sort=False)["line"].transform("first")
    duplicate = candidates["line"] != first_line
    if duplicate.any():
        reasons[duplicate[duplicate].index] = [
            f"duplicate of line {n} (same market, node, product, timestamp_utc)"
            for n in first_line[duplicate]
        ]
    bad = [
        BadRow(int(line), str(reason))
        for line, reason in zip(
            raw["line"][~reasons.isna()], reasons.dropna(), strict=True
        )
    ]
    keep = reasons.isna()
    return frame[keep].copy(), bad


def infer_interval_minutes(frame: pd.DataFrame) -> pd.Series:
    """Return each row's interval length [min]: the most common step of its series.

    A series of one row takes the most common step of the whole frame, or 60 min.
    """
    if frame.empty:
        return pd.Series(dtype=np.int64, index=frame.index)
    key = ["market", "node", "product"]
    ordered = frame.sort_values([*key, "ts"])
    step = ordered.groupby(key, sort=False)["ts"].diff().dt.total_seconds() / 60.0
    step = step[step > 0]
    per_series = step.groupby([ordered.loc[step.index, k] for k in key]).agg(
        lambda s: s.mode().iloc[0]
    )
    fallback = float(step.mode().iloc[0]) if len(step) else DEFAULT_INTERVAL_MINUTES
    keys = pd.MultiIndex.from_frame(frame[key])
    minutes = per_series.reindex(keys).fillna(fallback).round().astype(np.int64)
    return pd.Series(minutes.to_numpy(), index=frame.index)
