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
    thermal_k: float = 4.0
    """Robust z against peer strings the temperature must pass."""
    thermal_min_delta_c: float = 3.0
    """…and at least this many degrees [°C] above the peer median."""
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
    fade_rel_band: float = 0.3
    """Model band: this fraction of the model's predicted loss…"""
    fade_abs_band: float = 0.005
    """…plus this absolute SoH (fraction 0-1)."""
    fade_critical_factor: float = 2.0
    """A residual beyond this many bands is critical."""
    rte_window_days: int = 7
    """Rolling median window over closed-cycle days."""
    rte_min_drop: float = 0.02
    """Drop of RTE (fraction 0-1) below the baseline that raises a finding."""
    rte_k: float = 4.0
    """…and robust z of the drop against the baseline's scatter."""
    rte_critical_drop: float = 0.05
    """Drop (fraction 0-1) that makes the finding critical."""
    rte_floor_scale: float = 0.002
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


def _devices(features: pd.DataFrame) -> Iterable[tuple[str, str, pd.DataFrame]]:
    for (site_id, dev_id), device in features.groupby(["site_id", "dev_id"], sort=True):
        yield str(site_id), str(dev_id), device.sort_values("day")


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
                        detail={"baseline_mv": round(baseline, 3)},
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
    the median over the site's devices, and ``z = delta_c / scale`` with ``scale`` the
    peers' robust scale (at least ``thermal_floor_scale_c``). A finding when
    ``z > thermal_k`` and ``delta_c > thermal_min_delta_c`` on
    ``thermal_persist_days`` consecutive days; critical above
    ``thermal_critical_delta_c``. The site's strings follow one dispatch, so they are
    compared at the same power.

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
    frame = features[["site_id", "dev_id", "day", "temp_at_power_c"]].copy()
    grouped = frame.groupby(["site_id", "day"])["temp_at_power_c"]
    frame["peers"] = grouped.transform("count")
    frame["median_c"] = grouped.transform("median")
    frame["abs_dev"] = (frame["temp_at_power_c"] - frame["median_c"]).abs()
    mad = frame.groupby(["site_id", "day"])["abs_dev"].transform("median")
    frame["scale_c"] = np.maximum(MAD_TO_SIGMA * mad, cfg.thermal_floor_scale_c)
    frame["delta_c"] = frame["temp_at_power_c"] - frame["median_c"]
    frame["z"] = frame["delta_c"] / frame["scale_c"]
    frame["over"] = (
        (frame["peers"] >= cfg.thermal_min_peers)
        & (frame["z"] > cfg.thermal_k)
        & (frame["delta_c"] > cfg.thermal_min_delta_c)
    )
    findings: list[Finding] = []
    for site_id, dev_id, device in _devices(frame):
        runs = _consecutive(device["over"].to_numpy(dtype=bool))
        for row, run in zip(device.itertuples(index=False), runs, strict=True):
            if run >= cfg.thermal_persist_days:
                findings.append(
                    Finding(
                        site_id=site_id,
                        dev_id=dev_id,
                        kind=FindingKind.THERMAL,
                        severity=_severity(row.delta_c, cfg.thermal_critical_delta_c),
                        day=row.day,
                        statistic="temperature at power above peer median [°C]",
                        value=float(row.delta_c),
                        threshold=cfg.thermal_min_delta_c,
                        action=ACTIONS[FindingKind.THERMAL],
                        detail={
                            "robust_z": round(float(row.z), 3),
                            "peer_median_c": round(float(row.median_c), 3),
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
    device's cumulative DC throughput (``energy_in_mwh + energy_out_mwh``) day by day.

    Parameters
    ----------
    features : pandas.DataFrame
        Daily features with ``energy_in_mwh`` and ``energy_out_mwh`` [MWh] (and
        ``soc_mean``, 0.5 when absent, for the calendar stress); the first
        day of each device is taken as its first day in service.
    energy_mwh : float
        Nameplate energy of one device [MWh].
    temp_c : float, default 25.0
        Mean cell temperature the model assumes [°C].
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
        values = [
            model(t, float(tp), float(s))
            for t, tp, s in zip(t_days, throughput, soc, strict=True)
        ]
        out.loc[device.index, "soh_model"] = values
    out["soh_band"] = cfg.fade_rel_band * (1.0 - out["soh_model"]) + cfg.fade_abs_band
    return out


def detect_fast_fade(
    features: pd.DataFrame, config: DetectorConfig | None = None
) -> list[Finding]:
    """Find usable capacity falling faster than the degradation model predicts.

    Statistic: ``residual[d]`` = rolling median over ``fade_window_days`` of
    ``soh - soh_model`` (fraction); a finding when ``residual < -soh_band``, critical
    below ``-fade_critical_factor · soh_band``.

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
        One per device-day below the band.
    """
    cfg = config or DetectorConfig()
    _check_frame(features, ["soh", "soh_model", "soh_band"])
    findings: list[Finding] = []
    for site_id, dev_id, device in _devices(features):
        residual = (device["soh"] - device["soh_model"]).astype(float)
        rolled = residual.rolling(
            cfg.fade_window_days, min_periods=cfg.fade_window_days
        )
        medians = rolled.median()
        for day, value, band, model in zip(
            device["day"], medians, device["soh_band"], device["soh_model"], strict=True
        ):
            if np.isfinite(value) and value < -band:
                findings.append(
                    Finding(
                        site_id=site_id,
                        dev_id=dev_id,
                        kind=FindingKind.FAST_FADE,
                        severity=(
                            Severity.CRITICAL
                            if value < -cfg.fade_critical_factor * band
                            else Severity.WARNING
                        ),
                        day=day,
                        statistic="SoH minus model SoH (fraction)",
                        value=float(value),
                        threshold=-float(band),
                        action=ACTIONS[FindingKind.FAST_FADE],
                        detail={"soh_model": round(float(model), 5)},
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
                        detail={"baseline_rte": round(baseline, 5)},
                    )
                )
    return findings


def detect_telemetry_quality(
    features: pd.DataFrame, config: DetectorConfig | None = None
) -> list[Finding]:
    """Find devices whose samples are often ``bad`` or missing.

    Statistic: rolling mean over ``quality_window_days`` of ``bad_fraction +
    gap_fraction`` (fraction 0-1 of expected samples); a finding above
    ``quality_threshold``, critical above ``quality_critical``.

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
