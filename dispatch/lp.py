"""Assemble the canonical dispatch problem as a sparse matrix for HiGHS (the fast path).

This is the same formulation as the Pyomo model of :mod:`dispatch.model` (tests check that
both give the same optimum on every example and on random scenarios), written directly as
numpy/scipy.sparse arrays so that a 96-interval site builds in about a millisecond.

The problem is a minimization of -objective. Per site s the columns are c, d, one per reserve
product (reg_up, reg_down, spin, then the scenario's ``products``) [MW], u (exclusivity indicator, continuous in [0, 1] unless made integral), e (T+1) [MWh],
cap [MW], z (new-peak excess, behind-the-meter only) [MW] and, when K > 1 degradation
segments, e_k (K x (T+1)) [MWh], c_k, d_k (K x T) [MW].
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from dispatch.scenario import Scenario, Site

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
INF = float("inf")


@dataclass(frozen=True, slots=True)
class ExclusivityCuts:
    """Rows valid for every exclusive schedule of one site, added when the LP burns.

    For each interval i (a_up, a_dn terms only where the deployment enters the
    balance)::

        Δ·η_c·c_i + e_i - Δ·a_up·ru_i/η_d <= E·soc_max     (charging needs room)
        Δ·d_i/η_d - e_i - Δ·η_c·a_dn·rd_i <= -E·soc_min    (discharging needs energy)

    If c_i > 0 then d_i = 0 and the energy balance gives the first row; if c_i = 0 it
    holds because e_i ≤ E·soc_max; the second likewise. The LP relaxation violates
    them exactly where it charges and discharges at once at a full (or empty) battery.
    """

    lower: FloatArray
    upper: FloatArray
    starts: IntArray
    """Row starts into ``index``/``value`` (CSR, len = rows + 1)."""
    index: IntArray
    value: FloatArray
    group: str


@dataclass(slots=True)
class SiteIndex:
    """Column and row indices of one site in the assembled problem."""

    site_id: str
    c: IntArray
    d: IntArray
    reserves: dict[str, IntArray]
    """Reserve product -> its columns (T values each)."""
    directions: dict[str, str]
    """Reserve product -> ``up`` or ``down``."""
    u: IntArray
    e: IntArray
    cap: int
    z: int | None
    dk: IntArray | None
    ek: IntArray | None
    balance_rows: IntArray
    throughput_row: int | None
    cuts: ExclusivityCuts | None = None

    @property
    def ru(self) -> IntArray:
        """Reg-up columns."""
        return self.reserves["reg_up"]

    @property
    def rd(self) -> IntArray:
        """Reg-down columns."""
        return self.reserves["reg_down"]

    @property
    def sp(self) -> IntArray:
        """Spinning-reserve columns."""
        return self.reserves["spin"]

    def reserve_cols(self, direction: str) -> list[IntArray]:
        """Columns of every reserve in ``direction`` (``up`` or ``down``)."""
        return [
            cols
            for name, cols in self.reserves.items()
            if self.directions[name] == direction
        ]


@dataclass(slots=True)
class LpProblem:
    """A sparse LP/MILP in HiGHS's row form: min cost·x + offset, row_lower ≤ A x ≤ row_upper."""

    cost: FloatArray
    col_lower: FloatArray
    col_upper: FloatArray
    row_lower: FloatArray
    row_upper: FloatArray
    matrix: sp.csc_matrix
    offset: float
    sites: list[SiteIndex]
    row_group: list[str]
    """Label of each row's constraint group (``site <id>: <group>`` or ``fleet: <group>``)."""
    capacity_row: int | None = None
    capacity_adder_usd_per_mw: float = 0.0
    """Lagrangian price included in ``cost`` at build time [$/MW]."""


