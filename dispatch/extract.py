"""Turn a solved problem into a Result: series, duals and revenue by service."""

from __future__ import annotations

import numpy as np

from dispatch.lp import FloatArray, LpProblem, SiteIndex, price_series
from dispatch.result import SiteSchedule, revenue_keys
from dispatch.scenario import Scenario, Site


def _clean(values: FloatArray) -> list[float]:
    out = np.where(np.abs(values) < 1e-9, 0.0, values)
    return [float(v) for v in out]


def site_revenue_usd(
    scn: Scenario, site: Site, sched: SiteSchedule, degradation_usd: float
) -> dict[str, float]:
    """Revenue of one site by service at a given schedule [$].

    Parameters
    ----------
    scn : Scenario
        The scenario (prices, regulation deployment, capacity).
    site : Site
        The site.
    sched : SiteSchedule
        Its schedule.
    degradation_usd : float
        Degradation cost of the schedule (≥ 0) [$].

    Returns
    -------
    dict
        Keys of :data:`dispatch.result.REVENUE_KEYS`; costs are negative.

    Notes
    -----
    ``energy`` holds all settlement at λ (deployed regulation energy included) for a
    front-of-meter site; behind the meter that energy goes through ``btm_energy``.
    """
    dt = scn.delta_h
    c, d = np.asarray(sched.charge_mw), np.asarray(sched.discharge_mw)
    rev = dict.fromkeys(revenue_keys(scn.reserve_names), 0.0)
    up_mw = np.zeros(scn.intervals)
    down_mw = np.zeros(scn.intervals)
    short = 0.0
    com = site.commitments
    for res in scn.reserves:
        held = np.asarray(sched.reserve(res.name), dtype=float)
        rev[res.name] = float(dt * np.dot(price_series(scn, site.node, res.name), held))
        if res.up:
            up_mw += res.deploy * held
        else:
            down_mw += res.deploy * held
        award = com.award(res.name) if com is not None else None
        if award is not None:
            short += float(np.maximum(0.0, np.asarray(award, dtype=float) - held).sum())
    if scn.capacity is not None:
        rev["capacity"] = scn.capacity.price_usd_per_mw * sched.capacity_mw
    rev["degradation"] = -degradation_usd
    if com is not None and com.shortfall_usd_per_mw_h is not None:
        rev["reserve_shortfall"] = -dt * com.shortfall_usd_per_mw_h * short
    if site.btm is None:
        lam = price_series(scn, site.node, "energy")
        rev["energy"] = float(dt * np.dot(lam, d - c + up_mw - down_mw))
    else:
        grid = np.asarray(site.btm.load_mw) + c + down_mw - d - up_mw
        rev["btm_energy"] = -float(dt * np.dot(site.btm.energy_usd_per_mwh, grid))
        peak = max(0.0, float(grid.max()) - site.btm.peak_so_far_mw)
        rev["demand_charge"] = -site.btm.demand_usd_per_mw * peak
    return rev


def extract_sites(
    scn: Scenario,
    lp: LpProblem,
    x: FloatArray,
    row_dual: FloatArray | None,
) -> tuple[dict[str, SiteSchedule], dict[str, float], float]:
    """Read the schedule of every site from a primal (and dual) solution.

    Parameters
    ----------
    scn : Scenario
        The scenario the problem was built from.
    lp : LpProblem
        The assembled problem.
    x : ndarray
        Primal column values.
    row_dual : ndarray or None
        HiGHS row duals of the minimization (None when not available).

    Returns
    -------
    sites : dict
        Site id → :class:`SiteSchedule`.
    revenue_usd : dict
        Fleet revenue by service [$].
    objective_usd : float
        Objective at the schedule [$] (sum of the revenue entries).
    """
    sites: dict[str, SiteSchedule] = {}
    revenue = dict.fromkeys(revenue_keys(scn.reserve_names), 0.0)
    by_id = {s.id: s for s in scn.sites}
    dt = scn.delta_h
    for idx in lp.sites:
        site = by_id[idx.site_id]
        sched = _schedule(site, idx, x, row_dual, scn)
        deg = _degradation_usd(site, idx, x, dt, scn)
        rev = site_revenue_usd(scn, site, sched, deg)
        for key, value in rev.items():
            revenue[key] += value
        sites[site.id] = sched.model_copy(update={"revenue_usd": rev})
    return sites, revenue, float(sum(revenue.values()))


def _degradation_usd(
    site: Site, idx: SiteIndex, x: FloatArray, dt: float, scn: Scenario
) -> float:
    deg = np.asarray(site.degradation_usd_per_mwh, dtype=float)
    if idx.dk is None:
        flow = np.clip(x[idx.d], 0.0, None)
        for res in scn.reserves:
            if res.up and res.deploy > 0:
                flow = flow + res.deploy * np.clip(x[idx.reserves[res.name]], 0.0, None)
        return float(deg[0] * dt * flow.sum())
    return float(dt * np.sum(deg[:, None] * np.clip(x[idx.dk], 0.0, None)))


def _schedule(
    site: Site,
    idx: SiteIndex,
    x: FloatArray,
    row_dual: FloatArray | None,
    scn: Scenario,
) -> SiteSchedule:
    c = np.clip(x[idx.c], 0.0, None)
    d = np.clip(x[idx.d], 0.0, None)
    reserves = {
        name: np.clip(x[cols], 0.0, None) for name, cols in idx.reserves.items()
    }
    soc = (
        x[idx.e] / site.energy_mwh
        if site.energy_mwh > 0
        else np.full(len(idx.e), site.soc_initial)
    )
    grid = None
    if site.btm is not None:
        net = c - d
        for res in scn.reserves:
            sign = -1.0 if res.up else 1.0
            net = net + sign * res.deploy * reserves[res.name]
        grid = _clean(np.asarray(site.btm.load_mw) + net)
    value = None
    shadow = None
    if row_dual is not None:
        # HiGHS minimizes -objective; injecting 1 MWh into balance row i changes it by y_i.
        value = _clean(-row_dual[idx.balance_rows])
        if idx.throughput_row is not None:
            # A ≤ row of a minimization has a dual ≤ 0; its magnitude is the shadow price.
            shadow = abs(float(row_dual[idx.throughput_row]))
    return SiteSchedule(
        charge_mw=_clean(c),
        discharge_mw=_clean(d),
        reserves_mw={name: _clean(v) for name, v in reserves.items()},
        capacity_mw=float(max(0.0, x[idx.cap])) if abs(x[idx.cap]) > 1e-9 else 0.0,
        soc=[float(v) for v in soc],
        grid_import_mw=grid,
        energy_value_usd_per_mwh=value,
        throughput_shadow_usd_per_mwh=shadow,
    )
