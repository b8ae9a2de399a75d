"""Check a schedule against every constraint of the spec, independently of the models.

Nothing here imports the Pyomo model or the matrix builder: the constraints and the
objective are recomputed from the spec's text with numpy, and the least-cost degradation
segment assignment is a small LP solved with ``scipy.optimize.linprog``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.optimize import linprog

from dispatch.result import Result, SiteSchedule
from dispatch.scenario import Scenario, Site

Array = npt.NDArray[np.float64]


def _prices(scn: Scenario, node: str, name: str) -> Array:
    series = scn.markets[node].series(name)
    return (
        np.zeros(scn.intervals) if series is None else np.asarray(series, dtype=float)
    )


def _arrays(scn: Scenario, sched: SiteSchedule) -> dict[str, Array]:
    """Return the series of a schedule by name.

    ``c``, ``d``, ``soc``, ``r:<product>`` and, summed over the products of a
    direction, ``up``/``down`` [MW], ``dep_up``/``dep_dn`` (expected deployment) [MW]
    and ``sus_up``/``sus_dn`` (award x sustain duration) [MWh].
    """
    n = len(sched.charge_mw)
    out = {
        "c": np.asarray(sched.charge_mw, dtype=float),
        "d": np.asarray(sched.discharge_mw, dtype=float),
        "soc": np.asarray(sched.soc, dtype=float),
    }
    for key in ("up", "down", "dep_up", "dep_dn", "sus_up", "sus_dn"):
        out[key] = np.zeros(n)
    for res in scn.reserves:
        x = np.asarray(sched.reserve(res.name), dtype=float)
        out[f"r:{res.name}"] = x
        if len(x) != n:
            continue
        side = ("up", "dep_up", "sus_up") if res.up else ("down", "dep_dn", "sus_dn")
        out[side[0]] = out[side[0]] + x
        out[side[1]] = out[side[1]] + res.deploy * x
        out[side[2]] = out[side[2]] + res.sustain_h * x
    return out


def _site_violations(
    scn: Scenario, site: Site, sched: SiteSchedule, tol_mw: float, tol_mwh: float
) -> list[str]:
    out: list[str] = []
    n, dt = scn.intervals, scn.delta_h
    x = _arrays(scn, sched)
    sid = site.id

    def bad(cond: npt.NDArray[np.bool_] | bool, what: str) -> None:
        if np.any(cond):
            where = np.flatnonzero(np.atleast_1d(cond))[:5].tolist()
            out.append(f"site {sid}: {what} (at {where})")

    for name in ("c", "d", *(f"r:{p}" for p in scn.reserve_names)):
        if len(x[name]) != n:
            out.append(f"site {sid}: {name} has {len(x[name])} values, expected {n}")
            return out
        bad(x[name] < -tol_mw, f"{name} < 0")
    if len(x["soc"]) != n + 1:
        out.append(f"site {sid}: soc has {len(x['soc'])} values, expected {n + 1}")
        return out
    c, d, up, down = x["c"], x["d"], x["up"], x["down"]
    big_e = site.energy_mwh
    e = x["soc"] * big_e
    e_lo, e_hi = big_e * site.soc_min, big_e * site.soc_max
    # Services gate the variables.
    energy_on = site.btm is not None or "energy" in site.services
    if not energy_on:
        bad(c > tol_mw, "charges without the energy service")
        bad(d > tol_mw, "discharges without the energy service")
    com = site.commitments
    for svc in scn.reserve_names:
        if svc not in site.services and com is None:
            bad(x[f"r:{svc}"] > tol_mw, f"{svc} award without enrolment")
    cap_on = scn.capacity is not None and "capacity" in site.services
    if not cap_on and sched.capacity_mw > tol_mw:
        out.append(f"site {sid}: capacity commitment without enrolment")
    # Energy.
    e_next = e[:-1] + dt * (
        site.eta_charge * (c + x["dep_dn"]) - (d + x["dep_up"]) / site.eta_discharge
    )
    bad(np.abs(e_next - e[1:]) > tol_mwh, "energy balance broken")
    bad(
        abs(e[0] - big_e * site.soc_initial) > tol_mwh,
        "soc[0] differs from soc_initial",
    )
    bad(e < e_lo - tol_mwh, "energy below soc_min")
    bad(e > e_hi + tol_mwh, "energy above soc_max")
    bad(
        e[-1] < big_e * site.soc_final_min - tol_mwh, "final energy below soc_final_min"
    )
    # Power.
    bad(d - c + up > site.discharge_mw + tol_mw, "discharge headroom exceeded")
    bad(c - d + down > site.charge_mw + tol_mw, "charge headroom exceeded")
    bad(np.minimum(c, d) > tol_mw, "charges and discharges in the same interval")
    bad(c > site.charge_mw + tol_mw, "charge above charge_mw")
    bad(d > site.discharge_mw + tol_mw, "discharge above discharge_mw")
    # Foldback near the SoC limits, at both ends of the interval.
    fb = site.foldback
    if fb is not None and big_e > 0:
        for j in (0, 1):
            s_j = e[j : j + n] / big_e
            cap_c = site.charge_mw * (1 - s_j) / (1 - fb.charge_taper_soc)
            cap_d = site.discharge_mw * s_j / fb.discharge_taper_soc
            bad(c - d + down > cap_c + tol_mw, "charge above the foldback cap")
            bad(d - c + up > cap_d + tol_mw, "discharge above the foldback cap")
    # Reserves sustainable for their durations from both ends of the interval.
    for j in (0, 1):
        ej = e[j : j + n]
        bad(
            ej - e_lo < x["sus_up"] / site.eta_discharge - tol_mwh,
            "upward reserve unsustainable",
        )
        bad(
            e_hi - ej < site.eta_charge * x["sus_dn"] - tol_mwh,
            "downward reserve unsustainable",
        )
    # Capacity.
    cap = sched.capacity_mw
    if cap < -tol_mw or cap > site.discharge_mw + tol_mw:
        out.append(f"site {sid}: capacity_mw={cap} outside [0, discharge_mw]")
    if scn.capacity is not None and cap > 0:
        a, b = scn.capacity.window
        idx = np.arange(a, b)
        hold = (
            cap
            * np.minimum(scn.capacity.duration_h, (b - idx) * dt)
            / site.eta_discharge
        )
        bad(e[idx] - e_lo < hold - tol_mwh, "capacity not deliverable in the window")
    # Behind the meter.
    if site.btm is not None:
        grid = np.asarray(site.btm.load_mw) + c + x["dep_dn"] - d - x["dep_up"]
        if not site.btm.export_allowed:
            bad(grid < -tol_mw, "behind-the-meter export not allowed")
        if sched.grid_import_mw is not None:
            bad(
                np.abs(np.asarray(sched.grid_import_mw) - grid) > tol_mw,
                "grid_import_mw wrong",
            )
    if (
        site.throughput_budget_mwh is not None
        and dt * d.sum() > site.throughput_budget_mwh + tol_mwh
    ):
        out.append(f"site {sid}: throughput budget exceeded")
    if com is not None:
        for key, series in com.reserves_mw.items():
            if not com.soft:
                bad(
                    x[f"r:{key}"] < np.asarray(series) - tol_mw,
                    f"{key} below its commitment",
                )
        if com.net_mw is not None:
            fixed = np.array([np.nan if v is None else v for v in com.net_mw])
            ok = ~np.isnan(fixed)
            bad(
                np.abs((d - c)[ok] - fixed[ok]) > tol_mw,
                "net power differs from commitment",
            )
    return out


def schedule_violations(
    scn: Scenario, result: Result, tol_mw: float = 1e-5, tol_mwh: float = 1e-4
) -> list[str]:
    """List every spec constraint the result's schedule breaks (empty when feasible).

    Parameters
    ----------
    scn : Scenario
        The scenario.
    result : Result
        A result with a schedule for every site.
    tol_mw, tol_mwh : float
        Tolerances [MW], [MWh].

    Returns
    -------
    list of str
        One message per violated constraint group, naming the site and intervals.
    """
    out: list[str] = []
    missing = [s.id for s in scn.sites if s.id not in result.sites]
    if missing:
        return [f"no schedule for sites {missing}"]
    for site in scn.sites:
        out.extend(_site_violations(scn, site, result.sites[site.id], tol_mw, tol_mwh))
    n = scn.intervals
    if scn.fleet is not None:
        for g, group in enumerate(scn.fleet.poi_groups):
            exp = np.zeros(n)
            imp = np.zeros(n)
            for sid in group.sites:
                x = _arrays(scn, result.sites[sid])
                exp += x["d"] - x["c"] + x["up"]
                imp += x["c"] - x["d"] + x["down"]
            if np.any(exp > group.export_mw + tol_mw):
                out.append(f"fleet: poi_groups[{g}] export limit exceeded")
            if np.any(imp > group.import_mw + tol_mw):
                out.append(f"fleet: poi_groups[{g}] import limit exceeded")
        cmin = scn.fleet.capacity_min_mw
        total = sum(result.sites[s.id].capacity_mw for s in scn.sites)
        if cmin is not None and total < cmin - tol_mw:
            out.append(f"fleet: capacity {total} MW below capacity_min_mw={cmin}")
    return out


def assert_schedule_feasible(
    scn: Scenario, result: Result, tol_mw: float = 1e-5, tol_mwh: float = 1e-4
) -> None:
    """Assert that the result's schedule satisfies every constraint of the spec.

    Raises
    ------
    AssertionError
        Listing every violated constraint group.
    """
    problems = schedule_violations(scn, result, tol_mw, tol_mwh)
    if problems:
        raise AssertionError("schedule infeasible:\n  " + "\n  ".join(problems))


def degradation_cost_usd(scn: Scenario, site: Site, sched: SiteSchedule) -> float:
    """Least-cost degradation of a schedule over all valid segment assignments [$].

    Parameters
    ----------
    scn : Scenario
        The scenario.
    site : Site
        The site.
    sched : SiteSchedule
        Its schedule.

    Returns
    -------
    float
        min Σ δ_k·d_k·Δ subject to the spec's segment equations (a small LP).
    """
    x = _arrays(scn, sched)
    n, dt = scn.intervals, scn.delta_h
    deg = np.asarray(site.degradation_usd_per_mwh, dtype=float)
    k_n = len(deg)
    charge = np.clip(x["c"], 0, None)
    discharge = np.clip(x["d"], 0, None)
    for res in scn.reserves:
        flow = res.deploy * np.clip(x[f"r:{res.name}"], 0, None)
        if res.up:
            discharge = discharge + flow
        else:
            charge = charge + flow
    if k_n == 1:
        return float(deg[0] * dt * discharge.sum())
    width = (site.soc_max - site.soc_min) * site.energy_mwh / k_n
    stored0 = max(0.0, (site.soc_initial - site.soc_min) * site.energy_mwh)
    init = np.clip(stored0 - width * np.arange(k_n), 0.0, width)[::-1]
    # Columns: e_k (KxT, i = 1..T), c_k (KxT), d_k (KxT).
    ne = k_n * n

    def col(
        block: int, k: int, i: int | npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        return np.asarray(block * ne + k * n + i, dtype=np.int64)

    rows, cols, vals, rhs = [], [], [], []
    r = 0
    ii = np.arange(n)
    for k in range(k_n):
        # e_k[i+1] - e_k[i] - Δη_c c_k[i] + Δ d_k[i]/η_d = 0 (e_k[0] is known).
        rr = r + ii
        rows += [rr, rr, rr]
        cols += [col(0, k, ii), col(1, k, ii), col(2, k, ii)]
        vals += [
            np.ones(n),
            np.full(n, -dt * site.eta_charge),
            np.full(n, dt / site.eta_discharge),
        ]
        prev = np.zeros(n)
        prev[0] = init[k]
        rows.append(rr[1:])
        cols.append(col(0, k, ii[:-1]))
        vals.append(-np.ones(n - 1))
        rhs.append(prev)
        r += n
    for block, target in ((1, charge), (2, discharge)):
        rr = r + ii
        for k in range(k_n):
            rows.append(rr)
            cols.append(col(block, k, ii))
            vals.append(np.ones(n))
        rhs.append(target)
        r += n
    rr = r + ii
    for k in range(k_n):
        rows.append(rr)
        cols.append(col(0, k, ii))
        vals.append(np.ones(n))
    rhs.append(x["soc"][1:] * site.energy_mwh - site.energy_mwh * site.soc_min)
    r += n
    a_eq = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(r, 3 * ne),
    )
    cost = np.concatenate([np.zeros(2 * ne), np.repeat(deg * dt, n)])
    bounds = [(0.0, width)] * ne + [(0.0, None)] * (2 * ne)
    res = linprog(
        cost, A_eq=a_eq, b_eq=np.concatenate(rhs), bounds=bounds, method="highs"
    )
    if res.status != 0:
        # Rounding of a reported schedule can leave the segment system barely infeasible;
        # fall back to the assignment that ignores the segment widths.
        loose = [(0.0, None)] * (3 * ne)
        res = linprog(
            cost, A_eq=a_eq, b_eq=np.concatenate(rhs), bounds=loose, method="highs"
        )
    if res.status != 0:
        msg = f"site {site.id}: no valid degradation segment assignment ({res.message})"
        raise AssertionError(msg)
    return float(res.fun)


def objective_of(scn: Scenario, result: Result) -> float:
    """Recompute the spec's objective at the result's schedule [$].

    Parameters
    ----------
    scn : Scenario
        The scenario.
    result : Result
        A result with a schedule.

    Returns
    -------
    float
        Σ over sites of settlement and payments minus degradation and bills.
    """
    total = 0.0
    dt = scn.delta_h
    for site in scn.sites:
        sched = result.sites[site.id]
        x = _arrays(scn, sched)
        c, d, dep_up, dep_dn = x["c"], x["d"], x["dep_up"], x["dep_dn"]
        val = dt * float(
            sum(
                np.dot(_prices(scn, site.node, p), x[f"r:{p}"])
                for p in scn.reserve_names
            )
        )
        if scn.capacity is not None:
            val += scn.capacity.price_usd_per_mw * sched.capacity_mw
        if site.btm is None:
            lam = _prices(scn, site.node, "energy")
            val += dt * float(np.dot(lam, d - c + dep_up - dep_dn))
        else:
            grid = np.asarray(site.btm.load_mw) + c + dep_dn - d - dep_up
            val -= dt * float(np.dot(site.btm.energy_usd_per_mwh, grid))
            val -= site.btm.demand_usd_per_mw * max(
                0.0, float(grid.max()) - site.btm.peak_so_far_mw
            )
        val -= degradation_cost_usd(scn, site, sched)
        com = site.commitments
        if com is not None and com.shortfall_usd_per_mw_h is not None:
            for key, series in com.reserves_mw.items():
                held = x[f"r:{key}"]
                short = np.maximum(0.0, np.asarray(series, dtype=float) - held)
                val -= dt * com.shortfall_usd_per_mw_h * float(short.sum())
        total += val
    return total
