"""Condition detectors: pure functions from daily feature frames to findings.

Each detector reads the frame of :func:`forecasting.health.features.daily_features`
(one site, all its devices, one row per device and UTC day), tests one documented
statistic day by day using only that day and earlier ones, and returns a
:class:`~forecasting.health.findings.Finding` for every day the statistic is past its
threshold. The first finding's day, less the fault's onset, is the detection delay.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from forecasting.degradation.aging import ThroughputAging
from forecasting.errors import ForecastInputError
from forecasting.health.findings import ACTIONS, Finding, FindingKind, Severity

if TYPE_CHECKING:
    from collections.abc import Iterable

logger = logging.getLogger(__name__)

MAD_TO_SIGMA = 1.4826
"""Scale of the median absolute deviation to a normal standard deviation."""


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Thresholds of every detector (defaults are the validated ones, docs/health.md)."""

    baseline_days: int = 14
    """Days at the start of a device's history that set its own baseline."""
    imbalance_window_days: int = 5
    """Rolling median window of the mid-SoC spread [days]."""
    imbalance_k: float = 5.0
    """Robust z (against the baseline) the spread rise must pass."""
    imbalance_min_rise_mv: float = 6.0
    """…and at least this rise [mV] above the baseline."""
    imbalance_critical_rise_mv: float = 20.0
    """Rise [mV] that makes the finding critical."""
    imbalance_floor_scale_mv: float = 0.5
    """Smallest robust scale of the baseline spread [mV]."""
    thermal_k: float = 3.0
    """Robust z against peer strings the temperature excess must pass."""
    thermal_min_delta_c: float = 1.5
    """…and at least this many degrees [°C] above the peer median, beyond the unit's
    own baseline offset from its peers."""
    thermal_critical_delta_c: float = 8.0
    """Excess [°C] that makes the finding critical."""
    thermal_floor_scale_c: float = 0.5
    """Smallest robust scale of the peers' temperatures [°C]."""
    thermal_persist_days: int = 2
    """Consecutive days over threshold before a thermal finding."""
    thermal_min_peers: int = 3
    """Fewest devices on a site-day for the peer comparison."""
    fade_window_days: int = 14
    """Rolling median window of the SoH residual [days]."""
    fade_rate_window_days: int = 30
    """Window of the fade-rate fit (least squares over SoH and model SoH) [days]."""
    fade_rate_ratio: float = 1.6
    """Measured fade rate over the model's rate that raises a finding…"""
    fade_rate_min_excess: float = 0.001
    """…when the capacity lost beyond the model over the window (fraction 0-1) is at
    least this."""
    fade_rate_k: float = 4.0
    """…and the rate excess is at least this many standard errors of the fit."""
    fade_rate_critical_ratio: float = 3.0
    """Rate ratio that makes the finding critical."""
    fade_rel_band: float = 0.3
    """Model band: this fraction of the model's predicted loss…"""
    fade_abs_band: float = 0.005
    """…plus this absolute SoH (fraction 0-1)."""
    fade_critical_factor: float = 2.0
    """A residual beyond this many bands is critical."""
    rte_window_days: int = 7
    """Rolling median window over closed-cycle days."""
    rte_min_drop: float = 0.004
    """Drop of RTE (fraction 0-1) below the baseline that raises a finding."""
    rte_k: float = 4.0
    """…and robust z of the drop against the baseline's scatter."""
    rte_critical_drop: float = 0.05
    """Drop (fraction 0-1) that makes the finding critical."""
    rte_floor_scale: float = 0.001
    """Smallest robust scale of the baseline RTE (fraction)."""
    quality_window_days: int = 7
    """Rolling mean window of bad and missing sample fractions [days]."""
    quality_threshold: float = 0.05
    """Mean bad-or-missing fraction (0-1) that raises a finding."""
    quality_critical: float = 0.25
    """Fraction (0-1) that makes the finding critical."""


def _check_frame(features: pd.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in ("site_id", "dev_id", "day", *columns) if c not in features]
    if missing:
        msg = f"daily feature frame lacks column(s) {', '.join(missing)}"
        raise ForecastInputError(msg)


def robust_scale(values: npt.ArrayLike, floor: float) -> float:
    """Return max(1.4826·MAD(values), floor), ignoring NaN.

    Parameters
    ----------
    values : array_like
        Sample.
    floor : float
        Smallest scale returned (same unit as ``values``).
    """
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return floor
    mad = float(np.median(np.abs(arr - np.median(arr))))
    return max(MAD_TO_SIGMA * mad, floor)


