"""Pure LFP battery physics for the site simulator: OCV curve, SoC, heat, BMS limits."""

from __future__ import annotations

from bisect import bisect_right

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
"""(SoC fraction 0-1, open-circuit cell voltage [V]) of a typical LFP cell at 25 C.

The long flat plateau near 3.3 V and the steep knees below 10 % and above 95 % SoC are
what makes LFP SoC hard to read from voltage.
"""
_SOC = [p[0] for p in LFP_OCV_CURVE]
_OCV = [p[1] for p in LFP_OCV_CURVE]


def lfp_ocv_v(soc: float) -> float:
    """Return the open-circuit voltage of an LFP cell [V] at ``soc`` (fraction 0-1).

    Parameters
    ----------
    soc
        State of charge, fraction 0-1 (clipped).

    Returns
    -------
    float
        Cell OCV [V], linear interpolation of :data:`LFP_OCV_CURVE`.
    """
    s = min(1.0, max(0.0, soc))
    k = min(len(_SOC) - 1, max(1, bisect_right(_SOC, s)))
    s0, s1, v0, v1 = _SOC[k - 1], _SOC[k], _OCV[k - 1], _OCV[k]
    return v0 + (v1 - v0) * (s - s0) / (s1 - s0)


def soc_step(
    soc: float,
    p_mw: float,
    dt_s: float,
    energy_mwh: float,
    eta_charge: float,
    eta_discharge: float,
) -> float:
    """Return the SoC after ``dt_s`` seconds at AC power ``p_mw`` (+ = discharge).

    Parameters
    ----------
    soc
        State of charge, fraction 0-1.
    p_mw
        AC power [MW]; + discharges (SoC falls by p/eta_discharge), - charges
        (SoC rises by |p|*eta_charge).
    dt_s
        Time step [s].
    energy_mwh
        Usable energy now [MWh] (nameplate times the capacity fraction).
    eta_charge, eta_discharge
        One-way efficiencies, fractions 0-1.

    Returns
    -------
    float
        New SoC, fraction 0-1 (clipped).
    """
    dt_h = dt_s / 3600.0
    delta_mwh = -p_mw / eta_discharge * dt_h if p_mw >= 0 else -p_mw * eta_charge * dt_h
    return min(1.0, max(0.0, soc + delta_mwh / energy_mwh))


def temperature_step(
    temp_c: float,
    ambient_c: float,
    p_mw: float,
    rated_mw: float,
    dt_s: float,
    tau_s: float = 3600.0,
    rise_at_rated_c: float = 12.0,
) -> float:
    """Return the mean cell temperature [C] after ``dt_s`` (first-order thermal model).

    Heat goes with the square of the current (about ``(p/rated)^2``): at steady state
    the cells sit ``rise_at_rated_c`` above ambient at rated power.

    Parameters
    ----------
    temp_c, ambient_c
        Mean cell and ambient temperature [C].
    p_mw, rated_mw
        Power now and the rating [MW].
    dt_s, tau_s
        Step and thermal time constant [s].
    rise_at_rated_c
        Steady-state rise above ambient at rated power [C].
    """
    load = (p_mw / rated_mw) ** 2 if rated_mw > 0 else 0.0
    target = ambient_c + rise_at_rated_c * load
    alpha = min(1.0, dt_s / tau_s)
    return temp_c + alpha * (target - temp_c)


def bms_current_limits_a(
    soc: float, temp_min_c: float, temp_max_c: float, i_rated_a: float
) -> tuple[float, float]:
    """Return the BMS (charge, discharge) current limits [A] (802 AChaMax/ADisChaMax).

    Charge tapers to zero above 90 % SoC and is refused below 0 C or above 55 C;
    discharge tapers below 10 % SoC and is refused below -20 C or above 60 C.

    Parameters
    ----------
    soc
        Fraction 0-1.
    temp_min_c, temp_max_c
        Coldest and hottest cell [C].
    i_rated_a
        Rated DC current [A].
    """
    cha = i_rated_a * min(1.0, max(0.0, (1.0 - soc) / 0.10))
    dis = i_rated_a * min(1.0, max(0.0, soc / 0.10))
    if temp_min_c < 0.0 or temp_max_c > 55.0:
        cha = 0.0
    elif temp_min_c < 10.0:
        cha *= 0.5
    if temp_min_c < -20.0 or temp_max_c > 60.0:
        dis = 0.0
    return cha, dis
