"""Solve dispatch scenarios with HiGHS (the only module that talks to the solver).

The exact path is "LP first": the LP relaxation (exclusivity indicators u continuous) is
solved; when no site charges and discharges in the same interval, that LP optimum is
feasible for the MILP and hence optimal (path ``"lp"``). Otherwise the indicators of the
offending (site, interval) pairs become binary and the MILP is re-solved, round after
round, until the schedule is exclusive everywhere (path ``"lp+milp(k binaries, r
rounds)"``); the relaxation of the remaining indicators stays valid, so the final
exclusive optimum is the MILP optimum. Duals of a MILP come from the LP with the binaries
fixed at their optimal values.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Literal

import highspy
import numpy as np

from dispatch.extract import extract_sites
from dispatch.lp import FloatArray, LpProblem, build_lp
from dispatch.precheck import precheck
from dispatch.result import REVENUE_KEYS, Result, SiteSchedule, SolveInfo
from dispatch.scenario import Scenario
from dispatch.status import SolveReport, SolveStatus

logger = logging.getLogger(__name__)

_MS = highspy.HighsModelStatus


@functools.cache
def _first_highs() -> str:
    # HiGHS prints its banner on stdout when the first instance of a process is made;
    # keep stdout clean for the CLI by making that instance with fd 1 pointed elsewhere.
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            version = str(highspy.Highs().version())  # type: ignore[no-untyped-call]
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    return version


def solver_name() -> str:
    """Name and version of the solver, e.g. ``"highs 1.16.0"``."""
    return f"highs {_first_highs()}"


@dataclass(frozen=True, slots=True)
class SolveOptions:
    """Options of a dispatch solve.

    Attributes
    ----------
    time_limit_s : float or None
        Wall-clock limit of the whole solve [s]; None for no limit.
    mip_rel_gap : float
        Relative MIP gap at which HiGHS stops (the spec's "optimal" needs ≤ 1e-5).
    workers : int
        Worker processes for independent components (1 solves in this process).
    executor : concurrent.futures.Executor or None
        An executor to run component solves on (e.g. ``dask_client.get_executor()``);
        overrides ``workers``.
    decompose : bool
        Solve independent components separately (False: one monolithic model).
    backend : {"matrix", "pyomo"}
        ``"matrix"`` assembles the problem with numpy (fast path); ``"pyomo"`` builds the
        canonical Pyomo model of :mod:`dispatch.model` and solves it as one MILP.
    exclusivity_tol_mw : float
        min(c, d) above which an interval counts as charging and discharging at once [MW].
    max_lp_rounds : int
        Rounds of adding binaries before all indicators are made binary.
    threads : int
        HiGHS threads per solve.
    """

    time_limit_s: float | None = None
    mip_rel_gap: float = 1e-6
    workers: int = 1
    executor: Executor | None = field(default=None, compare=False)
    decompose: bool = True
    backend: Literal["matrix", "pyomo"] = "matrix"
    exclusivity_tol_mw: float = 1e-6
    max_lp_rounds: int = 4
    threads: int = 1


@dataclass(slots=True)
class RawSolution:
    """Outcome of one HiGHS solve of an assembled problem."""

    status: SolveStatus
    x: FloatArray | None
    row_dual: FloatArray | None
    mip_gap: float
    path: str
    reason: str | None = None
    bound_usd: float = math.inf
    """Upper bound on the (maximized) objective of the assembled problem [$]."""


@dataclass(slots=True)
class ComponentSolution:
    """Solution of a set of sites solved together (picklable, for worker processes)."""

    status: SolveStatus
    reason: str | None
    objective_usd: float
    bound_usd: float
    """Upper bound on the objective, Lagrangian capacity payment included [$]."""
    capacity_mw: float
    revenue_usd: dict[str, float]
    sites: dict[str, SiteSchedule]
    mip_gap: float
    path: str
    seconds: float


def _new_highs(options: SolveOptions) -> highspy.Highs:
    _first_highs()
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", options.threads)
    h.setOptionValue("mip_rel_gap", options.mip_rel_gap)
    return h


def _pass(h: highspy.Highs, lp: LpProblem) -> None:
    model = highspy.HighsLp()
    model.num_col_ = len(lp.cost)
    model.num_row_ = len(lp.row_lower)
    model.col_cost_ = lp.cost
    model.col_lower_ = lp.col_lower
    model.col_upper_ = lp.col_upper
    model.row_lower_ = lp.row_lower
    model.row_upper_ = lp.row_upper
    model.offset_ = lp.offset
    mat = lp.matrix
    model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    model.a_matrix_.start_ = mat.indptr
    model.a_matrix_.index_ = mat.indices
    model.a_matrix_.value_ = mat.data
    model.a_matrix_.num_col_ = model.num_col_
    model.a_matrix_.num_row_ = model.num_row_
    h.passModel(model)


def _run(h: highspy.Highs, deadline: float | None) -> highspy.HighsModelStatus:
    if deadline is not None:
        h.setOptionValue("time_limit", max(1e-3, deadline - time.perf_counter()))
    h.run()
    return h.getModelStatus()


def _offending(lp: LpProblem, x: FloatArray, tol: float) -> FloatArray:
    cols = [np.flatnonzero(np.minimum(x[s.c], x[s.d]) > tol) for s in lp.sites]
    found = [s.u[k] for s, k in zip(lp.sites, cols, strict=True) if len(k)]
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _iis_reason(h: highspy.Highs, lp: LpProblem) -> str:
    n_col = len(lp.cost)
    h.changeColsIntegrality(
        n_col, np.arange(n_col, dtype=np.int32), np.zeros(n_col, dtype=np.uint8)
    )
    try:
        _, iis = h.getIis()
        rows = list(iis.row_index_)
    except Exception:  # HiGHS IIS is best effort; the status stays infeasible
        logger.exception("HiGHS IIS failed")
        rows = []
    groups = sorted({lp.row_group[r] for r in rows})
    if not groups:
        return "infeasible: HiGHS proved infeasibility but found no irreducible subset"
    return "infeasible constraint group(s): " + "; ".join(groups)


def solve_problem(
    lp: LpProblem, options: SolveOptions, deadline: float | None
) -> RawSolution:
    """Solve an assembled problem exactly, LP first, binaries only where needed.

    Parameters
    ----------
    lp : LpProblem
        The assembled problem (minimization of -objective).
    options : SolveOptions
        Gap, threads, exclusivity tolerance and rounds.
    deadline : float or None
        ``time.perf_counter()`` value at which to stop.

    Returns
    -------
    RawSolution
        Status, primal values, row duals, gap, path and objective bound.
    """
    h = _new_highs(options)
    _pass(h, lp)
    status = _run(h, deadline)
    if status in (_MS.kInfeasible, _MS.kUnboundedOrInfeasible):
        return RawSolution(
            SolveStatus.INFEASIBLE, None, None, math.inf, "lp", _iis_reason(h, lp)
        )
    if status != _MS.kOptimal:
        return RawSolution(
            SolveStatus.ERROR,
            None,
            None,
            math.inf,
            "lp",
            f"HiGHS LP ended with {status.name}",
        )
    sol = h.getSolution()
    x = np.asarray(sol.col_value)
    off = _offending(lp, x, options.exclusivity_tol_mw)
    if len(off) == 0:
        bound = -h.getInfo().objective_function_value
        return RawSolution(
            SolveStatus.OPTIMAL, x, np.asarray(sol.row_dual), 0.0, "lp", bound_usd=bound
        )
    binaries: set[int] = set()
    rounds = 0
    all_u = np.concatenate([s.u for s in lp.sites])
    gap = 0.0
    status_out = SolveStatus.OPTIMAL
    while len(off):
        rounds += 1
        new = all_u if rounds > options.max_lp_rounds else off
        binaries.update(int(k) for k in new)
        h.changeColsIntegrality(
            len(new), new.astype(np.int32), np.ones(len(new), dtype=np.uint8)
        )
        status = _run(h, deadline)
        info = h.getInfo()
        if status == _MS.kInfeasible:
            return RawSolution(
                SolveStatus.INFEASIBLE, None, None, math.inf, "milp", _iis_reason(h, lp)
            )
        has_solution = info.primal_solution_status == 2
        if status == _MS.kOptimal:
            gap = max(0.0, float(info.mip_gap)) if math.isfinite(info.mip_gap) else 0.0
        elif (
            status in (_MS.kTimeLimit, _MS.kInterrupt, _MS.kSolutionLimit)
            and has_solution
        ):
            status_out = SolveStatus.FEASIBLE
            gap = float(info.mip_gap)
        else:
            reason = f"HiGHS MILP ended with {status.name} and no feasible schedule"
            return RawSolution(SolveStatus.ERROR, None, None, math.inf, "milp", reason)
        x = np.asarray(h.getSolution().col_value)
        bound_usd = -float(info.mip_dual_bound)
        if status_out == SolveStatus.FEASIBLE:
            break
        off = _offending(lp, x, options.exclusivity_tol_mw)
        off = np.asarray([k for k in off if int(k) not in binaries], dtype=np.int64)
    path = f"lp+milp({len(binaries)} binaries, {rounds} rounds)"
    if rounds > options.max_lp_rounds:
        path = "milp"
    # Duals: fix the binaries at their values and re-solve the LP.
    idx = np.fromiter(sorted(binaries), dtype=np.int64)
    fixed = np.round(x[idx])
    h.changeColsIntegrality(
        len(idx), idx.astype(np.int32), np.zeros(len(idx), dtype=np.uint8)
    )
    h.changeColsBounds(len(idx), idx.astype(np.int32), fixed, fixed)
    row_dual: FloatArray | None = None
    if _run(h, None) == _MS.kOptimal:
        sol = h.getSolution()
        x_lp = np.asarray(sol.col_value)
        if len(_offending(lp, x_lp, options.exclusivity_tol_mw)) == 0:
            x = x_lp
            row_dual = np.asarray(sol.row_dual)
    if status_out == SolveStatus.FEASIBLE:
        bound_usd = max(bound_usd, float(lp.cost @ -x) - lp.offset)
    return RawSolution(status_out, x, row_dual, gap, path, bound_usd=bound_usd)


def _empty_revenue() -> dict[str, float]:
    return dict.fromkeys(REVENUE_KEYS, 0.0)


def solve_component(
    scn: Scenario,
    options: SolveOptions,
    *,
    capacity_min_mw: float | None = None,
    capacity_adder_usd_per_mw: float = 0.0,
    deadline: float | None = None,
) -> ComponentSolution:
    """Solve all sites of ``scn`` together as one model.

    Parameters
    ----------
    scn : Scenario
        The scenario (or a component of one).
    options : SolveOptions
        Solve options.
    capacity_min_mw : float, optional
        Fleet capacity minimum for these sites [MW]; default from ``scn.fleet``.
    capacity_adder_usd_per_mw : float
        Lagrangian price added to the capacity payment [$/MW]; the returned objective
        excludes it, the bound includes it.
    deadline : float, optional
        ``time.perf_counter()`` value at which to stop.

    Returns
    -------
    ComponentSolution
    """
    t0 = time.perf_counter()
    lp = build_lp(
        scn,
        capacity_min_mw=capacity_min_mw,
        capacity_adder_usd_per_mw=capacity_adder_usd_per_mw,
    )
    raw = solve_problem(lp, options, deadline)
    if raw.x is None:
        return ComponentSolution(
            raw.status,
            raw.reason,
            math.nan,
            math.inf,
            0.0,
            _empty_revenue(),
            {},
            raw.mip_gap,
            raw.path,
            time.perf_counter() - t0,
        )
    sites, revenue, objective = extract_sites(scn, lp, raw.x, raw.row_dual)
    cap = float(sum(s.capacity_mw for s in sites.values()))
    bound = raw.bound_usd
    if raw.status == SolveStatus.OPTIMAL:
        bound = objective + capacity_adder_usd_per_mw * cap
        bound += abs(bound) * raw.mip_gap
    return ComponentSolution(
        raw.status,
        raw.reason,
        objective,
        bound,
        cap,
        revenue,
        sites,
        raw.mip_gap,
        raw.path,
        time.perf_counter() - t0,
    )


def to_result(
    sol: ComponentSolution, scn: Scenario, seconds: float, path: str | None = None
) -> Result:
    """Wrap a component solution as a :class:`Result` in the scenario's site order."""
    report = SolveReport(
        seconds=seconds,
        mip_gap=sol.mip_gap,
        solver=solver_name(),
        path=path or sol.path,
    )
    if sol.status in (SolveStatus.INFEASIBLE, SolveStatus.ERROR):
        return Result(
            status=sol.status, reason=sol.reason, solve=SolveInfo.from_report(report)
        )
    sites = {s.id: sol.sites[s.id] for s in scn.sites}
    return Result(
        status=sol.status,
        reason=sol.reason,
        objective_usd=sol.objective_usd,
        revenue_usd=sol.revenue_usd,
        solve=SolveInfo.from_report(report),
        sites=sites,
    )


def solve(scn: Scenario, options: SolveOptions | None = None) -> Result:
    """Solve a dispatch scenario to its proven optimum (or best schedule in the time limit).

    Parameters
    ----------
    scn : Scenario
        A validated scenario.
    options : SolveOptions, optional
        Solve options (defaults: exact, one process, decomposition on).

    Returns
    -------
    Result
        ``status`` optimal/feasible with the schedule, or infeasible/error with a
        ``reason`` naming the site (or fleet constraint) and the constraint group.
    """
    options = options or SolveOptions()
    t0 = time.perf_counter()
    deadline = None if options.time_limit_s is None else t0 + options.time_limit_s
    reason = precheck(scn)
    if reason is not None:
        report = SolveReport(
            time.perf_counter() - t0, math.inf, solver_name(), "precheck"
        )
        return Result(
            status=SolveStatus.INFEASIBLE,
            reason=reason,
            solve=SolveInfo.from_report(report),
        )
    if options.backend == "pyomo":
        from dispatch.pyomo_solve import solve_pyomo

        return solve_pyomo(scn, options, t0)
    if options.decompose:
        from dispatch.decompose import solve_decomposed

        return solve_decomposed(scn, options, t0, deadline)
    sol = solve_component(scn, options, deadline=deadline)
    return to_result(sol, scn, time.perf_counter() - t0)
