"""Build calendar and issue-time-safe lag features in market local time."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable, Mapping

import holidays
import numpy as np
import pandas as pd

from forecasting.errors import ForecastInputError
from forecasting.types import (
    DAY_AHEAD_PUBLISH_HOUR_LOCAL,
    ISSUE_HOUR_LOCAL,
    REALTIME_PRODUCTS,
)

LAG_DAYS: tuple[int, ...] = (1, 2, 3, 7, 14)
"""Same-local-hour lags, in operating days before the target day."""

FEATURE_NAMES: tuple[str, ...] = (
    "hour",
    "weekday",
    "month",
    "is_holiday",
    "is_weekend",
    "hour_x_weekday",
    *(f"lag_d{k}" for k in LAG_DAYS),
    "lag_d1_prev_hour",
    "lag_d1_next_hour",
    "d1_mean",
    "d1_max",
    "d1_min",
    "d1_std",
    "d1_last",
    "d2_mean",
    "d7_mean",
    "week_mean_at_hour",
    "week_max_at_hour",
    "week_median_at_hour",
    "week_mean",
)
"""Columns of :func:`build_features`, in order."""


def is_realtime(product: str) -> bool:
    """Return whether ``product`` is known only after its interval ends (RT, metered load)."""
    return product in REALTIME_PRODUCTS or product == "load"


def local_days(start: dt.date | str, end: dt.date | str) -> list[dt.date]:
    """Return the operating days from ``start`` to ``end`` inclusive.

    Raises
    ------
    ForecastInputError
        When ``end`` is before ``start``.
    """
    first = pd.Timestamp(start).date()
    last = pd.Timestamp(end).date()
    if last < first:
        msg = f"--end {last} is before --start {first}"
        raise ForecastInputError(msg)
    return [d.date() for d in pd.date_range(first, last, freq="D")]


def operating_day_index(day: dt.date, tz: str) -> pd.DatetimeIndex:
    """Return the UTC interval starts of the hours of local operating ``day``.

    Parameters
    ----------
    day
        The operating day (market local calendar date).
    tz
        Market time zone, e.g. ``America/Chicago``.

    Returns
    -------
    pandas.DatetimeIndex
        23, 24 or 25 hourly UTC timestamps (DST spring-forward / normal / fall-back).
    """
    start = pd.Timestamp(day).tz_localize(tz)
    end = pd.Timestamp(day + dt.timedelta(days=1)).tz_localize(tz)
    return pd.date_range(start, end, freq="h", inclusive="left").tz_convert("UTC")


def issue_time_for(
    day: dt.date, tz: str, issue_hour: int = ISSUE_HOUR_LOCAL
) -> pd.Timestamp:
    """Return the issue time [UTC] of the forecast for operating ``day``: D-1 at ``issue_hour`` local."""
    previous = pd.Timestamp(day - dt.timedelta(days=1)) + pd.Timedelta(hours=issue_hour)
    return previous.tz_localize(tz).tz_convert("UTC")


def known_at(index: pd.DatetimeIndex, *, product: str, tz: str) -> pd.DatetimeIndex:
    """Return when each value of ``index`` became known [UTC].

    Parameters
    ----------
    index
        UTC interval starts of hourly values.
    product
        Real-time products (and ``load``) are known when their interval ends;
        day-ahead products for day D are published on D-1 at
        :data:`~forecasting.types.DAY_AHEAD_PUBLISH_HOUR_LOCAL` local.
    tz
        Market time zone.

    Returns
    -------
    pandas.DatetimeIndex
        Availability timestamps, aligned with ``index``.
    """
    if is_realtime(product):
        return index + pd.Timedelta(hours=1)
    local = index.tz_convert(tz)
    publish = local.normalize().tz_localize(None) - pd.Timedelta(days=1)
    publish = publish + pd.Timedelta(hours=DAY_AHEAD_PUBLISH_HOUR_LOCAL)
    return publish.tz_localize(
        tz, ambiguous="NaT", nonexistent="shift_forward"
    ).tz_convert("UTC")


def known_history(
    series: pd.Series, issue_time: pd.Timestamp, *, product: str, tz: str
) -> pd.Series:
    """Return the part of ``series`` known at ``issue_time``: nothing from after it.

    Parameters
    ----------
    series
        Hourly values on a UTC DatetimeIndex.
    issue_time
        The forecast issue time [UTC].
    product, tz
        See :func:`known_at`.
    """
    if len(series) == 0:
        return series
    avail = known_at(pd.DatetimeIndex(series.index), product=product, tz=tz)
    return series[np.asarray(avail <= issue_time)]


def daily_matrix(series: pd.Series, tz: str) -> pd.DataFrame:
    """Pivot an hourly UTC series to local day x local hour (0-23).

    The repeated fall-back hour is averaged; the skipped spring-forward hour is NaN.
    Missing values stay NaN.
    """
    if len(series) == 0:
        return pd.DataFrame(columns=range(24), dtype=float)
    local = pd.DatetimeIndex(series.index).tz_convert(tz)
    days = local.normalize().tz_localize(None)
    frame = pd.DataFrame({"day": days, "hour": local.hour, "v": series.to_numpy(float)})
    matrix = frame.groupby(["day", "hour"])["v"].mean().unstack("hour")
    return matrix.reindex(columns=range(24)).astype(float)


def _holiday_flags(dates: pd.DatetimeIndex) -> np.ndarray:
    years = sorted({int(y) for y in dates.year.unique()})
    calendar = holidays.country_holidays("US", years=years)
    hol = pd.DatetimeIndex(sorted(pd.Timestamp(d) for d in calendar))
    return np.asarray(dates.isin(hol), dtype=float)


def target_index(days: Iterable[dt.date], tz: str) -> pd.DatetimeIndex:
    """Return the UTC hourly timestamps of all hours of the given local ``days``."""
    parts = [operating_day_index(d, tz) for d in sorted(set(days))]
    if not parts:
        return pd.DatetimeIndex([], tz="UTC")
    return parts[0].append(parts[1:]) if len(parts) > 1 else parts[0]


def build_features(
    series: pd.Series,
    days: Iterable[dt.date],
    *,
    tz: str,
    product: str,
    issue_hour: int = ISSUE_HOUR_LOCAL,
) -> pd.DataFrame:
    """Build the feature matrix for every hour of the operating ``days``.

    Each day D is forecast at its issue time (D-1 at ``issue_hour`` local). Lags
    come from day D-k at the same local hour. For real-time products the hours of
    D-1 at or after ``issue_hour`` are not known at issue time and are masked
    (NaN), so features built from the full history equal those built from the
    history truncated at each day's issue time (see :func:`known_history`).

    Parameters
    ----------
    series
        Hourly values [USD/MWh, USD/MW-h or kW] on a UTC DatetimeIndex; missing
        values may be NaN or absent — they stay NaN (the gradient-boosting models
        handle NaN natively).
    days
        Local operating days to build rows for.
    tz
        Market (or site) time zone: all calendar features are local.
    product
        Decides availability (see :func:`known_at`).
    issue_hour
        Local hour on D-1 when the forecast is issued (0-23).

    Returns
    -------
    pandas.DataFrame
        Index: UTC timestamps of the hours of ``days`` (23/24/25 per day);
        columns :data:`FEATURE_NAMES`.

    Raises
    ------
    ForecastInputError
        When ``issue_hour`` is outside 0-23.
    """
    if not 0 <= issue_hour <= 23:
        msg = f"issue_hour={issue_hour} must be within 0-23"
        raise ForecastInputError(msg)
    index = target_index(days, tz)
    local = index.tz_convert(tz)
    row_day = local.normalize().tz_localize(None)
    hour = np.asarray(local.hour)
    matrix = daily_matrix(series, tz)
    max_lag = max(LAG_DAYS)
    unique_days = pd.DatetimeIndex(sorted(set(row_day)))
    lag_span = pd.date_range(
        unique_days.min() - pd.Timedelta(days=max_lag) if len(unique_days) else "2000",
        unique_days.max() if len(unique_days) else "2000",
        freq="D",
    )
    full = matrix.reindex(lag_span).to_numpy(float)
    pos = np.asarray(lag_span.get_indexer(row_day))
    if is_realtime(product):
        d1_known = np.arange(24) < issue_hour
    else:
        d1_known = np.ones(24, dtype=bool)

    def lag(k: int) -> np.ndarray:
        return full[pos - k]  # days x 24 rows of lag day D-k, one per target row

    d1 = lag(1).copy()
    d1[:, ~d1_known] = np.nan
    out: dict[str, np.ndarray] = {
        "hour": hour.astype(float),
        "weekday": np.asarray(local.day_of_week, dtype=float),
        "month": np.asarray(local.month, dtype=float),
        "is_holiday": _holiday_flags(row_day) if len(row_day) else np.zeros(0),
        "is_weekend": np.asarray(local.day_of_week >= 5, dtype=float),
        "hour_x_weekday": hour + 24.0 * np.asarray(local.day_of_week, dtype=float),
    }
    rows = np.arange(len(index))
    for k in LAG_DAYS:
        block = d1 if k == 1 else lag(k)
        out[f"lag_d{k}"] = block[rows, hour]
    prev_h = np.clip(hour - 1, 0, 23)
    next_h = np.clip(hour + 1, 0, 23)
    out["lag_d1_prev_hour"] = d1[rows, prev_h]
    out["lag_d1_next_hour"] = d1[rows, next_h]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        out["d1_mean"] = np.nanmean(d1, axis=1)
        out["d1_max"] = np.nanmax(d1, axis=1)
        out["d1_min"] = np.nanmin(d1, axis=1)
        out["d1_std"] = np.nanstd(d1, axis=1)
        last_col = max(int(np.flatnonzero(d1_known).max()), 0)
        out["d1_last"] = d1[:, last_col]
        out["d2_mean"] = np.nanmean(lag(2), axis=1)
        out["d7_mean"] = np.nanmean(lag(7), axis=1)
        week = np.stack([d1 if k == 1 else lag(k) for k in range(1, 8)], axis=0)
        week_at_hour = week[:, rows, hour]
        out["week_mean_at_hour"] = np.nanmean(week_at_hour, axis=0)
        out["week_max_at_hour"] = np.nanmax(week_at_hour, axis=0)
        out["week_median_at_hour"] = np.nanmedian(week_at_hour, axis=0)
        out["week_mean"] = np.nanmean(week, axis=(0, 2))
    frame = pd.DataFrame(out, index=index)
    return frame[list(FEATURE_NAMES)]


CROSS_NODE_FEATURES: tuple[str, ...] = ("lag_d1", "week_median_at_hour")
"""Features of another node's series that :func:`cross_node_features` adds, as spreads."""