@dataclass(slots=True)
class _Builder:
    n_col: int = 0
    n_row: int = 0
    cost: list[FloatArray] = field(default_factory=list)
    lower: list[FloatArray] = field(default_factory=list)
    upper: list[FloatArray] = field(default_factory=list)
    row_lower: list[FloatArray] = field(default_factory=list)
    row_upper: list[FloatArray] = field(default_factory=list)
    rows: list[IntArray] = field(default_factory=list)
    cols: list[IntArray] = field(default_factory=list)
    vals: list[FloatArray] = field(default_factory=list)
    row_group: list[str] = field(default_factory=list)
    offset: float = 0.0
    cost_terms: list[tuple[IntArray, FloatArray]] = field(default_factory=list)

    def cols_(
        self, n: int, lower: float | FloatArray, upper: float | FloatArray
    ) -> IntArray:
        idx = np.arange(self.n_col, self.n_col + n, dtype=np.int64)
        self.n_col += n
        self.cost.append(np.zeros(n))
        self.lower.append(np.broadcast_to(np.asarray(lower, dtype=float), (n,)).copy())
        self.upper.append(np.broadcast_to(np.asarray(upper, dtype=float), (n,)).copy())
        return idx

    def set_cost(self, idx: IntArray | int, values: float | FloatArray) -> None:
        self.cost_terms.append(
            (
                np.atleast_1d(idx),
                np.broadcast_to(values, np.shape(np.atleast_1d(idx))).astype(float),
            )
        )

    def rows_(
        self, n: int, lower: float | FloatArray, upper: float | FloatArray, group: str
    ) -> IntArray:
        idx = np.arange(self.n_row, self.n_row + n, dtype=np.int64)
        self.n_row += n
        self.row_lower.append(
            np.broadcast_to(np.asarray(lower, dtype=float), (n,)).copy()
        )
        self.row_upper.append(
            np.broadcast_to(np.asarray(upper, dtype=float), (n,)).copy()
        )
        self.row_group.extend([group] * n)
        return idx

    def coef(self, rows: IntArray, cols: IntArray, vals: float | FloatArray) -> None:
        rows, cols = np.broadcast_arrays(rows, cols)
        self.rows.append(rows.ravel())
        self.cols.append(cols.ravel())
        self.vals.append(
            np.broadcast_to(np.asarray(vals, dtype=float), rows.shape).ravel()
        )

    def finish(self, sites: list[SiteIndex], capacity_row: int | None) -> LpProblem:
        cost = np.concatenate(self.cost) if self.cost else np.zeros(0)
        for idx, values in self.cost_terms:
            np.add.at(cost, idx, values)
        matrix = sp.csc_matrix(
            (
                np.concatenate(self.vals) if self.vals else np.zeros(0),
                (
                    np.concatenate(self.rows)
                    if self.rows
                    else np.zeros(0, dtype=np.int64),
                    np.concatenate(self.cols)
                    if self.cols
                    else np.zeros(0, dtype=np.int64),
                ),
            ),
            shape=(self.n_row, self.n_col),
        )
        matrix.sum_duplicates()
        return LpProblem(
            cost=cost,
            col_lower=np.concatenate(self.lower),
            col_upper=np.concatenate(self.upper),
            row_lower=np.concatenate(self.row_lower) if self.row_lower else np.zeros(0),
            row_upper=np.concatenate(self.row_upper) if self.row_upper else np.zeros(0),
            matrix=matrix,
            offset=self.offset,
            sites=sites,
            row_group=self.row_group,
            capacity_row=capacity_row,
        )


def price_series(scn: Scenario, node: str, name: str) -> FloatArray:
    """Return the ``name`` price series of ``node`` (zeros when missing) [$/MWh or $/MW-h]."""
    series = scn.markets[node].series(name)
    if series is None:
        return np.zeros(scn.intervals)
    return np.asarray(series, dtype=float)


def initial_segments_mwh(site: Site) -> FloatArray:
    """Return the initial energy of each degradation segment, deepest first [MWh].

    Returns K values ordered shallow (k = 1) to deep (k = K).
    """
    k_count = len(site.degradation_usd_per_mwh)
    width = (site.soc_max - site.soc_min) * site.energy_mwh / k_count
    stored = max(0.0, (site.soc_initial - site.soc_min) * site.energy_mwh)
    deep_first = np.clip(stored - width * np.arange(k_count), 0.0, width)
    return deep_first[::-1].copy()


