"""Split a fleet into independent components, solve them in parallel, couple capacity.

Sites that share a POI group form one component; components share no constraint except
the fleet capacity minimum Σ_s cap_s ≥ C, which is handled exactly by Lagrangian
relaxation: with a price π ≥ 0 added to the capacity payment each component is solved
alone, V_c(π) = max (objective_c + π·cap_c), and

    L(π) = Σ_c V_c(π) - π·C ≥ OPT   for every π ≥ 0          (weak duality)

Bisection on π finds where Σ_c cap_c(π) crosses C. A schedule with Σ cap ≥ C is feasible
and its objective is a lower bound; when the two bounds meet within the tolerance the
result is proven optimal. Otherwise the "marginal" components (those whose capacity jumps
across the crossing) are re-solved jointly with the residual coupling constraint, and if
the gap still exceeds the tolerance the capacity components are solved as one model.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor

from dispatch.result import REVENUE_KEYS, Result, SolveInfo
from dispatch.scenario import Scenario
from dispatch.solve import (
    ComponentSolution,
    SolveOptions,
    solve_component,
    solver_name,
)
from dispatch.status import SolveReport, SolveStatus

logger = logging.getLogger(__name__)

GAP_TOL = 1e-5
"""Relative gap at which the Lagrangian coupling counts as proven optimal."""


def components(scn: Scenario) -> list[list[str]]:
    """Group site ids into components that share no POI group.

    Parameters
    ----------
    scn : Scenario
        The scenario.

    Returns
    -------
    list of list of str
        Site ids per component, in scenario order.
    """
    parent = {s.id: s.id for s in scn.sites}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for group in scn.fleet.poi_groups if scn.fleet else []:
        root = find(group.sites[0])
        for other in group.sites[1:]:
            parent[find(other)] = root
    out: dict[str, list[str]] = {}
    for site in scn.sites:
        out.setdefault(find(site.id), []).append(site.id)
    return list(out.values())


def _solve_chunk(
    chunk: Scenario,
    comps: list[list[str]],
    options: SolveOptions,
    adder: float,
    deadline_s: float | None,
) -> list[ComponentSolution]:
    deadline = None if deadline_s is None else time.perf_counter() + deadline_s
    return [
        solve_component(
            chunk.subset(ids),
            options,
            capacity_adder_usd_per_mw=adder,
            deadline=deadline,
        )
        for ids in comps
    ]


MapFn = Callable[[Scenario, list[list[str]], float], list[ComponentSolution]]


def _make_map(
    scn: Scenario,
    options: SolveOptions,
    executor: Executor | None,
    deadline: float | None,
) -> MapFn:
    def run(
        _: Scenario, comps: list[list[str]], adder: float
    ) -> list[ComponentSolution]:
        left = None if deadline is None else max(1e-3, deadline - time.perf_counter())
        if executor is None or len(comps) < 2:
            return _solve_chunk(scn, comps, options, adder, left)
        n_chunks = min(len(comps), 4 * max(1, options.workers))
        size = math.ceil(len(comps) / n_chunks)
        chunks = [comps[k : k + size] for k in range(0, len(comps), size)]
        futures = [
            executor.submit(
                _solve_chunk,
                scn.subset([x for ids in ch for x in ids]),
                ch,
                options,
                adder,
                left,
            )
            for ch in chunks
        ]
        return [sol for f in futures for sol in f.result()]

    return run


def _capacity_components(scn: Scenario, comps: Sequence[list[str]]) -> list[int]:
    if scn.capacity is None:
        return []
    enrolled = {
        s.id for s in scn.sites if s.enrolled("capacity") and s.discharge_mw > 0
    }
    return [k for k, ids in enumerate(comps) if enrolled.intersection(ids)]


def solve_decomposed(
    scn: Scenario, options: SolveOptions, t0: float, deadline: float | None
) -> Result:
    """Solve a scenario by components, in parallel, with exact capacity coupling.

    Parameters
    ----------
    scn : Scenario
        A validated scenario that passed the pre-checks.
    options : SolveOptions
        ``workers``/``executor`` choose where components run.
    t0 : float
        ``time.perf_counter()`` at the start of the solve.
    deadline : float or None
        ``time.perf_counter()`` value at which to stop.

    Returns
    -------
    Result
    """
    comps = components(scn)
    executor = options.executor
    own_pool: ProcessPoolExecutor | None = None
    if executor is None and options.workers > 1 and len(comps) > 1:
        own_pool = ProcessPoolExecutor(max_workers=options.workers)
        executor = own_pool
    try:
        return _solve(
            scn,
            options,
            comps,
            _make_map(scn, options, executor, deadline),
            t0,
            deadline,
        )
    finally:
        if own_pool is not None:
            own_pool.shutdown()


def _solve(
    scn: Scenario,
    options: SolveOptions,
    comps: list[list[str]],
    run: MapFn,
    t0: float,
    deadline: float | None,
) -> Result:
    cmin = scn.fleet.capacity_min_mw if scn.fleet and scn.fleet.capacity_min_mw else 0.0
    sols = run(scn, comps, 0.0)
    notes = f"decomposed({len(comps)} components)"
    bad = [s for s in sols if s.status in (SolveStatus.INFEASIBLE, SolveStatus.ERROR)]
    if bad:
        return _finish(scn, sols, comps, t0, notes, math.inf, bad[0])
    total_cap = sum(s.capacity_mw for s in sols)
    gap = 0.0
    if cmin > 0 and total_cap < cmin - 1e-9:
        sols, gap, notes = _couple(
            scn, options, comps, sols, run, cmin, deadline, notes
        )
        bad = [
            s for s in sols if s.status in (SolveStatus.INFEASIBLE, SolveStatus.ERROR)
        ]
        if bad:
            return _finish(scn, sols, comps, t0, notes, math.inf, bad[0])
    return _finish(scn, sols, comps, t0, notes, gap, None)


def _couple(
    scn: Scenario,
    options: SolveOptions,
    comps: list[list[str]],
    base: list[ComponentSolution],
    run: MapFn,
    cmin: float,
    deadline: float | None,
    notes: str,
) -> tuple[list[ComponentSolution], float, str]:
    """Lagrangian price on Σ cap ≥ C, bisection, then marginal repair (see module doc)."""
    cap_k = _capacity_components(scn, comps)
    fixed_cap = sum(base[k].capacity_mw for k in range(len(comps)) if k not in cap_k)
    fixed_obj = sum(base[k].objective_usd for k in range(len(comps)) if k not in cap_k)
    sub = [comps[k] for k in cap_k]
    need = cmin - fixed_cap

    def evaluate(price: float) -> tuple[list[ComponentSolution], float, float]:
        sols = run(scn, sub, price)
        cap = sum(s.capacity_mw for s in sols)
        dual = fixed_obj + sum(s.bound_usd for s in sols) - price * need
        return sols, cap, dual

    lo_price, lo = 0.0, [base[k] for k in cap_k]
    best_dual = math.inf
    hi_price = max(1.0, scn.capacity.price_usd_per_mw if scn.capacity else 1.0)
    hi: list[ComponentSolution] | None = None
    iterations = 0
    while hi is None and hi_price < 1e7:
        sols, cap, dual = evaluate(hi_price)
        iterations += 1
        best_dual = min(best_dual, dual)
        if any(s.status in (SolveStatus.INFEASIBLE, SolveStatus.ERROR) for s in sols):
            return _merge(base, cap_k, sols), math.inf, notes
        if cap >= need - 1e-9:
            hi = sols
        else:
            lo_price, lo = hi_price, sols
            hi_price *= 4.0
    if hi is None:
        return _monolithic(
            scn, options, comps, base, cap_k, deadline, notes + "+monolithic"
        )
    primal = _value(hi, hi_price)
    best = hi

    def gap_now() -> float:
        return (best_dual - fixed_obj - primal) / max(1.0, abs(best_dual))

    repaired = 0
    for phase in range(3):
        for _ in range(8):
            if gap_now() <= GAP_TOL or hi_price - lo_price < 1e-9 * max(1.0, hi_price):
                break
            mid = 0.5 * (lo_price + hi_price)
            sols, cap, dual = evaluate(mid)
            iterations += 1
            best_dual = min(best_dual, dual)
            if cap >= need - 1e-9:
                hi, hi_price = sols, mid
                if _value(sols, mid) > primal:
                    primal, best = _value(sols, mid), sols
            else:
                lo, lo_price = sols, mid
        if gap_now() <= GAP_TOL:
            break
        # Repair: re-solve the components whose capacity jumps at the crossing jointly.
        marginal = [
            j
            for j in range(len(sub))
            if abs(hi[j].capacity_mw - lo[j].capacity_mw) > 1e-9
        ]
        held = sum(hi[j].capacity_mw for j in range(len(sub)) if j not in marginal)
        joint_ids = [x for j in marginal for x in sub[j]]
        joint = solve_component(
            scn.subset(joint_ids),
            options,
            capacity_min_mw=need - held,
            deadline=deadline,
        )
        repaired = len(marginal)
        if joint.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            cand = joint.objective_usd + sum(
                hi[j].objective_usd for j in range(len(sub)) if j not in marginal
            )
            if cand > primal:
                primal = cand
                best = [
                    _split(joint, sub[j]) if j in marginal else hi[j]
                    for j in range(len(sub))
                ]
        logger.debug("capacity coupling phase %s: gap %.3g", phase, gap_now())
        if gap_now() <= GAP_TOL:
            break
    gap = gap_now()
    notes += f"+lagrangian({iterations} price iterations, pi={hi_price:.6g})"
    if repaired:
        notes += f"+marginal({repaired} components jointly)"
    if gap > GAP_TOL:
        return _monolithic(
            scn, options, comps, base, cap_k, deadline, notes + "+monolithic"
        )
    return _merge(base, cap_k, best), max(0.0, gap), notes


def _value(sols: list[ComponentSolution], price: float) -> float:
    del price
    return sum(s.objective_usd for s in sols)


def _split(joint: ComponentSolution, ids: list[str]) -> ComponentSolution:
    """Return the part of a jointly solved solution that belongs to ``ids``."""
    sites = {x: joint.sites[x] for x in ids}
    return ComponentSolution(
        joint.status,
        joint.reason,
        math.nan,
        math.inf,
        sum(s.capacity_mw for s in sites.values()),
        {},
        sites,
        joint.mip_gap,
        joint.path,
        joint.seconds,
    )


def _merge(
    base: list[ComponentSolution], cap_k: list[int], sub: list[ComponentSolution]
) -> list[ComponentSolution]:
    out = list(base)
    for j, k in enumerate(cap_k):
        out[k] = sub[j]
    return out


def _monolithic(
    scn: Scenario,
    options: SolveOptions,
    comps: list[list[str]],
    base: list[ComponentSolution],
    cap_k: list[int],
    deadline: float | None,
    notes: str,
) -> tuple[list[ComponentSolution], float, str]:
    fixed_cap = sum(base[k].capacity_mw for k in range(len(comps)) if k not in cap_k)
    cmin = scn.fleet.capacity_min_mw if scn.fleet and scn.fleet.capacity_min_mw else 0.0
    ids = [x for k in cap_k for x in comps[k]]
    joint = solve_component(
        scn.subset(ids), options, capacity_min_mw=cmin - fixed_cap, deadline=deadline
    )
    if joint.status in (SolveStatus.INFEASIBLE, SolveStatus.ERROR):
        return _merge(base, cap_k, [joint] * len(cap_k)), math.inf, notes
    return (
        _merge(base, cap_k, [_split(joint, comps[k]) for k in cap_k]),
        joint.mip_gap,
        notes,
    )


def _finish(
    scn: Scenario,
    sols: list[ComponentSolution],
    comps: list[list[str]],
    t0: float,
    notes: str,
    gap: float,
    failed: ComponentSolution | None,
) -> Result:
    paths = sorted({s.path for s in sols})
    path = f"{notes}: {', '.join(paths)}"
    seconds = time.perf_counter() - t0
    if failed is not None:
        report = SolveReport(seconds, math.inf, solver_name(), path)
        return Result(
            status=failed.status,
            reason=failed.reason,
            solve=SolveInfo.from_report(report),
        )
    sites = {}
    for sol in sols:
        sites.update(sol.sites)
    revenue = dict.fromkeys(REVENUE_KEYS, 0.0)
    for site in scn.sites:
        for key, value in (sites[site.id].revenue_usd or {}).items():
            revenue[key] += value
    worst_gap = max([gap, *(s.mip_gap for s in sols)])
    status = (
        SolveStatus.OPTIMAL
        if all(s.status == SolveStatus.OPTIMAL for s in sols) and worst_gap <= GAP_TOL
        else SolveStatus.FEASIBLE
    )
    report = SolveReport(seconds, worst_gap, solver_name(), path)
    del comps
    return Result(
        status=status,
        objective_usd=float(sum(revenue.values())),
        revenue_usd=revenue,
        solve=SolveInfo.from_report(report),
        sites={s.id: sites[s.id] for s in scn.sites},
    )
