"""Estimate state of health from telemetry: energy counting between rest anchors.

Usable capacity is measured each time the battery moves a large SoC distance between two
*anchors* — rest periods (no current for a while, so the BMS SoC is settled) and
full-charge events (end of a CV charge, where an LFP BMS recalibrates to 100 %)::

    capacity_fraction = (η_c·E_in - E_out) / ((soc_b - soc_a)·E_nameplate)

Each measurement carries an uncertainty from the anchors' SoC errors (small at full
charge, large at rest in the flat middle of the LFP curve) and the energy meter. A
Kalman filter with a Rauch-Tung-Striebel smoother then tracks the *deviation* of the
state of health from the aging model's prediction (the prior), modelled as a random
walk, so the estimate follows the model between measurements and the measurements
where they are dense.

:func:`simulate_energy_telemetry` makes test telemetry of a battery whose true fade is
known (pure, seeded by the ``rng`` argument).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from forecasting.errors import ForecastInputError

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

HOURS_PER_DAY = 24.0


@dataclass(frozen=True, slots=True)
class CapacityMeasurement:
    """One energy-counting capacity measurement between two anchors."""

    time_h: float
    """Time of the closing anchor [h]."""
    capacity_fraction: float
    """Measured usable capacity, fraction of nameplate."""
    std: float
    """Standard uncertainty of ``capacity_fraction`` [-]."""
    delta_soc: float
    """SoC distance between the anchors, fraction (signed: + charge)."""
    from_full: bool
    """Whether either anchor is a full-charge event."""


@dataclass(frozen=True, slots=True)
class SohEstimate:
    """Smoothed state of health over time."""

    time_h: FloatArray
    """Times of the estimates (one per measurement) [h]."""
    soh: FloatArray
    """Smoothed capacity fraction of nameplate at ``time_h``."""
    soh_std: FloatArray
    """Standard uncertainty of ``soh`` [-]."""
    prior: FloatArray
    """The aging model's prediction at ``time_h``."""
    n_measurements: int
    """Number of capacity measurements used."""

    @property
    def latest(self) -> float:
        """The most recent estimate, fraction of nameplate."""
        return float(self.soh[-1])

    @property
    def latest_std(self) -> float:
        """Uncertainty of the most recent estimate [-]."""
        return float(self.soh_std[-1])


def _rest_runs(
    time_h: FloatArray, power_mw: FloatArray, rest_power_mw: float, rest_min_h: float
) -> list[int]:
    """Index of the last sample of each rest run at least ``rest_min_h`` long."""
    resting = np.abs(power_mw[:-1]) <= rest_power_mw
    anchors: list[int] = []
    start: int | None = None
    for i, r in enumerate(resting):
        if r and start is None:
            start = i
        if not r and start is not None:
            if time_h[i] - time_h[start] >= rest_min_h:
                anchors.append(i)
            start = None
    if start is not None and time_h[-1] - time_h[start] >= rest_min_h:
        anchors.append(time_h.size - 1)
    return anchors