def _add_site(
    b: _Builder, scn: Scenario, site: Site, capacity_adder_usd_per_mw: float
) -> SiteIndex:
    n = scn.intervals
    dt = scn.delta_h
    ec, ed = site.eta_charge, site.eta_discharge
    e_mwh = site.energy_mwh
    e_lo, e_hi = e_mwh * site.soc_min, e_mwh * site.soc_max
    sid = site.id
    btm = site.btm
    energy_on = btm is not None or site.enrolled("energy")
    reserves = scn.reserves
    on = {r.name: site.enrolled(r.name) for r in reserves}
    cap_on = scn.capacity is not None and site.enrolled("capacity")
    com = site.commitments

    soft = com is not None and com.soft

    def lb(name: str) -> float | FloatArray:
        series = com.award(name) if com is not None else None
        return 0.0 if series is None else np.asarray(series, dtype=float)

    def lo(name: str) -> float | FloatArray:
        return 0.0 if soft else lb(name)

    c = b.cols_(n, 0.0, site.charge_mw if energy_on else 0.0)
    d = b.cols_(n, 0.0, site.discharge_mw if energy_on else 0.0)
    cols: dict[str, IntArray] = {
        r.name: b.cols_(n, lo(r.name), INF if on[r.name] else lb(r.name))
        for r in reserves
    }
    # A product is "in" the rows when the site may carry it (enrolled or committed).
    live = [r for r in reserves if on[r.name] or com is not None]
    up = [r for r in live if r.up]
    down = [r for r in live if not r.up]
    if soft and com is not None and com.shortfall_usd_per_mw_h is not None:
        # Soft awards: r + short >= award, short >= 0 at the charge-back price.
        penalty = com.shortfall_usd_per_mw_h
        for res in reserves:
            award = np.broadcast_to(np.asarray(lb(res.name), dtype=float), (n,))
            where = np.flatnonzero(award > 0)
            if not len(where):
                continue
            short = b.cols_(len(where), 0.0, award[where])
            b.set_cost(short, np.full(len(where), dt * penalty))
            r = b.rows_(
                len(where), award[where], INF, f"site {sid}: commitments ({res.name})"
            )
            b.coef(r, cols[res.name][where], 1.0)
            b.coef(r, short, 1.0)
    u = b.cols_(n, 0.0, 1.0 if energy_on else 0.0)
    e_upper = np.full(n + 1, e_hi)
    e_lower = np.full(n + 1, e_lo)
    e0 = e_mwh * site.soc_initial
    e_lower[0] = e_upper[0] = e0
    e_lower[n] = max(e_lo, e_mwh * site.soc_final_min)
    e = b.cols_(n + 1, e_lower, e_upper)
    cap = int(b.cols_(1, 0.0, site.discharge_mw if cap_on else 0.0)[0])

    lam = price_series(scn, site.node, "energy")
    # Objective (minimize -revenue). Deployed energy settles at λ (front of meter) or
    # at the tariff τ through the meter (behind it).
    settle = lam
    if btm is not None:
        settle = np.asarray(btm.energy_usd_per_mwh, dtype=float)
        load = np.asarray(btm.load_mw, dtype=float)
        b.offset += float(dt * np.dot(settle, load))
    b.set_cost(c, dt * settle)
    b.set_cost(d, -dt * settle)
    for res in reserves:
        price = price_series(scn, site.node, res.name)
        sign = 1.0 if res.up else -1.0
        if res.deploy > 0:
            b.set_cost(cols[res.name], -dt * (sign * settle * res.deploy + price))
        else:
            b.set_cost(cols[res.name], -dt * price)
    if cap_on and scn.capacity is not None:
        b.set_cost(cap, -(scn.capacity.price_usd_per_mw + capacity_adder_usd_per_mw))

    # Energy balance: e[i+1] - e[i] - Δη_c(c + Σ a_dn rd) + Δ(d + Σ a_up ru)/η_d = 0.
    bal = b.rows_(n, 0.0, 0.0, f"site {sid}: energy balance")
    b.coef(bal, e[1:], 1.0)
    b.coef(bal, e[:-1], -1.0)
    b.coef(bal, c, -dt * ec)
    b.coef(bal, d, dt / ed)
    deployed = [r for r in live if r.deploy > 0 or r.name in ("reg_up", "reg_down")]
    for res in deployed:
        if res.up:
            b.coef(bal, cols[res.name], dt * res.deploy / ed)
        else:
            b.coef(bal, cols[res.name], -dt * ec * res.deploy)

    # Power headroom on net power. With no reserve (and no commitment) the rows are
    # implied by the exclusivity rows (d <= P_d·(1 - u) <= P_d, c >= 0) and left out:
    # a smaller LP re-solves faster in the exclusivity repair.
    if up:
        r = b.rows_(
            n, -INF, site.discharge_mw, f"site {sid}: power (discharge headroom)"
        )
        b.coef(r, d, 1.0)
        b.coef(r, c, -1.0)
        for res in up:
            b.coef(r, cols[res.name], 1.0)
    if down:
        r = b.rows_(n, -INF, site.charge_mw, f"site {sid}: power (charge headroom)")
        b.coef(r, c, 1.0)
        b.coef(r, d, -1.0)
        for res in down:
            b.coef(r, cols[res.name], 1.0)
    if energy_on:
        r = b.rows_(n, -INF, 0.0, f"site {sid}: power (charge/discharge exclusivity)")
        b.coef(r, c, 1.0)
        b.coef(r, u, -site.charge_mw)
        r = b.rows_(
            n,
            -INF,
            site.discharge_mw,
            f"site {sid}: power (charge/discharge exclusivity)",
        )
        b.coef(r, d, 1.0)
        b.coef(r, u, site.discharge_mw)

    # Foldback: net charge (+ down reserves) and net discharge (+ up reserves) taper
    # near the SoC limits, at both ends of the interval.
    fb = site.foldback
    if fb is not None and e_mwh > 0:
        kc = site.charge_mw / (1.0 - fb.charge_taper_soc)
        kd = site.discharge_mw / fb.discharge_taper_soc
        for shift in (0, 1):
            r = b.rows_(n, -INF, kc, f"site {sid}: foldback (charge)")
            b.coef(r, c, 1.0)
            b.coef(r, d, -1.0)
            for res in reserves:
                if not res.up:
                    b.coef(r, cols[res.name], 1.0)
            b.coef(r, e[shift : shift + n], kc / e_mwh)
            r = b.rows_(n, -INF, 0.0, f"site {sid}: foldback (discharge)")
            b.coef(r, d, 1.0)
            b.coef(r, c, -1.0)
            for res in reserves:
                if res.up:
                    b.coef(r, cols[res.name], 1.0)
            b.coef(r, e[shift : shift + n], -kd / e_mwh)

    # Reserves sustainable for their durations from both ends of the interval.
    up_h = [r for r in up if r.sustain_h > 0]
    down_h = [r for r in down if r.sustain_h > 0]
    if up_h:
        for shift in (0, 1):
            r = b.rows_(n, e_lo, INF, f"site {sid}: reserve sustainability (up)")
            b.coef(r, e[shift : shift + n], 1.0)
            for res in up_h:
                b.coef(r, cols[res.name], -res.sustain_h / ed)
    if down_h:
        for shift in (0, 1):
            r = b.rows_(n, -INF, e_hi, f"site {sid}: reserve sustainability (down)")
            b.coef(r, e[shift : shift + n], 1.0)
            for res in down_h:
                b.coef(r, cols[res.name], res.sustain_h * ec)

    # Capacity deliverability through the window.
    if cap_on and scn.capacity is not None:
        a, w_end = scn.capacity.window
        idx = np.arange(a, w_end)
        hold_h = np.minimum(scn.capacity.duration_h, (w_end - idx) * dt)
        r = b.rows_(len(idx), e_lo, INF, f"site {sid}: capacity")
        b.coef(r, e[idx], 1.0)
        b.coef(r, np.full(len(idx), cap), -hold_h / ed)

    # Behind the meter: g = L + c + Σ a_dn rd - d - Σ a_up ru.
    z: int | None = None

    def deployment(rows: IntArray) -> None:
        for res in reserves:
            if res.deploy > 0 or res.name in ("reg_up", "reg_down"):
                b.coef(rows, cols[res.name], -res.deploy if res.up else res.deploy)

    if btm is not None:
        load = np.asarray(btm.load_mw, dtype=float)
        z = int(b.cols_(1, 0.0, INF)[0])
        b.set_cost(z, btm.demand_usd_per_mw)
        if not btm.export_allowed:
            r = b.rows_(n, -load, INF, f"site {sid}: behind-the-meter (no export)")
            b.coef(r, c, 1.0)
            b.coef(r, d, -1.0)
            deployment(r)
        r = b.rows_(
            n, -INF, btm.peak_so_far_mw - load, f"site {sid}: behind-the-meter (peak)"
        )
        b.coef(r, c, 1.0)
        b.coef(r, d, -1.0)
        deployment(r)
        b.coef(r, np.full(n, z), -1.0)

    # Degradation: K segments, shallow (0) to deep (K-1); deepest balance is implied.
    deg = np.asarray(site.degradation_usd_per_mwh, dtype=float)
    k_count = len(deg)
    dk: IntArray | None = None
    ek: IntArray | None = None
    if k_count == 1:
        if deg[0] > 0:
            b.set_cost(d, dt * deg[0])
            for res in reserves:
                if res.up and res.deploy > 0:
                    b.set_cost(cols[res.name], dt * deg[0] * res.deploy)
    else:
        width = (site.soc_max - site.soc_min) * e_mwh / k_count
        init = initial_segments_mwh(site)
        ek_lo = np.zeros((k_count, n + 1))
        ek_hi = np.full((k_count, n + 1), width)
        ek_lo[:, 0] = ek_hi[:, 0] = init
        ek = b.cols_(k_count * (n + 1), ek_lo.ravel(), ek_hi.ravel()).reshape(
            k_count, n + 1
        )
        ck = b.cols_(k_count * n, 0.0, INF).reshape(k_count, n)
        dk = b.cols_(k_count * n, 0.0, INF).reshape(k_count, n)
        b.set_cost(dk.ravel(), np.repeat(dt * deg, n))
        kb = k_count - 1
        r = b.rows_(
            kb * n, 0.0, 0.0, f"site {sid}: degradation (segment balance)"
        ).reshape(kb, n)
        b.coef(r, ek[:kb, 1:], 1.0)
        b.coef(r, ek[:kb, :-1], -1.0)
        b.coef(r, ck[:kb], -dt * ec)
        b.coef(r, dk[:kb], dt / ed)
        r = b.rows_(n, -e_lo, -e_lo, f"site {sid}: degradation (segment link)")
        b.coef(r[:, None], ek[:, 1:].T, 1.0)
        b.coef(r, e[1:], -1.0)
        r = b.rows_(n, 0.0, 0.0, f"site {sid}: degradation (charge split)")
        b.coef(r[:, None], ck.T, 1.0)
        b.coef(r, c, -1.0)
        for res in reserves:
            if not res.up and (res.deploy > 0 or res.name == "reg_down"):
                b.coef(r, cols[res.name], -res.deploy)
        r = b.rows_(n, 0.0, 0.0, f"site {sid}: degradation (discharge split)")
        b.coef(r[:, None], dk.T, 1.0)
        b.coef(r, d, -1.0)
        for res in reserves:
            if res.up and (res.deploy > 0 or res.name == "reg_up"):
                b.coef(r, cols[res.name], -res.deploy)

    throughput_row: int | None = None
    if site.throughput_budget_mwh is not None:
        r = b.rows_(
            1, -INF, site.throughput_budget_mwh, f"site {sid}: throughput budget"
        )
        b.coef(np.full(n, r[0]), d, dt)
        throughput_row = int(r[0])

    if com is not None and com.net_mw is not None:
        fixed = np.array([np.nan if v is None else v for v in com.net_mw], dtype=float)
        where = np.flatnonzero(~np.isnan(fixed))
        if len(where):
            r = b.rows_(
                len(where), fixed[where], fixed[where], f"site {sid}: commitments (net)"
            )
            b.coef(r, d[where], 1.0)
            b.coef(r, c[where], -1.0)

    cuts: ExclusivityCuts | None = None
    if energy_on:
        cuts = _exclusivity_cuts(
            c,
            d,
            [(cols[r.name], r.deploy) for r in live if r.up and r.deploy > 0],
            [(cols[r.name], r.deploy) for r in live if not r.up and r.deploy > 0],
            e,
            site,
            scn,
        )

    return SiteIndex(
        site_id=sid,
        c=c,
        d=d,
        reserves=cols,
        directions={r.name: r.direction for r in reserves},
        u=u,
        e=e,
        cap=cap,
        z=z,
        dk=dk,
        ek=ek,
        balance_rows=bal,
        throughput_row=throughput_row,
        cuts=cuts,
    )