def cross_node_feature_names(nodes: Iterable[str]) -> list[str]:
    """Return the columns :func:`cross_node_features` builds for ``nodes``, in order."""
    return [f"x_{node}_{name}" for node in nodes for name in CROSS_NODE_FEATURES]


def cross_node_features(
    own: pd.DataFrame,
    others: Mapping[str, pd.Series],
    *,
    tz: str,
    product: str,
    issue_hour: int = ISSUE_HOUR_LOCAL,
) -> pd.DataFrame:
    """Build spreads to other nodes' prices for the rows of ``own``.

    For each node in ``others`` (in the given order), the same-hour D-1 value and the
    7-day same-hour median of that node minus the target node's (columns
    ``x_<node>_lag_d1``, ``x_<node>_week_median_at_hour``). The other series share the
    target's product, so the same availability rule applies: what a feature uses is
    known at the issue time (see :func:`build_features`).

    Parameters
    ----------
    own
        Output of :func:`build_features` for the target node.
    others
        Node name -> hourly series on a UTC DatetimeIndex (NaN = missing).
    tz, product, issue_hour
        As in :func:`build_features`.

    Returns
    -------
    pandas.DataFrame
        Index of ``own``; columns :func:`cross_node_feature_names` of ``others``.
    """
    index = pd.DatetimeIndex(own.index)
    local = index.tz_convert(tz)
    days = sorted({d.date() for d in local.normalize().tz_localize(None)})
    theirs: dict[str, pd.DataFrame] = {}
    for node, series in others.items():
        if not isinstance(series.index, pd.DatetimeIndex) or series.index.tz is None:
            msg = f"exog[{node!r}]: index must be a tz-aware (UTC) DatetimeIndex"
            raise ForecastInputError(msg)
        theirs[node] = build_features(
            series, days, tz=tz, product=product, issue_hour=issue_hour
        ).reindex(index)
    out = _spreads(own, theirs)
    return pd.DataFrame(out, index=index, columns=cross_node_feature_names(others))


