"""Power block: net-power headroom and charge/discharge exclusivity."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyomo.environ as pyo

if TYPE_CHECKING:
    from dispatch.scenario import Scenario


def add_power(m: pyo.ConcreteModel, scn: Scenario) -> None:
    """Add the power limits on net power and the exclusivity of charge and discharge.

    Equations (per site s, interval i; MW):

        d - c + Σ_{k up} r_k ≤ P_d
        c - d + Σ_{k down} r_k ≤ P_c
        c ≤ P_c·u,   d ≤ P_d·(1 - u),   u ∈ {0, 1}      (c·d = 0)

    Parameters
    ----------
    m : ConcreteModel
        Model with the common variables.
    scn : Scenario
        The scenario.

    Notes
    -----
    Written on net power, so a reserve award and an opposite energy position can share
    headroom. With ``binaries=False`` u is relaxed, which gives the LP relaxation.
    Extension: ``commitments.net_mw`` fixes d - c where it is not null.
    """
    del scn
    m.power_discharge = pyo.Constraint(
        m.S,
        m.T,
        rule=lambda m, s, i: (
            m.d_mw[s, i] - m.c_mw[s, i] + m.up_mw[s, i] <= m.p_dis_mw[s]
        ),
    )
    m.power_charge = pyo.Constraint(
        m.S,
        m.T,
        rule=lambda m, s, i: (
            m.c_mw[s, i] - m.d_mw[s, i] + m.down_mw[s, i] <= m.p_ch_mw[s]
        ),
    )
    m.exclusive_charge = pyo.Constraint(
        m.S, m.T, rule=lambda m, s, i: m.c_mw[s, i] <= m.p_ch_mw[s] * m.u[s, i]
    )
    m.exclusive_discharge = pyo.Constraint(
        m.S, m.T, rule=lambda m, s, i: m.d_mw[s, i] <= m.p_dis_mw[s] * (1 - m.u[s, i])
    )
    fixed = [
        (s, i, v)
        for s in m.S
        if m.site[s].commitments is not None
        and m.site[s].commitments.net_mw is not None
        for i, v in enumerate(m.site[s].commitments.net_mw)
        if v is not None
    ]
    if fixed:
        m.commit_net = pyo.Constraint(
            range(len(fixed)),
            rule=lambda m, k: (
                m.d_mw[fixed[k][0], fixed[k][1]] - m.c_mw[fixed[k][0], fixed[k][1]]
                == fixed[k][2]
            ),
        )
