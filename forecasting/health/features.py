"""Turn raw battery telemetry into one row of daily features per device."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.errors import ForecastInputError

MS_PER_DAY = 86_400_000
"""Milliseconds in a UTC day."""

REQUIRED_COLUMNS = (
    "site_id",
    "dev_id",
    "ts_ms",
    "q",
    "soc_pct",
    "p_dc_w",
    "cell_v_max_v",
    "cell_v_min_v",
    "cell_t_max_c",
)
"""Telemetry columns :func:`daily_features` needs (``soh_pct`` is optional)."""

FEATURE_COLUMNS = (
    "samples",
    "bad_fraction",
    "gap_fraction",
    "spread_mid_soc_mv",
    "temp_at_power_c",
    "temp_mean_c",
    "soh",
    "energy_in_mwh",
    "energy_out_mwh",
    "soc_start",
    "soc_end",
    "soc_mean",
    "rte",
)
"""Columns of the daily feature frame, besides ``site_id``, ``dev_id`` and ``day``."""

MID_SOC = (0.35, 0.65)
"""SoC window (fractions 0-1) where the cell-voltage spread is read."""

POWER_FRACTION = 0.5
"""Samples at or above this fraction of the day's largest |power| count as 'at power'."""

RTE_MAX_SOC_DRIFT = 0.03
"""A day is a closed cycle (RTE measurable) when SoC ends within this of its start."""

RTE_MIN_IN_FRACTION = 0.3
"""…and at least this fraction of the device's largest daily charge went in."""

RTE_MAX_UNCERTAIN = 0.002
"""…and the energy in bad or missing intervals (estimated, fraction 0-1 of the day's
charge) is at most this, with no gap too long to estimate.

A bad or missing sample while power flows leaves its interval's energy unknown; an
energy balance over such a day would read as lost efficiency, so the day gets no RTE
(the loss is a ``telemetry_quality`` matter). One while idle costs nothing."""

MAX_STEP_CADENCES = 1.5
"""An interval longer than this many cadences (a missing sample) is not valid."""

MAX_FILL_CADENCES = 4.0
"""Throughput over invalid intervals up to this many cadences long is estimated from
the power interpolated between the valid samples around them; longer gaps count for
nothing."""


def _validate(samples: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in samples.columns]
    if missing:
        msg = (
            f"telemetry frame lacks column(s) {', '.join(missing)}; "
            f"expected {', '.join(REQUIRED_COLUMNS)}"
        )
        raise ForecastInputError(msg)


def daily_features(samples: pd.DataFrame) -> pd.DataFrame:
    """Compute daily condition features per (site, device) from telemetry samples.

    Parameters
    ----------
    samples : pandas.DataFrame
        One row per sample with ``site_id``, ``dev_id``, ``ts_ms`` [ms since epoch,
        UTC], ``q`` (``good``/``bad``/…), ``soc_pct`` [%], ``p_dc_w`` [W, + =
        discharge], ``cell_v_max_v``, ``cell_v_min_v`` [V], ``cell_t_max_c`` [°C] and
        optionally ``soh_pct`` [%].

    Returns
    -------
    pandas.DataFrame
        One row per (``site_id``, ``dev_id``, ``day``) with :data:`FEATURE_COLUMNS`:
        ``samples`` (count), ``bad_fraction`` (0-1, ``q == "bad"``), ``gap_fraction``
        (0-1, samples missing against the device's median cadence),
        ``spread_mid_soc_mv`` [mV] (median max-min cell voltage at SoC in
        :data:`MID_SOC`), ``temp_at_power_c`` [°C] (mean max cell temperature while at
        power), ``temp_mean_c`` [°C] (mean max cell temperature), ``soh`` (0-1, median reported SoH), ``energy_in_mwh`` and
        ``energy_out_mwh`` [MWh] (DC energy charged / discharged), ``soc_start`` and
        ``soc_end``, ``soc_mean`` (0-1) and ``rte`` (0-1, out/in on closed-cycle days
        whose energy is fully measured, else NaN).

    Raises
    ------
    ForecastInputError
        When a required column is missing.

    Notes
    -----
    Energy integrates power over each valid interval: a good sample with a measured
    power, followed by the next one within :data:`MAX_STEP_CADENCES` of the median
    cadence. A day whose bad samples or gaps fall while power flows (see
    :data:`RTE_MAX_UNCERTAIN`) gets no ``rte``. Its energies
    (throughput, for the aging model and passports) are estimated over bad samples
    and gaps up to :data:`MAX_FILL_CADENCES` from the power interpolated between
    valid samples. Bad samples count in ``bad_fraction``.
    """
    _validate(samples)
    if samples.empty:
        return pd.DataFrame(columns=["site_id", "dev_id", "day", *FEATURE_COLUMNS])
    frame = samples.sort_values(["site_id", "dev_id", "ts_ms"]).reset_index(drop=True)
    out: list[pd.DataFrame] = []
    for (site_id, dev_id), device in frame.groupby(["site_id", "dev_id"], sort=True):
        daily = _device_daily(device)
        daily.insert(0, "dev_id", dev_id)
        daily.insert(0, "site_id", site_id)
        out.append(daily)
    return pd.concat(out, ignore_index=True)