def _severity(value: float, critical: float) -> Severity:
    return Severity.CRITICAL if value >= critical else Severity.WARNING


UNIT_COLUMN = "unit"
"""Optional feature column naming the unit (module serial) behind a device-day.

When present, every baseline (the first ``baseline_days`` of a unit), the aging
model's start and the fade anchor belong to the unit: a swap restarts them."""


def _devices(features: pd.DataFrame) -> Iterable[tuple[str, str, pd.DataFrame]]:
    keys = ["site_id", "dev_id"]
    if UNIT_COLUMN in features:
        features = features.assign(**{UNIT_COLUMN: features[UNIT_COLUMN].fillna("")})
        keys.append(UNIT_COLUMN)
    for key, device in features.groupby(keys, sort=True):
        yield str(key[0]), str(key[1]), device.sort_values("day")


def _unit_detail(device: pd.DataFrame) -> dict[str, str]:
    if UNIT_COLUMN not in device or device.empty:
        return {}
    unit = device[UNIT_COLUMN].iloc[0]
    return {"serial": str(unit)} if isinstance(unit, str) and unit else {}


def detect_imbalance(
    features: pd.DataFrame, config: DetectorConfig | None = None
) -> list[Finding]:
    """Find cell-voltage spread at mid SoC rising above a device's own baseline.

    Statistic: ``rise_mv[d]`` = rolling median of ``spread_mid_soc_mv`` over
    ``imbalance_window_days`` minus the median of the first ``baseline_days``; a
    finding when ``rise_mv > max(imbalance_k · scale, imbalance_min_rise_mv)`` with
    ``scale`` the robust scale of the baseline days. Critical above
    ``imbalance_critical_rise_mv``.

    Parameters
    ----------
    features : pandas.DataFrame
        Daily features with ``spread_mid_soc_mv`` [mV].
    config : DetectorConfig, optional
        Thresholds.

    Returns
    -------
    list[Finding]
        One per device-day over the threshold.
    """
    cfg = config or DetectorConfig()
    _check_frame(features, ["spread_mid_soc_mv"])
    findings: list[Finding] = []
    for site_id, dev_id, device in _devices(features):
        spread = device["spread_mid_soc_mv"].astype(float)
        valid = spread.dropna()
        if len(valid) <= cfg.baseline_days:
            continue
        base = valid.iloc[: cfg.baseline_days]
        baseline = float(base.median())
        scale = robust_scale(base.to_numpy(), cfg.imbalance_floor_scale_mv)
        threshold = max(cfg.imbalance_k * scale, cfg.imbalance_min_rise_mv)
        rolled = spread.rolling(cfg.imbalance_window_days, min_periods=1).median()
        rise = rolled - baseline
        base_end = int(device.index.get_loc(base.index[-1]))
        after = np.arange(len(device)) > base_end
        for day, value, keep in zip(device["day"], rise, after, strict=True):
            if keep and np.isfinite(value) and value > threshold:
                findings.append(
                    Finding(
                        site_id=site_id,
                        dev_id=dev_id,
                        kind=FindingKind.IMBALANCE,
                        severity=_severity(value, cfg.imbalance_critical_rise_mv),
                        day=day,
                        statistic="mid-SoC cell-voltage spread rise [mV]",
                        value=float(value),
                        threshold=threshold,
                        action=ACTIONS[FindingKind.IMBALANCE],
                        detail={
                            "baseline_mv": round(baseline, 3),
                            **_unit_detail(device),
                        },
                    )
                )
    return findings


def _consecutive(flags: np.ndarray) -> np.ndarray:
    """Length of the run of True ending at each position."""
    runs = np.zeros(flags.size, dtype=int)
    count = 0
    for i, flag in enumerate(flags):
        count = count + 1 if flag else 0
        runs[i] = count
    return runs


