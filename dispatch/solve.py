"""Solve dispatch scenarios with HiGHS (the only module that talks to the solver).

The exact path is "LP first": the LP relaxation (exclusivity indicators u continuous) is
solved; when no site charges and discharges in the same interval, that LP optimum is
feasible for the MILP and hence optimal (path ``"lp"``).

Otherwise the sites that charge and discharge at once first get their exclusivity cuts
(:class:`dispatch.lp.ExclusivityCuts`: rows every exclusive schedule satisfies, so the LP
stays a relaxation of the MILP) and the LP is re-solved from its basis; an exclusive
optimum of it is the MILP optimum (path ``"lp+cuts"``).

What is left is *repaired* exactly: a depth-first branch and bound over the
indicators of the offending (site, interval) pairs only, each node an LP re-solved from
the previous basis (dual simplex after a bound change, no presolve, no MIP machinery).
A node whose LP bound is no better than the incumbent is pruned; a node whose schedule
is exclusive everywhere is a feasible MILP point. When the tree is exhausted the
incumbent is the MILP optimum — the LP bounds of the pruned nodes are the proof (path
``"lp+cuts+repair(n nodes, k branched)"``). Only the indicators that LPs actually violate are
ever branched on; the others stay continuous, which is valid because an LP optimum
that is exclusive satisfies the integral constraints whatever u is.

A tree that grows past ``SolveOptions.max_repair_nodes`` hands over to HiGHS's MILP:
the indicators of the offending pairs become binary and the MILP is re-solved, round
after round, until the schedule is exclusive everywhere (path ``"lp+milp(k binaries, r
rounds)"``). Duals come from the LP with the branched indicators fixed at their optimal
values.
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
_DUAL, _PRIMAL = 1, 4
"""HiGHS ``simplex_strategy`` values."""


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


AUTO_POOL_MIN_COMPONENTS = 16
"""Components from which ``workers=None`` starts a process pool."""


@dataclass(frozen=True, slots=True)
class SolveOptions:
    """Options of a dispatch solve.

    Attributes
    ----------
    time_limit_s : float or None
        Wall-clock limit of the whole solve [s]; None for no limit.
    mip_rel_gap : float
        Relative MIP gap at which HiGHS stops (the spec's "optimal" needs ≤ 1e-5).
    workers : int or None
        Worker processes for independent components (1 solves in this process); None
        picks one per CPU when there are at least :data:`AUTO_POOL_MIN_COMPONENTS`
        components, else 1.
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
    joint_capacity_components : int
        Fleet capacity coupling over at most this many components is solved as one model;
        above it, by the Lagrangian price search of :mod:`dispatch.decompose`.
    max_repair_nodes : int
        LP solves the exact repair (branch and bound over the offending intervals'
        indicators, warm-started) may take before the MILP rounds take over; 0 skips
        the repair (and the cuts).
    exclusivity_cuts : bool
        Add the valid exclusivity cuts of :class:`dispatch.lp.ExclusivityCuts` to the
        sites whose LP charges and discharges at once, before branching.
    """

    time_limit_s: float | None = None
    mip_rel_gap: float = 1e-6
    workers: int | None = 1
    executor: Executor | None = field(default=None, compare=False)
    decompose: bool = True
    backend: Literal["matrix", "pyomo"] = "matrix"
    exclusivity_tol_mw: float = 1e-6
    max_lp_rounds: int = 4
    threads: int = 1
    joint_capacity_components: int = 8
    max_repair_nodes: int = 200
    exclusivity_cuts: bool = True


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
    # Measured: the per-site LPs solve ~12 % faster (CPU time) without presolve; the MILP
    # rounds switch it back on.
    h.setOptionValue("presolve", "off")
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


def lp_shape(lp: LpProblem) -> tuple[int, int, int]:
    """Columns, rows and non-zeros: problems of equal shape share their layout."""
    return (len(lp.cost), len(lp.row_lower), int(lp.matrix.nnz))


def _prune_tol(objective: float) -> float:
    """Bound margin under which a node cannot beat the incumbent (round-off only)."""
    return 1e-9 * max(1.0, abs(objective))


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


class ExactSolver:
    """A HiGHS instance holding one assembled problem, re-solvable after price changes.

    Parameters
    ----------
    lp : LpProblem
        The assembled problem (minimization of -objective).
    options : SolveOptions
        Gap, threads, exclusivity tolerance and rounds.

    Notes
    -----
    Re-solves after :meth:`set_capacity_adder` start from the previous basis (warm
    start); indicators made binary in an earlier solve stay binary, which keeps the
    relaxation valid.
    """

    def __init__(self, lp: LpProblem, options: SolveOptions) -> None:
        self.lp = lp
        self.options = options
        self.h = _new_highs(options)
        _pass(self.h, lp)
        self.binaries: set[int] = set()
        self._cap_cols = np.array([s.cap for s in lp.sites], dtype=np.int32)
        self._cap_cost = lp.cost[self._cap_cols].copy()
        self.adder_usd_per_mw = 0.0
        self._cost_changed = False
        self.cut_sites: set[str] = set()
        """Sites whose exclusivity cuts are in the model."""

    def basis(self) -> highspy.HighsBasis:
        """Return the current simplex basis (to warm-start a problem of the same shape)."""
        return self.h.getBasis()

    def warm_start(self, basis: highspy.HighsBasis) -> None:
        """Start the next solve from ``basis``, taken from a problem of the same shape.

        Components built from sites with the same services, segments and horizon
        share their layout; the basis of one is a good start for the next (dual
        simplex then needs about a third of the cold iterations). HiGHS checks the
        basis and falls back to a cold start when it does not fit.
        """
        status = self.h.setBasis(basis)
        if status != highspy.HighsStatus.kOk:
            logger.debug("warm start refused by HiGHS (%s): cold start", status)

    def set_capacity_adder(self, adder_usd_per_mw: float) -> None:
        """Add a Lagrangian price to every site's capacity payment [$/MW]."""
        delta = adder_usd_per_mw - self.adder_usd_per_mw
        if delta == 0.0:
            return
        enrolled = self.lp.col_upper[self._cap_cols] > 0
        cols = self._cap_cols[enrolled]
        new_cost = self._cap_cost[enrolled] - adder_usd_per_mw
        self.h.changeColsCost(len(cols), cols, new_cost)
        self.adder_usd_per_mw = adder_usd_per_mw
        self._cost_changed = True

    def _repair(self, x_root: FloatArray, deadline: float | None) -> RawSolution | None:
        """Exact branch and bound over offending indicators (see module doc).

        Returns None when the node budget runs out (the caller falls back to the MILP);
        the indicator bounds are restored to [0, 1] either way.
        """
        h, lp, options = self.h, self.lp, self.options
        tol = options.exclusivity_tol_mw
        touched: set[int] = set()
        incumbent: tuple[float, FloatArray, FloatArray] | None = None
        root_obj = float(h.getInfo().objective_function_value)
        # A node is the tuple of fixed (column, value) pairs, deepest last.
        stack: list[tuple[tuple[int, float], ...]] = [()]
        all_u = np.concatenate([s.u for s in lp.sites])
        nodes = 0
        try:
            while stack:
                if nodes >= options.max_repair_nodes:
                    return None
                if deadline is not None and time.perf_counter() > deadline:
                    break
                fixed = stack.pop()
                nodes += 1
                if fixed or nodes > 1:
                    self._apply_fixings(fixed, touched)
                    status = _run(h, deadline)
                    if status in (_MS.kInfeasible, _MS.kUnboundedOrInfeasible):
                        continue
                    if status != _MS.kOptimal:
                        return None
                    x = np.asarray(h.getSolution().col_value)
                else:
                    x = x_root
                z = float(h.getInfo().objective_function_value)
                if incumbent is not None and z >= incumbent[0] - _prune_tol(
                    incumbent[0]
                ):
                    continue
                overlap = np.concatenate([np.minimum(x[s.c], x[s.d]) for s in lp.sites])
                hit = overlap > tol
                fixed_cols = {c for c, _v in fixed}
                free = np.array(
                    [int(c) not in fixed_cols for c in all_u[hit]], dtype=bool
                )
                offending = all_u[hit][free]
                if offending.size == 0:
                    duals = np.asarray(h.getSolution().row_dual)
                    incumbent = (z, x.copy(), duals)
                    continue
                worst = overlap[hit][free]
                col = int(offending[int(np.argmax(worst))])
                touched.add(col)
                # Explore first the side the LP leans to (u > 1/2: charging).
                first = 1.0 if x[col] >= 0.5 else 0.0
                stack.append((*fixed, (col, 1.0 - first)))
                stack.append((*fixed, (col, first)))
            if incumbent is None:
                # No exclusive schedule found (or none in time): the MILP decides,
                # and names the infeasible constraint group if there is one.
                return None
            z_best, x_best, duals = incumbent
            gap = 0.0
            status_out = SolveStatus.OPTIMAL
            if stack:
                # Deadline: the open nodes' parents bound the optimum from below.
                status_out = SolveStatus.FEASIBLE
                gap = abs(z_best - root_obj) / max(abs(z_best), 1e-9)
            path = f"lp+repair({nodes} nodes, {len(touched)} branched)"
            return RawSolution(
                status_out,
                x_best,
                duals,
                gap,
                path,
                bound_usd=-(root_obj if stack else z_best),
            )
        finally:
            self._apply_fixings((), touched)

    def _add_cuts(self, off: FloatArray, deadline: float | None) -> RawSolution | None:
        """Add the exclusivity cuts of the sites whose LP burns energy; re-solve.

        Returns None when no site had cuts left to add; else the LP with the cuts
        (``path = "lp+cuts"``), optimal for the MILP when it is exclusive.
        """
        h, lp = self.h, self.lp
        added = 0
        for site in lp.sites:
            if site.cuts is None or site.site_id in self.cut_sites:
                continue
            if not np.isin(site.u, off).any():
                continue
            cuts = site.cuts
            h.addRows(
                len(cuts.lower),
                cuts.lower,
                cuts.upper,
                len(cuts.index),
                cuts.starts[:-1].astype(np.int32),
                cuts.index.astype(np.int32),
                cuts.value,
            )
            lp.row_group.extend([cuts.group] * len(cuts.lower))
            self.cut_sites.add(site.site_id)
            added += 1
        if added == 0:
            return None
        status = _run(h, deadline)
        if status in (_MS.kInfeasible, _MS.kUnboundedOrInfeasible):
            return RawSolution(
                SolveStatus.INFEASIBLE,
                None,
                None,
                math.inf,
                "lp+cuts",
                _iis_reason(h, lp),
            )
        if status != _MS.kOptimal:
            reason = f"HiGHS ended with {status.name} after adding exclusivity cuts"
            return RawSolution(
                SolveStatus.ERROR, None, None, math.inf, "lp+cuts", reason
            )
        sol = h.getSolution()
        return RawSolution(
            SolveStatus.OPTIMAL,
            np.asarray(sol.col_value),
            np.asarray(sol.row_dual),
            0.0,
            "lp+cuts",
            bound_usd=-h.getInfo().objective_function_value,
        )

    def _apply_fixings(
        self, fixed: tuple[tuple[int, float], ...], touched: set[int]
    ) -> None:
        """Fix the node's indicators, free every other one branched on so far."""
        if not touched:
            return
        value = dict(fixed)
        cols = np.fromiter(sorted(touched), dtype=np.int32)
        lower = np.array([value.get(int(c), 0.0) for c in cols])
        upper = np.array([value.get(int(c), 1.0) for c in cols])
        self.h.changeColsBounds(len(cols), cols, lower, upper)

    def solve(self, deadline: float | None) -> RawSolution:
        """Solve exactly, LP first, binaries only where needed (see module doc)."""
        h, lp, options = self.h, self.lp, self.options
        if self.binaries:
            idx = np.fromiter(sorted(self.binaries), dtype=np.int32)
            h.changeColsBounds(len(idx), idx, np.zeros(len(idx)), np.ones(len(idx)))
            h.changeColsIntegrality(len(idx), idx, np.ones(len(idx), dtype=np.uint8))
            h.setOptionValue("presolve", "choose")
        # After a price change the old basis is still primal feasible: primal simplex
        # re-solves it (measured: a quarter less CPU over a Lagrangian price search);
        # the repair's bound changes keep it dual feasible: dual simplex.
        primal = self._cost_changed and not self.binaries
        h.setOptionValue("simplex_strategy", _PRIMAL if primal else _DUAL)
        self._cost_changed = False
        status = _run(h, deadline)
        h.setOptionValue("simplex_strategy", _DUAL)
        if status in (_MS.kInfeasible, _MS.kUnboundedOrInfeasible):
            return RawSolution(
                SolveStatus.INFEASIBLE, None, None, math.inf, "lp", _iis_reason(h, lp)
            )
        if status != _MS.kOptimal:
            reason = f"HiGHS ended with {status.name} and no feasible schedule"
            return RawSolution(SolveStatus.ERROR, None, None, math.inf, "lp", reason)
        sol = h.getSolution()
        x = np.asarray(sol.col_value)
        off = _offending(lp, x, options.exclusivity_tol_mw)
        if len(off) == 0 and not self.binaries:
            bound = -h.getInfo().objective_function_value
            return RawSolution(
                SolveStatus.OPTIMAL,
                x,
                np.asarray(sol.row_dual),
                0.0,
                "lp",
                bound_usd=bound,
            )
        if not self.binaries and options.max_repair_nodes > 0:
            cut = self._add_cuts(off, deadline) if options.exclusivity_cuts else None
            if cut is not None:
                if cut.status == SolveStatus.INFEASIBLE or cut.x is None:
                    return cut
                x = cut.x
                off = _offending(lp, x, options.exclusivity_tol_mw)
                if len(off) == 0:
                    return cut
            repaired = self._repair(x, deadline)
            if repaired is not None:
                if self.cut_sites:
                    repaired.path = repaired.path.replace("lp+", "lp+cuts+", 1)
                return repaired
            # The budget ran out: the MILP rounds start from the root LP again.
            status = _run(h, deadline)
            if status != _MS.kOptimal:
                reason = f"HiGHS ended with {status.name} re-solving the LP"
                return RawSolution(
                    SolveStatus.ERROR, None, None, math.inf, "lp", reason
                )
            x = np.asarray(h.getSolution().col_value)
            off = _offending(lp, x, options.exclusivity_tol_mw)
        rounds = 0
        all_u = np.concatenate([s.u for s in lp.sites])
        info = h.getInfo()
        gap = max(0.0, float(info.mip_gap)) if math.isfinite(info.mip_gap) else 0.0
        bound_usd = (
            -float(info.mip_dual_bound)
            if self.binaries
            else -info.objective_function_value
        )
        status_out = SolveStatus.OPTIMAL
        while len(off):
            rounds += 1
            new = all_u if rounds > options.max_lp_rounds else off
            self.binaries.update(int(k) for k in new)
            h.setOptionValue("presolve", "choose")
            h.changeColsIntegrality(
                len(new), new.astype(np.int32), np.ones(len(new), dtype=np.uint8)
            )
            status = _run(h, deadline)
            info = h.getInfo()
            if status == _MS.kInfeasible:
                return RawSolution(
                    SolveStatus.INFEASIBLE,
                    None,
                    None,
                    math.inf,
                    "milp",
                    _iis_reason(h, lp),
                )
            has_solution = info.primal_solution_status == 2
            if status == _MS.kOptimal:
                gap = (
                    max(0.0, float(info.mip_gap))
                    if math.isfinite(info.mip_gap)
                    else 0.0
                )
            elif (
                status in (_MS.kTimeLimit, _MS.kInterrupt, _MS.kSolutionLimit)
                and has_solution
            ):
                status_out = SolveStatus.FEASIBLE
                gap = float(info.mip_gap)
            else:
                reason = f"HiGHS MILP ended with {status.name} and no feasible schedule"
                return RawSolution(
                    SolveStatus.ERROR, None, None, math.inf, "milp", reason
                )
            x = np.asarray(h.getSolution().col_value)
            bound_usd = -float(info.mip_dual_bound)
            if status_out == SolveStatus.FEASIBLE:
                break
            off = _offending(lp, x, options.exclusivity_tol_mw)
            off = np.asarray(
                [k for k in off if int(k) not in self.binaries], dtype=np.int64
            )
        n_bin = len(self.binaries)
        path = f"lp+milp({n_bin} binaries, {rounds} rounds)"
        if rounds > options.max_lp_rounds:
            path = "milp"
        # Duals: fix the binaries at their values and re-solve the LP.
        idx = np.fromiter(sorted(self.binaries), dtype=np.int64)
        fixed = np.round(x[idx])
        h.changeColsIntegrality(
            len(idx), idx.astype(np.int32), np.zeros(len(idx), dtype=np.uint8)
        )
        h.changeColsBounds(len(idx), idx.astype(np.int32), fixed, fixed)
        h.setOptionValue("presolve", "off")
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
    return ExactSolver(lp, options).solve(deadline)


def summarize(
    scn: Scenario,
    lp: LpProblem,
    raw: RawSolution,
    adder_usd_per_mw: float,
    seconds: float,
) -> ComponentSolution:
    """Objective, bound and capacity of a raw solution, without the per-site schedule."""
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
            seconds,
        )
    del scn
    cap_x = raw.x[[s.cap for s in lp.sites]]
    cap = float(np.clip(cap_x, 0.0, None).sum())
    # lp.cost carries the price it was built with; the solver may have moved it since.
    built = lp.capacity_adder_usd_per_mw
    objective = -float(lp.cost @ raw.x) - lp.offset - built * float(cap_x.sum())
    penalized = objective + adder_usd_per_mw * float(cap_x.sum())
    bound = penalized + abs(penalized) * raw.mip_gap
    if raw.status != SolveStatus.OPTIMAL:
        bound = raw.bound_usd
    return ComponentSolution(
        raw.status,
        raw.reason,
        objective,
        bound,
        cap,
        {},
        {},
        raw.mip_gap,
        raw.path,
        seconds,
    )


def _empty_revenue() -> dict[str, float]:
    return dict.fromkeys(REVENUE_KEYS, 0.0)


def complete(
    scn: Scenario,
    lp: LpProblem,
    raw: RawSolution,
    adder_usd_per_mw: float,
    seconds: float,
) -> ComponentSolution:
    """Extract the full per-site schedule of a raw solution as a :class:`ComponentSolution`."""
    if raw.x is None:
        return summarize(scn, lp, raw, adder_usd_per_mw, seconds)
    sites, revenue, objective = extract_sites(scn, lp, raw.x, raw.row_dual)
    cap = float(sum(s.capacity_mw for s in sites.values()))
    bound = raw.bound_usd
    if raw.status == SolveStatus.OPTIMAL:
        bound = objective + adder_usd_per_mw * cap
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
        seconds,
    )


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
    return complete(scn, lp, raw, capacity_adder_usd_per_mw, time.perf_counter() - t0)


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
        from dispatch.decompose import components, solve_decomposed

        if len(components(scn)) > 1:
            return solve_decomposed(scn, options, t0, deadline)
    sol = solve_component(scn, options, deadline=deadline)
    return to_result(sol, scn, time.perf_counter() - t0)
