"""Commitments block: reserve awards that may be missed at the market's charge-back."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyomo.environ as pyo

if TYPE_CHECKING:
    from dispatch.scenario import Scenario


def add_commitments(m: pyo.ConcreteModel, scn: Scenario) -> None:
    """Add the soft reserve awards of sites whose commitments carry a shortfall price.

    Equations (per site s with ``commitments.shortfall_usd_per_mw_h`` = π, product k,
    interval i with an award A > 0):
        r_k[s,i] + short_k[s,i] ≥ A_k[s,i],   0 ≤ short_k[s,i] ≤ A_k[s,i]   [MW]
        revenue -= Σ Δ·π·short_k[s,i]                                        [$]

    Parameters
    ----------
    m : ConcreteModel
        Model with the common variables (the reserve lower bounds are 0 for these
        sites, see :func:`dispatch.model.build_model`).
    scn : Scenario
        The scenario.

    Notes
    -----
    Hard commitments (π unset) are lower bounds on the reserve variables instead.
    Early return when no site has soft commitments.
    """
    keys: list[tuple[str, str, int]] = []
    award: dict[tuple[str, str, int], float] = {}
    price: dict[str, float] = {}
    for site in scn.sites:
        com = site.commitments
        if com is None or com.shortfall_usd_per_mw_h is None:
            continue
        price[site.id] = com.shortfall_usd_per_mw_h
        for var, series in com.reserves_mw.items():
            for i, value in enumerate(series):
                if value > 0:
                    keys.append((site.id, var, i))
                    award[(site.id, var, i)] = float(value)
    if not keys:
        return
    m.SHORT = pyo.Set(initialize=keys, dimen=3)
    m.short_mw = pyo.Var(m.SHORT, bounds=lambda m, s, v, i: (0.0, award[(s, v, i)]))
    m.commit_soft = pyo.Constraint(
        m.SHORT,
        rule=lambda m, s, v, i: (
            m.r_mw[s, v, i] + m.short_mw[s, v, i] >= award[(s, v, i)]
        ),
    )
    m.objective_terms.append(
        -sum(m.dt_h * price[s] * m.short_mw[s, v, i] for s, v, i in keys)
    )