def detect_thermal(
    features: pd.DataFrame, config: DetectorConfig | None = None
) -> list[Finding]:
    """Find a string running hotter than its peers at the same power.

    Statistic: on each site-day, ``delta_c`` = a device's ``temp_at_power_c`` minus
    the median over the site's devices; ``excess_c = delta_c - offset_c`` with
    ``offset_c`` the unit's own usual offset (median ``delta_c`` of its first
    ``baseline_days`` days, clipped to ±``thermal_min_delta_c``/2, 0 before then), and
    ``z = excess_c / scale`` with ``scale`` the peers' robust scale (at least
    ``thermal_floor_scale_c``). A finding when ``z > thermal_k`` and ``excess_c >
    thermal_min_delta_c`` on ``thermal_persist_days`` consecutive days; critical
    above ``thermal_critical_delta_c``. The site's strings follow one dispatch, so
    they are compared at the same power.

    Parameters
    ----------
    features : pandas.DataFrame
        Daily features with ``temp_at_power_c`` [°C].
    config : DetectorConfig, optional
        Thresholds.

    Returns
    -------
    list[Finding]
        One per device-day over the threshold.
    """
    cfg = config or DetectorConfig()
    _check_frame(features, ["temp_at_power_c"])
    columns = ["site_id", "dev_id", "day", "temp_at_power_c"]
    if UNIT_COLUMN in features:
        columns.append(UNIT_COLUMN)
    frame = features[columns].copy()
    grouped = frame.groupby(["site_id", "day"])["temp_at_power_c"]
    frame["peers"] = grouped.transform("count")
    frame["median_c"] = grouped.transform("median")
    frame["abs_dev"] = (frame["temp_at_power_c"] - frame["median_c"]).abs()
    mad = frame.groupby(["site_id", "day"])["abs_dev"].transform("median")
    frame["scale_c"] = np.maximum(MAD_TO_SIGMA * mad, cfg.thermal_floor_scale_c)
    frame["delta_c"] = frame["temp_at_power_c"] - frame["median_c"]
    frame.loc[frame["peers"] < cfg.thermal_min_peers, "delta_c"] = np.nan
    limit = cfg.thermal_min_delta_c / 2.0
    findings: list[Finding] = []
    for site_id, dev_id, device in _devices(frame):
        compared = device["delta_c"].dropna()
        offset = np.zeros(len(device))
        if len(compared) > cfg.baseline_days:
            base = compared.iloc[: cfg.baseline_days]
            base_end = int(device.index.get_loc(base.index[-1]))
            value = float(np.clip(base.median(), -limit, limit))
            offset[base_end + 1 :] = value
        excess = device["delta_c"].to_numpy(dtype=float) - offset
        z = excess / device["scale_c"].to_numpy(dtype=float)
        over = (z > cfg.thermal_k) & (excess > cfg.thermal_min_delta_c)
        runs = _consecutive(np.nan_to_num(over, nan=0.0).astype(bool))
        for row, run, value, zed, off in zip(
            device.itertuples(index=False), runs, excess, z, offset, strict=True
        ):
            if run >= cfg.thermal_persist_days:
                findings.append(
                    Finding(
                        site_id=site_id,
                        dev_id=dev_id,
                        kind=FindingKind.THERMAL,
                        severity=_severity(value, cfg.thermal_critical_delta_c),
                        day=row.day,
                        statistic="temperature at power above peer median [°C]",
                        value=float(value),
                        threshold=cfg.thermal_min_delta_c,
                        action=ACTIONS[FindingKind.THERMAL],
                        detail={
                            "robust_z": round(float(zed), 3),
                            "peer_median_c": round(float(row.median_c), 3),
                            "own_offset_c": round(float(off), 3),
                            **_unit_detail(device),
                        },
                    )
                )
    return findings


