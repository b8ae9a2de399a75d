"""Predict LFP capacity fade from an SoC and temperature history (BLAST-Lite form).

The model is NREL BLAST-Lite's semi-empirical life model of a large-format ESS cell
(``Lfp_Gr_250AhPrismatic``), re-implemented over numpy with its parameters read from
``params/lfp_blast.toml``::

    k_cal = p1·exp(p2/T)·exp(p3·Ua(soc)/T)                 calendar rate   [1/day^pcal]
    k_cyc = (p4 + p5·dod + p6·c_rate)·(exp(p7/T) + exp(-p8/T))   cycle rate  [1/EFC^pcyc]
    q_loss_cal = k_cal·t^pcal,   q_loss_cyc = k_cyc·EFC^pcyc,   q = 1 - q_loss_cal - q_loss_cyc

with T the cell temperature [K], Ua the graphite anode potential at that SoC [V]
(Safari & Delacourt 2011), ``dod`` the throughput-weighted mean rainflow cycle depth,
``c_rate`` the time-averaged |dSoC/dt| [1/h] and EFC the nameplate equivalent full
cycles. Rates vary from window to window (default one day); each window advances both
losses along their power law from the "virtual time" at which the current loss would
have been reached at the window's rate (the state form of BLAST-Lite's
``_update_power_state``).

SoC is a fraction of the *current* usable capacity (what a BMS reports): a full swing on
a faded battery is q EFC of nameplate throughput. That matches BLAST-Lite with
``is_conserve_energy_throughput=False``; its default differs by < 0.3 percentage points
on the validation profiles (see ``tests/forecasting/test_degradation_aging.py``).

The fit covers cycling at 10-45 °C and 80-100 % depth of discharge; results for
shallow cycles or other temperatures are extrapolations, and :func:`validity_warnings`
says so.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import numpy.typing as npt

from forecasting.degradation.cycles import (
    DEFAULT_BAND,
    extract_cycles,
    hysteresis_filter,
)
from forecasting.errors import ForecastInputError

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

KELVIN_OFFSET = 273.15
HOURS_PER_DAY = 24.0
DAYS_PER_YEAR = 365.0


@dataclass(frozen=True, slots=True)
class AgingParams:
    """Parameters of the LFP life model (see the module docstring for the equations)."""

    p1: float
    """Calendar pre-factor [1/day^pcal]."""
    p2: float
    """Calendar Arrhenius term [K]."""
    p3: float
    """Calendar anode-potential term [K/V]."""
    pcal: float
    """Calendar time exponent [-]."""
    p4: float
    """Cycle base rate [1/EFC^pcyc]."""
    p5: float
    """Cycle depth-of-discharge sensitivity [1/EFC^pcyc]."""
    p6: float
    """Cycle C-rate sensitivity [h/EFC^pcyc]."""
    p7: float
    """Cycle low-temperature term [K]."""
    p8: float
    """Cycle high-temperature term [K]."""
    pcyc: float
    """Cycle EFC exponent [-]."""
    c_rate_floor_per_h: float
    """Instantaneous |dSoC/dt| below this counts as rest when averaging [1/h]."""
    anode_x0: float
    """Graphite lithiation fraction at SoC 0 [-]."""
    anode_x100: float
    """Graphite lithiation fraction at SoC 1 [-]."""
    valid_temp_c: tuple[float, float]
    """Cycling temperature range of the aging tests [°C]."""
    valid_dod: tuple[float, float]
    """Depth-of-discharge range of the aging tests, fractions."""
    source: str
    """Where the numbers come from."""


@lru_cache(maxsize=1)
def load_params() -> AgingParams:
    """Read the packaged parameter file ``params/lfp_blast.toml``.

    Returns
    -------
    AgingParams
        The BLAST-Lite ``Lfp_Gr_250AhPrismatic`` parameters.
    """
    text = (
        resources.files("forecasting.degradation")
        .joinpath("params/lfp_blast.toml")
        .read_text(encoding="utf-8")
    )
    data = tomllib.loads(text)
    cal, cyc, val, an, src = (
        data["calendar"],
        data["cycle"],
        data["validity"],
        data["anode"],
        data["source"],
    )
    return AgingParams(
        p1=float(cal["p1"]),
        p2=float(cal["p2"]),
        p3=float(cal["p3"]),
        pcal=float(cal["pcal"]),
        p4=float(cyc["p4"]),
        p5=float(cyc["p5"]),
        p6=float(cyc["p6"]),
        p7=float(cyc["p7"]),
        p8=float(cyc["p8"]),
        pcyc=float(cyc["pcyc"]),
        c_rate_floor_per_h=float(cyc["c_rate_floor_per_h"]),
        anode_x0=float(an["x0"]),
        anode_x100=float(an["x100"]),
        valid_temp_c=(float(val["cycling_temp_c"][0]), float(val["cycling_temp_c"][1])),
        valid_dod=(float(val["dod"][0]), float(val["dod"][1])),
        source=f"{src['publisher']} {src['package']} {src['package_version']} "
        f"{src['model_class']} ({src['file']})",
    )


def anode_potential_v(
    soc: npt.ArrayLike, params: AgingParams | None = None
) -> FloatArray:
    """Graphite anode potential versus Li/Li+ at a state of charge.

    Parameters
    ----------
    soc : array_like
        State of charge, fraction (0-1).
    params : AgingParams, optional
        Model parameters; the packaged ones by default.

    Returns
    -------
    numpy.ndarray
        Ua [V], same shape as ``soc``.

    References
    ----------
    M. Safari and C. Delacourt, J. Electrochem. Soc. 158(5), A562 (2011).
    """
    p = params or load_params()
    x = p.anode_x0 + np.asarray(soc, dtype=np.float64) * (p.anode_x100 - p.anode_x0)
    return (
        0.6379
        + 0.5416 * np.exp(-305.5309 * x)
        + 0.044 * np.tanh(-(x - 0.1958) / 0.1088)
        - 0.1978 * np.tanh((x - 1.0571) / 0.0854)
        - 0.6875 * np.tanh((x + 0.0117) / 0.0529)
        - 0.0175 * np.tanh((x - 0.5692) / 0.0875)
    )


def calendar_rate(
    soc: npt.ArrayLike, temp_c: npt.ArrayLike, params: AgingParams | None = None
) -> FloatArray:
    """Calendar-fade coefficient k_cal at a resting SoC and temperature.

    Parameters
    ----------
    soc : array_like
        State of charge, fraction (0-1).
    temp_c : array_like
        Cell temperature [°C], broadcast against ``soc``.
    params : AgingParams, optional
        Model parameters; the packaged ones by default.

    Returns
    -------
    numpy.ndarray
        k_cal [1/day^pcal]: calendar loss after t days at constant stress is k_cal·t^pcal.
    """
    p = params or load_params()
    temp_k = np.asarray(temp_c, dtype=np.float64) + KELVIN_OFFSET
    ua = anode_potential_v(soc, p)
    return abs(p.p1) * np.exp(p.p2 / temp_k) * np.exp(p.p3 * ua / temp_k)


def cycle_temperature_factor(
    temp_c: npt.ArrayLike, params: AgingParams | None = None
) -> FloatArray:
    """Temperature factor exp(p7/T) + exp(-p8/T) of the cycle-fade rate [-]."""
    p = params or load_params()
    temp_k = np.asarray(temp_c, dtype=np.float64) + KELVIN_OFFSET
    return np.exp(p.p7 / temp_k) + np.exp(-p.p8 / temp_k)


def cycle_rate(
    dod: npt.ArrayLike,
    c_rate_per_h: npt.ArrayLike,
    temp_c: npt.ArrayLike,
    params: AgingParams | None = None,
) -> FloatArray:
    """Cycle-fade coefficient k_cyc for a depth of discharge, C-rate and temperature.

    Parameters
    ----------
    dod : array_like
        Depth of discharge, fraction (0-1).
    c_rate_per_h : array_like
        Time-averaged |dSoC/dt| over the period, nameplate-referenced [1/h].
    temp_c : array_like
        Cell temperature [°C].
    params : AgingParams, optional
        Model parameters; the packaged ones by default.

    Returns
    -------
    numpy.ndarray
        k_cyc [1/EFC^pcyc]: cycle loss after N EFC at constant stress is k_cyc·N^pcyc.
    """
    p = params or load_params()
    stress = (
        p.p4
        + p.p5 * np.asarray(dod, dtype=np.float64)
        + p.p6 * np.asarray(c_rate_per_h, dtype=np.float64)
    )
    return stress * cycle_temperature_factor(temp_c, p)


@dataclass(frozen=True, slots=True)
class AgingState:
    """Accumulated aging of one battery."""

    t_days: float = 0.0
    """Age [day]."""
    efc: float = 0.0
    """Nameplate equivalent full cycles so far [-]."""
    q_loss_cal: float = 0.0
    """Calendar capacity loss, fraction of nameplate (0-1)."""
    q_loss_cyc: float = 0.0
    """Cycling capacity loss, fraction of nameplate (0-1)."""

    @property
    def capacity_fraction(self) -> float:
        """Remaining capacity, fraction of nameplate (0-1)."""
        return 1.0 - self.q_loss_cal - self.q_loss_cyc


@dataclass(frozen=True, slots=True)
class WindowStress:
    """Stressors of one aging window, independent of the battery's state."""

    duration_days: float
    """Window length [day]."""
    k_cal: float
    """Time-averaged calendar coefficient [1/day^pcal]."""
    swing: float
    """Σ|ΔSoC|/2 over the window, in fractions of current capacity [-]."""
    dod: float
    """Throughput-weighted mean rainflow depth, fraction (0-1)."""
    abs_dsoc_per_h: float
    """Time-averaged |dSoC/dt| (rest below the floor excluded), current capacity [1/h]."""
    temp_factor: float
    """Time-averaged cycle temperature factor exp(p7/T) + exp(-p8/T) [-]."""


