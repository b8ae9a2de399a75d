"""Count charge cycles on a state-of-charge history (rainflow, ASTM E1049).

Telemetry SoC carries sensor and quantisation noise; counted as is, every wiggle is a
tiny cycle and the equivalent-full-cycle count (and the booked wear) is overstated many
times over. :func:`hysteresis_filter` first removes reversals smaller than a band
(default 0.5 % SoC), keeping the timing of the real ramps; :func:`cycle_ledger` then runs
the rainflow count (the ``rainflow`` package, ASTM E1049-85 §5.4.4) and returns the
cycle-depth histogram, the equivalent full cycles and the throughput.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import rainflow

from forecasting.errors import ForecastInputError

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

DEFAULT_BAND = 0.005
"""Default hysteresis band: reversals smaller than 0.5 % SoC are noise."""

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
    """Every counted cycle, in rainflow order."""

    @property
    def throughput_mwh(self) -> float:
        """Discharge throughput, the quantity warranties count [MWh]."""
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
    x = _validate_soc(soc)
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
    band: float = DEFAULT_BAND,
    depth_edges: tuple[float, ...] = DEFAULT_DEPTH_EDGES,
) -> CycleLedger:
    """Count the cycles of an SoC history and book its throughput.

    Parameters
    ----------
    soc : array_like
        State of charge, fraction (0-1) of ``energy_mwh``, one value per sample.
    energy_mwh : float
        Usable energy the SoC refers to [MWh].
    band : float, default 0.005
        Hysteresis band applied before counting, fraction of capacity; 0 counts raw.
    depth_edges : tuple of float
        Ascending bin edges of the depth histogram (fractions, first 0, last 1).

    Returns
    -------
    CycleLedger
        Histogram, equivalent full cycles and throughput.

    Raises
    ------
    ForecastInputError
        On a bad SoC series, a negative ``energy_mwh`` or bad ``depth_edges``.

    Notes
    -----
    ``efc`` = Σ count·depth = Σ|ΔSoC|/2 over the filtered series; a depth of 1 is
    one full cycle. Throughput is counted on the filtered series too.
    """
    if not energy_mwh >= 0.0:
        msg = f"energy_mwh={energy_mwh!r} must be >= 0"
        raise ForecastInputError(msg)
    edges = np.asarray(depth_edges, dtype=np.float64)
    if edges.size < 2 or np.any(np.diff(edges) <= 0) or edges[0] > 0 or edges[-1] < 1:
        msg = f"depth_edges={depth_edges!r} must ascend strictly from <= 0 to >= 1"
        raise ForecastInputError(msg)
    y = hysteresis_filter(soc, band) if band > 0 else _validate_soc(soc)
    cycles = extract_cycles(y)
    depths = np.array([c.depth for c in cycles])
    counts = np.array([c.count for c in cycles])
    hist, _ = np.histogram(depths, bins=edges, weights=counts)
    step = np.diff(y)
    efc = float(np.sum(depths * counts)) if cycles else 0.0
    ledger = CycleLedger(
        depth_edges=tuple(float(e) for e in edges),
        cycles_per_bin=tuple(float(h) for h in hist),
        efc=efc,
        discharge_mwh=float(-step[step < 0].sum() * energy_mwh),
        charge_mwh=float(step[step > 0].sum() * energy_mwh),
        cycles=tuple(cycles),
    )
    logger.debug("cycle ledger: %d cycles, %.3f EFC", len(cycles), efc)
    return ledger
