"""Behind-the-meter block: meter import, no-export rule, energy bill and demand charge."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyomo.environ as pyo

if TYPE_CHECKING:
    from dispatch.scenario import Scenario


def add_btm(m: pyo.ConcreteModel, scn: Scenario) -> None:
    """Add the bill of behind-the-meter sites.

    Equations (per behind-the-meter site s, interval i):

        g[s,i] = L[s,i] + c + a_dn·rd - d - a_up·ru                      [MW]
        g[s,i] ≥ 0                         unless export_allowed
        z[s] ≥ g[s,i] - p0[s],  z[s] ≥ 0   (new-peak excess)              [MW]
        revenue -= Σ_i τ[s,i]·g[s,i]·Δ + r[s]·z[s]                        [$]

    Parameters
    ----------
    m : ConcreteModel
        Model with the common variables.
    scn : Scenario
        The scenario.

    Notes
    -----
    The bill includes the site's own load, so the objective is the whole bill.
    Early return when no site is behind the meter.
    """
    del scn
    btm = [s for s in m.S if m.site[s].is_btm]
    if not btm:
        return
    m.SB = pyo.Set(initialize=btm, ordered=True)
    load = {(s, i): m.site[s].btm.load_mw[i] for s in btm for i in m.T}
    tau = {(s, i): m.site[s].btm.energy_usd_per_mwh[i] for s in btm for i in m.T}
    m.load_mw = pyo.Param(m.SB, m.T, initialize=load)
    m.tau_usd_per_mwh = pyo.Param(m.SB, m.T, initialize=tau)
    m.grid_mw = pyo.Expression(
        m.SB,
        m.T,
        rule=lambda m, s, i: (
            m.load_mw[s, i]
            + m.c_mw[s, i]
            + m.deploy_down_mw[s, i]
            - m.d_mw[s, i]
            - m.deploy_up_mw[s, i]
        ),
    )
    no_export = [s for s in btm if not m.site[s].btm.export_allowed]
    if no_export:
        m.btm_no_export = pyo.Constraint(
            no_export, m.T, rule=lambda m, s, i: m.grid_mw[s, i] >= 0
        )
    m.peak_excess_mw = pyo.Var(m.SB, bounds=(0.0, None))
    m.btm_peak = pyo.Constraint(
        m.SB,
        m.T,
        rule=lambda m, s, i: (
            m.peak_excess_mw[s] >= m.grid_mw[s, i] - m.site[s].btm.peak_so_far_mw
        ),
    )
    m.objective_terms.append(
        -sum(
            m.dt_h * m.tau_usd_per_mwh[s, i] * m.grid_mw[s, i] for s in btm for i in m.T
        )
        - sum(m.site[s].btm.demand_usd_per_mw * m.peak_excess_mw[s] for s in btm)
    )
