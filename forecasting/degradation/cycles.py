"""Count charge cycles on a state-of-charge history (rainflow, ASTM E1049).

Telemetry SoC carries sensor and quantisation noise; counted as is, every wiggle is a
tiny cycle and the equivalent-full-cycle count (and the booked wear) is overstated many
times over. :func:`hysteresis_filter` first removes reversals smaller than a band,
keeping the timing of the real ramps; :func:`estimate_band` sizes that band from the
signal itself (its white-noise level and its resolution), so the same code serves a
clean 0.1 % SoC, a noisy one and an integer-percent one. :func:`cycle_ledger` then runs
the rainflow count (the ``rainflow`` package, ASTM E1049-85 §5.4.4) and returns the
cycle-depth histogram, the equivalent full cycles and the throughput.

Where the telemetry has metered power, throughput and equivalent full cycles come from
it (:func:`metered_energy`): a filtered SoC cannot see cycling below the band (a
regulation day of ±0.3 % swings), the meter does. The cycling the SoC count missed is
booked as shallow cycles of the band's depth, so the ledger's EFC is the meter's.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import rainflow

from forecasting.errors import ForecastInputError

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

DEFAULT_BAND = 0.005
"""Default hysteresis band: reversals smaller than 0.5 % SoC are noise."""

BAND_NOISE_SIGMAS = 8.0
"""Auto band: this many noise standard deviations (a flat hour of 20-s samples of white
noise spans about 7 sigma)."""
BAND_RESOLUTION_STEPS = 1.5
"""Auto band: this many quantisation steps (a value flickering between two adjacent
levels reverses by exactly one step)."""
MIN_AUTO_BAND = 1e-4
BAND_WIDENING = 1.5
"""Auto band: factor by which the band is widened while the swing count still falls."""
BAND_PLATEAU_TOL = 0.02
"""Auto band: a widening that removes less than this share of the swing is the plateau."""
BAND_MAX_WIDENINGS = 8
BAND_SAMPLE_CHUNKS = 8
BAND_CHUNK_SAMPLES = 25_000
"""Auto band on long series: the plateau search looks at 8 stretches of 25,000 samples."""
"""Smallest auto band, fraction of capacity (a clean computed path)."""

DEFAULT_DEPTH_EDGES: tuple[float, ...] = (0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)
"""Default cycle-depth bin edges (fractions of capacity)."""


@dataclass(frozen=True, slots=True)
class Cycle:
    """One rainflow cycle or half cycle."""

    depth: float
    """Range of the cycle, fraction of capacity (0-1)."""
    mean_soc: float
    """Mean state of charge over the cycle, fraction (0-1)."""
    count: float
    """1.0 for a closed cycle, 0.5 for a half cycle (residue)."""
    start_index: int
    """Sample index where the cycle starts."""
    end_index: int
    """Sample index where the cycle closes."""


@dataclass(frozen=True, slots=True)
class CycleLedger:
    """The wear ledger of one SoC history: what realized wear is booked from."""

    depth_edges: tuple[float, ...]
    """Bin edges of the depth histogram, fractions of capacity, ascending."""
    cycles_per_bin: tuple[float, ...]
    """Number of cycles (half cycles count 0.5) per depth bin."""
    efc: float
    """Equivalent full cycles: sum of count x depth over all cycles."""
    discharge_mwh: float
    """Energy taken out of the battery (stored-energy side) [MWh]."""
    charge_mwh: float
    """Energy put into the battery (stored-energy side) [MWh]."""
    cycles: tuple[Cycle, ...]
    """Every counted cycle, in rainflow order (the shallow cycles booked from the
    meter last)."""
    band: float = DEFAULT_BAND
    """Hysteresis band the SoC was filtered with, fraction of capacity."""
    throughput_source: Literal["soc", "power"] = "soc"
    """Whether throughput and EFC come from the filtered SoC or the metered power."""
    unresolved_efc: float = 0.0
    """EFC the meter saw that the filtered SoC did not, booked as band-deep cycles."""

    @property
    def throughput_mwh(self) -> float:
        """Discharge throughput, battery side [MWh] (metered when given power)."""
        return self.discharge_mwh


def _validate_soc(soc: npt.ArrayLike, name: str = "soc") -> FloatArray:
    """Return ``soc`` as a float array, or raise naming the first bad sample."""
    arr = np.asarray(soc, dtype=np.float64).ravel()
    if arr.size == 0:
        msg = f"{name}: empty series, need at least one sample"
        raise ForecastInputError(msg)
    bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0.0) | (arr > 1.0))
    if bad.size:
        i = int(bad[0])
        msg = (
            f"{name}[{i}]={float(arr[i])!r} must be a finite fraction in [0, 1] "
            f"({bad.size} bad samples)"
        )
        raise ForecastInputError(msg)
    return arr


def turning_points(
    soc: npt.ArrayLike, band: float = DEFAULT_BAND
) -> npt.NDArray[np.intp]:
    """Find the reversals that survive a hysteresis band.

    Parameters
    ----------
    soc : array_like
        State of charge, fraction (0-1), one value per sample.
    band : float, default 0.005
        Smallest reversal kept, fraction of capacity. A move back smaller than ``band``
        from the running extremum is noise.

    Returns
    -------
    numpy.ndarray
        Ascending sample indices; always includes the first and the last sample.

    Raises
    ------
    ForecastInputError
        If ``soc`` has a non-finite value or one outside [0, 1], or ``band`` < 0.
    """
    x = _validate_soc(soc)
    if not band >= 0.0:
        msg = f"band={band!r} must be >= 0 (fraction of capacity)"
        raise ForecastInputError(msg)
    n = x.size
    points: list[int] = [0]
    direction = 0
    i_min = i_max = cand = 0
    for i in range(1, n):
        xi = x[i]
        if direction == 0:
            if xi < x[i_min]:
                i_min = i
            if xi > x[i_max]:
                i_max = i
            if x[i_max] - x[i_min] > band:
                if i_max > i_min:
                    direction, first, cand = 1, i_min, i_max
                else:
                    direction, first, cand = -1, i_max, i_min
                if first != 0:
                    points.append(first)
        elif direction > 0:
            if xi > x[cand]:
                cand = i
            elif x[cand] - xi > band:
                points.append(cand)
                direction, cand = -1, i
        elif xi < x[cand]:
            cand = i
        elif xi - x[cand] > band:
            points.append(cand)
            direction, cand = 1, i
    if direction != 0 and cand != points[-1]:
        points.append(cand)
    if points[-1] != n - 1:
        points.append(n - 1)
    return np.asarray(points, dtype=np.intp)


def hysteresis_filter(soc: npt.ArrayLike, band: float = DEFAULT_BAND) -> FloatArray:
    """Remove reversals smaller than ``band`` from an SoC history.

    Between two surviving turning points the output is the running extremum of the
    input (clipped to the two turning values), so it is monotone there, keeps the
    timing of the real ramp and loses only the noise.

    Parameters
    ----------
    soc : array_like
        State of charge, fraction (0-1), one value per sample.
    band : float, default 0.005
        Hysteresis band, fraction of capacity.

    Returns
    -------
    numpy.ndarray
        Filtered SoC, same length as ``soc``, fraction (0-1).

    Raises
    ------
    ForecastInputError
        If ``soc`` is empty, non-finite or outside [0, 1].
    """
    x = _validate_soc(soc)
    tps = turning_points(x, band)
    y = x.copy()
    for a, b in itertools.pairwise(tps):
        lo, hi = sorted((x[a], x[b]))
        seg = np.clip(x[a : b + 1], lo, hi)
        if x[b] >= x[a]:
            y[a : b + 1] = np.maximum.accumulate(seg)
        else:
            y[a : b + 1] = np.minimum.accumulate(seg)
    return y


@dataclass(frozen=True, slots=True)
class SignalNoise:
    """Noise and resolution of an SoC signal, and the hysteresis band they call for."""

    sigma: float
    """White-noise standard deviation of one sample, fraction of capacity."""
    resolution: float
    """Quantisation step of the samples, fraction of capacity (0: not quantised)."""
    band: float
    """Hysteresis band to use, fraction of capacity (at least max(8·sigma,
    1.5·resolution, 1e-4))."""


def _resolution(x: FloatArray) -> float:
    """Quantisation step of a series: the grid its values lie on, or 0."""
    steps = np.abs(np.diff(x))
    steps = steps[steps > 1e-12]
    if steps.size == 0:
        return 0.0
    q = float(np.min(steps))
    if q < 1e-6:
        return 0.0
    ratio = x / q
    on_grid = np.abs(ratio - np.round(ratio)) < 1e-3
    # A grid is real when (nearly) every sample sits on it and the steps are multiples.
    if on_grid.mean() < 0.99:
        return 0.0
    multiples = steps / q
    if np.mean(np.abs(multiples - np.round(multiples)) < 1e-3) < 0.99:
        return 0.0
    return q


def estimate_band(soc: npt.ArrayLike) -> SignalNoise:
    """Estimate an SoC signal's noise and resolution and the hysteresis band to use.

    Parameters
    ----------
    soc : array_like
        State of charge, fraction (0-1), one value per sample (evenly or unevenly
        spaced; the estimate uses consecutive samples only).

    Returns
    -------
    SignalNoise
        ``sigma`` from the median absolute deviation of second differences (white
        noise of sigma gives second differences of sigma·√6; ramps give none, so the
        real movement barely biases it), ``resolution`` from the grid the samples lie
        on, and ``band``: from max(8·sigma, 1.5·resolution, 1e-4), widened to the
        plateau of the swing count (see Notes).

    Raises
    ------
    ForecastInputError
        If ``soc`` is empty, non-finite or outside [0, 1].

    Notes
    -----
    On an integer-percent signal the second differences are multiples of the step
    and their MAD is 0 or one step, so sigma adds nothing beyond the resolution term;
    the band then starts at 1.5 % and a flicker between adjacent levels never counts.
    From the start the band is widened by 1.5x while that still removes more than 2 %
    of the filtered swing Σ|ΔSoC| (noise reversals go fast, real ones stay), at most
    8 times.
    """
    x = _validate_soc(soc)
    if x.size < 4:
        return SignalNoise(0.0, 0.0, MIN_AUTO_BAND)
    q = _resolution(x)
    d2 = np.diff(x, 2)
    mad = float(np.median(np.abs(d2 - np.median(d2))))
    sigma = 1.4826 * mad / np.sqrt(6.0)
    band = max(BAND_NOISE_SIGMAS * sigma, BAND_RESOLUTION_STEPS * q, MIN_AUTO_BAND)
    # Noise the MAD cannot see (a quantised signal whose steps are mostly zero) still
    # shows as a swing count that falls fast as the band widens: widen until it is
    # stable, so the band ends on the plateau of real reversals.
    # On long histories the plateau is found on a few evenly spaced stretches.
    step = max(1, x.size // BAND_SAMPLE_CHUNKS)
    chunks = (
        [x]
        if x.size <= BAND_SAMPLE_CHUNKS * BAND_CHUNK_SAMPLES
        else [
            x[k : k + BAND_CHUNK_SAMPLES]
            for k in range(0, x.size - BAND_CHUNK_SAMPLES + 1, step)
        ][:BAND_SAMPLE_CHUNKS]
    )
    swing = sum(_swing(c, band) for c in chunks)
    for _ in range(BAND_MAX_WIDENINGS):
        wider = band * BAND_WIDENING
        swing_wider = sum(_swing(c, wider) for c in chunks)
        if swing <= 0 or swing_wider >= (1.0 - BAND_PLATEAU_TOL) * swing:
            break
        band, swing = wider, swing_wider
    return SignalNoise(float(sigma), float(q), float(band))


def _swing(x: FloatArray, band: float) -> float:
    """Σ|ΔSoC| of the hysteresis-filtered series (twice its EFC)."""
    tps = turning_points(x, band)
    return float(np.sum(np.abs(np.diff(x[tps]))))


def metered_energy(
    time_h: npt.ArrayLike, power_mw: npt.ArrayLike
) -> tuple[float, float]:
    """Discharged and charged energy from metered power samples.

    Parameters
    ----------
    time_h : array_like
        Sample times [h], strictly increasing.
    power_mw : array_like
        Power at each sample, + discharge, - charge [MW]; each sample holds until the
        next one (the last sample closes the record).

    Returns
    -------
    tuple of float
        (discharge_mwh, charge_mwh), both >= 0 [MWh].

    Raises
    ------
    ForecastInputError
        If the arrays differ in length, a time does not increase or a power is not
        finite.
    """
    t = np.asarray(time_h, dtype=np.float64).ravel()
    p = np.asarray(power_mw, dtype=np.float64).ravel()
    if t.shape != p.shape:
        msg = f"power_mw has {p.size} samples but time_h has {t.size}"
        raise ForecastInputError(msg)
    if t.size < 2:
        return 0.0, 0.0
    bad = np.flatnonzero(~np.isfinite(p))
    if bad.size:
        msg = f"power_mw[{int(bad[0])}]={float(p[bad[0]])!r} is not finite"
        raise ForecastInputError(msg)
    dt_h = np.diff(t)
    if not np.all(dt_h > 0):
        i = int(np.flatnonzero(dt_h <= 0)[0]) + 1
        msg = f"time_h[{i}]={float(t[i])!r} must be after the previous sample"
        raise ForecastInputError(msg)
    held = p[:-1]
    discharge = float(np.sum(np.clip(held, 0.0, None) * dt_h))
    charge = float(np.sum(np.clip(-held, 0.0, None) * dt_h))
    return discharge, charge


def extract_cycles(soc: npt.ArrayLike) -> list[Cycle]:
    """Rainflow-count an (already filtered) SoC series.

    Parameters
    ----------
    soc : array_like
        State of charge, fraction (0-1).

    Returns
    -------
    list of Cycle
        Closed cycles (count 1) and residue half cycles (count 0.5).

    References
    ----------
    ASTM E1049-85 (2011) §5.4.4, via the ``rainflow`` package.
    """
    # Snap to 1e-12: rainflow finds reversals by the sign of a product of successive
    # differences, which underflows to zero for subnormal ones (and misses the turn).
    x = np.round(_validate_soc(soc), 12)
    if x.size < 2:
        return []
    if x.size == 2:
        # rainflow.reversals drops the last point of a two-sample series
        rng = float(abs(x[1] - x[0]))
        return [Cycle(rng, float(x.mean()), 0.5, 0, 1)] if rng > 0 else []
    return [
        Cycle(float(rng), float(mean), float(count), int(i0), int(i1))
        for rng, mean, count, i0, i1 in rainflow.extract_cycles(x)
        if rng > 0.0
    ]


def cycle_ledger(
    soc: npt.ArrayLike,
    energy_mwh: float,
    *,
    band: float | Literal["auto"] = DEFAULT_BAND,
    depth_edges: tuple[float, ...] = DEFAULT_DEPTH_EDGES,
    time_h: npt.ArrayLike | None = None,
    power_mw: npt.ArrayLike | None = None,
) -> CycleLedger:
    """Count the cycles of an SoC history and book its throughput.

    Parameters
    ----------
    soc : array_like
        State of charge, fraction (0-1) of ``energy_mwh``, one value per sample.
    energy_mwh : float
        Usable energy the SoC refers to [MWh].
    band : float or "auto", default 0.005
        Hysteresis band applied before counting, fraction of capacity; 0 counts raw;
        ``"auto"`` sizes it from the signal (:func:`estimate_band`).
    depth_edges : tuple of float
        Ascending bin edges of the depth histogram (fractions, first 0, last 1).
    time_h : array_like, optional
        Sample times [h]; needed with ``power_mw``.
    power_mw : array_like, optional
        Metered power at each sample, + discharge [MW]. When given, throughput and
        EFC come from it (:func:`metered_energy`), and the cycling the filtered SoC
        missed is booked as shallow cycles of the band's depth.

    Returns
    -------
    CycleLedger
        Histogram, equivalent full cycles and throughput.

    Raises
    ------
    ForecastInputError
        On a bad SoC series, a negative ``energy_mwh``, bad ``depth_edges``, or
        ``power_mw`` without ``time_h`` or of another length.

    Notes
    -----
    Without power, ``efc`` = Σ count·depth = Σ|ΔSoC|/2 over the filtered series (a
    depth of 1 is one full cycle) and throughput is counted on the filtered series
    too. With power, ``efc`` = (discharge + charge)/(2·energy_mwh) from the meter.
    """
    if not energy_mwh >= 0.0:
        msg = f"energy_mwh={energy_mwh!r} must be >= 0"
        raise ForecastInputError(msg)
    edges = np.asarray(depth_edges, dtype=np.float64)
    if edges.size < 2 or np.any(np.diff(edges) <= 0) or edges[0] > 0 or edges[-1] < 1:
        msg = f"depth_edges={depth_edges!r} must ascend strictly from <= 0 to >= 1"
        raise ForecastInputError(msg)
    x = _validate_soc(soc)
    if band == "auto":
        band_used = estimate_band(x).band
    elif isinstance(band, str):
        msg = f"band={band!r} must be a number >= 0 or 'auto'"
        raise ForecastInputError(msg)
    else:
        band_used = float(band)
    y = hysteresis_filter(x, band_used) if band_used > 0 else x
    cycles = extract_cycles(y)
    step = np.diff(y)
    discharge_mwh = float(-step[step < 0].sum() * energy_mwh)
    charge_mwh = float(step[step > 0].sum() * energy_mwh)
    source: Literal["soc", "power"] = "soc"
    unresolved = 0.0
    if power_mw is not None:
        if time_h is None:
            msg = "power_mw needs time_h (sample times in hours)"
            raise ForecastInputError(msg)
        p = np.asarray(power_mw, dtype=np.float64).ravel()
        if p.size != x.size:
            msg = f"power_mw has {p.size} samples but soc has {x.size}"
            raise ForecastInputError(msg)
        discharge_mwh, charge_mwh = metered_energy(time_h, p)
        source = "power"
        counted = float(sum(c.depth * c.count for c in cycles))
        metered_efc = (
            (discharge_mwh + charge_mwh) / (2.0 * energy_mwh) if energy_mwh > 0 else 0
        )
        unresolved = max(0.0, metered_efc - counted)
        if unresolved > 0 and band_used > 0:
            depth = min(band_used, 1.0)
            cycles = [
                *cycles,
                Cycle(depth, float(np.mean(x)), unresolved / depth, 0, x.size - 1),
            ]
    depths = np.array([c.depth for c in cycles])
    counts = np.array([c.count for c in cycles])
    hist, _ = np.histogram(depths, bins=edges, weights=counts)
    efc = float(np.sum(depths * counts)) if cycles else 0.0
    ledger = CycleLedger(
        depth_edges=tuple(float(e) for e in edges),
        cycles_per_bin=tuple(float(h) for h in hist),
        efc=efc,
        discharge_mwh=discharge_mwh,
        charge_mwh=charge_mwh,
        cycles=tuple(cycles),
        band=band_used,
        throughput_source=source,
        unresolved_efc=unresolved,
    )
    logger.debug(
        "cycle ledger: %d cycles, %.3f EFC (band %.4f, %s)",
        len(cycles),
        efc,
        band_used,
        source,
    )
    return ledger
