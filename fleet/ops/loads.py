"""A behind-the-meter site's load profile from its real data set (before any metering).

The plan of a site with no metered load yet, and the simulated gateways of the demo,
take the site's load from the data set its fleet entry names (``[site.load]``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from fleet.domain import Site
from fleet.errors import FleetInputError


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
    series = read_load_profile(site, data_dir)
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
    mw = day_values.to_numpy(float)[pos]
    out: np.ndarray = np.nan_to_num(
        mw, nan=float(np.nanmean(mw)) if np.isfinite(mw).any() else 0.0
    )
    return out


def read_load_profile(site: Site, load_dir: Path, tz: str | None = None) -> pd.Series:
    """Return a behind-the-meter site's real load [MW] on a local-time index.

    ``tz``: the index's time zone (default: the site's market clock); the data set's
    ``load_kw`` is clipped at 0 and scaled by the site's ``load.scale``.

    Raises
    ------
    FleetInputError
        When the site has no load, or the data set or the profile is missing.
    """
    if site.load is None:
        msg = f"site {site.id}: load is missing (behind-the-meter site)"
        raise FleetInputError(msg)
    folder = load_dir / site.load.dataset.value
    files = sorted(folder.glob("*.csv*")) if folder.is_dir() else []
    if not files:
        msg = f"site {site.id}: load data set folder {folder} has no CSV"
        raise FleetInputError(msg)
    raw = pd.read_csv(files[0], usecols=["timestamp_utc", "site", "load_kw"])
    raw = raw[raw["site"] == site.load.profile]
    if raw.empty:
        msg = f"site {site.id}: load.profile={site.load.profile!r} not in {files[0]}"
        raise FleetInputError(msg)
    index = pd.DatetimeIndex(pd.to_datetime(raw["timestamp_utc"], utc=True))
    series = pd.Series(
        raw["load_kw"].to_numpy(float), index=index.tz_convert(tz or site.timezone)
    )
    series = series[~series.index.duplicated()].sort_index()
    return series.clip(lower=0.0) * site.load.scale / 1000.0
