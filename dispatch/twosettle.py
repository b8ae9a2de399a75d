"""Two-settlement problem: a day-ahead position and a real-time schedule sharing AS awards.

A front-of-meter battery sells a day-ahead (DA) position x and its reserves r at DA
prices, then runs a physical schedule p in real time (RT); the difference settles at the
RT price. With both price sets known this is the hindsight upper bound of any strategy
that bids the DA market and re-dispatches in RT under the same physics and rules; with
x, r and p fixed it is the settlement of a strategy in the same accounting, so a
strategy can never score above the bound.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from dispatch.bids import link_blocks, linked_limits
from dispatch.decompose import components
from dispatch.lp import FloatArray, LpProblem, SiteIndex, build_lp, price_series
from dispatch.scenario import Commitments, MarketPrices, Scenario
from dispatch.solve import ExactSolver, RawSolution, SolveOptions
from dispatch.status import SolveStatus

TIE_BREAK_USD_PER_MWH = 1e-4
"""Cost on charge and discharge throughput that only breaks ties [$/MWh]."""
HOLD_PRIORITY_USD_PER_MW_H = 1e4
"""Price that makes a plan's physical copy hold as much of ``held_mw`` as its path
allows before anything else (not part of the value) [$/MW-h]."""


@dataclass(frozen=True, slots=True)
class TwoSettlementPlan:
    """A fixed strategy to settle: DA position, awards and the realized RT net power."""

    da_net_mw: Mapping[str, Sequence[float]]
    """Per site: day-ahead energy position per interval [MW], + = sell."""
    reserves_mw: Mapping[str, Mapping[str, Sequence[float]]]
    """Per site, per reserve product: award per interval [MW] (missing: none)."""
    rt_net_mw: Mapping[str, Sequence[float]]
    """Per site: metered net power per interval without regulation deployment [MW]."""
    held_mw: Mapping[str, Mapping[str, Sequence[float]]] | None = None
    """Per site, per reserve product: what the RT schedule actually held [MW], where
    it gave part of an award up (None: every award held). Awards are paid in full at
    DA; only the held part is deployed and must be covered in RT (the shortfall is
    charged back by the caller's settlement rule)."""


@dataclass(frozen=True, slots=True)
class TwoSettlementValue:
    """Value of a two-settlement solve (all money in USD, net of degradation)."""

    status: str
    """Solve status (``optimal``, ``feasible``, ``infeasible`` or ``error``)."""
    reason: str | None
    """Why no value, when the solve failed."""
    objective_usd: float
    """DA energy + AS + RT deviation - degradation [$]."""
    da_energy_usd: float
    """DA energy position at DA prices [$]."""
    as_usd: float
    """Reserve awards at DA AS prices [$]."""
    rt_deviation_usd: float
    """(metered energy incl. deployed regulation - DA position) at RT prices [$]."""
    degradation_usd: float
    """Degradation cost of the physical schedule (≥ 0) [$]."""
    rt_net_mw: Mapping[str, list[float]]
    """Per site: the physical net power of the solution [MW]."""
    da_net_mw: Mapping[str, list[float]]
    """Per site: the DA position of the solution [MW]."""
    reserves_mw: Mapping[str, Mapping[str, list[float]]] = field(default_factory=dict)
    """Per site, per reserve product of the scenario: awards [MW]."""
    as_by_product_usd: Mapping[str, float] = field(default_factory=dict)
    """``as_usd`` per reserve product [$]."""
    bound_usd: float = math.nan
    """Proven upper bound on the optimum (the solver's dual bound) [$]; for a
    fixed plan, its value."""
    held_mw: Mapping[str, Mapping[str, list[float]]] = field(default_factory=dict)
    """Per site, per reserve product: what the physical schedule held and deployed
    [MW] (= ``reserves_mw`` unless a plan gave awards up)."""


def _shift(index: SiteIndex, cols: int, rows: int) -> SiteIndex:
    def move(value: object, by: int) -> object:
        if value is None:
            return None
        if isinstance(value, np.ndarray):
            return value + by
        if isinstance(value, dict):
            return {k: move(v, by) for k, v in value.items()}
        if isinstance(value, int):
            return value + by
        return value

    updates = {
        f.name: move(getattr(index, f.name), cols)
        for f in dataclasses.fields(index)
        if f.name not in ("site_id", "balance_rows", "throughput_row")
    }
    updates["balance_rows"] = index.balance_rows + rows
    updates["throughput_row"] = move(index.throughput_row, rows)
    return dataclasses.replace(index, **updates)  # type: ignore[arg-type]


def _with_prices(
    scn: Scenario,
    energy: Mapping[str, FloatArray],
    *,
    keep_as: bool,
    zero_degradation: bool,
    commitments: Mapping[str, Commitments] | None,
) -> Scenario:
    markets = {}
    for node, prices in scn.markets.items():
        data: dict[str, object] = (
            prices.model_dump(exclude_none=True) if keep_as else {}
        )
        data["energy"] = [float(v) for v in energy[node]]
        markets[node] = MarketPrices.model_validate(data)
    sites = []
    for site in scn.sites:
        update_site: dict[str, object] = {}
        if zero_degradation:
            update_site["degradation_usd_per_mwh"] = [0.0]
        if commitments is not None:
            update_site["commitments"] = commitments[site.id]
            update_site["services"] = ["energy"]
        sites.append(site.model_copy(update=update_site))
    return scn.model_copy(update={"markets": markets, "sites": sites})


def _stack(da: LpProblem, rt: LpProblem) -> tuple[LpProblem, int, int]:
    n_col, n_row = len(da.cost), len(da.row_lower)
    matrix = sp.block_diag([da.matrix, rt.matrix], format="csc")
    lp = LpProblem(
        cost=np.concatenate([da.cost, rt.cost]),
        col_lower=np.concatenate([da.col_lower, rt.col_lower]),
        col_upper=np.concatenate([da.col_upper, rt.col_upper]),
        row_lower=np.concatenate([da.row_lower, rt.row_lower]),
        row_upper=np.concatenate([da.row_upper, rt.row_upper]),
        matrix=matrix,
        offset=da.offset + rt.offset,
        sites=[*da.sites, *[_shift(s, n_col, n_row) for s in rt.sites]],
        row_group=[*(f"day-ahead {g}" for g in da.row_group), *rt.row_group],
    )
    return lp, n_col, n_row


def _append_rows(
    lp: LpProblem,
    rows: list[tuple[list[int], list[float]]],
    group: str,
    bounds: tuple[Sequence[float], Sequence[float]] | None = None,
) -> LpProblem:
    """Append rows lower <= Σ coef·x[col] <= upper (``bounds``; default: = 0)."""
    if not rows:
        return lp
    n_col = lp.matrix.shape[1]
    r_idx, c_idx, vals = [], [], []
    for k, (cols, coefs) in enumerate(rows):
        r_idx += [k] * len(cols)
        c_idx += cols
        vals += coefs
    extra = sp.csc_matrix((vals, (r_idx, c_idx)), shape=(len(rows), n_col))
    lower, upper = bounds or (np.zeros(len(rows)), np.zeros(len(rows)))
    lp.matrix = sp.vstack([lp.matrix, extra], format="csc")
    lp.row_lower = np.concatenate([lp.row_lower, np.asarray(lower, dtype=float)])
    lp.row_upper = np.concatenate([lp.row_upper, np.asarray(upper, dtype=float)])
    lp.row_group = [*lp.row_group, *([group] * len(rows))]
    return lp


def _status(raw: RawSolution) -> str:
    """Return the status a result reports: optimal, feasible or else error."""
    if raw.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
        return str(raw.status)
    return str(SolveStatus.ERROR)


def _plan_commitments(
    plan: TwoSettlementPlan,
    net: Mapping[str, Sequence[float]],
    reserves: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
) -> dict[str, Commitments]:
    reserves = plan.reserves_mw if reserves is None else reserves
    return {
        sid: Commitments(
            reserves_mw={
                p: [float(v) for v in series]
                for p, series in reserves.get(sid, {}).items()
            },
            net_mw=[float(v) for v in net[sid]],
        )
        for sid in net
    }


def _subset(scn: Scenario, ids: Sequence[str]) -> Scenario:
    sites = [s for s in scn.sites if s.id in ids]
    fleet = scn.fleet
    if fleet is not None:
        groups = [g for g in fleet.poi_groups if set(g.sites) <= set(ids)]
        fleet = fleet.model_copy(update={"poi_groups": groups})
    return scn.model_copy(update={"sites": sites, "fleet": fleet})


def _sum(parts: Sequence[TwoSettlementValue]) -> TwoSettlementValue:
    bad = [p for p in parts if p.status not in ("optimal", "feasible")]
    if bad:
        return bad[0]
    return TwoSettlementValue(
        status="feasible" if any(p.status == "feasible" for p in parts) else "optimal",
        reason=None,
        objective_usd=math.fsum(p.objective_usd for p in parts),
        da_energy_usd=math.fsum(p.da_energy_usd for p in parts),
        as_usd=math.fsum(p.as_usd for p in parts),
        rt_deviation_usd=math.fsum(p.rt_deviation_usd for p in parts),
        degradation_usd=math.fsum(p.degradation_usd for p in parts),
        rt_net_mw={k: v for p in parts for k, v in p.rt_net_mw.items()},
        da_net_mw={k: v for p in parts for k, v in p.da_net_mw.items()},
        reserves_mw={k: v for p in parts for k, v in p.reserves_mw.items()},
        as_by_product_usd={
            name: math.fsum(p.as_by_product_usd.get(name, 0.0) for p in parts)
            for name in dict.fromkeys(k for p in parts for k in p.as_by_product_usd)
        },
        bound_usd=math.fsum(p.bound_usd for p in parts),
        held_mw={k: v for p in parts for k, v in p.held_mw.items()},
    )


def two_settlement(
    scn: Scenario,
    rt_energy_usd_per_mwh: Mapping[str, Sequence[float]],
    *,
    plan: TwoSettlementPlan | None = None,
    options: SolveOptions | None = None,
    relax: bool = False,
) -> TwoSettlementValue:
    """Solve (or settle a fixed ``plan`` in) the two-settlement problem of ``scn``.

    Parameters
    ----------
    scn : Scenario
        Front-of-meter sites at the actual DA prices: energy λ_DA [$/MWh] and reserves
        π [$/MW-h] per node; its physics and rules apply to both the DA position and
        the RT schedule.
    rt_energy_usd_per_mwh : mapping
        Per node: RT energy price λ_RT per interval [$/MWh]; NaN where unknown.
    plan : TwoSettlementPlan, optional
        A strategy to settle; None solves for the best one (hindsight).
    options : SolveOptions, optional
        Gap and limits (default: gap 1e-7).
    relax : bool
        Solve the LP relaxation (charge and discharge may overlap): a valid but looser
        upper bound (0.1-0.7 % on ERCOT days measured), 20-60x faster than the MILP.

    Returns
    -------
    TwoSettlementValue

    Notes
    -----
    Per site s and interval i, with x the DA position (d-c of the DA copy), p the RT
    schedule (d-c of the physical copy), r the reserves shared by both copies::

        max Σ Δ·[λ_DA·x + π·r + λ_RT·(p + a_up·ru - a_dn·rd - x)] - degradation(p)
        s.t. (x, r) and (p, r) each feasible in the model of spec/dispatch-model.md,
             p = x in intervals where λ_RT is unknown (nothing settles in RT there).

    The DA copy carries no degradation (it is a financial position); where λ_RT is
    unknown it counts as 0, so such intervals are excluded from the RT figure.

    A ``plan`` with ``held_mw`` gave part of its awards up in RT: the DA copy sells r,
    the physical copy holds and deploys at most ``held_mw`` — all of it where its
    path allows, else as much as it allows (``TwoSettlementValue.held_mw``). π·r is
    paid in full here; the caller charges back what was not held (at ≥ π, so the
    strategy's net value is that of the feasible point (x, held, p) and stays below
    the bound).
    """
    options = options or SolveOptions(mip_rel_gap=1e-7)
    groups = components(scn)
    if len(groups) > 1:
        parts = [
            two_settlement(
                _subset(scn, ids),
                rt_energy_usd_per_mwh,
                plan=plan,
                options=options,
                relax=relax,
            )
            for ids in groups
        ]
        return _sum(parts)
    n = scn.intervals
    dt = scn.delta_h
    rt_raw = {
        node: np.asarray(rt_energy_usd_per_mwh[node], dtype=float)
        for node in scn.markets
    }
    known = {node: np.isfinite(v) for node, v in rt_raw.items()}
    rt0 = {node: np.where(known[node], v, 0.0) for node, v in rt_raw.items()}
    da = {node: price_series(scn, node, "energy") for node in scn.markets}
    spread = {node: da[node] - rt0[node] for node in scn.markets}
    da_com = rt_com = None
    if plan is not None:
        da_com = _plan_commitments(plan, plan.da_net_mw)
        rt_com = _plan_commitments(plan, plan.rt_net_mw, plan.held_mw)
        if plan.held_mw is not None:
            # The metered path holds what it can of held_mw (a rule outside the
            # model judged it); the rest is not held, not deployed.
            rt_com = {
                sid: com.model_copy(
                    update={"shortfall_usd_per_mw_h": HOLD_PRIORITY_USD_PER_MW_H}
                )
                for sid, com in rt_com.items()
            }
    scn_da = _with_prices(
        scn, spread, keep_as=True, zero_degradation=True, commitments=da_com
    )
    scn_rt = _with_prices(
        scn, rt0, keep_as=False, zero_degradation=False, commitments=rt_com
    )
    lp_da, lp_rt = build_lp(scn_da), build_lp(scn_rt)
    for site, idx in zip(scn.sites, lp_da.sites, strict=True):
        # The DA copy sells reserves at π only; deployment energy settles in RT.
        for name, reserve_cols in idx.reserves.items():
            lp_da.cost[reserve_cols] = -dt * price_series(scn, site.node, name)
    lp, _, _ = _stack(lp_da, lp_rt)
    true_cost = lp.cost.copy()
    if plan is not None:
        for idx in lp.sites:
            # Tie-break: the same position without needless throughput (no solve
            # rounds for degenerate charge-and-discharge); the value uses the true
            # cost.
            lp.cost[idx.c] += TIE_BREAK_USD_PER_MWH * dt
            lp.cost[idx.d] += TIE_BREAK_USD_PER_MWH * dt
    links: list[tuple[list[int], list[float]]] = []
    n_sites = len(scn.sites)
    # With a plan both copies' reserves are fixed; a plan that gave awards up holds
    # less in RT than it sold at DA, so its copies are not linked.
    link_reserves = plan is None or plan.held_mw is None
    for k, site in enumerate(scn.sites):
        d_idx, r_idx = lp.sites[k], lp.sites[n_sites + k]
        for name in scn.reserve_names if link_reserves else ():
            da_cols, rt_cols = d_idx.reserves[name], r_idx.reserves[name]
            links += [
                ([int(da_cols[i]), int(rt_cols[i])], [1.0, -1.0]) for i in range(n)
            ]
        for i in np.flatnonzero(~known[site.node]):
            cols = [int(r_idx.d[i]), int(r_idx.c[i]), int(d_idx.d[i]), int(d_idx.c[i])]
            links.append((cols, [1.0, -1.0, -1.0, 1.0]))
    lp = _append_rows(lp, links, "two-settlement links")
    if relax:
        options = dataclasses.replace(options, exclusivity_tol_mw=math.inf)
    solver = ExactSolver(lp, options)
    if plan is None and not relax:
        # Measured: the relaxation of the DA copy charges and discharges at once to
        # free reserve headroom; starting with every indicator binary solves ~5x
        # faster than the rounds that find them.
        solver.binaries = {int(k) for s in lp.sites for k in s.u}
    raw = solver.solve(None)
    empty: dict[str, list[float]] = {}
    if raw.x is None:
        return TwoSettlementValue(
            str(raw.status), raw.reason, math.nan, 0.0, 0.0, 0.0, 0.0, empty, empty
        )
    x = raw.x
    objective = -float(true_cost @ x) - lp.offset
    if plan is not None and plan.held_mw is not None:
        # The hold priority is not money: add back what it charged.
        for k, site in enumerate(scn.sites):
            r_idx = lp.sites[n_sites + k]
            for name, series in plan.held_mw.get(site.id, {}).items():
                if name not in r_idx.reserves:
                    continue
                gap = np.asarray(series, dtype=float) - x[r_idx.reserves[name]]
                objective += (
                    dt * HOLD_PRIORITY_USD_PER_MW_H * float(np.maximum(gap, 0.0).sum())
                )
    da_usd = as_usd = rt_usd = 0.0
    rt_net: dict[str, list[float]] = {}
    da_net: dict[str, list[float]] = {}
    reserves: dict[str, dict[str, list[float]]] = {}
    held_out: dict[str, dict[str, list[float]]] = {}
    by_product = dict.fromkeys(scn.reserve_names, 0.0)
    for k, site in enumerate(scn.sites):
        d_idx, r_idx = lp.sites[k], lp.sites[n_sites + k]
        pos = x[d_idx.d] - x[d_idx.c]
        phys = x[r_idx.d] - x[r_idx.c]
        sold = {res.name: x[d_idx.reserves[res.name]] for res in scn.reserves}
        held = {res.name: x[r_idx.reserves[res.name]] for res in scn.reserves}
        node = site.node
        da_usd += dt * float(np.dot(da[node], pos))
        for p, v in sold.items():
            paid = dt * float(np.dot(price_series(scn, node, p), v))
            by_product[p] += paid
            as_usd += paid
        metered = phys.copy()
        for res in scn.reserves:
            metered += (res.deploy if res.up else -res.deploy) * held[res.name]
        rt_usd += dt * float(np.dot(rt0[node], metered - pos))
        rt_net[site.id] = [float(v) for v in phys]
        reserves[site.id] = {p: [float(v) for v in v_] for p, v_ in sold.items()}
        held_out[site.id] = {p: [float(v) for v in v_] for p, v_ in held.items()}
        da_net[site.id] = [float(v) for v in pos]
    degradation = da_usd + as_usd + rt_usd - objective
    return TwoSettlementValue(
        status=_status(raw),
        reason=raw.reason,
        objective_usd=objective,
        da_energy_usd=da_usd,
        as_usd=as_usd,
        rt_deviation_usd=rt_usd,
        degradation_usd=max(0.0, degradation),
        rt_net_mw=rt_net,
        da_net_mw=da_net,
        reserves_mw=reserves,
        as_by_product_usd=by_product,
        held_mw=held_out,
        bound_usd=(
            max(objective, raw.bound_usd)
            if plan is None and math.isfinite(raw.bound_usd)
            else objective
        ),
    )


@dataclass(frozen=True, slots=True)
class StochasticPlan:
    """A day-ahead position and awards planned against real-time price scenarios."""

    status: str
    """Solve status (``optimal``, ``feasible``, ``infeasible`` or ``error``)."""
    reason: str | None
    """Why no plan, when the solve failed."""
    da_net_mw: Mapping[str, list[float]]
    """Per site: DA energy position per interval [MW] (the expected RT schedule)."""
    reserves_mw: Mapping[str, Mapping[str, list[float]]]
    """Per site, per reserve product: awards per interval [MW]."""
    expected_usd: float = math.nan
    """The plan's expected value over the scenarios [$] (anticipative: each scenario's
    schedule knows its whole path, so an optimistic figure)."""


def stochastic_plan(
    scn: Scenario,
    rt_scenarios: Mapping[str, Sequence[Sequence[float]]],
    *,
    options: SolveOptions | None = None,
) -> StochasticPlan:
    """Plan the DA position and awards against equally likely RT price paths.

    Parameters
    ----------
    scn : Scenario
        Front-of-meter sites at the DA price forecast: energy λ [$/MWh] and reserves
        π [$/MW-h] per node.
    rt_scenarios : mapping
        Per node: S real-time price paths, each one value per interval [$/MWh]
        (finite). Every node has the same S.
    options : SolveOptions, optional
        Gap and limits.

    Returns
    -------
    StochasticPlan

    Notes
    -----
    The reserves r and the DA position x are first-stage; each scenario s has its own
    physical schedule p_s sharing r (same physics and rules as
    :func:`two_settlement`). The DA position is the expected schedule::

        max Σ Δ·[λ·x + π·r] + (1/S)·Σ_s Σ Δ·λ_s·(p_s + a_up·ru - a_dn·rd - x)
            - (1/S)·Σ_s degradation(p_s)
        s.t. (x, r) and each (p_s, r) feasible, x = (1/S)·Σ_s p_s.

    Holding headroom back from the reserves pays where the scenarios' RT prices move
    away from λ; with S = 1 and that path equal to λ it is the price-taker plan. The
    charge/discharge exclusivity is exact for x and relaxed for the p_s (a planning
    model: only x and r are used).
    """
    options = options or SolveOptions(mip_rel_gap=1e-4)
    counts = {len(v) for v in rt_scenarios.values()}
    if len(counts) != 1 or 0 in counts:
        msg = f"rt_scenarios: every node needs the same number (>0) of paths, got {counts}"
        raise ValueError(msg)
    n_s = counts.pop()
    n = scn.intervals
    dt = scn.delta_h
    w = 1.0 / n_s
    paths = {
        node: np.asarray(rt_scenarios[node], dtype=float).reshape(n_s, n)
        for node in scn.markets
    }
    for node, values in paths.items():
        if not np.isfinite(values).all():
            msg = f"rt_scenarios[{node!r}]: every price must be finite"
            raise ValueError(msg)
    da = {node: price_series(scn, node, "energy") for node in scn.markets}
    mean_rt = {node: paths[node].mean(axis=0) for node in scn.markets}
    scn_da = _with_prices(
        scn,
        {node: da[node] - mean_rt[node] for node in scn.markets},
        keep_as=True,
        zero_degradation=True,
        commitments=None,
    )
    lp_da = build_lp(scn_da)
    for site, idx in zip(scn.sites, lp_da.sites, strict=True):
        for name, reserve_cols in idx.reserves.items():
            lp_da.cost[reserve_cols] = -dt * price_series(scn, site.node, name)
    lp = lp_da
    rt_sites: list[list[SiteIndex]] = []
    for s in range(n_s):
        scn_rt = _with_prices(
            scn,
            {node: paths[node][s] for node in scn.markets},
            keep_as=False,
            zero_degradation=False,
            commitments=None,
        )
        lp_rt = build_lp(scn_rt)
        lp_rt.cost = lp_rt.cost * w
        lp_rt.offset = lp_rt.offset * w
        lp, _, _ = _stack(lp, lp_rt)
        rt_sites.append(list(lp.sites[len(scn.sites) :]))
        # Only the DA copy's indicators are kept exact (see Notes).
        lp.sites = lp.sites[: len(scn.sites)]
    links: list[tuple[list[int], list[float]]] = []
    for k, d_idx in enumerate(lp.sites):
        for s in range(n_s):
            r_idx = rt_sites[s][k]
            for name in scn.reserve_names:
                da_cols, rt_cols = d_idx.reserves[name], r_idx.reserves[name]
                links += [
                    ([int(da_cols[i]), int(rt_cols[i])], [1.0, -1.0]) for i in range(n)
                ]
        for i in range(n):
            cols = [int(d_idx.d[i]), int(d_idx.c[i])]
            coefs = [1.0, -1.0]
            for s in range(n_s):
                r_idx = rt_sites[s][k]
                cols += [int(r_idx.d[i]), int(r_idx.c[i])]
                coefs += [-w, w]
            links.append((cols, coefs))
    lp = _append_rows(lp, links, "stochastic links")
    solver = ExactSolver(lp, options)
    raw = solver.solve(None)
    if raw.x is None:
        return StochasticPlan(str(raw.status), raw.reason, {}, {})
    x = raw.x
    da_net: dict[str, list[float]] = {}
    reserves: dict[str, dict[str, list[float]]] = {}
    for k, site in enumerate(scn.sites):
        d_idx = lp.sites[k]
        da_net[site.id] = [float(v) for v in x[d_idx.d] - x[d_idx.c]]
        reserves[site.id] = {
            res.name: [float(v) for v in x[d_idx.reserves[res.name]]]
            for res in scn.reserves
        }
    return StochasticPlan(
        status=_status(raw),
        reason=raw.reason,
        da_net_mw=da_net,
        reserves_mw=reserves,
        expected_usd=-float(lp.cost @ x) - lp.offset,
    )


def clear_linked_offers(
    scn: Scenario,
    plan: TwoSettlementPlan,
    *,
    options: SolveOptions | None = None,
) -> TwoSettlementPlan | str:
    """Clear a plan's reserve offers as linked offers at the scenario's actual prices.

    The plan's upward products of one site and hour form one offer block of their
    total MW, offered to every upward product the site is enrolled in (ERCOT's
    linked ``REGUP-RRS-ECRS-ONNS`` offer, spec/markets.md B2): the market awards the
    block to the mix of upward products that pays most at its clearing prices; each
    MW goes to at most one product, and no more than the block is awarded (less only
    where no mix of the products can carry all of it with the plan's energy and
    downward awards). A block is offered to its planned products and to the products
    of no longer sustain duration and no larger deployed fraction
    (:func:`dispatch.bids.link_blocks`; the export writes the same blocks), so neither
    the energy cover nor the deployment energy ever exceeds the plan's. Downward products are offered
    alone and awarded as planned; the DA energy position is the plan's.
    Every award mix must stay deliverable — the model of ``scn`` (power headroom,
    energy cover for each product's duration, qualification caps, POI groups) decides
    which mixes are allowed, as the offer's per-product MW limits would.

    Parameters
    ----------
    scn : Scenario
        The sites at the actual DA prices (energy and reserves).
    plan : TwoSettlementPlan
        The DA position ``da_net_mw`` and the planned reserves ``reserves_mw``.
    options : SolveOptions, optional
        Gap and limits.

    Returns
    -------
    TwoSettlementPlan or str
        The plan with the cleared reserves (``rt_net_mw`` = the DA position), or the
        reason the block could not be cleared.
    """
    options = options or SolveOptions(mip_rel_gap=1e-6)
    n = scn.intervals
    # The DA position is the plan's (it already keeps the scenario's fixed net power).
    fixed = [
        site.model_copy(
            update={
                "commitments": Commitments(
                    net_mw=[float(v) for v in plan.da_net_mw[site.id]]
                )
            }
        )
        for site in scn.sites
    ]
    lp = build_lp(scn.model_copy(update={"sites": fixed}))
    ups = [r for r in scn.reserves if r.up]
    deploy = {r.name: r.deploy for r in ups}
    downs = [r.name for r in scn.reserves if not r.up]
    rows: list[tuple[list[int], list[float]]] = []
    lo: list[float] = []
    hi: list[float] = []
    for site, idx in zip(scn.sites, lp.sites, strict=True):
        held = plan.reserves_mw.get(site.id, {})
        mine = [r for r in ups if r.name in idx.reserves]
        names = tuple(r.name for r in mine)
        for i in range(n) if names else ():
            # The linked blocks the export writes for this hour: every award mix they
            # can carry (Hall's condition on each set of products) is allowed, no
            # other, so no mix needs more stored energy than the plan set aside.
            offered = {
                r.name: (float(held[r.name][i]), 0.0)
                for r in mine
                if r.name in held and held[r.name][i] > 0
            }
            blocks = link_blocks(offered, mine, names, deploy)
            for group, limit in linked_limits(blocks, names):
                rows.append(
                    ([int(idx.reserves[p][i]) for p in group], [1.0] * len(group))
                )
                lo.append(0.0)
                hi.append(limit)
        for name in downs:
            if name not in idx.reserves:
                continue
            total = np.asarray(held.get(name, np.zeros(n)), dtype=float)
            for i in range(n):
                # A downward offer alone: awarded as planned.
                rows.append(([int(idx.reserves[name][i])], [1.0]))
                lo.append(float(total[i]))
                hi.append(float(total[i]))
    lp = _append_rows(lp, rows, "linked offers", (lo, hi))
    raw = ExactSolver(lp, options).solve(None)
    if raw.x is None or raw.status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
        return f"linked offers {raw.status}: {raw.reason}"
    reserves = {
        site.id: {
            res.name: [float(v) for v in raw.x[idx.reserves[res.name]]]
            for res in scn.reserves
            if res.name in idx.reserves
        }
        for site, idx in zip(scn.sites, lp.sites, strict=True)
    }
    return TwoSettlementPlan(
        da_net_mw=plan.da_net_mw, reserves_mw=reserves, rt_net_mw=plan.da_net_mw
    )
