"""Build the canonical dispatch problem as a Pyomo model over indexed sets.

Naming convention used throughout ``dispatch/``: ``m`` is the Pyomo model, ``scn`` the
scenario, ``s`` a site id, ``i`` an interval index (0..T-1, or 0..T for stored energy),
``k`` a degradation segment (1 = shallowest … K = deepest) and ``T`` the interval count.

Sets: ``m.S`` sites, ``m.T`` intervals 0..T-1, ``m.T1`` energy points 0..T, ``m.SK`` (site,
segment) pairs, ``m.SB`` behind-the-meter sites. Decision variables common to every block
(c, d [MW], r [MW] per reserve product in ``m.R``, u ∈ {0,1}, e [MWh], cap [MW];
expressions up/down = Σ r by direction, deploy_up/deploy_down = Σ a_k·r) are declared here, gated by their
bounds; each block in :mod:`dispatch.blocks` then adds its constraints, its own variables
and its objective terms (``m.objective_terms``), in a fixed order.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pyomo.environ as pyo

from dispatch.blocks.btm import add_btm
from dispatch.blocks.capacity import add_capacity
from dispatch.blocks.commitments import add_commitments
from dispatch.blocks.degradation import add_degradation
from dispatch.blocks.energy import add_energy
from dispatch.blocks.fleet import add_fleet
from dispatch.blocks.foldback import add_foldback
from dispatch.blocks.power import add_power
from dispatch.blocks.reserves import add_reserves
from dispatch.lp import price_series
from dispatch.scenario import Scenario

logger = logging.getLogger(__name__)


def _series(values: Any, sites: list[str], n: int) -> dict[tuple[str, int], float]:
    """Flatten a site → series mapping into a Pyomo param dict."""
    return {(s, i): float(values[s][i]) for s in sites for i in range(n)}


def build_model(
    scn: Scenario,
    sites: list[str] | None = None,
    *,
    capacity_min_mw: float | None = None,
    binaries: bool = True,
) -> pyo.ConcreteModel:
    """Build the dispatch model of a scenario.

    Parameters
    ----------
    scn : Scenario
        The scenario.
    sites : list of str, optional
        Site ids to include (default: all); POI groups entirely within them are kept.
    capacity_min_mw : float, optional
        Fleet capacity minimum [MW]; default ``scn.fleet.capacity_min_mw``.
    binaries : bool
        Exclusivity indicators u binary (True, the MILP) or relaxed to [0, 1].

    Returns
    -------
    pyomo.environ.ConcreteModel
        A maximization of the spec's objective.
    """
    if sites is not None:
        scn = scn.subset(sites, capacity_min_mw=capacity_min_mw)
    elif capacity_min_mw is not None:
        scn = scn.subset([s.id for s in scn.sites], capacity_min_mw=capacity_min_mw)
    ids = [s.id for s in scn.sites]
    n = scn.intervals
    m = pyo.ConcreteModel(name="bessfleet-dispatch")
    m.scn = scn
    m.S = pyo.Set(initialize=ids, ordered=True)
    m.T = pyo.RangeSet(0, n - 1)
    m.T1 = pyo.RangeSet(0, n)
    m.dt_h = scn.delta_h
    m.objective_terms = []
    site = {s.id: s for s in scn.sites}
    m.site = site

    def par(name: str) -> dict[str, float]:
        return {s: float(getattr(site[s], name)) for s in ids}

    m.p_dis_mw = pyo.Param(m.S, initialize=par("discharge_mw"))
    m.p_ch_mw = pyo.Param(m.S, initialize=par("charge_mw"))
    m.energy_mwh = pyo.Param(m.S, initialize=par("energy_mwh"))
    m.soc_min = pyo.Param(m.S, initialize=par("soc_min"))
    m.soc_max = pyo.Param(m.S, initialize=par("soc_max"))
    m.eta_c = pyo.Param(m.S, initialize=par("eta_charge"))
    m.eta_d = pyo.Param(m.S, initialize=par("eta_discharge"))
    reserves = scn.reserves
    m.R = pyo.Set(initialize=[r.name for r in reserves], ordered=True)
    energy = {s: price_series(scn, site[s].node, "energy") for s in ids}
    m.lam_usd_per_mwh = pyo.Param(m.S, m.T, initialize=_series(energy, ids, n))
    m.r_usd_per_mw_h = pyo.Param(
        m.S,
        m.R,
        m.T,
        initialize={
            (s, r.name, i): float(v)
            for s in ids
            for r in reserves
            for i, v in enumerate(price_series(scn, site[s].node, r.name))
        },
    )

    def on(s: str, service: str) -> bool:
        return site[s].enrolled(service)

    def energy_on(s: str) -> bool:
        return site[s].is_btm or on(s, "energy")

    def commit(s: str, name: str, i: int) -> float:
        com = site[s].commitments
        series = com.award(name) if com is not None else None
        return 0.0 if series is None else float(series[i])

    m.c_mw = pyo.Var(
        m.S, m.T, bounds=lambda m, s, i: (0.0, m.p_ch_mw[s] if energy_on(s) else 0.0)
    )
    m.d_mw = pyo.Var(
        m.S, m.T, bounds=lambda m, s, i: (0.0, m.p_dis_mw[s] if energy_on(s) else 0.0)
    )

    def soft(s: str) -> bool:
        com = site[s].commitments
        return com is not None and com.soft

    def reserve_bounds(
        m: pyo.ConcreteModel, s: str, k: str, i: int
    ) -> tuple[float, float | None]:
        low = commit(s, k, i)
        return (0.0 if soft(s) else low, None if on(s, k) else low)

    m.r_mw = pyo.Var(m.S, m.R, m.T, bounds=reserve_bounds)
    ups = [r.name for r in reserves if r.up]
    downs = [r.name for r in reserves if not r.up]
    deploy = {r.name: r.deploy for r in reserves}
    m.up_mw = pyo.Expression(
        m.S, m.T, rule=lambda m, s, i: sum(m.r_mw[s, k, i] for k in ups)
    )
    m.down_mw = pyo.Expression(
        m.S, m.T, rule=lambda m, s, i: sum(m.r_mw[s, k, i] for k in downs)
    )
    m.deploy_up_mw = pyo.Expression(
        m.S,
        m.T,
        rule=lambda m, s, i: sum(deploy[k] * m.r_mw[s, k, i] for k in ups),
    )
    m.deploy_down_mw = pyo.Expression(
        m.S,
        m.T,
        rule=lambda m, s, i: sum(deploy[k] * m.r_mw[s, k, i] for k in downs),
    )
    m.u = pyo.Var(
        m.S,
        m.T,
        domain=pyo.Binary if binaries else pyo.UnitInterval,
        bounds=lambda m, s, i: (0, 1 if energy_on(s) else 0),
    )
    m.e_mwh = pyo.Var(m.S, m.T1)
    m.cap_mw = pyo.Var(m.S, bounds=(0.0, None))

    # Blocks, in a fixed order; each adds constraints, variables and objective terms.
    add_energy(m, scn)
    add_power(m, scn)
    add_foldback(m, scn)
    add_reserves(m, scn)
    add_capacity(m, scn)
    add_btm(m, scn)
    add_degradation(m, scn)
    add_fleet(m, scn)
    add_commitments(m, scn)
    m.objective = pyo.Objective(expr=sum(m.objective_terms), sense=pyo.maximize)
    return m


def _val(var: Any) -> float:
    """Value of a variable; 0 for one that appears in no constraint (never sent to HiGHS)."""
    value = pyo.value(var, exception=False)
    return 0.0 if value is None else float(value)


def schedule_arrays(m: pyo.ConcreteModel) -> dict[str, dict[str, np.ndarray]]:
    """Read the solved decision series of every site as numpy arrays (MW, MWh)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    n = len(m.T)
    for s in m.S:
        out[s] = {
            name: np.array([_val(getattr(m, name)[s, i]) for i in range(n)])
            for name in ("c_mw", "d_mw")
        }
        for k in m.R:
            out[s][f"r_mw:{k}"] = np.array([_val(m.r_mw[s, k, i]) for i in range(n)])
        out[s]["e_mwh"] = np.array([_val(m.e_mwh[s, i]) for i in range(n + 1)])
        out[s]["cap_mw"] = np.array([_val(m.cap_mw[s])])
    return out
