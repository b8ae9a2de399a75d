"""Turn the aging model into dispatch costs: $/MWh per depth segment and $/day.

Derivation
----------
*Fade is money.* A battery is replaced (or augmented) when its capacity falls to the
end-of-life fraction ``q_eol``; the replacement costs ``C = R·E_rep`` (R the cost in
$/kWh, E_rep the energy replaced). Spread evenly over the fade budget ``B = 1 - q_eol``,
each unit of capacity fade costs ``C/B``.

*Expected life.* Under the site's expected duty — ``r`` equivalent full cycles a day at
mean depth ``δ_ref`` and temperature T — the model (:mod:`.aging`) gives
``F_cal(t) = k_cal·t^pcal`` and ``F_cyc(t) = k_cyc(δ_ref)·(r·t)^pcyc``; the life
``t_eol`` solves ``F_cal + F_cyc = B``. Over that life, cycling consumed ``F_cyc(t_eol)``
of the budget in ``N = r·t_eol`` EFC and calendar aging ``F_cal(t_eol)`` in ``t_eol`` days.
Charging each by its lifetime average (the secant of the power laws, not their
derivative, which is infinite at t = 0 and front-loads the cost) the two terms add up to
exactly C over the life:

    cost per day (calendar)        = (C/B)·F_cal(t_eol)/t_eol                    [$/day]
    fade per EFC at depth δ        = k_cyc(δ)·N^(pcyc-1)                          [-]

*Cycle-depth stress.* In the model a cycle of depth δ is δ EFC at the rate
``k_cyc(δ) ∝ p4 + p5·δ + p6·c``, so its fade is ``Φ(δ) = δ·k_cyc(δ)·N^(pcyc-1)``: convex
in δ (deeper cycles cost more per MWh). Cut the SoC band ``[soc_min, soc_max]`` into K
segments of width ``w = (soc_max - soc_min)/K``; segment k (1 = shallowest, next to
soc_max) holds the stored energy between depths ``(k-1)·w`` and ``k·w`` below the top.
Discharging it fully gives ``w·E·η_d`` MWh at the grid and deepens a cycle from
``(k-1)·w`` to ``k·w`` (Xu et al. 2018), so

    c_k = (C/B)·[Φ(k·w) - Φ((k-1)·w)] / (w·E·η_d)                              [$/MWh]

with the depths Φ is evaluated at taken as fractions of capacity. ``c_k`` is
non-decreasing when Φ is convex; the points ``(k·w, Φ(k·w))`` are replaced by their lower
convex envelope first, so the list always satisfies the dispatch spec, whatever the
parameters.

References
----------
B. Xu, J. Zhao, T. Zheng, E. Litvinov, D. S. Kirschen, "Factoring the cycle aging cost
of batteries participating in electricity markets", IEEE Trans. Power Syst. 33(2), 2018.
NREL BLAST-Lite, ``Lfp_Gr_250AhPrismatic`` (parameters in ``params/lfp_blast.toml``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq

from forecasting.degradation.aging import (
    AgingParams,
    anode_potential_v,
    calendar_rate,
    cycle_rate,
    cycle_temperature_factor,
    load_params,
)
from forecasting.degradation.cycles import DEFAULT_BAND, cycle_ledger
from forecasting.errors import ForecastInputError

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

KWH_PER_MWH = 1000.0
MAX_SUPPORTED_LIFE_YEARS = 20.0
"""Longest life the costs are trusted for: BLAST-Lite's calendar tests span months, and
no LFP field fleet is older than this; beyond it the calendar power law is extrapolated
and the lifetime averages behind the segment costs follow it [year]."""
REFERENCE_TEMP_C = 25.0
"""Temperature the cycle-cost figures in the docs refer to [°C]."""
HOURS_PER_DAY = 24.0
DAYS_PER_YEAR = 365.0


@dataclass(frozen=True, slots=True)
class CostInputs:
    """What the degradation costs of one site depend on."""

    energy_mwh: float
    """Usable energy the SoC band refers to (the scenario's ``energy_mwh``) [MWh]."""
    replacement_cost_usd_per_kwh: float
    """Cost of replacing (or augmenting) the cells [$/kWh]."""
    soc_min: float = 0.05
    """Lowest SoC, fraction (0-1)."""
    soc_max: float = 0.95
    """Highest SoC, fraction (0-1)."""
    eta_discharge: float = 0.95
    """One-way discharge efficiency (0-1]."""
    eol_capacity_fraction: float = 0.8
    """Capacity at which the cells are replaced, fraction of nameplate (0-1)."""
    efc_per_day: float = 1.0
    """Expected equivalent full cycles a day over the life [-]."""
    temp_c: float = 25.0
    """Expected mean cell temperature [°C]."""
    rest_soc: float = 0.5
    """Expected time-averaged SoC (calendar stress), fraction (0-1)."""
    replacement_energy_mwh: float | None = None
    """Energy replaced at end of life [MWh]; ``energy_mwh`` when None."""

    def validate(self) -> None:
        """Raise ForecastInputError naming the first field out of range."""
        checks: list[tuple[str, float, bool, str]] = [
            ("energy_mwh", self.energy_mwh, self.energy_mwh > 0, "> 0"),
            (
                "replacement_cost_usd_per_kwh",
                self.replacement_cost_usd_per_kwh,
                self.replacement_cost_usd_per_kwh >= 0,
                ">= 0",
            ),
            (
                "soc_min",
                self.soc_min,
                0 <= self.soc_min < self.soc_max,
                "in [0, soc_max)",
            ),
            ("soc_max", self.soc_max, self.soc_max <= 1, "<= 1"),
            (
                "eta_discharge",
                self.eta_discharge,
                0 < self.eta_discharge <= 1,
                "in (0, 1]",
            ),
            (
                "eol_capacity_fraction",
                self.eol_capacity_fraction,
                0 < self.eol_capacity_fraction < 1,
                "in (0, 1)",
            ),
            ("efc_per_day", self.efc_per_day, self.efc_per_day > 0, "> 0"),
            ("temp_c", self.temp_c, -40 <= self.temp_c <= 80, "in [-40, 80] °C"),
            ("rest_soc", self.rest_soc, 0 <= self.rest_soc <= 1, "in [0, 1]"),
        ]
        if self.replacement_energy_mwh is not None:
            checks.append(
                (
                    "replacement_energy_mwh",
                    self.replacement_energy_mwh,
                    self.replacement_energy_mwh > 0,
                    "> 0",
                )
            )
        for name, value, ok, expected in checks:
            if not ok or not np.isfinite(value):
                msg = f"{name}={value!r} must be {expected}"
                raise ForecastInputError(msg)

    @property
    def replacement_usd(self) -> float:
        """Cost of one replacement [$]."""
        energy = self.replacement_energy_mwh or self.energy_mwh
        return self.replacement_cost_usd_per_kwh * energy * KWH_PER_MWH


@dataclass(frozen=True, slots=True)
class DegradationCosts:
    """Dispatch-facing degradation costs of one site."""

    segment_usd_per_mwh: tuple[float, ...]
    """c_1..c_K, shallow to deep, non-decreasing; the scenario's
    ``degradation_usd_per_mwh`` [$/MWh discharged]."""
    calendar_usd_per_day: float
    """Calendar-aging cost, independent of dispatch [$/day]."""
    life_years: float
    """Expected life to end of life under the assumed duty [year]."""
    efc_to_eol: float
    """Equivalent full cycles over that life [-]."""
    cycle_share: float
    """Share of the fade budget consumed by cycling over the life (0-1)."""
    usd_per_fade: float
    """Value of one unit (1.0 = 100 %) of capacity fade, C/B [$]."""
    fade_per_efc_scale: float
    """N^(pcyc-1): converts k_cyc into lifetime-average fade per EFC [-]."""
    warnings: tuple[str, ...] = ()
    """Where these costs rest on an extrapolation of the model (empty when none)."""


def lower_convex_envelope(x: npt.ArrayLike, y: npt.ArrayLike) -> FloatArray:
    """Values at ``x`` of the lower convex envelope of the points (x, y).

    Parameters
    ----------
    x : array_like
        Abscissae, strictly increasing.
    y : array_like
        Ordinates.

    Returns
    -------
    numpy.ndarray
        The envelope at each x (equal to y where y is already convex).
    """
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    hull: list[int] = []
    for i in range(xs.size):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (xs[b] - xs[a]) * (ys[i] - ys[a]) - (ys[b] - ys[a]) * (
                xs[i] - xs[a]
            )
            if cross <= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    return np.interp(xs, xs[hull], ys[hull])


def _life(inputs: CostInputs, params: AgingParams) -> tuple[float, float, float, float]:
    """Life [day], EFC to EOL, calendar fade and cycle fade at EOL for the duty."""
    budget = 1.0 - inputs.eol_capacity_fraction
    k_cal = float(calendar_rate(inputs.rest_soc, inputs.temp_c, params))
    depth = inputs.soc_max - inputs.soc_min
    c_rate = 2.0 * inputs.efc_per_day / HOURS_PER_DAY
    k_cyc = float(cycle_rate(depth, c_rate, inputs.temp_c, params))

    def fade(t_days: float) -> float:
        cal = k_cal * t_days**params.pcal
        cyc = k_cyc * (inputs.efc_per_day * t_days) ** params.pcyc
        return cal + cyc - budget

    hi = 365.0
    while fade(hi) < 0 and hi < 365.0 * 1000:
        hi *= 2
    t_eol = float(brentq(fade, 1e-9, hi)) if fade(hi) >= 0 else hi
    f_cal = k_cal * t_eol**params.pcal
    return t_eol, inputs.efc_per_day * t_eol, f_cal, budget - f_cal


def degradation_costs(
    inputs: CostInputs, n_segments: int = 4, params: AgingParams | None = None
) -> DegradationCosts:
    """Segment costs for the dispatch scenario and the calendar cost of a site.

    Parameters
    ----------
    inputs : CostInputs
        Energy, SoC band, replacement cost, end of life and expected duty.
    n_segments : int, default 4
        K, the number of depth segments (>= 1).
    params : AgingParams, optional
        Model parameters; the packaged ones by default.

    Returns
    -------
    DegradationCosts
        ``segment_usd_per_mwh`` is the scenario's ``degradation_usd_per_mwh``.

    Raises
    ------
    ForecastInputError
        If a field of ``inputs`` is out of range or ``n_segments`` < 1.

    Notes
    -----
    See the module docstring for the derivation.
    """
    p = params or load_params()
    inputs.validate()
    if not isinstance(n_segments, int) or n_segments < 1:
        msg = f"n_segments={n_segments!r} must be an integer >= 1"
        raise ForecastInputError(msg)
    t_eol, n_eol, f_cal, f_cyc = _life(inputs, p)
    budget = 1.0 - inputs.eol_capacity_fraction
    usd_per_fade = inputs.replacement_usd / budget
    scale = n_eol ** (p.pcyc - 1.0)
    width = (inputs.soc_max - inputs.soc_min) / n_segments
    depths = width * np.arange(n_segments + 1)
    phi = cycle_fade(depths, inputs, scale, p)
    phi = lower_convex_envelope(depths, phi)
    slices_mwh = width * inputs.energy_mwh * inputs.eta_discharge
    seg = usd_per_fade * np.diff(phi) / slices_mwh
    seg = np.maximum.accumulate(np.maximum(seg, 0.0))
    costs = DegradationCosts(
        segment_usd_per_mwh=tuple(float(v) for v in seg),
        calendar_usd_per_day=usd_per_fade * f_cal / t_eol,
        life_years=t_eol / DAYS_PER_YEAR,
        efc_to_eol=n_eol,
        cycle_share=f_cyc / budget,
        usd_per_fade=usd_per_fade,
        fade_per_efc_scale=scale,
        warnings=cost_warnings(inputs, t_eol / DAYS_PER_YEAR, p),
    )
    logger.debug("degradation costs %s", costs)
    return costs


def cost_warnings(
    inputs: CostInputs, life_years: float, params: AgingParams | None = None
) -> tuple[str, ...]:
    """Say where the segment costs of a duty rest on an extrapolation of the model.

    Parameters
    ----------
    inputs : CostInputs
        The expected duty (EFC a day, temperature).
    life_years : float
        Expected life under that duty [year].
    params : AgingParams, optional
        Model parameters; the packaged ones by default.

    Returns
    -------
    tuple of str
        One sentence per issue, empty when the duty is inside what the model supports.

    Notes
    -----
    Two things are flagged besides the fitted ranges of
    :func:`~forecasting.degradation.aging.validity_warnings`: a life beyond
    :data:`MAX_SUPPORTED_LIFE_YEARS` (rare cycling: the life, and with it the cost per
    MWh, comes from extrapolating calendar aging), and a temperature above
    :data:`REFERENCE_TEMP_C`, where the fitted cycle factor exp(p7/T) + exp(-p8/T) is
    lower than at 25 °C: cycling then looks *cheaper* when hot, a property of the model
    form (real cells do not age slower hot), while the calendar cost rises.
    """
    p = params or load_params()
    out: list[str] = []
    if life_years > MAX_SUPPORTED_LIFE_YEARS:
        out.append(
            f"expected life {life_years:.1f} years at {inputs.efc_per_day:g} EFC/day "
            f"is beyond the {MAX_SUPPORTED_LIFE_YEARS:g} years the model is trusted "
            "for: calendar aging is extrapolated, and the segment costs (spread over "
            "that life) with it"
        )
    factor = cycle_temperature_factor(inputs.temp_c, p)
    reference = cycle_temperature_factor(REFERENCE_TEMP_C, p)
    if inputs.temp_c > REFERENCE_TEMP_C and factor < reference:
        out.append(
            f"at {inputs.temp_c:g} °C the model's cycle-fade factor is "
            f"{float(factor / reference):.2f}x its value at {REFERENCE_TEMP_C:g} °C, "
            "so cycling costs less than at 25 °C: that is the fitted form "
            "exp(p7/T) + exp(-p8/T), not evidence that heat is harmless (the calendar "
            "cost rises)"
        )
    tlo, thi = p.valid_temp_c
    if not tlo <= inputs.temp_c <= thi:
        out.append(
            f"temperature {inputs.temp_c:g} °C is outside the {tlo:g}-{thi:g} °C of "
            "the cycling tests: the cycle fade is an extrapolation"
        )
    return tuple(out)


def cycle_fade(
    depth: npt.ArrayLike,
    inputs: CostInputs,
    fade_per_efc_scale: float,
    params: AgingParams | None = None,
) -> FloatArray:
    """Lifetime-average capacity fade of one cycle of a given depth, Φ(δ).

    Parameters
    ----------
    depth : array_like
        Cycle depth δ, fraction of capacity (0-1).
    inputs : CostInputs
        Temperature and expected duty (for the C-rate term).
    fade_per_efc_scale : float
        N^(pcyc-1) for the expected life (``DegradationCosts.fade_per_efc_scale``).
    params : AgingParams, optional
        Model parameters; the packaged ones by default.

    Returns
    -------
    numpy.ndarray
        Φ(δ) = δ·k_cyc(δ)·N^(pcyc-1), fraction of nameplate capacity.
    """
    p = params or load_params()
    d = np.asarray(depth, dtype=np.float64)
    c_rate = 2.0 * inputs.efc_per_day / HOURS_PER_DAY
    return d * cycle_rate(d, c_rate, inputs.temp_c, p) * fade_per_efc_scale


@dataclass(frozen=True, slots=True)
class ScheduleWear:
    """Degradation cost a dispatched (or realized) SoC path incurs."""

    cycle_usd: float
    """Cost of the counted cycles [$]."""
    calendar_usd: float
    """Calendar cost over the path's duration at its mean resting stress [$]."""
    efc: float
    """Equivalent full cycles counted [-]."""
    discharge_mwh: float
    """Discharge throughput, stored-energy side [MWh]."""

    @property
    def total_usd(self) -> float:
        """Cycle plus calendar cost [$]."""
        return self.cycle_usd + self.calendar_usd


def schedule_wear(
    soc: npt.ArrayLike,
    interval_h: float,
    inputs: CostInputs,
    *,
    band: float = DEFAULT_BAND,
    params: AgingParams | None = None,
) -> ScheduleWear:
    """Cost the wear of an SoC path by rainflow counting (what the schedule incurred).

    Parameters
    ----------
    soc : array_like
        State of charge at interval boundaries, fraction (0-1) of ``inputs.energy_mwh``
        (a result's ``soc``, T+1 values).
    interval_h : float
        Interval length [h].
    inputs : CostInputs
        Site and cost assumptions (same as for :func:`degradation_costs`).
    band : float, default 0.005
        Hysteresis band before counting, fraction of capacity.
    params : AgingParams, optional
        Model parameters; the packaged ones by default.

    Returns
    -------
    ScheduleWear
        Cycle and calendar cost, EFC and throughput of the path.

    Notes
    -----
    Each rainflow cycle of depth δ (count n, 1 or ½) costs n·(C/B)·Φ(δ), Φ evaluated on
    the same convex envelope as the segment costs; the calendar term prices the path's
    duration at the resting stress of its time-averaged anode potential.
    """
    p = params or load_params()
    inputs.validate()
    if not interval_h > 0:
        msg = f"interval_h={interval_h!r} must be > 0"
        raise ForecastInputError(msg)
    x = np.asarray(soc, dtype=np.float64)
    ledger = cycle_ledger(x, inputs.energy_mwh, band=band)
    _t_eol, n_eol, _f_cal, _f_cyc = _life(inputs, p)
    scale = n_eol ** (p.pcyc - 1.0)
    usd_per_fade = inputs.replacement_usd / (1.0 - inputs.eol_capacity_fraction)
    grid = np.linspace(0.0, 1.0, 101)
    hull = lower_convex_envelope(grid, cycle_fade(grid, inputs, scale, p))
    cycle_usd = sum(
        c.count * usd_per_fade * float(np.interp(c.depth, grid, hull))
        for c in ledger.cycles
    )
    # Calendar cost at this path's resting stress relative to the planned rest SoC.
    ua_path = float(np.mean(anode_potential_v(x, p)))
    temp_k = inputs.temp_c + 273.15
    ua_ref = float(anode_potential_v(inputs.rest_soc, p))
    stress_ratio = float(np.exp(p.p3 * (ua_path - ua_ref) / temp_k))
    costs_per_day = degradation_costs(inputs, 1, p).calendar_usd_per_day
    duration_days = (x.size - 1) * interval_h / HOURS_PER_DAY
    return ScheduleWear(
        cycle_usd=float(cycle_usd),
        calendar_usd=costs_per_day * stress_ratio * duration_days,
        efc=ledger.efc,
        discharge_mwh=ledger.discharge_mwh,
    )
