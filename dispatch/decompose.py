"""Split a fleet into independent components, solve them in parallel, couple capacity.

Sites that share a POI group form one component; components share no constraint except
the fleet capacity minimum Σ_s cap_s ≥ C, which is handled exactly by Lagrangian
relaxation: with a price π ≥ 0 added to the capacity payment each component is solved
alone, V_c(π) = max (objective_c + π·cap_c), and

    L(π) = Σ_c V_c(π) - π·C ≥ OPT   for every π ≥ 0          (weak duality)

Bisection on π finds where Σ_c cap_c(π) crosses C. A schedule with Σ cap ≥ C is feasible
and its objective is a lower bound; when the two bounds meet within :data:`GAP_TOL` the
result is proven optimal. Otherwise the "marginal" components (those whose capacity jumps
across the crossing) are re-solved jointly with the residual coupling constraint, and if
the gap still exceeds the tolerance the capacity components are solved as one model.

A component's first (cold) LP starts from the optimal basis of the previous component
of the same layout and node in the same process (warm start across components).

Where components run: in this process (``workers=1``), in long-lived worker processes
that keep each component's HiGHS instance so that every price is a warm re-solve
(``workers=N``), or on any ``concurrent.futures.Executor`` (``executor=``, e.g.
``dask.distributed.Client.get_executor()``), where each call is a cold solve.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import multiprocessing as mp
import os
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import highspy

from dispatch.lp import LpProblem, build_lp
from dispatch.result import Result, SolveInfo, revenue_keys
from dispatch.solve import (
    AUTO_POOL_MIN_COMPONENTS,
    ComponentSolution,
    ExactSolver,
    SolveOptions,
    complete,
    lp_shape,
    solve_component,
    solver_name,
    summarize,
)
from dispatch.status import SolveReport, SolveStatus

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from dispatch.scenario import Scenario

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


@dataclass(slots=True)
class _Entry:
    scn: Scenario
    lp: LpProblem
    solver: ExactSolver


class _Shard:
    """Components held in one process, each with its own re-solvable HiGHS instance."""

    def __init__(
        self, scn: Scenario, comps: list[list[str]], options: SolveOptions
    ) -> None:
        self.scn = scn
        self.comps = comps
        self.options = options
        self.entries: dict[int, _Entry] = {}
        self.bases: dict[tuple[str, tuple[int, int, int]], highspy.HighsBasis] = {}
        """Last optimal basis per (node, problem shape): the warm start of the next
        component of the same layout in this process."""

    def evaluate(
        self, which: list[int], price: float, full: bool, left_s: float | None
    ) -> list[ComponentSolution]:
        deadline = None if left_s is None else time.perf_counter() + left_s
        out = []
        for j in which:
            t0 = time.perf_counter()
            entry = self.entries.get(j)
            key: tuple[str, tuple[int, int, int]] | None = None
            if entry is None:
                sub = self.scn.subset(self.comps[j])
                lp = build_lp(sub)
                entry = _Entry(sub, lp, ExactSolver(lp, self.options))
                self.entries[j] = entry
                key = (sub.sites[0].node, lp_shape(lp))
                if key in self.bases:
                    entry.solver.warm_start(self.bases[key])
            entry.solver.set_capacity_adder(price)
            raw = entry.solver.solve(deadline)
            if key is not None and raw.x is not None:
                self.bases[key] = entry.solver.basis()
            seconds = time.perf_counter() - t0
            if full:
                out.append(complete(entry.scn, entry.lp, raw, price, seconds))
            else:
                out.append(summarize(entry.scn, entry.lp, raw, price, seconds))
        return out

    def keep_only(self, keep: set[int]) -> None:
        for j in [j for j in self.entries if j not in keep]:
            del self.entries[j]


class _Pool(Protocol):
    def evaluate(
        self, which: list[int], price: float, full: bool, left_s: float | None
    ) -> list[ComponentSolution]: ...

    def keep_only(self, keep: set[int]) -> None: ...

    def close(self) -> None: ...


class _LocalPool:
    """All components in this process."""

    def __init__(
        self, scn: Scenario, comps: list[list[str]], options: SolveOptions
    ) -> None:
        self.shard = _Shard(scn, comps, options)

    def evaluate(
        self, which: list[int], price: float, full: bool, left_s: float | None
    ) -> list[ComponentSolution]:
        return self.shard.evaluate(which, price, full, left_s)

    def keep_only(self, keep: set[int]) -> None:
        self.shard.keep_only(keep)

    def close(self) -> None:
        self.shard.entries.clear()


def _actor(
    conn: Connection, scn: Scenario, comps: list[list[str]], options: SolveOptions
) -> None:
    shard = _Shard(scn, comps, options)
    while True:
        msg = conn.recv()
        if msg is None:
            break
        kind, args = msg
        try:
            if kind == "keep":
                shard.keep_only(args)
                conn.send(("ok", None))
            else:
                conn.send(("ok", shard.evaluate(*args)))
        except Exception as exc:  # reported to the parent, which raises it
            conn.send(("err", f"{type(exc).__name__}: {exc}"))
    conn.close()


class _ProcessPool:
    """Long-lived worker processes, each owning a fixed share of the components."""

    def __init__(
        self,
        scn: Scenario,
        comps: list[list[str]],
        options: SolveOptions,
        workers: int,
    ) -> None:
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        ctx: Any = mp.get_context(method)
        # Balance the number of sites per worker, biggest components first.
        load = [0] * workers
        shares: list[list[int]] = [[] for _ in range(workers)]
        for k in sorted(range(len(comps)), key=lambda k: -len(comps[k])):
            w = load.index(min(load))
            load[w] += len(comps[k])
            shares[w].append(k)
        self.where: list[tuple[int, int]] = [(0, 0)] * len(comps)
        for w, share in enumerate(shares):
            for j, k in enumerate(share):
                self.where[k] = (w, j)
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for share in shares:
            parent, child = ctx.Pipe()
            mine = [comps[k] for k in share]
            sub = scn.subset([x for ids in mine for x in ids]) if mine else scn
            proc = ctx.Process(
                target=_actor, args=(child, sub, mine, options), daemon=True
            )
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def _ask(self, per_worker: dict[int, tuple[str, Any]]) -> dict[int, Any]:
        for w, msg in per_worker.items():
            self.conns[w].send(msg)
        out = {}
        for w in per_worker:
            status, payload = self.conns[w].recv()
            if status != "ok":
                error = f"dispatch worker {w} failed: {payload}"
                raise RuntimeError(error)
            out[w] = payload
        return out

    def evaluate(
        self, which: list[int], price: float, full: bool, left_s: float | None
    ) -> list[ComponentSolution]:
        asks: dict[int, list[int]] = {}
        for k in which:
            w, j = self.where[k]
            asks.setdefault(w, []).append(j)
        replies = self._ask(
            {w: ("eval", (js, price, full, left_s)) for w, js in asks.items()}
        )
        cursor = dict.fromkeys(asks, 0)
        out = []
        for k in which:
            w, _ = self.where[k]
            out.append(replies[w][cursor[w]])
            cursor[w] += 1
        return out

    def keep_only(self, keep: set[int]) -> None:
        per: dict[int, set[int]] = {w: set() for w in range(len(self.conns))}
        for k in keep:
            w, j = self.where[k]
            per[w].add(j)
        self._ask({w: ("keep", js) for w, js in per.items()})

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)
                conn.close()
            except OSError:
                logger.debug("dispatch worker pipe already closed")
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()


def _cold_chunk(
    scn: Scenario,
    comps: list[list[str]],
    options: SolveOptions,
    price: float,
    full: bool,
    left_s: float | None,
) -> list[ComponentSolution]:
    return _Shard(scn, comps, options).evaluate(
        list(range(len(comps))), price, full, left_s
    )


class _ExecutorPool:
    """Any ``concurrent.futures.Executor``; each evaluation is a cold solve."""

    def __init__(
        self,
        scn: Scenario,
        comps: list[list[str]],
        options: SolveOptions,
        executor: Executor,
    ) -> None:
        # The executor itself is not sent to the workers: a bare Dask or
        # process-pool executor does not pickle.
        self.scn, self.comps, self.options, self.executor = (
            scn,
            comps,
            dataclasses.replace(options, executor=None),
            executor,
        )

    def evaluate(
        self, which: list[int], price: float, full: bool, left_s: float | None
    ) -> list[ComponentSolution]:
        n_chunks = min(
            len(which), 4 * max(1, self.options.workers or os.cpu_count() or 1)
        )
        size = max(1, math.ceil(len(which) / max(1, n_chunks)))
        futures = []
        for start in range(0, len(which), size):
            part = [self.comps[k] for k in which[start : start + size]]
            sub = self.scn.subset([x for ids in part for x in ids])
            futures.append(
                self.executor.submit(
                    _cold_chunk, sub, part, self.options, price, full, left_s
                )
            )
        return [sol for f in futures for sol in f.result()]

    def keep_only(self, keep: set[int]) -> None:
        del keep

    def close(self) -> None:
        return None


def _at_price(sol: ComponentSolution, price: float) -> ComponentSolution:
    """Return the same solution with its Lagrangian bound at ``price``."""
    value = sol.objective_usd + price * sol.capacity_mw
    return dataclasses.replace(sol, bound_usd=value + abs(value) * sol.mip_gap)


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
    workers = options.workers
    if workers is None:
        workers = (os.cpu_count() or 1) if len(comps) >= AUTO_POOL_MIN_COMPONENTS else 1
    pool: _Pool
    if options.executor is not None:
        pool = _ExecutorPool(scn, comps, options, options.executor)
    elif workers > 1 and len(comps) > 1:
        pool = _ProcessPool(scn, comps, options, min(workers, len(comps)))
    else:
        pool = _LocalPool(scn, comps, options)
    try:
        return _Coupler(scn, options, comps, pool, deadline).run(t0)
    finally:
        pool.close()


class _Coupler:
    """The decomposed solve: base pass, then Lagrangian coupling when C binds."""

    def __init__(
        self,
        scn: Scenario,
        options: SolveOptions,
        comps: list[list[str]],
        pool: _Pool,
        deadline: float | None,
    ) -> None:
        self.scn, self.options, self.comps, self.pool = scn, options, comps, pool
        self.deadline = deadline
        self.notes = f"decomposed({len(comps)} components)"

    def _left(self) -> float | None:
        return (
            None
            if self.deadline is None
            else max(1e-3, self.deadline - time.perf_counter())
        )

    def run(self, t0: float) -> Result:
        scn, comps = self.scn, self.comps
        cmin = (
            scn.fleet.capacity_min_mw
            if scn.fleet and scn.fleet.capacity_min_mw
            else 0.0
        )
        sols = self.pool.evaluate(list(range(len(comps))), 0.0, True, self._left())
        bad = [
            s for s in sols if s.status in (SolveStatus.INFEASIBLE, SolveStatus.ERROR)
        ]
        if bad:
            return self._finish(sols, t0, math.inf, bad[0])
        gap = 0.0
        if cmin > 0 and sum(s.capacity_mw for s in sols) < cmin - 1e-9:
            sols, coupled_gap = self._couple(sols, cmin)
            gap = coupled_gap or 0.0
            bad = [
                s
                for s in sols
                if s.status in (SolveStatus.INFEASIBLE, SolveStatus.ERROR)
            ]
            if bad:
                return self._finish(sols, t0, math.inf, bad[0])
        return self._finish(sols, t0, gap, None)

    def _joint(self, which: list[int], need: float) -> ComponentSolution:
        ids = [x for k in which for x in self.comps[k]]
        return solve_component(
            self.scn.subset(ids),
            self.options,
            capacity_min_mw=need,
            deadline=self.deadline,
        )

    def _couple(
        self, base: list[ComponentSolution], cmin: float
    ) -> tuple[list[ComponentSolution], float | None]:
        scn, comps = self.scn, self.comps
        enrolled = {
            s.id
            for s in scn.sites
            if scn.capacity is not None and s.enrolled("capacity")
        }
        cap_k = [k for k, ids in enumerate(comps) if enrolled.intersection(ids)]
        others = [k for k in range(len(comps)) if k not in cap_k]
        fixed_cap = sum(base[k].capacity_mw for k in others)
        need = cmin - fixed_cap
        self.pool.keep_only(set(cap_k))
        if len(cap_k) <= self.options.joint_capacity_components:
            self.notes += f"+joint({len(cap_k)} capacity components)"
            return self._replace(base, cap_k, self._joint(cap_k, need)), None

        best_dual = math.inf
        iterations = 0

        def evaluate(
            price: float, same: list[ComponentSolution] | None = None
        ) -> tuple[list[ComponentSolution], float]:
            """Solve the capacity components at ``price``.

            With ``same`` (the solutions at one end of the bracket), components whose
            capacity is equal at both ends are not re-solved: their solution is optimal for
            every price in between (V_c is linear there), with bound objective + π·cap.
            """
            nonlocal best_dual, iterations
            iterations += 1
            if same is None:
                sols = self.pool.evaluate(cap_k, price, False, self._left())
            else:
                active = marginal()
                fresh = self.pool.evaluate(
                    [cap_k[j] for j in active], price, False, self._left()
                )
                sols = [_at_price(sol, price) for sol in same]
                for j, sol in zip(active, fresh, strict=True):
                    sols[j] = sol
            best_dual = min(best_dual, sum(s.bound_usd for s in sols) - price * need)
            return sols, sum(s.capacity_mw for s in sols)

        lo_price, lo = 0.0, [base[k] for k in cap_k]
        lo_cap = sum(s.capacity_mw for s in lo)
        hi_price = max(1.0, scn.capacity.price_usd_per_mw if scn.capacity else 1.0)
        hi: list[ComponentSolution] | None = None
        while hi is None:
            sols, cap = evaluate(hi_price)
            if any(
                s.status in (SolveStatus.INFEASIBLE, SolveStatus.ERROR) for s in sols
            ):
                return self._monolithic(base, cap_k, need, others)
            if cap >= need - 1e-9:
                hi = sols
            elif hi_price > 1e7:
                return self._monolithic(base, cap_k, need, others)
            else:
                # Next try: the secant of Σ cap(π) through the last two prices, 20 %
                # beyond, between 1.25x and 4x the price: an overshoot far past the
                # crossing costs a long warm re-solve there and another back.
                step = 4.0 * hi_price
                if cap > lo_cap + 1e-9:
                    guess = hi_price + (need - cap) * (hi_price - lo_price) / (
                        cap - lo_cap
                    )
                    step = min(step, max(1.25 * hi_price, 1.2 * guess))
                lo_price, lo, lo_cap = hi_price, sols, cap
                hi_price = step
        best_price = hi_price
        primal = sum(s.objective_usd for s in hi)

        def gap_now() -> float:
            return (best_dual - primal) / max(1.0, abs(best_dual))

        def marginal() -> list[int]:
            assert hi is not None
            return [
                j
                for j in range(len(cap_k))
                if abs(hi[j].capacity_mw - lo[j].capacity_mw) > 1e-9
            ]

        # Illinois regula falsi on f(π) = Σ cap(π) - C, a non-decreasing step function;
        # bisection whenever the secant step would hug one end of the bracket.
        f_lo = sum(s.capacity_mw for s in lo) - need
        f_hi = sum(s.capacity_mw for s in hi) - need
        side = 0
        for _ in range(24):
            if gap_now() <= GAP_TOL or len(marginal()) <= max(3, len(cap_k) // 20):
                break
            width = hi_price - lo_price
            step = f_hi * width / (f_hi - f_lo) if f_hi > f_lo else 0.5 * width
            mid = hi_price - step
            if not lo_price + 1e-3 * width <= mid <= hi_price - 1e-3 * width:
                mid = lo_price + 0.5 * width
            sols, cap = evaluate(mid, same=hi)
            if cap >= need - 1e-9:
                hi, hi_price, f_hi = sols, mid, cap - need
                if side == 1:
                    f_lo *= 0.5
                side = 1
                if sum(s.objective_usd for s in sols) > primal:
                    primal, best_price = sum(s.objective_usd for s in sols), mid
            else:
                lo, lo_price, f_lo = sols, mid, cap - need
                if side == -1:
                    f_hi *= 0.5
                side = -1
        self.notes += f"+lagrangian({iterations} prices, pi={hi_price:.6g})"
        gap = gap_now()
        if gap <= GAP_TOL:
            full = self.pool.evaluate(cap_k, best_price, True, self._left())
            value = sum(s.objective_usd for s in full)
            if (
                sum(s.capacity_mw for s in full) >= need - 1e-9
                and (best_dual - value) / max(1.0, abs(best_dual)) <= GAP_TOL
            ):
                return self._merge(base, cap_k, full), gap
        # Repair: the marginal components solved jointly, the others held at π_hi.
        marg = marginal()
        keep = [j for j in range(len(cap_k)) if j not in marg]
        full_keep = self.pool.evaluate(
            [cap_k[j] for j in keep], hi_price, True, self._left()
        )
        held = sum(s.capacity_mw for s in full_keep)
        joint = self._joint([cap_k[j] for j in marg], need - held)
        self.notes += f"+marginal({len(marg)} components jointly)"
        if joint.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            value = joint.objective_usd + sum(s.objective_usd for s in full_keep)
            gap = (best_dual - value) / max(1.0, abs(best_dual))
            if gap <= GAP_TOL:
                merged = self._merge(base, [cap_k[j] for j in keep], full_keep)
                return self._replace(merged, [cap_k[j] for j in marg], joint), max(
                    0.0, gap
                )
        logger.info(
            "capacity coupling gap %.3g above tolerance: monolithic fallback", gap
        )
        return self._monolithic(base, cap_k, need, others)

    def _monolithic(
        self,
        base: list[ComponentSolution],
        cap_k: list[int],
        need: float,
        others: list[int],
    ) -> tuple[list[ComponentSolution], float]:
        del others
        self.notes += "+monolithic"
        joint = self._joint(cap_k, need)
        return self._replace(base, cap_k, joint), joint.mip_gap

    @staticmethod
    def _merge(
        base: list[ComponentSolution], which: list[int], sols: list[ComponentSolution]
    ) -> list[ComponentSolution]:
        out = list(base)
        for k, sol in zip(which, sols, strict=True):
            out[k] = sol
        return out

    def _replace(
        self, base: list[ComponentSolution], which: list[int], joint: ComponentSolution
    ) -> list[ComponentSolution]:
        out = list(base)
        for k in which:
            sites = {x: joint.sites[x] for x in self.comps[k]} if joint.sites else {}
            out[k] = ComponentSolution(
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
        return out

    def _finish(
        self,
        sols: list[ComponentSolution],
        t0: float,
        gap: float | None,
        failed: ComponentSolution | None,
    ) -> Result:
        paths = sorted({s.path for s in sols})
        path = f"{self.notes}: {', '.join(paths)}"
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
        revenue = dict.fromkeys(revenue_keys(self.scn.reserve_names), 0.0)
        for site in self.scn.sites:
            for key, value in (sites[site.id].revenue_usd or {}).items():
                revenue[key] += value
        worst_gap = max([gap or 0.0, *(s.mip_gap for s in sols)])
        status = (
            SolveStatus.OPTIMAL
            if all(s.status == SolveStatus.OPTIMAL for s in sols)
            and worst_gap <= GAP_TOL
            else SolveStatus.FEASIBLE
        )
        report = SolveReport(seconds, worst_gap, solver_name(), path)
        return Result(
            status=status,
            objective_usd=float(sum(revenue.values())),
            revenue_usd=revenue,
            solve=SolveInfo.from_report(report),
            sites={s.id: sites[s.id] for s in self.scn.sites},
        )
