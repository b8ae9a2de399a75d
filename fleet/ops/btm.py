"""Behind-the-meter inputs of a plan: tariff on the grid, load forecast, month's peak.

The load forecast comes from the site's own metered load (``meter1``): the median of
the same local hour on the same kind of day (weekday / weekend) over the last
``LOOKBACK_DAYS`` days before the issue time, then scaled up by ``PEAK_MARGIN`` in the
tariff's demand window so that a missed peak (which costs the whole month) is less
likely (``spec/markets.md`` B3: plan against a high quantile of net load). With no
metered history yet the site's configured load profile (its real data set) is used
when the data folder is given; otherwise the plan assumes no load and says so.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from fleet.domain import Site
from fleet.errors import FleetInputError
from fleet.ops.metering import LOAD_DEVICE, PCS_DEVICE, interval_mean_mw
from fleet.store.dml import Bind

logger = logging.getLogger(__name__)

LOOKBACK_DAYS = 14
"""Days of metered load the forecast looks back on."""
PEAK_MARGIN = 1.05
"""Load forecast scale-up (fraction) so the plan shaves against a high quantile."""


@dataclass(frozen=True, slots=True)
class BtmInputs:
    """What a behind-the-meter site's scenario block is built from."""

    load_mw: list[float]
    """Forecast facility load per interval [MW]."""
    energy_usd_per_mwh: list[float]
    """Retail energy price per interval [$/MWh]."""
    peak_so_far_mw: float
    """Highest 15-minute import of the billing cycle so far [MW]."""
    source: str
    """Where the load forecast came from (``telemetry``, ``profile``, ``none``)."""


def tariff_usd_per_mwh(
    site: Site, start: dt.datetime, intervals: int, interval_minutes: float
) -> list[float]:
    """Return the site's retail energy price per interval (local TOU periods)."""
    if site.tariff is None:
        msg = f"site {site.id}: tariff is missing (behind-the-meter site)"
        raise FleetInputError(msg)
    tz = ZoneInfo(site.timezone)
    out = []
    for i in range(intervals):
        local = (start + dt.timedelta(minutes=interval_minutes * i)).astimezone(tz)
        out.append(
            site.tariff.energy_price_usd_per_mwh(
                month=local.month, weekday=local.weekday(), hour=local.hour
            )
        )
    return out


def billing_cycle_start(site: Site, when: dt.datetime) -> dt.datetime:
    """Return the start (aware UTC) of the billing cycle containing ``when``."""
    day = site.tariff.billing_cycle_day if site.tariff is not None else 1
    tz = ZoneInfo(site.timezone)
    local = when.astimezone(tz)
    first = local.replace(day=day, hour=0, minute=0, second=0, microsecond=0)
    if local < first:
        month = first.month - 1 or 12
        year = first.year - (first.month == 1)
        first = first.replace(year=year, month=month)
    return first.astimezone(dt.UTC)


def metered_load_and_import_mw(
    bind: Bind, site: Site, start: dt.datetime, intervals: int, interval_minutes: int
) -> tuple[pd.Series, pd.Series]:
    """Return the facility load and the utility meter's import (load - battery) [MW]."""
    load = interval_mean_mw(
        bind,
        site_id=site.id,
        dev_id=LOAD_DEVICE,
        start=start,
        intervals=intervals,
        interval_minutes=interval_minutes,
    )
    pcs = interval_mean_mw(
        bind,
        site_id=site.id,
        dev_id=PCS_DEVICE,
        start=start,
        intervals=intervals,
        interval_minutes=interval_minutes,
    )
    return load, load - pcs.fillna(0.0)


def metered_import_mw(
    bind: Bind, site: Site, start: dt.datetime, intervals: int, interval_minutes: int
) -> pd.Series:
    """Return the utility meter's 15-minute import per interval: load - battery [MW]."""
    return metered_load_and_import_mw(bind, site, start, intervals, interval_minutes)[1]


def peak_so_far_mw(
    bind: Bind, site: Site, now: dt.datetime, horizon_start: dt.datetime | None = None
) -> float:
    """Return the highest metered 15-minute import of the billing cycle up to ``now``.

    The cycle is the one containing ``horizon_start`` (default ``now``): a plan for the
    first day of a new cycle starts from no peak.
    """
    start = billing_cycle_start(site, horizon_start or now)
    n = int((now - start).total_seconds() // 900)
    if n <= 0:
        return 0.0
    imports = metered_import_mw(bind, site, start, n, 15)
    return float(np.nanmax(imports.to_numpy())) if imports.notna().any() else 0.0


def load_forecast_mw(
    bind: Bind,
    site: Site,
    start: dt.datetime,
    intervals: int,
    interval_minutes: int,
    *,
    as_of: dt.datetime,
    data_dir: Path | None = None,
) -> tuple[list[float], str]:
    """Forecast the facility load over the horizon; return it and its source."""
    tz = ZoneInfo(site.timezone)
    hist_start = as_of - dt.timedelta(days=LOOKBACK_DAYS)
    n_hist = int((as_of - hist_start).total_seconds() // 3600)
    hist = interval_mean_mw(
        bind,
        site_id=site.id,
        dev_id=LOAD_DEVICE,
        start=hist_start,
        intervals=n_hist,
        interval_minutes=60,
    ).dropna()
    grid = pd.date_range(start, periods=intervals, freq=f"{interval_minutes}min")
    if len(hist) >= 24:
        local = hist.index.tz_convert(tz)
        key = pd.MultiIndex.from_arrays([local.hour, local.day_of_week >= 5])
        profile = hist.groupby(key).median()
        by_hour = hist.groupby(local.hour).median()
        values = []
        for t in grid.tz_convert(tz):
            k = (t.hour, t.weekday() >= 5)
            v = profile.get(k, by_hour.get(t.hour, float(hist.median())))
            values.append(float(v))
        out = np.asarray(values) * PEAK_MARGIN
        return [float(v) for v in np.maximum(out, 0.0)], "telemetry"
    if data_dir is not None and site.load is not None:
        from fleet.ops.loads import load_profile_mw

        local_day = start.astimezone(tz).date()
        prof = load_profile_mw(site, local_day, data_dir, interval_minutes, intervals)
        return [float(v) for v in prof * PEAK_MARGIN], "profile"
    logger.warning(
        "site %s: no metered load yet and no load data set; planned with no load",
        site.id,
    )
    return [0.0] * intervals, "none"


def btm_inputs(
    bind: Bind,
    site: Site,
    start: dt.datetime,
    intervals: int,
    interval_minutes: int,
    *,
    now: dt.datetime,
    data_dir: Path | None = None,
) -> BtmInputs:
    """Build a behind-the-meter site's scenario inputs from the store."""
    load, source = load_forecast_mw(
        bind, site, start, intervals, interval_minutes, as_of=now, data_dir=data_dir
    )
    return BtmInputs(
        load_mw=load,
        energy_usd_per_mwh=tariff_usd_per_mwh(site, start, intervals, interval_minutes),
        peak_so_far_mw=peak_so_far_mw(bind, site, now, start),
        source=source,
    )