def capacity_measurements(
    time_h: npt.ArrayLike,
    power_mw: npt.ArrayLike,
    soc: npt.ArrayLike,
    nameplate_mwh: float,
    *,
    rest_power_mw: float | None = None,
    rest_min_h: float = 0.5,
    full_soc: float = 0.99,
    min_delta_soc: float = 0.4,
    soc_std_rest: float = 0.02,
    soc_std_full: float = 0.005,
    energy_std_rel: float = 0.005,
    charge_efficiency: float = 1.0,
) -> list[CapacityMeasurement]:
    """Measure usable capacity by energy counting between rest and full-charge anchors.

    Parameters
    ----------
    time_h : array_like
        Sample times [h], strictly increasing.
    power_mw : array_like
        DC power held over [t_i, t_i+1) [MW], + discharge, - charge (telemetry sign).
    soc : array_like
        BMS state of charge at each sample, fraction (0-1) of current capacity.
    nameplate_mwh : float
        Nameplate energy the SoH refers to [MWh].
    rest_power_mw : float, optional
        |power| at or below this is rest [MW]; 0.2 % of nameplate per hour by default.
    rest_min_h : float, default 0.5
        Shortest rest that makes an anchor [h].
    full_soc : float, default 0.99
        An anchor at or above this SoC is a full-charge event, fraction.
    min_delta_soc : float, default 0.4
        Smallest SoC distance between anchors worth a measurement, fraction.
    soc_std_rest, soc_std_full : float
        SoC uncertainty of a rest anchor and of a full-charge anchor, fractions.
    energy_std_rel : float, default 0.005
        Relative uncertainty of the counted energy [-].
    charge_efficiency : float, default 1.0
        Stored energy per DC energy charged (0-1].

    Returns
    -------
    list of CapacityMeasurement
        One per pair of consecutive anchors far enough apart.

    Raises
    ------
    ForecastInputError
        On mismatched lengths, unordered times, SoC outside [0, 1] or bad settings.
    """
    t = np.asarray(time_h, dtype=np.float64).ravel()
    p = np.asarray(power_mw, dtype=np.float64).ravel()
    x = np.asarray(soc, dtype=np.float64).ravel()
    if not (t.size == p.size == x.size):
        msg = f"time_h, power_mw and soc lengths differ: {t.size}, {p.size}, {x.size}"
        raise ForecastInputError(msg)
    if t.size < 2 or np.any(np.diff(t) <= 0) or not np.all(np.isfinite(t)):
        msg = "time_h must hold at least 2 finite, strictly increasing samples"
        raise ForecastInputError(msg)
    bad = np.flatnonzero(~np.isfinite(x) | (x < 0) | (x > 1))
    if bad.size:
        i = int(bad[0])
        msg = f"soc[{i}]={float(x[i])!r} must be a fraction in [0, 1]"
        raise ForecastInputError(msg)
    bad = np.flatnonzero(~np.isfinite(p))
    if bad.size:
        i = int(bad[0])
        msg = f"power_mw[{i}]={float(p[i])!r} must be finite"
        raise ForecastInputError(msg)
    if not nameplate_mwh > 0:
        msg = f"nameplate_mwh={nameplate_mwh!r} must be > 0"
        raise ForecastInputError(msg)
    if not 0 < charge_efficiency <= 1:
        msg = f"charge_efficiency={charge_efficiency!r} must be in (0, 1]"
        raise ForecastInputError(msg)
    threshold = 0.002 * nameplate_mwh if rest_power_mw is None else rest_power_mw
    anchors = _rest_runs(t, p, threshold, rest_min_h)
    energy = p[:-1] * np.diff(t)
    stored = np.where(energy < 0, -charge_efficiency * energy, -energy)
    cum = np.concatenate([[0.0], np.cumsum(stored)])
    out: list[CapacityMeasurement] = []
    for a, b in itertools.pairwise(anchors):
        delta = x[b] - x[a]
        if abs(delta) < min_delta_soc:
            continue
        net_mwh = cum[b] - cum[a]
        cap = net_mwh / (delta * nameplate_mwh)
        full_a, full_b = x[a] >= full_soc, x[b] >= full_soc
        var_soc = (soc_std_full if full_a else soc_std_rest) ** 2 + (
            soc_std_full if full_b else soc_std_rest
        ) ** 2
        std = abs(cap) * float(np.sqrt(var_soc / delta**2 + energy_std_rel**2))
        out.append(
            CapacityMeasurement(
                time_h=float(t[b]),
                capacity_fraction=float(cap),
                std=std,
                delta_soc=float(delta),
                from_full=bool(full_a or full_b),
            )
        )
    logger.debug("%d anchors, %d capacity measurements", len(anchors), len(out))
    return out


def estimate_soh(
    measurements: list[CapacityMeasurement],
    prior: Callable[[FloatArray], FloatArray],
    *,
    prior_std: float = 0.02,
    drift_std_per_sqrt_day: float = 5e-4,
) -> SohEstimate:
    """Smooth capacity measurements around the aging model's prediction.

    Parameters
    ----------
    measurements : list of CapacityMeasurement
        From :func:`capacity_measurements`, in time order.
    prior : callable
        Maps times [h] to the model's predicted capacity fraction of nameplate.
    prior_std : float, default 0.02
        Uncertainty of the model at the first measurement [-].
    drift_std_per_sqrt_day : float, default 5e-4
        Random-walk growth of the truth's deviation from the model [1/√day].

    Returns
    -------
    SohEstimate
        Smoothed SoH and its uncertainty at each measurement time.

    Raises
    ------
    ForecastInputError
        If there are no measurements or the settings are not positive.

    Notes
    -----
    State x = SoH - prior(t), x_k = x_{k-1} + w_k with Var(w_k) = sd²·Δt [day];
    measurement z_k = capacity_k - prior(t_k) with variance std_k². Forward Kalman
    filter, then the Rauch-Tung-Striebel backward pass.
    """
    if not measurements:
        msg = "measurements: none given; need at least one capacity measurement"
        raise ForecastInputError(msg)
    if not (prior_std > 0 and drift_std_per_sqrt_day >= 0):
        msg = (
            f"prior_std={prior_std!r} must be > 0 and "
            f"drift_std_per_sqrt_day={drift_std_per_sqrt_day!r} >= 0"
        )
        raise ForecastInputError(msg)
    ms = sorted(measurements, key=lambda m: m.time_h)
    t = np.array([m.time_h for m in ms])
    z = np.array([m.capacity_fraction for m in ms])
    r = np.array([max(m.std, 1e-9) ** 2 for m in ms])
    base = np.asarray(prior(t), dtype=np.float64)
    dev = z - base
    n = t.size
    x_f = np.zeros(n)
    p_f = np.zeros(n)
    x_p = np.zeros(n)
    p_p = np.zeros(n)
    x, var = 0.0, prior_std**2
    for k in range(n):
        if k:
            var += drift_std_per_sqrt_day**2 * (t[k] - t[k - 1]) / HOURS_PER_DAY
        x_p[k], p_p[k] = x, var
        gain = var / (var + r[k])
        x = x + gain * (dev[k] - x)
        var = (1 - gain) * var
        x_f[k], p_f[k] = x, var
    x_s, p_s = x_f.copy(), p_f.copy()
    for k in range(n - 2, -1, -1):
        c = p_f[k] / p_p[k + 1]
        x_s[k] = x_f[k] + c * (x_s[k + 1] - x_p[k + 1])
        p_s[k] = p_f[k] + c**2 * (p_s[k + 1] - p_p[k + 1])
    return SohEstimate(
        time_h=t,
        soh=base + x_s,
        soh_std=np.sqrt(p_s),
        prior=base,
        n_measurements=n,
    )


