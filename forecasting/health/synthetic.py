"""Generate battery-string telemetry with injected faults, for detector validation.

A small, seeded, fast generator for year-long detector validation (the site simulator
has fault hooks too, exercised in ``tests/health/test_e2e_simulator.py``): each site
has ``strings`` parallel strings following one daily dispatch (charge at night,
discharge in the evening). Per string it models

- cell voltages from an LFP open-circuit-voltage curve, per-cell SoC offsets and
  internal resistances (``cell_drift`` makes one cell's SoC slide away),
- cell temperature as ambient plus a first-order rise from I²R heat through a thermal
  resistance set by the fan (``fan_failure`` multiplies that resistance),
- capacity fade from the degradation model's daily loss (``fast_fade`` multiplies it),
- round-trip efficiency (``rte_slide`` lowers it a little every day),
- sample quality (``dropout`` marks samples bad, their measurements null, and drops
  others),
- a module swap (``swap`` puts a used module of SoH ``rate`` in the string's place).

Unusual but healthy operation is a site option: several cycles a day
(``cycles_per_day``), a long idle spell at high SoC (``idle_days``, ``idle_soc``) and a
hot climate (``ambient_c``). Capacity follows the aging model at the string's daily
mean cell temperature, so a hot site fades faster, as the model says it should.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from forecasting.degradation.aging import ThroughputAging
from forecasting.errors import ForecastInputError

FaultKind = Literal[
    "cell_drift", "fan_failure", "fast_fade", "rte_slide", "dropout", "swap"
]

FAULT_KINDS: tuple[str, ...] = (
    "cell_drift",
    "fan_failure",
    "fast_fade",
    "rte_slide",
    "dropout",
    "swap",
)

LFP_OCV_CURVE: tuple[tuple[float, float], ...] = (
    (0.00, 2.50),
    (0.02, 2.95),
    (0.05, 3.12),
    (0.10, 3.20),
    (0.20, 3.25),
    (0.30, 3.275),
    (0.40, 3.29),
    (0.50, 3.30),
    (0.60, 3.31),
    (0.70, 3.32),
    (0.80, 3.33),
    (0.90, 3.345),
    (0.95, 3.37),
    (0.98, 3.42),
    (1.00, 3.60),
)
"""(SoC fraction 0-1, open-circuit cell voltage [V]): the site simulator's LFP curve."""

EPOCH_2026_MS = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
"""Default start of the synthetic history [ms since epoch]."""


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """A fault injected into one string from one day on.

    ``rate`` means, by ``kind``: ``cell_drift`` — SoC (fraction) one cell loses per
    day; ``fan_failure`` — multiplier of the string's thermal resistance;
    ``fast_fade`` — multiplier of the model's daily capacity loss; ``rte_slide`` —
    round-trip efficiency (fraction) lost per day; ``dropout`` — fraction of
    samples marked bad (as many again go missing); ``swap`` — SoH (fraction 0-1) of
    the used, healthy module swapped in on the onset day (new cells, new fade lot).
    """

    kind: FaultKind
    """What fails."""
    dev_id: str
    """The string it happens to."""
    onset_day: int
    """Day index (0 = first simulated day) it starts."""
    rate: float
    """Severity, in the unit of ``kind`` (see class docstring)."""


@dataclass(frozen=True, slots=True)
class SyntheticSite:
    """One simulated site."""

    site_id: str
    """Site id."""
    strings: int = 4
    """Parallel strings (devices ``bank1`` … ``bankN``)."""
    string_energy_mwh: float = 1.0
    """Nameplate energy of each string [MWh]."""
    rte: float = 0.9
    """Healthy DC round-trip efficiency (fraction 0-1)."""
    ambient_c: float = 25.0
    """Mean ambient temperature [°C]."""
    cells: int = 16
    """Cells simulated per string (a representative sample of the series cells)."""
    step_minutes: int = 15
    """Sample period [minutes]."""
    cycles_per_day: float = 1.0
    """Charge-discharge cycles a day (about 0.72 EFC each)."""
    idle_days: tuple[int, int] | None = None
    """First and last day (0-based, inclusive) of an idle spell at ``idle_soc``."""
    idle_soc: float = 0.95
    """SoC (fraction 0-1) held during the idle spell."""

    def dev_ids(self) -> list[str]:
        """Return the device ids of the strings."""
        return [f"bank{i + 1}" for i in range(self.strings)]