def expected_soh(
    features: pd.DataFrame,
    energy_mwh: float,
    *,
    temp_c: float = 25.0,
    config: DetectorConfig | None = None,
) -> pd.DataFrame:
    """Add the degradation model's SoH and its band to a daily feature frame.

    The model is :class:`forecasting.degradation.aging.ThroughputAging` fed each
    unit's cumulative DC throughput (``energy_in_mwh + energy_out_mwh``), mean SoC
    and mean cell temperature (``temp_mean_c``) day by day, from the unit's first day.
    Its curve is anchored at the unit's own start: ``soh_model`` = model SoH + the
    median of ``soh - model SoH`` over the unit's first ``baseline_days`` days with a
    SoH (a used module swapped in at 90 % is expected to go on from 90 %).

    Parameters
    ----------
    features : pandas.DataFrame
        Daily features with ``energy_in_mwh`` and ``energy_out_mwh`` [MWh] (and
        ``soc_mean``, 0.5 when absent, for the calendar stress; ``temp_mean_c``
        [°C], ``temp_c`` when absent or missing that day); the first day of each unit
        is taken as its first day in service.
    energy_mwh : float
        Nameplate energy of one device [MWh].
    temp_c : float, default 25.0
        Cell temperature [°C] the model assumes on days without a temperature.
    config : DetectorConfig, optional
        Band parameters.

    Returns
    -------
    pandas.DataFrame
        A copy with ``soh_model`` (0-1) and ``soh_band`` (fraction 0-1):
        ``soh_band = fade_rel_band · (1 - soh_model) + fade_abs_band``.

    Raises
    ------
    ForecastInputError
        When ``energy_mwh`` is not positive or a column is missing.
    """
    cfg = config or DetectorConfig()
    _check_frame(features, ["energy_in_mwh", "energy_out_mwh"])
    if not energy_mwh > 0:
        msg = f"energy_mwh={energy_mwh!r} must be > 0"
        raise ForecastInputError(msg)
    out = features.copy()
    out["soh_model"] = np.nan
    out["soh_band"] = np.nan
    for _, _, device in _devices(features):
        model = ThroughputAging(energy_mwh, temp_c=temp_c)
        days = pd.to_datetime(device["day"])
        t_days = ((days - days.iloc[0]).dt.days + 1).to_numpy(dtype=float)
        throughput = (device["energy_in_mwh"] + device["energy_out_mwh"]).cumsum()
        soc = (
            device["soc_mean"].fillna(0.5)
            if "soc_mean" in device
            else pd.Series(0.5, index=device.index)
        )
        temps = (
            device["temp_mean_c"].astype(float).fillna(temp_c)
            if "temp_mean_c" in device
            else pd.Series(temp_c, index=device.index)
        )
        values = []
        for t, tp, s, temp in zip(t_days, throughput, soc, temps, strict=True):
            model.temp_c = float(temp)  # the day's temperature drives its step
            values.append(model(t, float(tp), float(s)))
        raw = np.asarray(values)
        offset = 0.0
        if "soh" in device:
            residual = (device["soh"].to_numpy(dtype=float) - raw)[: cfg.baseline_days]
            residual = residual[np.isfinite(residual)]
            offset = float(np.median(residual)) if residual.size else 0.0
        out.loc[device.index, "soh_model"] = raw + offset
        out.loc[device.index, "soh_band"] = (
            cfg.fade_rel_band * (1.0 - raw) + cfg.fade_abs_band
        )
    return out


def _rolling_slope(
    y: pd.Series, x: pd.Series, window: int
) -> tuple[pd.Series, pd.Series]:
    """Return the rolling least-squares slope of ``y`` on ``x`` and its standard error."""
    ok = y.notna() & x.notna()
    yv = y.where(ok, 0.0)
    xv = x.where(ok, 0.0)

    def total(values: pd.Series) -> pd.Series:
        return values.rolling(window, min_periods=1).sum()

    n = total(ok.astype(float))
    sx, sy = total(xv), total(yv)
    sxx_c = total(xv * xv) - sx * sx / n
    sxy_c = total(xv * yv) - sx * sy / n
    syy_c = total(yv * yv) - sy * sy / n
    slope = sxy_c / sxx_c.where(sxx_c > 0)
    rss = (syy_c - slope * sxy_c).clip(lower=0.0)
    stderr = np.sqrt(rss / (n - 2).where(n > 2) / sxx_c.where(sxx_c > 0))
    enough = n >= window * 0.6
    return slope.where(enough), stderr.where(enough)


