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
- sample quality (``telemetry_dropout`` marks samples bad and drops others).
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

FaultKind = Literal["cell_drift", "fan_failure", "fast_fade", "rte_slide", "dropout"]

FAULT_KINDS: tuple[str, ...] = (
    "cell_drift",
    "fan_failure",
    "fast_fade",
    "rte_slide",
    "dropout",
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
    samples marked bad (as many again go missing).
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

    def dev_ids(self) -> list[str]:
        """Return the device ids of the strings."""
        return [f"bank{i + 1}" for i in range(self.strings)]


def lfp_ocv(soc: np.ndarray) -> np.ndarray:
    """Return the LFP cell open-circuit voltage [V] at ``soc`` (fraction 0-1)."""
    xs = np.array([p[0] for p in LFP_OCV_CURVE])
    ys = np.array([p[1] for p in LFP_OCV_CURVE])
    return np.interp(np.clip(soc, 0.0, 1.0), xs, ys)


def _soc_profile(
    hours: np.ndarray, day: np.ndarray, rng: np.random.Generator, days: int
) -> np.ndarray:
    """Daily trapezoid: 0.15 → top over 01-04 h, top → 0.15 over 17-20 h."""
    top = rng.uniform(0.82, 0.92, size=days)
    idle = rng.random(days) < 0.08
    top = np.where(idle, 0.15, top)[day]
    up = np.clip((hours - 1.0) / 3.0, 0.0, 1.0)
    down = np.clip((hours - 17.0) / 3.0, 0.0, 1.0)
    return 0.15 + (top - 0.15) * (up - down)


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
    soc = _soc_profile(hours, day, rng, days)
    ambient = (
        site.ambient_c
        + 8.0 * np.sin(2 * np.pi * (day - 105) / 365.0)
        + 4.0 * np.sin(2 * np.pi * (hours - 9.0) / 24.0)
    )
    # Model fade of a healthy string: daily loss increments of the aging model.
    model = ThroughputAging(site.string_energy_mwh)
    daily_throughput = np.zeros(days)
    dsoc = np.diff(soc, prepend=soc[0])
    np.add.at(daily_throughput, day, np.abs(dsoc) * site.string_energy_mwh)
    cumulative = np.cumsum(daily_throughput)
    soc_mean = np.bincount(day, weights=soc) / np.bincount(day)
    model_cap = np.array(
        [
            model(float(d + 1), float(cumulative[d]), float(soc_mean[d]))
            for d in range(days)
        ]
    )
    daily_loss = np.diff(np.concatenate([[1.0], model_cap]))
    frames: list[pd.DataFrame] = []
    for dev_id in dev_ids:
        mine = [f for f in faults if f.dev_id == dev_id]
        frames.append(
            _string(site, dev_id, day, hours, soc, dsoc, ambient, daily_loss, mine, rng)
        )
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
    daily_loss: np.ndarray,
    faults: list[InjectedFault],
    rng: np.random.Generator,
) -> pd.DataFrame:
    n = day.size
    step_h = site.step_minutes / 60.0
    # Capacity: the model's loss, scaled per string, multiplied after a fade fault.
    scalar = rng.normal(1.0, 0.05)
    fade_mult = np.where(
        np.arange(daily_loss.size) >= _onset(faults, "fast_fade"),
        _rate(faults, "fast_fade") or 1.0,
        1.0,
    )
    capacity = 1.0 + np.cumsum(daily_loss * scalar * fade_mult)
    cap_t = capacity[day]
    # Efficiency and DC power (+ = discharge).
    rte = site.rte * rng.normal(1.0, 0.003) - _rate(faults, "rte_slide") * _since(
        day, faults, "rte_slide"
    )
    eta = np.sqrt(np.clip(rte, 0.5, 1.0))
    energy_mwh = site.string_energy_mwh * cap_t
    stored_mwh = -dsoc * energy_mwh
    power_mw = np.where(stored_mwh > 0, stored_mwh * eta, stored_mwh / eta) / step_h
    power_w = power_mw * 1e6 * rng.normal(1.0, 0.002, n)
    # Cells: SoC offsets and resistances; a drifting cell slides down.
    offsets = rng.normal(0.0, 0.002, site.cells)
    r_ohm = 0.00025 * rng.normal(1.0, 0.05, site.cells)
    cell_soc = soc[:, None] + offsets[None, :]
    cell_soc[:, 0] -= _rate(faults, "cell_drift") * _since(day, faults, "cell_drift")
    current_a = power_w / (site.cells * 3.2 * 20.0)
    cell_v = lfp_ocv(cell_soc) - current_a[:, None] * r_ohm[None, :]
    cell_v += rng.normal(0.0, 0.0004, cell_v.shape)
    # Temperature: first-order rise from I²R heat through the fan's thermal path.
    r_th = rng.normal(1.0, 0.04) * np.where(
        _since(day, faults, "fan_failure") > 0, _rate(faults, "fan_failure") or 1.0, 1.0
    )
    rated_w = site.string_energy_mwh * 0.25e6
    heat = (power_w / rated_w) ** 2
    tau_steps = 60.0 / site.step_minutes
    alpha = 1.0 / (tau_steps + 1.0)
    rise = lfilter([alpha], [1.0, alpha - 1.0], 10.0 * heat * r_th)
    t_max = ambient + rise + 1.5 + rng.normal(0.0, 0.3, n)
    t_min = ambient + 0.3 * rise + rng.normal(0.0, 0.3, n)
    # Quality: rare bad and missing samples; a dropout fault adds many.
    p_bad = 0.002 + np.where(
        _since(day, faults, "dropout") > 0, _rate(faults, "dropout"), 0.0
    )
    bad = rng.random(n) < p_bad
    keep = rng.random(n) >= p_bad
    soh_pct = np.round(100.0 * cap_t + rng.normal(0.0, 0.2, n), 1)
    return pd.DataFrame(
        {
            "site_id": site.site_id,
            "dev_id": dev_id,
            "ts_ms": np.round((day * 24.0 + hours) * 3_600_000).astype(np.int64),
            "q": np.where(bad, "bad", "good"),
            "soc_pct": np.round(100.0 * soc, 2),
            "soh_pct": soh_pct,
            "p_dc_w": np.round(power_w, 1),
            "cell_v_max_v": np.round(cell_v.max(axis=1), 4),
            "cell_v_min_v": np.round(cell_v.min(axis=1), 4),
            "cell_t_max_c": np.round(t_max, 2),
            "cell_t_min_c": np.round(t_min, 2),
            "_keep": keep,
        }
    )


def _onset(faults: list[InjectedFault], kind: str) -> int:
    return min((f.onset_day for f in faults if f.kind == kind), default=1 << 30)
