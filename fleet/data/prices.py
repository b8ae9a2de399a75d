"""Import the real prices a replay needs: from the shared data or the shipped sample.

The demo and the operating-day tests replay real days: ERCOT day-ahead energy, AS
clearing prices and real-time energy, and the CAISO example year replayed on 2025 dates
(:data:`CAISO_SHIFT_DAYS`). The shared data folder and the sample beside
:mod:`fleet.data.sample` hold the same files; a user's own CSVs are validated first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fleet.data.sample.build import CAISO_SHIFT_DAYS
from fleet.errors import FleetInputError
from fleet.store.dml import Bind
from fleet.store.price_csv import read_price_csv
from fleet.store.prices import insert_prices

LAYOUTS: dict[str, tuple[tuple[str, tuple[str, ...], int], ...]] = {
    "shared": (
        (
            "ERCOT",
            ("ercot_da_spp", "ercot_as_mcpc", "ercot_rt_da_hourly_15sp_2024_2026"),
            0,
        ),
        ("CAISO", ("caiso_dervet_example_2020",), CAISO_SHIFT_DAYS),
    ),
    # fleet/data/sample: the CAISO year is already shifted onto 2025 there
    "sample": (("ERCOT", ("ercot",), 0), ("CAISO", ("caiso",), 0)),
}
"""Price folders (and day shift) per market, in the shared data and in the sample."""


def _frames(folder: Path) -> list[pd.DataFrame]:
    out = []
    for path in sorted(folder.glob("*.csv*")):
        raw = pd.read_csv(path)
        mwh = "price_usd_per_mwh" in raw
        out.append(
            pd.DataFrame(
                {
                    "market": raw["market"],
                    "node": raw["node"],
                    "product": raw["product"],
                    "ts": pd.to_datetime(raw["timestamp_utc"], utc=True),
                    "interval_minutes": 60,
                    "price": raw["price_usd_per_mwh" if mwh else "price_usd_per_mw"],
                    "unit": "usd_per_mwh" if mwh else "usd_per_mw",
                }
            )
        )
    return out


def import_replay_prices(
    engine: Bind, shared: Path, first: dt.date, last: dt.date, history_days: int = 30
) -> dict[str, int]:
    """Import the real prices a replay of ``first..last`` needs (as a user would).

    ERCOT day-ahead energy, AS clearing prices and real-time energy, and the CAISO
    example year shifted by :data:`CAISO_SHIFT_DAYS`, from the shared data folder
    ``shared`` or the package's sample (``fleet/data/sample``, same files, cut).

    Raises
    ------
    FleetInputError
        When the folder holds neither layout, or no price of a market in the window.
    """
    layout = "shared" if (shared / "caiso_dervet_example_2020").is_dir() else "sample"
    lo = pd.Timestamp(first, tz="UTC") - pd.Timedelta(days=history_days + 2)
    hi = pd.Timestamp(last, tz="UTC") + pd.Timedelta(days=3)
    counts: dict[str, int] = {}
    for market, folders, shift in LAYOUTS[layout]:
        parts = []
        for name in folders:
            for frame in _frames(shared / name):
                frame["ts"] = frame["ts"] + pd.Timedelta(days=shift)
                parts.append(frame[(frame["ts"] >= lo) & (frame["ts"] < hi)])
        if not parts or all(p.empty for p in parts):
            msg = f"--prices-dir {shared}: no {market} prices for {first}..{last}"
            raise FleetInputError(msg)
        frame = pd.concat(parts, ignore_index=True)
        frame = frame.drop_duplicates(["market", "node", "product", "ts"], keep="last")
        counts[market] = insert_prices(
            engine, frame, source=f"{layout} data ({market})"
        )
    return counts


def import_price_csvs(engine: Bind, paths: Sequence[Path]) -> int:
    """Import a user's price CSVs (normalized layout, validated); return rows stored."""
    frames = [read_price_csv(p).frame for p in paths]
    frame = pd.concat(frames, ignore_index=True)
    if frame.empty:
        msg = f"--prices: no good price rows in {', '.join(map(str, paths))}"
        raise FleetInputError(msg)
    return insert_prices(engine, frame, source="your price CSV")