def detect_fast_fade(
    features: pd.DataFrame, config: DetectorConfig | None = None
) -> list[Finding]:
    """Find usable capacity falling faster than the degradation model predicts.

    Two statistics, per unit, each day using that day and earlier ones:

    - the fade rate: least-squares slopes of ``soh`` and of ``soh_model`` over the
      last ``fade_rate_window_days`` days; a finding when the measured rate reaches
      ``fade_rate_ratio`` times the model's and the capacity lost beyond the model
      over the window reaches ``fade_rate_min_excess`` and the rate excess is
      ``fade_rate_k`` standard errors of the fitted slope; critical from
      ``fade_rate_critical_ratio``;
    - the level: rolling median over ``fade_window_days`` of ``soh - soh_model``
      (fraction); a finding when ``residual < -soh_band``, critical below
      ``-fade_critical_factor · soh_band``.

    Parameters
    ----------
    features : pandas.DataFrame
        Daily features with ``soh``, and ``soh_model``/``soh_band`` from
        :func:`expected_soh`.
    config : DetectorConfig, optional
        Thresholds.

    Returns
    -------
    list[Finding]
        One per unit-day past a threshold (the rate test's when both fire).
    """
    cfg = config or DetectorConfig()
    _check_frame(features, ["soh", "soh_model", "soh_band"])
    findings: list[Finding] = []
    window = cfg.fade_rate_window_days
    for site_id, dev_id, device in _devices(features):
        soh = device["soh"].astype(float)
        model = device["soh_model"].astype(float)
        residual = soh - model
        medians = residual.rolling(
            cfg.fade_window_days, min_periods=cfg.fade_window_days
        ).median()
        days = pd.to_datetime(device["day"])
        x = pd.Series(
            (days - days.iloc[0]).dt.days.to_numpy(dtype=float), index=device.index
        )
        slope, stderr = _rolling_slope(soh, x, window)
        rate = -slope
        model_rate = -_rolling_slope(model.where(soh.notna()), x, window)[0]
        excess = (rate - model_rate) * window
        ratio = rate / model_rate.where(model_rate > 0)
        position = np.arange(len(device))
        unit = _unit_detail(device)
        significant = (rate - model_rate) >= cfg.fade_rate_k * stderr
        for i, day, level, band, expected, r, ex, sig in zip(
            position,
            device["day"],
            medians,
            device["soh_band"],
            model,
            ratio,
            excess,
            significant,
            strict=True,
        ):
            rate_hit = (
                i + 1 >= window
                and np.isfinite(r)
                and r >= cfg.fade_rate_ratio
                and ex >= cfg.fade_rate_min_excess
                and bool(sig)
            )
            if rate_hit:
                findings.append(
                    Finding(
                        site_id=site_id,
                        dev_id=dev_id,
                        kind=FindingKind.FAST_FADE,
                        severity=(
                            Severity.CRITICAL
                            if r >= cfg.fade_rate_critical_ratio
                            else Severity.WARNING
                        ),
                        day=day,
                        statistic="fade rate over the model's rate",
                        value=float(r),
                        threshold=cfg.fade_rate_ratio,
                        action=ACTIONS[FindingKind.FAST_FADE],
                        detail={
                            "soh_model": round(float(expected), 5),
                            "excess_loss": round(float(ex), 5),
                            **unit,
                        },
                    )
                )
            elif np.isfinite(level) and level < -band:
                findings.append(
                    Finding(
                        site_id=site_id,
                        dev_id=dev_id,
                        kind=FindingKind.FAST_FADE,
                        severity=(
                            Severity.CRITICAL
                            if level < -cfg.fade_critical_factor * band
                            else Severity.WARNING
                        ),
                        day=day,
                        statistic="SoH minus model SoH (fraction)",
                        value=float(level),
                        threshold=-float(band),
                        action=ACTIONS[FindingKind.FAST_FADE],
                        detail={"soh_model": round(float(expected), 5), **unit},
                    )
                )
    return findings


def detect_rte_slide(
    features: pd.DataFrame, config: DetectorConfig | None = None
) -> list[Finding]:
    """Find round-trip efficiency sliding below a device's own baseline.

    Statistic: over closed-cycle days only (``rte`` not NaN), ``drop[d]`` = median of
    the first ``baseline_days`` cycles minus the rolling median of the last
    ``rte_window_days`` cycles; a finding when ``drop > max(rte_min_drop, rte_k ·
    scale)``, critical above ``rte_critical_drop``.

    Parameters
    ----------
    features : pandas.DataFrame
        Daily features with ``rte`` (fraction 0-1, metered DC out/in).
    config : DetectorConfig, optional
        Thresholds.

    Returns
    -------
    list[Finding]
        One per device-day over the threshold.
    """
    cfg = config or DetectorConfig()
    _check_frame(features, ["rte"])
    findings: list[Finding] = []
    for site_id, dev_id, device in _devices(features):
        cycles = device.dropna(subset=["rte"])
        if len(cycles) <= cfg.baseline_days:
            continue
        base = cycles["rte"].iloc[: cfg.baseline_days]
        baseline = float(base.median())
        scale = robust_scale(base.to_numpy(), cfg.rte_floor_scale)
        threshold = max(cfg.rte_min_drop, cfg.rte_k * scale)
        rolled = cycles["rte"].rolling(cfg.rte_window_days, min_periods=1).median()
        drops = baseline - rolled
        for i, (day, drop) in enumerate(zip(cycles["day"], drops, strict=True)):
            if i >= cfg.baseline_days and drop > threshold:
                findings.append(
                    Finding(
                        site_id=site_id,
                        dev_id=dev_id,
                        kind=FindingKind.RTE_SLIDE,
                        severity=_severity(drop, cfg.rte_critical_drop),
                        day=day,
                        statistic="round-trip efficiency drop below baseline",
                        value=float(drop),
                        threshold=threshold,
                        action=ACTIONS[FindingKind.RTE_SLIDE],
                        detail={
                            "baseline_rte": round(baseline, 5),
                            **_unit_detail(device),
                        },
                    )
                )
    return findings