def _exclusivity_cuts(
    c: IntArray,
    d: IntArray,
    ups: list[tuple[IntArray, float]],
    downs: list[tuple[IntArray, float]],
    e: IntArray,
    site: Site,
    scn: Scenario,
) -> ExclusivityCuts:
    """Build the two exclusivity cut families of a site (see :class:`ExclusivityCuts`).

    ``ups``/``downs``: (columns, deployed fraction) of the reserves whose deployment
    enters the energy balance.
    """
    n = scn.intervals
    dt = scn.delta_h
    ec, ed = site.eta_charge, site.eta_discharge
    up_cols = [c, e[:n]] + [col for col, _ in ups]
    up_vals = [dt * ec, 1.0] + [-dt * a / ed for _, a in ups]
    dn_cols = [d, e[:n]] + [col for col, _ in downs]
    dn_vals = [dt / ed, -1.0] + [-dt * ec * a for _, a in downs]
    index = np.concatenate(
        [np.stack(up_cols, axis=1).ravel(), np.stack(dn_cols, axis=1).ravel()]
    ).astype(np.int64)
    value = np.concatenate(
        [np.tile(np.asarray(up_vals), n), np.tile(np.asarray(dn_vals), n)]
    )
    widths = np.concatenate(
        [np.full(n, len(up_cols), dtype=np.int64), np.full(n, len(dn_cols))]
    )
    starts = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
    return ExclusivityCuts(
        lower=np.full(2 * n, -INF),
        upper=np.concatenate(
            [
                np.full(n, site.energy_mwh * site.soc_max),
                np.full(n, -site.energy_mwh * site.soc_min),
            ]
        ),
        starts=starts,
        index=index,
        value=value,
        group=f"site {site.id}: power (charge/discharge exclusivity cut)",
    )


