"""Reserves block: capacity payments and sustainability of every reserve product."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyomo.environ as pyo

if TYPE_CHECKING:
    from dispatch.scenario import Scenario


def add_reserves(m: pyo.ConcreteModel, scn: Scenario) -> None:
    """Add reserve payments and the sustainability of the awards for their durations.

    Equations (per site s, interval i, for j ∈ {i, i+1}; product k with direction,
    sustain duration H_k [h] and price λ^k [$/MW-h]):

        e[s,j] - E·soc_min ≥ Σ_{k up} H_k·r[s,k,i]/η_d          [MWh]
        E·soc_max - e[s,j] ≥ Σ_{k down} H_k·η_c·r[s,k,i]         [MWh]
        revenue += Σ_{k,i} Δ·λ^k·r[s,k,i]                         [$]

    With the spec's products only, H_k is ``reserve_duration_h`` for every product
    and these are the spec's rows. The deployed energy of regulation is in the energy
    balance and settles at λ (energy block) or through the meter (btm block).
    """
    dt = m.dt_h
    enrolled = [
        s
        for s in m.S
        if any(m.site[s].enrolled(r.name) for r in scn.reserves)
        or m.site[s].commitments is not None
    ]
    if not enrolled:
        return
    up = [r for r in scn.reserves if r.up and r.sustain_h > 0]
    down = [r for r in scn.reserves if not r.up and r.sustain_h > 0]
    m.SJ = pyo.Set(initialize=[0, 1])
    if up:
        m.sustain_up = pyo.Constraint(
            m.S,
            m.T,
            m.SJ,
            rule=lambda m, s, i, j: (
                m.e_mwh[s, i + j] - m.energy_mwh[s] * m.soc_min[s]
                >= sum(r.sustain_h * m.r_mw[s, r.name, i] for r in up) / m.eta_d[s]
            ),
        )
    if down:
        m.sustain_down = pyo.Constraint(
            m.S,
            m.T,
            m.SJ,
            rule=lambda m, s, i, j: (
                m.energy_mwh[s] * m.soc_max[s] - m.e_mwh[s, i + j]
                >= m.eta_c[s] * sum(r.sustain_h * m.r_mw[s, r.name, i] for r in down)
            ),
        )
    m.objective_terms.append(
        sum(
            dt * m.r_usd_per_mw_h[s, r.name, i] * m.r_mw[s, r.name, i]
            for s in enrolled
            for r in scn.reserves
            for i in m.T
        )
    )