def detect_telemetry_quality(
    features: pd.DataFrame, config: DetectorConfig | None = None
) -> list[Finding]:
    """Find devices whose samples are often ``bad`` or missing.

    Statistic: over the last ``quality_window_days``, bad plus missing samples over
    expected samples (fraction 0-1; each day weighs by its expected samples when the
    frame has ``samples``, else the mean of ``bad_fraction + gap_fraction``); a
    finding above ``quality_threshold``, critical above ``quality_critical``.

    Parameters
    ----------
    features : pandas.DataFrame
        Daily features with ``bad_fraction`` and ``gap_fraction``.
    config : DetectorConfig, optional
        Thresholds.

    Returns
    -------
    list[Finding]
        One per device-day over the threshold.
    """
    cfg = config or DetectorConfig()
    _check_frame(features, ["bad_fraction", "gap_fraction"])
    findings: list[Finding] = []
    for site_id, dev_id, device in _devices(features):
        if "samples" in device:
            # Weigh each day by its expected samples: a day scanned just after
            # midnight holds one sample, which must not speak for a whole day.
            samples = device["samples"].astype(float)
            gap = device["gap_fraction"].astype(float).clip(upper=0.999)
            expected = samples / (1.0 - gap)
            lost_n = device["bad_fraction"] * samples + (expected - samples)
            window = cfg.quality_window_days
            rolled = (
                lost_n.rolling(window, min_periods=1).sum()
                / expected.rolling(window, min_periods=1).sum()
            ).clip(upper=1.0)
        else:
            lost = (device["bad_fraction"] + device["gap_fraction"]).clip(upper=1.0)
            rolled = lost.rolling(cfg.quality_window_days, min_periods=1).mean()
        for day, value, bad, gap in zip(
            device["day"],
            rolled,
            device["bad_fraction"],
            device["gap_fraction"],
            strict=True,
        ):
            if value > cfg.quality_threshold:
                findings.append(
                    Finding(
                        site_id=site_id,
                        dev_id=dev_id,
                        kind=FindingKind.TELEMETRY_QUALITY,
                        severity=_severity(value, cfg.quality_critical),
                        day=day,
                        statistic="bad or missing sample fraction",
                        value=float(value),
                        threshold=cfg.quality_threshold,
                        action=ACTIONS[FindingKind.TELEMETRY_QUALITY],
                        detail={
                            "bad_fraction": round(float(bad), 5),
                            "gap_fraction": round(float(gap), 5),
                            **_unit_detail(device),
                        },
                    )
                )
    return findings


def run_detectors(
    features: pd.DataFrame, config: DetectorConfig | None = None
) -> list[Finding]:
    """Run every threshold detector that the frame has columns for.

    The fade detector runs only when ``soh_model`` is present (see
    :func:`expected_soh`).

    Parameters
    ----------
    features : pandas.DataFrame
        Daily features of one or more sites.
    config : DetectorConfig, optional
        Thresholds.

    Returns
    -------
    list[Finding]
        All findings, sorted by day, site, device and kind.
    """
    cfg = config or DetectorConfig()
    findings = [
        *detect_imbalance(features, cfg),
        *detect_thermal(features, cfg),
        *detect_rte_slide(features, cfg),
        *detect_telemetry_quality(features, cfg),
    ]
    if "soh_model" in features and features["soh"].notna().any():
        findings.extend(detect_fast_fade(features, cfg))
    findings.sort(key=lambda f: (f.day, f.site_id, f.dev_id, f.kind.value))
    logger.debug("%d findings over %d feature rows", len(findings), len(features))
    return findings


def first_detection(
    findings: Iterable[Finding], kind: FindingKind, dev_id: str | None = None
) -> Finding | None:
    """Return the earliest finding of ``kind`` (for ``dev_id`` if given), or None."""
    matching = [
        f for f in findings if f.kind == kind and (dev_id is None or f.dev_id == dev_id)
    ]
    return min(matching, key=lambda f: f.day) if matching else None