def build_lp(
    scn: Scenario,
    *,
    capacity_min_mw: float | None = None,
    capacity_adder_usd_per_mw: float = 0.0,
) -> LpProblem:
    """Assemble the scenario's problem as a sparse matrix.

    Parameters
    ----------
    scn : Scenario
        The scenario; all its sites and POI groups are included.
    capacity_min_mw : float, optional
        Fleet capacity minimum Σ cap ≥ C [MW]; defaults to ``scn.fleet.capacity_min_mw``.
    capacity_adder_usd_per_mw : float
        Lagrangian price added to the capacity payment of every site [$/MW].

    Returns
    -------
    LpProblem
        Minimization of -objective, with the site index maps and row group labels.
    """
    b = _Builder()
    sites = [_add_site(b, scn, site, capacity_adder_usd_per_mw) for site in scn.sites]
    by_id = {s.site_id: s for s in sites}
    n = scn.intervals
    if scn.fleet is not None:
        for g, group in enumerate(scn.fleet.poi_groups):
            members = [by_id[x] for x in group.sites if x in by_id]
            if not members:
                continue
            r = b.rows_(
                n, -INF, group.export_mw, f"fleet: poi_groups[{g}] export limit"
            )
            for m in members:
                for col, sign in ((m.d, 1.0), (m.c, -1.0)):
                    b.coef(r, col, sign)
                for col in m.reserve_cols("up"):
                    b.coef(r, col, 1.0)
            r = b.rows_(
                n, -INF, group.import_mw, f"fleet: poi_groups[{g}] import limit"
            )
            for m in members:
                for col, sign in ((m.c, 1.0), (m.d, -1.0)):
                    b.coef(r, col, sign)
                for col in m.reserve_cols("down"):
                    b.coef(r, col, 1.0)
    if capacity_min_mw is None and scn.fleet is not None:
        capacity_min_mw = scn.fleet.capacity_min_mw
    capacity_row: int | None = None
    if capacity_min_mw is not None and capacity_min_mw > 0:
        r = b.rows_(1, capacity_min_mw, INF, "fleet: capacity_min_mw")
        b.coef(
            np.full(len(sites), r[0]),
            np.array([s.cap for s in sites], dtype=np.int64),
            1.0,
        )
        capacity_row = int(r[0])
    lp = b.finish(sites, capacity_row)
    lp.capacity_adder_usd_per_mw = capacity_adder_usd_per_mw
    return lp
