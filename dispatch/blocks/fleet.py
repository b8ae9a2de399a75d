"""Fleet block: POI group limits and the fleet capacity minimum."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyomo.environ as pyo

if TYPE_CHECKING:
    from dispatch.scenario import Scenario


def add_fleet(m: pyo.ConcreteModel, scn: Scenario) -> None:
    """Add the constraints that couple sites.

    Equations (POI group G, interval i; MW):

        Σ_{s∈G} (d - c + Σ up reserves) ≤ export_mw[G]
        Σ_{s∈G} (c - d + Σ down reserves) ≤ import_mw[G]
        Σ_s cap[s] ≥ capacity_min_mw

    Parameters
    ----------
    m : ConcreteModel
        Model with the common variables.
    scn : Scenario
        The scenario.

    Notes
    -----
    Battery flows only: a behind-the-meter site's load does not count. Early return
    without a ``fleet`` block.
    """
    fleet = scn.fleet
    if fleet is None:
        return
    present = set(m.S)
    groups = [g for g in fleet.poi_groups if set(g.sites) <= present]
    if groups:
        m.G = pyo.RangeSet(0, len(groups) - 1)
        m.poi_export = pyo.Constraint(
            m.G,
            m.T,
            rule=lambda m, g, i: (
                sum(
                    m.d_mw[s, i] - m.c_mw[s, i] + m.up_mw[s, i] for s in groups[g].sites
                )
                <= groups[g].export_mw
            ),
        )
        m.poi_import = pyo.Constraint(
            m.G,
            m.T,
            rule=lambda m, g, i: (
                sum(
                    m.c_mw[s, i] - m.d_mw[s, i] + m.down_mw[s, i]
                    for s in groups[g].sites
                )
                <= groups[g].import_mw
            ),
        )
    if fleet.capacity_min_mw:
        m.fleet_capacity = pyo.Constraint(
            expr=sum(m.cap_mw[s] for s in m.S) >= fleet.capacity_min_mw
        )