def _power_law_advance(y0: float, k: float, p: float, dx: float) -> float:
    """Advance y = k·x^p by dx from y0, starting at the x where y0 is reached at k."""
    if dx <= 0.0 or k <= 0.0:
        return y0
    x_virtual = (y0 / k) ** (1.0 / p) if y0 > 0.0 else 0.0
    return float(k * (x_virtual + dx) ** p)


def step(
    state: AgingState,
    stress: WindowStress,
    params: AgingParams | None = None,
    *,
    degradation_scalar: float = 1.0,
) -> AgingState:
    """Age a battery through one window.

    Parameters
    ----------
    state : AgingState
        State at the start of the window.
    stress : WindowStress
        The window's stressors (from :func:`window_stress`).
    params : AgingParams, optional
        Model parameters; the packaged ones by default.
    degradation_scalar : float, default 1.0
        Multiplies both loss increments (cell-to-cell spread, as in BLAST-Lite).

    Returns
    -------
    AgingState
        State at the end of the window.

    Notes
    -----
    The SoC swing is in fractions of current capacity, so the nameplate EFC and C-rate
    of the window are the swing and |dSoC/dt| times the capacity fraction at its start.
    """
    p = params or load_params()
    q = max(state.capacity_fraction, 0.0)
    d_efc = stress.swing * q
    k_cyc = (p.p4 + p.p5 * stress.dod + p.p6 * stress.abs_dsoc_per_h * q) * (
        stress.temp_factor
    )
    cal = _power_law_advance(
        state.q_loss_cal, stress.k_cal, p.pcal, stress.duration_days
    )
    cyc = _power_law_advance(state.q_loss_cyc, k_cyc, p.pcyc, d_efc)
    return AgingState(
        t_days=state.t_days + stress.duration_days,
        efc=state.efc + d_efc,
        q_loss_cal=state.q_loss_cal + degradation_scalar * (cal - state.q_loss_cal),
        q_loss_cyc=state.q_loss_cyc + degradation_scalar * (cyc - state.q_loss_cyc),
    )