@dataclass(frozen=True, slots=True)
class SimulatedTelemetry:
    """Energy-counting telemetry of a simulated battery with a known fade."""

    time_h: FloatArray
    """Sample times [h]."""
    power_mw: FloatArray
    """Measured DC power over [t_i, t_i+1) [MW], + discharge."""
    soc: FloatArray
    """BMS-reported SoC, fraction of current capacity."""
    true_soc: FloatArray
    """True SoC, fraction of current capacity."""
    true_capacity_fraction: FloatArray
    """True capacity at each sample, fraction of nameplate."""


def simulate_energy_telemetry(
    days: int,
    true_capacity: Callable[[FloatArray], FloatArray],
    nameplate_mwh: float,
    rng: np.random.Generator,
    *,
    interval_h: float = 0.25,
    full_charge_share: float = 0.7,
    soc_std_rest: float = 0.02,
    soc_std_full: float = 0.003,
    power_noise_rel: float = 0.01,
    meter_gain_error: float = 0.002,
) -> SimulatedTelemetry:
    """Simulate ``days`` of daily cycling telemetry of a battery with a known fade.

    Parameters
    ----------
    days : int
        Number of days (>= 1).
    true_capacity : callable
        Maps times [h] to the true capacity fraction of nameplate.
    nameplate_mwh : float
        Nameplate energy [MWh].
    rng : numpy.random.Generator
        Source of all randomness.
    interval_h : float, default 0.25
        Sample interval [h]; must divide a day.
    full_charge_share : float, default 0.7
        Share of days with a full charge; other days cycle between rest points.
    soc_std_rest, soc_std_full : float
        BMS SoC error during a rest and at full charge, fractions.
    power_noise_rel : float, default 0.01
        Per-sample power noise relative to the power [-].
    meter_gain_error : float, default 0.002
        Systematic relative gain error of the power meter [-].

    Returns
    -------
    SimulatedTelemetry
        Time, measured power, reported and true SoC, true capacity.

    Notes
    -----
    Each day: rest at a low SoC, charge over 4 h to 100 % (or to 60-85 %), rest 2 h,
    discharge over 4 h to 5-30 %, rest. The BMS error is constant over each rest (as a
    flat LFP OCV curve leaves it) and small at a full charge.
    """
    if days < 1:
        msg = f"days={days!r} must be >= 1"
        raise ForecastInputError(msg)
    per_day = round(HOURS_PER_DAY / interval_h)
    if not np.isclose(per_day * interval_h, HOURS_PER_DAY):
        msg = f"interval_h={interval_h!r} must divide 24 h"
        raise ForecastInputError(msg)
    hours = np.arange(per_day) * interval_h
    soc_days: list[FloatArray] = []
    err_days: list[FloatArray] = []
    low = float(rng.uniform(0.05, 0.3))
    for _ in range(days):
        full = rng.random() < full_charge_share
        high = 1.0 if full else float(rng.uniform(0.6, 0.85))
        next_low = float(rng.uniform(0.05, 0.3))
        knots_h = [0.0, 6.0, 10.0, 12.0, 16.0, 24.0]
        knots_soc = [low, low, high, high, next_low, next_low]
        soc_days.append(np.interp(hours, knots_h, knots_soc))
        err = np.zeros(per_day)
        err[hours < 6.0] = rng.normal(0.0, soc_std_rest)
        err[(hours >= 10.0) & (hours < 12.0)] = rng.normal(
            0.0, soc_std_full if full else soc_std_rest
        )
        err[hours >= 16.0] = rng.normal(0.0, soc_std_rest)
        err_days.append(err)
        low = next_low
    true_soc = np.concatenate([*soc_days, [low]])
    err = np.concatenate([*err_days, [0.0]])
    t = np.arange(true_soc.size, dtype=np.float64) * interval_h
    q = np.asarray(true_capacity(t), dtype=np.float64)
    stored_mwh = true_soc * q * nameplate_mwh
    power = np.append(-np.diff(stored_mwh) / interval_h, 0.0)
    noise = rng.normal(0.0, power_noise_rel, power.size) * np.abs(power)
    measured = (power + noise) * (1.0 + meter_gain_error)
    reported = np.clip(true_soc + err, 0.0, 1.0)
    return SimulatedTelemetry(
        time_h=t,
        power_mw=measured,
        soc=reported,
        true_soc=true_soc,
        true_capacity_fraction=q,
    )