def _spreads(
    own: pd.DataFrame, theirs: Mapping[str, pd.DataFrame]
) -> dict[str, np.ndarray]:
    """``x_<node>_<name>``: each other node's feature minus the target's, same rows."""
    return {
        f"x_{node}_{name}": (frame[name] - own[name]).to_numpy(float)
        for node, frame in theirs.items()
        for name in CROSS_NODE_FEATURES
    }


POOL_INDEX: str = "pool_index"
"""Column of :func:`pooled_features`: the row's node, as its position in the pool."""


def pooled_feature_names(nodes: Iterable[str]) -> list[str]:
    """Return the columns :func:`pooled_features` builds for a pool of ``nodes``, in order."""
    return [*FEATURE_NAMES, *cross_node_feature_names(nodes), POOL_INDEX]


def pooled_features(own_by_node: Mapping[str, pd.DataFrame], node: str) -> pd.DataFrame:
    """Build the rows of ``node`` for a model pooled over several nodes.

    One model fitted on the rows of every node of a pool sees each hour once per
    node. Every row has the same columns whichever node it belongs to: the node's own
    features, the spreads of every node of the pool to it (its own spread is 0, as in
    :func:`cross_node_features`: ``x_<other>_<name> = other - node``) and the node's
    position in the pool (``pool_index``, a categorical feature).

    Parameters
    ----------
    own_by_node
        Node -> :func:`build_features` of that node's series, all on the same rows;
        its order is the pool order.
    node
        The node whose rows to build (a key of ``own_by_node``).

    Returns
    -------
    pandas.DataFrame
        Index of ``own_by_node[node]``; columns :func:`pooled_feature_names`.

    Raises
    ------
    ForecastInputError
        When ``node`` is not in the pool or the frames are not on the same rows.
    """
    names = list(own_by_node)
    if node not in own_by_node:
        msg = f"node {node!r} is not in the pool {names}"
        raise ForecastInputError(msg)
    own = own_by_node[node]
    out: dict[str, np.ndarray] = {
        name: own[name].to_numpy(float) for name in FEATURE_NAMES
    }
    for other in names:
        if not own_by_node[other].index.equals(own.index):
            msg = f"pooled features: rows of {other!r} differ from those of {node!r}"
            raise ForecastInputError(msg)
    out.update(_spreads(own, own_by_node))
    out[POOL_INDEX] = np.full(len(own), float(names.index(node)))
    return pd.DataFrame(out, index=own.index, columns=pooled_feature_names(names))