def _validate_series(
    time_h: npt.ArrayLike, soc: npt.ArrayLike, temp_c: npt.ArrayLike | float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Check lengths, order and ranges of a time/SoC/temperature series."""
    t = np.asarray(time_h, dtype=np.float64).ravel()
    x = np.asarray(soc, dtype=np.float64).ravel()
    if t.size != x.size:
        msg = f"time_h has {t.size} samples but soc has {x.size}"
        raise ForecastInputError(msg)
    if t.size < 2:
        msg = f"need at least 2 samples, got {t.size}"
        raise ForecastInputError(msg)
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        i = int(np.flatnonzero(~(np.diff(t) > 0))[0]) + 1 if t.size > 1 else 0
        msg = f"time_h must be finite and strictly increasing (sample {i}: {float(t[i])!r})"
        raise ForecastInputError(msg)
    bad = np.flatnonzero(~np.isfinite(x) | (x < 0) | (x > 1))
    if bad.size:
        i = int(bad[0])
        msg = f"soc[{i}]={float(x[i])!r} must be a fraction in [0, 1]"
        raise ForecastInputError(msg)
    temp = np.broadcast_to(np.asarray(temp_c, dtype=np.float64), x.shape).astype(
        np.float64
    )
    bad = np.flatnonzero(~np.isfinite(temp) | (temp < -40) | (temp > 80))
    if bad.size:
        i = int(bad[0])
        msg = f"temp_c[{i}]={float(temp[i])!r} must be within [-40, 80] °C"
        raise ForecastInputError(msg)
    return t, x, temp


def window_stress(
    time_h: npt.ArrayLike,
    soc: npt.ArrayLike,
    temp_c: npt.ArrayLike | float = 25.0,
    *,
    params: AgingParams | None = None,
    band: float = DEFAULT_BAND,
    periodic: bool = False,
) -> WindowStress:
    """Stressors of one window of SoC history.

    Parameters
    ----------
    time_h : array_like
        Sample times [h], strictly increasing.
    soc : array_like
        State of charge, fraction (0-1) of current capacity, at ``time_h``.
    temp_c : array_like or float, default 25.0
        Cell temperature [°C] at ``time_h`` (or one value).
    params : AgingParams, optional
        Model parameters; the packaged ones by default.
    band : float, default 0.005
        Hysteresis band for cycle counting, fraction of capacity.
    periodic : bool, default False
        The window repeats (its last sample connects to its first): cycles are counted
        on the closed loop, so none is cut at the window edge.

    Returns
    -------
    WindowStress
        Stressors for :func:`step`.

    Raises
    ------
    ForecastInputError
        On mismatched lengths, unordered times, SoC outside [0, 1] or absurd temperatures.
    """
    p = params or load_params()
    t, x, temp = _validate_series(time_h, soc, temp_c)
    duration_h = float(t[-1] - t[0])
    k_cal = calendar_rate(x, temp, p)
    k_cal_mean = float(np.trapezoid(k_cal, t) / duration_h)
    temp_factor = float(np.trapezoid(cycle_temperature_factor(temp, p), t) / duration_h)
    loop = x
    if periodic:
        start = int(np.argmin(x[:-1]))
        loop = np.concatenate([x[start:-1], x[: start + 1]])
    filtered = hysteresis_filter(loop, band) if band > 0 else loop
    cycles = extract_cycles(filtered)
    weights = np.array([c.count * c.depth for c in cycles])
    swing = float(weights.sum()) if cycles else 0.0
    dod = (
        float(np.sum(weights * np.array([c.depth for c in cycles])) / swing)
        if swing > 0
        else 0.0
    )
    filtered_t = hysteresis_filter(x, band) if band > 0 else x
    dsoc = np.abs(np.diff(filtered_t))
    rate = dsoc / np.diff(t)
    moving = rate >= p.c_rate_floor_per_h
    abs_dsoc_per_h = float(dsoc[moving].sum() / duration_h)
    return WindowStress(
        duration_days=duration_h / HOURS_PER_DAY,
        k_cal=k_cal_mean,
        swing=swing,
        dod=dod,
        abs_dsoc_per_h=abs_dsoc_per_h,
        temp_factor=temp_factor,
    )


@dataclass(frozen=True, slots=True)
class AgingPath:
    """Aging states at the end of each window, plus the start state."""

    t_days: FloatArray
    """Age at each point [day]."""
    efc: FloatArray
    """Nameplate equivalent full cycles at each point [-]."""
    q_loss_cal: FloatArray
    """Calendar loss at each point, fraction of nameplate."""
    q_loss_cyc: FloatArray
    """Cycle loss at each point, fraction of nameplate."""
    mean_dod: float
    """Throughput-weighted mean cycle depth over the history, fraction (0-1)."""
    mean_temp_c: float
    """Time-averaged temperature [°C]."""

    @property
    def capacity_fraction(self) -> FloatArray:
        """Remaining capacity at each point, fraction of nameplate."""
        return 1.0 - self.q_loss_cal - self.q_loss_cyc

    def capacity_at_days(self, days: npt.ArrayLike) -> FloatArray:
        """Capacity fraction interpolated at the given ages [day]."""
        return np.interp(
            np.asarray(days, dtype=np.float64), self.t_days, self.capacity_fraction
        )

    @property
    def final(self) -> AgingState:
        """The last state."""
        return AgingState(
            float(self.t_days[-1]),
            float(self.efc[-1]),
            float(self.q_loss_cal[-1]),
            float(self.q_loss_cyc[-1]),
        )


def _path(states: list[AgingState], mean_dod: float, mean_temp_c: float) -> AgingPath:
    """Stack a list of states into an AgingPath."""
    return AgingPath(
        t_days=np.array([s.t_days for s in states]),
        efc=np.array([s.efc for s in states]),
        q_loss_cal=np.array([s.q_loss_cal for s in states]),
        q_loss_cyc=np.array([s.q_loss_cyc for s in states]),
        mean_dod=mean_dod,
        mean_temp_c=mean_temp_c,
    )


def simulate(
    time_h: npt.ArrayLike,
    soc: npt.ArrayLike,
    temp_c: npt.ArrayLike | float = 25.0,
    *,
    window_h: float = HOURS_PER_DAY,
    params: AgingParams | None = None,
    initial: AgingState | None = None,
    band: float = DEFAULT_BAND,
    degradation_scalar: float = 1.0,
) -> AgingPath:
    """Age a battery through an SoC and temperature history.

    Parameters
    ----------
    time_h : array_like
        Sample times [h] since any origin, strictly increasing.
    soc : array_like
        State of charge, fraction (0-1) of current capacity, at ``time_h``.
    temp_c : array_like or float, default 25.0
        Cell temperature [°C] at ``time_h``, or one value.
    window_h : float, default 24
        Length of the windows over which rates are averaged [h].
    params : AgingParams, optional
        Model parameters; the packaged ones by default.
    initial : AgingState, optional
        State at the first sample (new battery by default).
    band : float, default 0.005
        Hysteresis band for cycle counting, fraction of capacity.
    degradation_scalar : float, default 1.0
        Multiplies the loss increments (cell-to-cell spread).

    Returns
    -------
    AgingPath
        States at the start and at the end of every window.

    Raises
    ------
    ForecastInputError
        On a bad series or a non-positive ``window_h``.

    Notes
    -----
    The depth stressor of a window is the throughput-weighted mean depth of the rainflow
    cycles (of the whole filtered history) that overlap it, so a cycle that spans
    midnight still counts at its full depth.
    """
    p = params or load_params()
    if not window_h > 0:
        msg = f"window_h={window_h!r} must be > 0 hours"
        raise ForecastInputError(msg)
    t, x, temp = _validate_series(time_h, soc, temp_c)
    y = hysteresis_filter(x, band) if band > 0 else x
    n_windows = max(int(np.ceil((t[-1] - t[0]) / window_h - 1e-9)), 1)
    # Interval j = [t_j, t_j+1) belongs to the window holding its start.
    win = np.minimum(((t[:-1] - t[0]) / window_h).astype(np.intp), n_windows - 1)
    dt = np.diff(t)
    k_cal = calendar_rate(x, temp, p)
    temp_factor = cycle_temperature_factor(temp, p)
    k_cal_int = np.bincount(win, dt * 0.5 * (k_cal[:-1] + k_cal[1:]), n_windows)
    tf_int = np.bincount(
        win, dt * 0.5 * (temp_factor[:-1] + temp_factor[1:]), n_windows
    )
    dur_h = np.bincount(win, dt, n_windows)
    dsoc = np.abs(np.diff(y))
    swing = np.bincount(win, dsoc, n_windows) / 2.0
    moving = dsoc / dt >= p.c_rate_floor_per_h
    abs_dsoc = np.bincount(win, np.where(moving, dsoc, 0.0), n_windows)

    depth_w = np.zeros(n_windows)
    weight_w = np.zeros(n_windows)
    sample_win = np.concatenate([win, win[-1:]])
    for c in extract_cycles(y):
        w0, w1 = sample_win[c.start_index], sample_win[max(c.end_index - 1, 0)]
        w = c.count * c.depth
        depth_w[w0 : w1 + 1] += w * c.depth
        weight_w[w0 : w1 + 1] += w
    dod_w = np.divide(depth_w, weight_w, out=np.zeros(n_windows), where=weight_w > 0)

    state = initial or AgingState()
    states = [state]
    for i in range(n_windows):
        if dur_h[i] <= 0:
            continue
        stress = WindowStress(
            duration_days=dur_h[i] / HOURS_PER_DAY,
            k_cal=k_cal_int[i] / dur_h[i],
            swing=swing[i],
            dod=dod_w[i],
            abs_dsoc_per_h=abs_dsoc[i] / dur_h[i],
            temp_factor=tf_int[i] / dur_h[i],
        )
        state = step(state, stress, p, degradation_scalar=degradation_scalar)
        states.append(state)
    total_w = weight_w.sum()
    mean_dod = float((dod_w * swing).sum() / swing.sum()) if swing.sum() > 0 else 0.0
    logger.debug("simulated %d windows, total weight %.3f", n_windows, total_w)
    mean_temp = float(np.trapezoid(temp, t) / (t[-1] - t[0]))
    return _path(states, mean_dod, mean_temp)


@dataclass(frozen=True, slots=True)
class DayProjection:
    """Capacity projection of a repeating daily SoC profile."""

    capacity_fraction_by_year: dict[int, float]
    """Remaining capacity at each whole year, fraction of nameplate."""
    path: AgingPath
    """Daily states."""
    stress: WindowStress
    """Stressors of the repeated day."""
    efc_per_day: float
    """Nameplate equivalent full cycles in the first day [-]."""
    warnings: tuple[str, ...]
    """Where the projection leaves the model's tested range."""


def validity_warnings(
    dod: float, temp_c: float, swing_per_day: float, params: AgingParams | None = None
) -> tuple[str, ...]:
    """Say where a duty leaves the range BLAST-Lite's LFP model was fitted on.

    Parameters
    ----------
    dod : float
        Throughput-weighted mean cycle depth, fraction (0-1).
    temp_c : float
        Mean cell temperature [°C].
    swing_per_day : float
        Equivalent full cycles per day [-]; no cycling, no cycle-range warning.
    params : AgingParams, optional
        Model parameters; the packaged ones by default.

    Returns
    -------
    tuple of str
        Human-readable warnings, empty when inside the tested range.
    """
    p = params or load_params()
    out: list[str] = []
    lo, hi = p.valid_dod
    if swing_per_day > 0 and dod < lo - 1e-9:
        out.append(
            f"mean cycle depth {dod:.0%} is below the {lo:.0%}-{hi:.0%} depth of "
            "discharge BLAST-Lite's LFP model was fitted on: the cycle fade is an "
            "extrapolation"
        )
    tlo, thi = p.valid_temp_c
    if swing_per_day > 0 and not tlo <= temp_c <= thi:
        out.append(
            f"temperature {temp_c:g} °C is outside the {tlo:g}-{thi:g} °C cycling tests: "
            "the cycle fade is an extrapolation"
        )
    return tuple(out)


def project_day(
    hour: npt.ArrayLike,
    soc: npt.ArrayLike,
    years: int,
    temp_c: float = 25.0,
    *,
    params: AgingParams | None = None,
    band: float = DEFAULT_BAND,
    degradation_scalar: float = 1.0,
) -> DayProjection:
    """Project capacity for a daily SoC profile repeated for ``years`` years.

    Parameters
    ----------
    hour : array_like
        Hours of the day of each sample, in [0, 24), strictly increasing; the day
        repeats, so the sample after the last is the first one at hour 24.
    soc : array_like
        State of charge at ``hour``, fraction (0-1) of current capacity.
    years : int
        Number of 365-day years to project, >= 1.
    temp_c : float, default 25.0
        Constant cell temperature [°C].
    params : AgingParams, optional
        Model parameters; the packaged ones by default.
    band : float, default 0.005
        Hysteresis band for cycle counting, fraction of capacity.
    degradation_scalar : float, default 1.0
        Multiplies the loss increments (cell-to-cell spread).

    Returns
    -------
    DayProjection
        Capacity at each whole year, the daily path and the range warnings.

    Raises
    ------
    ForecastInputError
        If hours are not in [0, 24) and increasing, SoC is outside [0, 1] or
        ``years`` < 1.
    """
    p = params or load_params()
    h = np.asarray(hour, dtype=np.float64).ravel()
    x = np.asarray(soc, dtype=np.float64).ravel()
    if not isinstance(years, int | np.integer) or years < 1:
        msg = f"years={years!r} must be a whole number >= 1"
        raise ForecastInputError(msg)
    if h.size and (h[0] < 0 or h[-1] >= HOURS_PER_DAY):
        msg = f"hour must lie in [0, 24), got {h[0]!r}..{h[-1]!r}"
        raise ForecastInputError(msg)
    if h.size != x.size or h.size < 1:
        msg = f"hour has {h.size} samples and soc {x.size}: need equal, non-empty"
        raise ForecastInputError(msg)
    t_closed = np.append(h, h[0] + HOURS_PER_DAY)
    x_closed = np.append(x, x[0])
    stress = window_stress(
        t_closed, x_closed, temp_c, params=p, band=band, periodic=True
    )
    state = AgingState()
    states = [state]
    n_days = int(years * DAYS_PER_YEAR)
    for _ in range(n_days):
        state = step(state, stress, p, degradation_scalar=degradation_scalar)
        states.append(state)
    path = _path(states, stress.dod, float(temp_c))
    by_year = {
        y: float(path.capacity_fraction[int(y * DAYS_PER_YEAR)])
        for y in range(1, years + 1)
    }
    return DayProjection(
        capacity_fraction_by_year=by_year,
        path=path,
        stress=stress,
        efc_per_day=stress.swing,
        warnings=validity_warnings(stress.dod, temp_c, stress.swing, p),
    )


class ThroughputAging:
    """Age a battery from running totals: the site simulator's aging hook.

    Call it with ``(t_days, throughput_mwh, soc)`` as time goes on; it returns the
    capacity fraction of nameplate, never increasing. It accumulates the calendar stress
    of the SoC it is shown (time-weighted) and the throughput, and steps the model once
    per ``window_h`` (a day by default, as BLAST-Lite does: the power laws are not
    linear in their rates, so stepping every minute with instantaneous rates would
    overstate the fade), at the lifetime-average C-rate and an assumed cycle depth.

    Parameters
    ----------
    energy_mwh : float
        Nameplate energy [MWh]; ``throughput_mwh / (2·energy_mwh)`` is the EFC count.
    temp_c : float, default 25.0
        Cell temperature [°C].
    dod : float, default 0.8
        Assumed mean cycle depth, fraction (0-1); the totals do not carry it.
    window_h : float, default 24
        Aging window [h].
    params : AgingParams, optional
        Model parameters; the packaged ones by default.
    degradation_scalar : float, default 1.0
        Multiplies the loss increments (a cell lot that ages faster or slower).

    Notes
    -----
    This object holds the aging state between calls (one per simulated site); it reads
    no clock and draws no random numbers.
    """

    def __init__(
        self,
        energy_mwh: float,
        *,
        temp_c: float = 25.0,
        dod: float = 0.8,
        window_h: float = HOURS_PER_DAY,
        params: AgingParams | None = None,
        degradation_scalar: float = 1.0,
    ) -> None:
        if not energy_mwh > 0:
            msg = f"energy_mwh={energy_mwh!r} must be > 0"
            raise ForecastInputError(msg)
        if not 0 <= dod <= 1:
            msg = f"dod={dod!r} must be a fraction in [0, 1]"
            raise ForecastInputError(msg)
        if not window_h > 0:
            msg = f"window_h={window_h!r} must be > 0"
            raise ForecastInputError(msg)
        self.energy_mwh = energy_mwh
        self.temp_c = temp_c
        self.dod = dod
        self.window_days = window_h / HOURS_PER_DAY
        self.params = params or load_params()
        self.degradation_scalar = degradation_scalar
        self.state = AgingState()
        self._t_days = 0.0
        self._throughput_mwh = 0.0
        self._soc: float | None = None
        self._k_cal_days = 0.0
        self._efc = 0.0

    def __call__(self, t_days: float, throughput_mwh: float, soc: float) -> float:
        """Advance to ``t_days`` with the totals so far; return the capacity fraction."""
        p = self.params
        soc = min(max(soc, 0.0), 1.0)
        dt_days = t_days - self._t_days
        if dt_days > 0:
            previous = soc if self._soc is None else self._soc
            k_cal = calendar_rate(np.array([previous, soc]), self.temp_c, p)
            self._k_cal_days += float(k_cal.mean()) * dt_days
            self._t_days = t_days
        self._soc = soc
        self._efc += max(throughput_mwh - self._throughput_mwh, 0.0) / (
            2 * self.energy_mwh
        )
        self._throughput_mwh = max(throughput_mwh, self._throughput_mwh)
        pending_days = self._t_days - self.state.t_days
        if pending_days + 1e-9 < self.window_days:
            return self.state.capacity_fraction
        q = max(self.state.capacity_fraction, 1e-6)
        efc_total = self.state.efc + self._efc
        c_rate = 2 * efc_total / (self._t_days * HOURS_PER_DAY)
        stress = WindowStress(
            duration_days=pending_days,
            k_cal=self._k_cal_days / pending_days,
            swing=self._efc / q,
            dod=self.dod,
            abs_dsoc_per_h=c_rate / q,
            temp_factor=float(cycle_temperature_factor(self.temp_c, p)),
        )
        self.state = step(
            self.state, stress, p, degradation_scalar=self.degradation_scalar
        )
        self._k_cal_days = 0.0
        self._efc = 0.0
        return self.state.capacity_fraction