def _device_daily(device: pd.DataFrame) -> pd.DataFrame:
    ts = device["ts_ms"].to_numpy(dtype=np.int64)
    steps = np.diff(ts)
    cadence_ms = float(np.median(steps)) if steps.size else float(MS_PER_DAY)
    cadence_ms = max(cadence_ms, 1.0)
    day_index = ts // MS_PER_DAY
    bad = (device["q"].astype(str).to_numpy() == "bad").astype(float)
    good = bad == 0.0
    soc = device["soc_pct"].to_numpy(dtype=float) / 100.0
    power_w = device["p_dc_w"].to_numpy(dtype=float)
    spread_mv = (
        device["cell_v_max_v"].to_numpy(dtype=float)
        - device["cell_v_min_v"].to_numpy(dtype=float)
    ) * 1000.0
    temp_c = device["cell_t_max_c"].to_numpy(dtype=float)
    soh = (
        device["soh_pct"].to_numpy(dtype=float) / 100.0
        if "soh_pct" in device.columns
        else np.full(ts.size, np.nan)
    )
    step_ms = np.append(steps, 0).astype(float)
    measured = good & np.isfinite(power_w)
    valid = measured & (step_ms <= MAX_STEP_CADENCES * cadence_ms)
    # Throughput: interpolate the power over bad samples and short gaps.
    if measured.any():
        p_est = np.where(
            measured, power_w, np.interp(ts, ts[measured], power_w[measured])
        )
    else:
        p_est = np.zeros(ts.size)
    fillable = step_ms <= MAX_FILL_CADENCES * cadence_ms
    fill_h = np.where(fillable, step_ms, 0.0) / 3.6e6
    out_mwh = np.clip(p_est, 0.0, None) * fill_h / 1e6
    in_mwh = np.clip(-p_est, 0.0, None) * fill_h / 1e6
    uncertain_mwh = np.where(valid, 0.0, np.abs(p_est) * fill_h / 1e6)
    unknown = (~fillable).astype(float)
    unknown[-1] = 0.0  # the last sample has no next one yet
    frame = pd.DataFrame(
        {
            "day": day_index,
            "bad": bad,
            "soc": np.where(good, soc, np.nan),
            "mid_spread": np.where(
                good & (soc >= MID_SOC[0]) & (soc <= MID_SOC[1]), spread_mv, np.nan
            ),
            "abs_p": np.where(good, np.abs(power_w), np.nan),
            "temp": np.where(good, temp_c, np.nan),
            "soh": np.where(good, soh, np.nan),
            "in_mwh": in_mwh,
            "out_mwh": out_mwh,
            "uncertain_mwh": uncertain_mwh,
            "unknown": unknown,
        }
    )
    grouped = frame.groupby("day", sort=True)
    daily = pd.DataFrame(
        {
            "samples": grouped.size(),
            "bad_fraction": grouped["bad"].mean(),
            "spread_mid_soc_mv": grouped["mid_spread"].median(),
            "soh": grouped["soh"].median(),
            "energy_in_mwh": grouped["in_mwh"].sum(),
            "energy_out_mwh": grouped["out_mwh"].sum(),
            "soc_start": grouped["soc"].first(),
            "soc_end": grouped["soc"].last(),
            "soc_mean": grouped["soc"].mean(),
            "temp_mean_c": grouped["temp"].mean(),
            "uncertain_mwh": grouped["uncertain_mwh"].sum(),
            "unknown": grouped["unknown"].sum(),
        }
    )
    max_p = grouped["abs_p"].transform("max")
    at_power = frame["abs_p"] >= POWER_FRACTION * max_p
    at_power &= max_p > 0
    daily["temp_at_power_c"] = (
        frame["temp"].where(at_power).groupby(frame["day"]).mean()
    )
    days = daily.index.to_numpy(dtype=np.int64)
    start_ms = np.maximum(days * MS_PER_DAY, ts[0])
    end_ms = np.minimum((days + 1) * MS_PER_DAY - 1, ts[-1])
    expected = np.floor((end_ms - start_ms) / cadence_ms) + 1
    daily["gap_fraction"] = np.clip(1.0 - daily["samples"].to_numpy() / expected, 0, 1)
    closed = (daily["soc_end"] - daily["soc_start"]).abs() <= RTE_MAX_SOC_DRIFT
    big_in = (
        daily["energy_in_mwh"] >= RTE_MIN_IN_FRACTION * daily["energy_in_mwh"].max()
    )
    complete = (daily["unknown"] == 0) & (
        daily["uncertain_mwh"] <= RTE_MAX_UNCERTAIN * daily["energy_in_mwh"]
    )
    valid = closed & big_in & (daily["energy_in_mwh"] > 0) & complete
    daily["rte"] = (daily["energy_out_mwh"] / daily["energy_in_mwh"]).where(valid)
    daily = daily.reset_index()
    daily["day"] = pd.to_datetime(daily["day"] * MS_PER_DAY, unit="ms", utc=True)
    daily["day"] = daily["day"].dt.date
    return daily[["day", *FEATURE_COLUMNS]]
