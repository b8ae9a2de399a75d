"""Solve the canonical Pyomo model with HiGHS through Pyomo's HiGHS interface."""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.common.results import TerminationCondition
from pyomo.contrib.solver.solvers.highs import Highs

from dispatch.extract import site_revenue_usd
from dispatch.model import _val, build_model, schedule_arrays
from dispatch.result import Result, SiteSchedule, SolveInfo, revenue_keys
from dispatch.status import SolveReport, SolveStatus

if TYPE_CHECKING:
    from dispatch.scenario import Scenario
    from dispatch.solve import SolveOptions

logger = logging.getLogger(__name__)


def solve_pyomo(scn: Scenario, options: SolveOptions, t0: float) -> Result:
    """Build the Pyomo model of the whole scenario and solve it exactly.

    Parameters
    ----------
    scn : Scenario
        A validated scenario that passed the pre-checks.
    options : SolveOptions
        ``time_limit_s`` and ``mip_rel_gap`` are used.
    t0 : float
        ``time.perf_counter()`` at the start of the solve.

    Returns
    -------
    Result
        Path ``"pyomo-lp…"`` (same LP-first scheme as the matrix path); no duals (the matrix path reports them).
    """
    from dispatch.solve import solver_name

    m = build_model(scn, binaries=False)
    opt = Highs()
    rounds = 0
    binaries = 0
    while True:
        res = opt.solve(
            m,
            load_solutions=False,
            raise_exception_on_nonoptimal_result=False,
            time_limit=options.time_limit_s,
            rel_gap=options.mip_rel_gap,
            solver_options={"output_flag": False, "threads": options.threads},
        )
        if res.incumbent_objective is None:
            break
        res.solution_loader.load_vars()
        offending = [
            key
            for key in m.u
            if not m.u[key].is_binary()
            and min(_val(m.c_mw[key]), _val(m.d_mw[key])) > options.exclusivity_tol_mw
        ]
        if not offending:
            break
        rounds += 1
        binaries += len(offending)
        for key in offending:
            m.u[key].domain = pyo.Binary
    path = (
        "pyomo-lp"
        if rounds == 0
        else f"pyomo-lp+milp({binaries} binaries, {rounds} rounds)"
    )
    cond = res.termination_condition
    gap = math.inf
    if res.incumbent_objective is not None and res.objective_bound is not None:
        denom = max(1e-10, abs(res.incumbent_objective))
        gap = abs(res.objective_bound - res.incumbent_objective) / denom
    if cond in (
        TerminationCondition.provenInfeasible,
        TerminationCondition.infeasibleOrUnbounded,
    ):
        report = SolveReport(time.perf_counter() - t0, math.inf, solver_name(), path)
        return Result(
            status=SolveStatus.INFEASIBLE,
            reason="infeasible (Pyomo backend gives no constraint group; use the matrix backend)",
            solve=SolveInfo.from_report(report),
        )
    if res.incumbent_objective is None:
        report = SolveReport(time.perf_counter() - t0, math.inf, solver_name(), path)
        return Result(
            status=SolveStatus.ERROR,
            reason=f"HiGHS ended with {cond.name} and no schedule",
            solve=SolveInfo.from_report(report),
        )
    status = (
        SolveStatus.OPTIMAL
        if cond == TerminationCondition.convergenceCriteriaSatisfied and gap <= 1e-5
        else SolveStatus.FEASIBLE
    )
    arrays = schedule_arrays(m)
    sites: dict[str, SiteSchedule] = {}
    revenue = dict.fromkeys(revenue_keys(scn.reserve_names), 0.0)
    for site in scn.sites:
        arr = arrays[site.id]
        c, d = np.clip(arr["c_mw"], 0, None), np.clip(arr["d_mw"], 0, None)
        reserves = {
            r.name: np.clip(arr[f"r_mw:{r.name}"], 0, None) for r in scn.reserves
        }
        grid = None
        if site.btm is not None:
            net = c - d
            for r in scn.reserves:
                net = net + (-r.deploy if r.up else r.deploy) * reserves[r.name]
            grid = list(np.asarray(site.btm.load_mw) + net)
        sched = SiteSchedule(
            charge_mw=list(c),
            discharge_mw=list(d),
            reserves_mw={k: list(v) for k, v in reserves.items()},
            capacity_mw=float(max(0.0, arr["cap_mw"][0])),
            soc=list(arr["e_mwh"] / site.energy_mwh)
            if site.energy_mwh > 0
            else [site.soc_initial] * (scn.intervals + 1),
            grid_import_mw=grid,
        )
        deg = sum(
            scn.delta_h
            * site.degradation_usd_per_mwh[k]
            * max(0.0, _val(m.dk_mw[site.id, k, i]))
            for k in range(len(site.degradation_usd_per_mwh))
            for i in m.T
        )
        rev = site_revenue_usd(scn, site, sched, deg)
        for key, value in rev.items():
            revenue[key] += value
        sites[site.id] = sched.model_copy(update={"revenue_usd": rev})
    report = SolveReport(time.perf_counter() - t0, float(gap), solver_name(), path)
    return Result(
        status=status,
        objective_usd=float(sum(revenue.values())),
        revenue_usd=revenue,
        solve=SolveInfo.from_report(report),
        sites=sites,
    )
