"""Degradation block: piecewise-linear cycle-depth cost (Xu et al. 2018)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyomo.environ as pyo

from dispatch.lp import initial_segments_mwh

if TYPE_CHECKING:
    from dispatch.scenario import Scenario


def add_degradation(m: pyo.ConcreteModel, scn: Scenario) -> None:
    """Add the K-segment energy model and its discharge cost.

    Equations (per site s, segment k = 1..K, interval i; W = (soc_max - soc_min)·E/K):

        0 ≤ e_k[s,k,i] ≤ W                                                [MWh]
        e_k[s,k,i+1] = e_k[s,k,i] + Δ·(η_c·c_k[s,k,i] - d_k[s,k,i]/η_d)
        Σ_k c_k = c + Σ a_k·r_down,   Σ_k d_k = d + Σ a_k·r_up,   Σ_k e_k = e - E·soc_min
        e_k[s,k,0] = initial energy, deepest segments filled first
        revenue -= Σ_{k,i} δ_k·d_k[s,k,i]·Δ                                [$]

    Parameters
    ----------
    m : ConcreteModel
        Model with the common variables and the energy balance.
    scn : Scenario
        The scenario.

    Notes
    -----
    Extension: a site's ``throughput_budget_mwh`` adds Σ_i d[s,i]·Δ ≤ budget (warranty).

    References
    ----------
    B. Xu, J. Zhao, T. Zheng, E. Litvinov, D. S. Kirschen, "Factoring the cycle aging
    cost of batteries participating in electricity markets", IEEE Trans. Power Syst.
    33(2), 2018.
    """
    dt = m.dt_h
    pairs = [(s, k) for s in m.S for k in range(len(m.site[s].degradation_usd_per_mwh))]
    m.SK = pyo.Set(initialize=pairs, dimen=2, ordered=True)
    init = {s: initial_segments_mwh(m.site[s]) for s in m.S}

    def width(s: str) -> float:
        site = m.site[s]
        return (
            (site.soc_max - site.soc_min)
            * site.energy_mwh
            / len(site.degradation_usd_per_mwh)
        )

    def e_bounds(m: pyo.ConcreteModel, s: str, k: int, i: int) -> tuple[float, float]:
        if i == 0:
            return (float(init[s][k]), float(init[s][k]))
        return (0.0, width(s))

    m.ek_mwh = pyo.Var(m.SK, m.T1, bounds=e_bounds)
    m.ck_mw = pyo.Var(m.SK, m.T, bounds=(0.0, None))
    m.dk_mw = pyo.Var(m.SK, m.T, bounds=(0.0, None))
    m.segment_balance = pyo.Constraint(
        m.SK,
        m.T,
        rule=lambda m, s, k, i: (
            m.ek_mwh[s, k, i + 1]
            == m.ek_mwh[s, k, i]
            + dt * (m.eta_c[s] * m.ck_mw[s, k, i] - m.dk_mw[s, k, i] / m.eta_d[s])
        ),
    )
    segs = {s: [k for (t, k) in pairs if t == s] for s in m.S}
    m.segment_charge = pyo.Constraint(
        m.S,
        m.T,
        rule=lambda m, s, i: (
            sum(m.ck_mw[s, k, i] for k in segs[s])
            == m.c_mw[s, i] + m.deploy_down_mw[s, i]
        ),
    )
    m.segment_discharge = pyo.Constraint(
        m.S,
        m.T,
        rule=lambda m, s, i: (
            sum(m.dk_mw[s, k, i] for k in segs[s])
            == m.d_mw[s, i] + m.deploy_up_mw[s, i]
        ),
    )
    m.segment_link = pyo.Constraint(
        m.S,
        m.T,
        rule=lambda m, s, i: (
            sum(m.ek_mwh[s, k, i + 1] for k in segs[s])
            == m.e_mwh[s, i + 1] - m.energy_mwh[s] * m.soc_min[s]
        ),
    )
    m.objective_terms.append(
        -sum(
            dt * m.site[s].degradation_usd_per_mwh[k] * m.dk_mw[s, k, i]
            for (s, k) in pairs
            for i in m.T
        )
    )
    budget = [s for s in m.S if m.site[s].throughput_budget_mwh is not None]
    if budget:
        m.throughput_budget = pyo.Constraint(
            budget,
            rule=lambda m, s: (
                sum(dt * m.d_mw[s, i] for i in m.T) <= m.site[s].throughput_budget_mwh
            ),
        )
