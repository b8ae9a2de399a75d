"""Capacity block: deliverable commitment through the window and its payment."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyomo.environ as pyo

if TYPE_CHECKING:
    from dispatch.scenario import Scenario


def add_capacity(m: pyo.ConcreteModel, scn: Scenario) -> None:
    """Add the capacity commitment.

    Equations (window [a, b), duration D [h]):

        0 ≤ cap[s] ≤ P_d[s]                                             [MW]
        e[s,i] - E·soc_min ≥ cap[s]·min(D, (b - i)·Δ)/η_d   for i ∈ [a, b)  [MWh]
        revenue += price_usd_per_mw · cap[s]                             [$]

    Parameters
    ----------
    m : ConcreteModel
        Model with the common variables.
    scn : Scenario
        The scenario.

    Notes
    -----
    cap is fixed to 0 for sites not enrolled and when the scenario has no capacity block.
    """
    cap = scn.capacity
    enrolled = [s for s in m.S if cap is not None and m.site[s].enrolled("capacity")]
    for s in m.S:
        m.cap_mw[s].setub(m.site[s].discharge_mw if s in enrolled else 0.0)
    if cap is None or not enrolled:
        return
    a, b = cap.window
    dt = m.dt_h
    m.TW = pyo.Set(initialize=list(range(a, b)), ordered=True)
    m.capacity_hold = pyo.Constraint(
        enrolled,
        m.TW,
        rule=lambda m, s, i: (
            m.e_mwh[s, i] - m.energy_mwh[s] * m.soc_min[s]
            >= m.cap_mw[s] * min(cap.duration_h, (b - i) * dt) / m.eta_d[s]
        ),
    )
    m.objective_terms.append(sum(cap.price_usd_per_mw * m.cap_mw[s] for s in enrolled))
