"""Regulation block: capacity payments and reserve sustainability (up and down)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyomo.environ as pyo

if TYPE_CHECKING:
    from dispatch.scenario import Scenario


def add_regulation(m: pyo.ConcreteModel, scn: Scenario) -> None:
    """Add regulation payments and the H-hour sustainability of all reserves.

    Equations (per site s, interval i, for j ∈ {i, i+1}; H [h]):

        e[s,j] - E·soc_min ≥ H·(ru[s,i] + sp[s,i])/η_d        [MWh]
        E·soc_max - e[s,j] ≥ H·η_c·rd[s,i]                      [MWh]
        revenue += Σ_i Δ·(λ^ru·ru + λ^rd·rd)                    [$]

    Parameters
    ----------
    m : ConcreteModel
        Model with the common variables.
    scn : Scenario
        The scenario (``reserve_duration_h``).

    Notes
    -----
    The upward row also covers spinning reserve (one MW backs one product). The
    deployed regulation energy is in the energy balance and settles at λ (energy block)
    or through the meter (btm block). Early return when no site carries a reserve.
    """
    h = scn.reserve_duration_h
    dt = m.dt_h
    enrolled = [
        s
        for s in m.S
        if any(m.site[s].enrolled(x) for x in ("reg_up", "reg_down", "spin"))
    ]
    if not enrolled:
        return
    m.SJ = pyo.Set(initialize=[0, 1])
    m.sustain_up = pyo.Constraint(
        m.S,
        m.T,
        m.SJ,
        rule=lambda m, s, i, j: (
            m.e_mwh[s, i + j] - m.energy_mwh[s] * m.soc_min[s]
            >= h * (m.ru_mw[s, i] + m.sp_mw[s, i]) / m.eta_d[s]
        ),
    )
    m.sustain_down = pyo.Constraint(
        m.S,
        m.T,
        m.SJ,
        rule=lambda m, s, i, j: (
            m.energy_mwh[s] * m.soc_max[s] - m.e_mwh[s, i + j]
            >= h * m.eta_c[s] * m.rd_mw[s, i]
        ),
    )
    m.objective_terms.append(
        sum(
            dt
            * (
                m.ru_usd_per_mw_h[s, i] * m.ru_mw[s, i]
                + m.rd_usd_per_mw_h[s, i] * m.rd_mw[s, i]
            )
            for s in enrolled
            for i in m.T
        )
    )