def lfp_ocv(soc: np.ndarray) -> np.ndarray:
    """Return the LFP cell open-circuit voltage [V] at ``soc`` (fraction 0-1)."""
    xs = np.array([p[0] for p in LFP_OCV_CURVE])
    ys = np.array([p[1] for p in LFP_OCV_CURVE])
    return np.interp(np.clip(soc, 0.0, 1.0), xs, ys)


def _soc_profile(
    site: SyntheticSite,
    t_h: np.ndarray,
    day: np.ndarray,
    rng: np.random.Generator,
    days: int,
) -> np.ndarray:
    """Trapezoid cycles: 0.15 → top → 0.15, once a day at 01-04 h and 17-20 h by default.

    With ``cycles_per_day`` k the cycle lasts 24/k hours, ramps take min(3, 0.45·24/k)
    hours; the idle spell holds ``idle_soc`` (charged into on its first day, discharged
    from on the day after).
    """
    period_h = 24.0 / site.cycles_per_day
    ramp_h = min(3.0, 0.45 * period_h)
    up_at = period_h / 24.0
    down_at = min(period_h * 17.0 / 24.0, period_h - ramp_h - period_h / 48.0)
    cycle = (t_h // period_h).astype(int)
    phase = t_h - cycle * period_h
    cycles = int(cycle.max()) + 1
    top = rng.uniform(0.82, 0.92, size=cycles)
    idle = rng.random(cycles) < 0.08
    top = np.where(idle, 0.15, top)[cycle]
    up = np.clip((phase - up_at) / ramp_h, 0.0, 1.0)
    down = np.clip((phase - down_at) / ramp_h, 0.0, 1.0)
    soc = 0.15 + (top - 0.15) * (up - down)
    if site.idle_days is not None:
        first, last = site.idle_days
        hours = t_h - day * 24.0
        fill = np.clip((hours - 1.0) / 3.0, 0.0, 1.0)
        held = (day >= first) & (day <= last)
        soc = np.where(held, site.idle_soc, soc)
        soc = np.where(day == first, 0.15 + (site.idle_soc - 0.15) * fill, soc)
        soc = np.where(
            day == last + 1, site.idle_soc - (site.idle_soc - 0.15) * fill, soc
        )
        soc = np.where((day == last + 1) & (hours >= 4.0), 0.15, soc)
    return soc


def simulate_site(
    site: SyntheticSite,
    days: int,
    *,
    rng: np.random.Generator,
    faults: tuple[InjectedFault, ...] = (),
    start_ms: int = EPOCH_2026_MS,
) -> pd.DataFrame:
    """Simulate ``days`` of battery-string telemetry for one site.

    Parameters
    ----------
    site : SyntheticSite
        The site.
    days : int
        Number of UTC days (>= 1).
    rng : numpy.random.Generator
        Source of every random draw.
    faults : tuple of InjectedFault
        Faults to inject.
    start_ms : int
        Start of the first day [ms since epoch, UTC]; must be midnight UTC.

    Returns
    -------
    pandas.DataFrame
        One row per string and sample: ``site_id``, ``dev_id``, ``ts_ms``, ``q``,
        ``soc_pct``, ``soh_pct`` [%], ``p_dc_w`` [W, + = discharge],
        ``cell_v_max_v``, ``cell_v_min_v`` [V], ``cell_t_max_c``, ``cell_t_min_c``
        [°C].

    Raises
    ------
    ForecastInputError
        When ``days`` < 1, ``start_ms`` is not a UTC midnight, or a fault names an
        unknown string or kind.
    """
    if days < 1:
        msg = f"days={days} must be >= 1"
        raise ForecastInputError(msg)
    if start_ms % 86_400_000:
        msg = f"start_ms={start_ms} must be a UTC midnight"
        raise ForecastInputError(msg)
    dev_ids = site.dev_ids()
    for fault in faults:
        if fault.dev_id not in dev_ids:
            msg = f"fault dev_id={fault.dev_id!r} is not a string of {site.site_id}"
            raise ForecastInputError(msg)
        if fault.kind not in FAULT_KINDS:
            msg = f"fault kind={fault.kind!r} must be one of {', '.join(FAULT_KINDS)}"
            raise ForecastInputError(msg)
    steps_per_day = 24 * 60 // site.step_minutes
    n = days * steps_per_day
    step_h = site.step_minutes / 60.0
    t_h = np.arange(n) * step_h
    day = (np.arange(n) // steps_per_day).astype(int)
    hours = t_h - day * 24.0
    soc = _soc_profile(site, t_h, day, rng, days)
    ambient = (
        site.ambient_c
        + 8.0 * np.sin(2 * np.pi * (day - 105) / 365.0)
        + 4.0 * np.sin(2 * np.pi * (hours - 9.0) / 24.0)
    )
    dsoc = np.diff(soc, prepend=soc[0])
    frames: list[pd.DataFrame] = []
    for dev_id in dev_ids:
        mine = [f for f in faults if f.dev_id == dev_id]
        frames.append(_string(site, dev_id, day, hours, soc, dsoc, ambient, mine, rng))
    out = pd.concat(frames, ignore_index=True)
    out["ts_ms"] = start_ms + out["ts_ms"]
    keep = out.pop("_keep").to_numpy(dtype=bool)
    return out[keep].reset_index(drop=True)


def _since(day: np.ndarray, faults: list[InjectedFault], kind: str) -> np.ndarray:
    """Days since the onset of ``kind`` (0 before it), and the fault's rate."""
    elapsed = np.zeros(day.size)
    for fault in faults:
        if fault.kind == kind:
            elapsed = np.maximum(elapsed, (day - fault.onset_day + 1).clip(min=0))
    return elapsed


def _rate(faults: list[InjectedFault], kind: str) -> float:
    return max((f.rate for f in faults if f.kind == kind), default=0.0)


def _string(
    site: SyntheticSite,
    dev_id: str,
    day: np.ndarray,
    hours: np.ndarray,
    soc: np.ndarray,
    dsoc: np.ndarray,
    ambient: np.ndarray,
    faults: list[InjectedFault],
    rng: np.random.Generator,
) -> pd.DataFrame:
    n = day.size
    days = int(day.max()) + 1
    step_h = site.step_minutes / 60.0
    swap_day = _onset(faults, "swap")
    swapped = day >= swap_day
    # Efficiency and DC power at nameplate (+ = discharge) for the heat.
    rte = site.rte * rng.normal(1.0, 0.003) - _rate(faults, "rte_slide") * _since(
        day, faults, "rte_slide"
    )
    eta = np.sqrt(np.clip(rte, 0.5, 1.0))
    stored_mwh = -dsoc * site.string_energy_mwh
    nominal_mw = np.where(stored_mwh > 0, stored_mwh * eta, stored_mwh / eta) / step_h
    # Temperature: first-order rise from I²R heat through the fan's thermal path.
    r_th = rng.normal(1.0, 0.04) * np.where(
        _since(day, faults, "fan_failure") > 0, _rate(faults, "fan_failure") or 1.0, 1.0
    )
    rated_mw = site.string_energy_mwh * 0.25
    heat = (nominal_mw / rated_mw) ** 2
    tau_steps = 60.0 / site.step_minutes
    alpha = 1.0 / (tau_steps + 1.0)
    rise = lfilter([alpha], [1.0, alpha - 1.0], 10.0 * heat * r_th)
    t_max = ambient + rise + 1.5 + rng.normal(0.0, 0.3, n)
    t_min = ambient + 0.3 * rise + rng.normal(0.0, 0.3, n)
    # Capacity: the aging model at the day's mean cell temperature, scaled per module
    # lot; a fade fault multiplies the loss; a swap restarts from the module's SoH.
    daily_temp = np.bincount(day, weights=t_max) / np.bincount(day)
    throughput = np.zeros(days)
    np.add.at(throughput, day, np.abs(dsoc) * site.string_energy_mwh)
    cumulative = np.cumsum(throughput)
    soc_mean = np.bincount(day, weights=soc) / np.bincount(day)
    model = ThroughputAging(site.string_energy_mwh)
    model_cap = np.empty(days)
    for d in range(days):
        model.temp_c = float(daily_temp[d])  # the day's temperature drives its step
        model_cap[d] = model(float(d + 1), float(cumulative[d]), float(soc_mean[d]))
    daily_loss = np.diff(np.concatenate([[1.0], model_cap]))
    scalars = rng.normal(1.0, 0.05, 2)
    day_index = np.arange(days)
    fade_mult = np.where(
        day_index >= _onset(faults, "fast_fade"), _rate(faults, "fast_fade") or 1.0, 1.0
    )
    loss = (
        daily_loss * fade_mult * np.where(day_index >= swap_day, scalars[1], scalars[0])
    )
    capacity = 1.0 + np.cumsum(np.where(day_index >= swap_day, 0.0, loss))
    if swap_day < days:
        after = np.cumsum(np.where(day_index >= swap_day, loss, 0.0))
        capacity = np.where(
            day_index >= swap_day, _rate(faults, "swap") + after, capacity
        )
    cap_t = capacity[day]
    power_mw = np.where(stored_mwh > 0, stored_mwh * eta, stored_mwh / eta) * cap_t
    power_w = power_mw / step_h * 1e6 * rng.normal(1.0, 0.002, n)
    # Cells: SoC offsets and resistances (a swapped-in used module has its own, with
    # a wider spread); a drifting cell slides down.
    offsets = rng.normal(0.0, 0.002, site.cells)
    r_ohm = 0.00025 * rng.normal(1.0, 0.05, site.cells)
    used_offsets = rng.normal(0.0, 0.004, site.cells)
    used_r_ohm = 0.00025 * rng.normal(1.1, 0.08, site.cells)
    cell_soc = soc[:, None] + np.where(
        swapped[:, None], used_offsets[None, :], offsets[None, :]
    )
    cell_soc[:, 0] -= _rate(faults, "cell_drift") * _since(day, faults, "cell_drift")
    current_a = power_w / (site.cells * 3.2 * 20.0)
    cell_r = np.where(swapped[:, None], used_r_ohm[None, :], r_ohm[None, :])
    cell_v = lfp_ocv(cell_soc) - current_a[:, None] * cell_r
    cell_v += rng.normal(0.0, 0.0004, cell_v.shape)
    # Quality: rare bad and missing samples; a dropout fault adds many. A bad sample
    # carries no measurement (as the gateways publish it).
    p_bad = 0.002 + np.where(
        _since(day, faults, "dropout") > 0, _rate(faults, "dropout"), 0.0
    )
    bad = rng.random(n) < p_bad
    keep = rng.random(n) >= p_bad
    soh_pct = np.round(100.0 * cap_t + rng.normal(0.0, 0.2, n), 1)

    def measured(values: np.ndarray) -> np.ndarray:
        return np.where(bad, np.nan, values)

    return pd.DataFrame(
        {
            "site_id": site.site_id,
            "dev_id": dev_id,
            "ts_ms": np.round((day * 24.0 + hours) * 3_600_000).astype(np.int64),
            "q": np.where(bad, "bad", "good"),
            "soc_pct": measured(np.round(100.0 * soc, 2)),
            "soh_pct": measured(soh_pct),
            "p_dc_w": measured(np.round(power_w, 1)),
            "cell_v_max_v": measured(np.round(cell_v.max(axis=1), 4)),
            "cell_v_min_v": measured(np.round(cell_v.min(axis=1), 4)),
            "cell_t_max_c": measured(np.round(t_max, 2)),
            "cell_t_min_c": measured(np.round(t_min, 2)),
            "_keep": keep,
        }
    )


def _onset(faults: list[InjectedFault], kind: str) -> int:
    return min((f.onset_day for f in faults if f.kind == kind), default=1 << 30)
