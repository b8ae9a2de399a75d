"""Spinning-reserve block: capacity payments."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyomo.environ as pyo

    from dispatch.scenario import Scenario


def add_spin(m: pyo.ConcreteModel, scn: Scenario) -> None:
    """Add the spinning-reserve payment.

    Equations:

        revenue += Σ_{s,i} Δ·λ^sp[s,i]·sp[s,i]      [$]

    Parameters
    ----------
    m : ConcreteModel
        Model with the common variables.
    scn : Scenario
        The scenario.

    Notes
    -----
    Headroom is in the power block and sustainability in the regulation block's upward
    row (ru + sp). Early return when no site is enrolled.
    """
    del scn
    enrolled = [s for s in m.S if m.site[s].enrolled("spin")]
    if not enrolled:
        return
    m.objective_terms.append(
        sum(
            m.dt_h * m.sp_usd_per_mw_h[s, i] * m.sp_mw[s, i]
            for s in enrolled
            for i in m.T
        )
    )
