"""Foldback block: the BMS power taper near the SoC limits."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyomo.environ as pyo

if TYPE_CHECKING:
    from dispatch.scenario import Scenario


def add_foldback(m: pyo.ConcreteModel, scn: Scenario) -> None:
    """Add the SoC-dependent caps of net charge and net discharge.

    Equations (per site s with ``foldback``, interval i, j ∈ {i, i+1}; τ_c, τ_d the
    taper SoCs; E [MWh]):
        c - d + Σ down r ≤ P_c·(1 - e[s,j]/E)/(1 - τ_c)          [MW]
        d - c + Σ up r ≤ P_d·(e[s,j]/E)/τ_d                [MW]

    Parameters
    ----------
    m : ConcreteModel
        Model with the common variables.
    scn : Scenario
        The scenario.

    Notes
    -----
    Below τ_c and above τ_d the caps are looser than the headroom rows of the power
    block. Early return when no site has a foldback.
    """
    sites = {s.id: s for s in scn.sites if s.foldback is not None and s.energy_mwh > 0}
    if not sites:
        return
    m.FB = pyo.Set(initialize=sorted(sites))
    m.FBJ = pyo.Set(initialize=[0, 1])

    def charge(m: pyo.ConcreteModel, s: str, i: int, j: int) -> object:
        site = sites[s]
        fb = site.foldback
        assert fb is not None
        cap = site.charge_mw * (1 - m.e_mwh[s, i + j] / site.energy_mwh)
        return (m.c_mw[s, i] - m.d_mw[s, i] + m.down_mw[s, i]) * (
            1 - fb.charge_taper_soc
        ) <= cap

    def discharge(m: pyo.ConcreteModel, s: str, i: int, j: int) -> object:
        site = sites[s]
        fb = site.foldback
        assert fb is not None
        cap = site.discharge_mw * m.e_mwh[s, i + j] / site.energy_mwh
        return (
            m.d_mw[s, i] - m.c_mw[s, i] + m.up_mw[s, i]
        ) * fb.discharge_taper_soc <= cap

    m.foldback_charge = pyo.Constraint(m.FB, m.T, m.FBJ, rule=charge)
    m.foldback_discharge = pyo.Constraint(m.FB, m.T, m.FBJ, rule=discharge)
