"""Energy block: stored-energy balance, limits and energy settlement."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyomo.environ as pyo

if TYPE_CHECKING:
    from dispatch.scenario import Scenario


def add_energy(m: pyo.ConcreteModel, scn: Scenario) -> None:
    """Add the energy balance and limits, and the wholesale energy settlement.

    Equations (per site s, interval i; Δ [h]):

        e[s,i+1] = e[s,i] + Δ·( η_c·(c[s,i] + a_dn·rd[s,i]) - (d[s,i] + a_up·ru[s,i])/η_d )
        E·soc_min ≤ e[s,i] ≤ E·soc_max              i = 0..T   [MWh]
        e[s,0] = E·soc_initial,  e[s,T] ≥ E·soc_final_min
        revenue += Σ_i Δ·λ[s,i]·(d - c + a_up·ru - a_dn·rd)     (front of meter) [$]

    Parameters
    ----------
    m : ConcreteModel
        Model with the common variables of :func:`dispatch.model.build_model`.
    scn : Scenario
        The scenario.

    Notes
    -----
    The balance rows are ``m.energy_balance[s, i]`` for i = 0..T-1 (they define e at
    i+1); their duals are the marginal value of stored energy. Behind-the-meter sites
    settle through the meter (:mod:`dispatch.blocks.btm`), not here.
    """
    del scn
    dt = m.dt_h

    def bounds(m: pyo.ConcreteModel, s: str, i: int) -> tuple[float, float]:
        site = m.site[s]
        lo, hi = site.energy_mwh * site.soc_min, site.energy_mwh * site.soc_max
        if i == 0:
            return (
                site.energy_mwh * site.soc_initial,
                site.energy_mwh * site.soc_initial,
            )
        if i == len(m.T):
            return (max(lo, site.energy_mwh * site.soc_final_min), hi)
        return (lo, hi)

    for key in m.e_mwh:
        lo, hi = bounds(m, *key)
        m.e_mwh[key].setlb(lo)
        m.e_mwh[key].setub(hi)

    def balance(m: pyo.ConcreteModel, s: str, i: int) -> pyo.Expression:
        return m.e_mwh[s, i + 1] == m.e_mwh[s, i] + dt * (
            m.eta_c[s] * (m.c_mw[s, i] + m.deploy_down_mw[s, i])
            - (m.d_mw[s, i] + m.deploy_up_mw[s, i]) / m.eta_d[s]
        )

    m.energy_balance = pyo.Constraint(m.S, m.T, rule=balance)
    fom = [s for s in m.S if not m.site[s].is_btm]
    if not fom:
        return
    m.objective_terms.append(
        sum(
            dt
            * m.lam_usd_per_mwh[s, i]
            * (
                m.d_mw[s, i]
                - m.c_mw[s, i]
                + m.deploy_up_mw[s, i]
                - m.deploy_down_mw[s, i]
            )
            for s in fom
            for i in m.T
        )
    )
