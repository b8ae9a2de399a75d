"""Turn a solved problem into a Result: series, duals and revenue by service."""

from __future__ import annotations

import numpy as np

from dispatch.lp import FloatArray, LpProblem, SiteIndex, price_series
from dispatch.result import REVENUE_KEYS, SiteSchedule
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
    a_up, a_dn = scn.regulation.deploy_up, scn.regulation.deploy_down
    c, d = np.asarray(sched.charge_mw), np.asarray(sched.discharge_mw)
    ru, rd = np.asarray(sched.reg_up_mw), np.asarray(sched.reg_down_mw)
    spn = np.asarray(sched.spin_mw)
    rev = dict.fromkeys(REVENUE_KEYS, 0.0)
    rev["reg_up"] = float(dt * np.dot(price_series(scn, site.node, "reg_up"), ru))
    rev["reg_down"] = float(dt * np.dot(price_series(scn, site.node, "reg_down"), rd))
    rev["spin"] = float(dt * np.dot(price_series(scn, site.node, "spin"), spn))
    if scn.capacity is not None:
        rev["capacity"] = scn.capacity.price_usd_per_mw * sched.capacity_mw
    rev["degradation"] = -degradation_usd
    com = site.commitments
    if com is not None and com.shortfall_usd_per_mw_h is not None:
        held = {"reg_up_mw": ru, "reg_down_mw": rd, "spin_mw": spn}
        short = sum(
            float(np.maximum(0.0, np.asarray(award, dtype=float) - held[name]).sum())
            for name in held
            if (award := getattr(com, name)) is not None
        )
        rev["reserve_shortfall"] = -dt * com.shortfall_usd_per_mw_h * short
    if site.btm is None:
        lam = price_series(scn, site.node, "energy")
        rev["energy"] = float(dt * np.dot(lam, d - c + a_up * ru - a_dn * rd))
    else:
        grid = np.asarray(site.btm.load_mw) + c + a_dn * rd - d - a_up * ru
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
    revenue = dict.fromkeys(REVENUE_KEYS, 0.0)
    by_id = {s.id: s for s in scn.sites}
    dt = scn.delta_h
    for idx in lp.sites:
        site = by_id[idx.site_id]
        sched = _schedule(site, idx, x, row_dual, scn)
        deg = _degradation_usd(site, idx, x, dt, scn.regulation.deploy_up)
        rev = site_revenue_usd(scn, site, sched, deg)
        for key, value in rev.items():
            revenue[key] += value
        sites[site.id] = sched.model_copy(update={"revenue_usd": rev})
    return sites, revenue, float(sum(revenue.values()))


def _degradation_usd(
    site: Site, idx: SiteIndex, x: FloatArray, dt: float, a_up: float
) -> float:
    deg = np.asarray(site.degradation_usd_per_mwh, dtype=float)
    if idx.dk is None:
        flow = np.clip(x[idx.d], 0.0, None) + a_up * np.clip(x[idx.ru], 0.0, None)
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
    ru = np.clip(x[idx.ru], 0.0, None)
    rd = np.clip(x[idx.rd], 0.0, None)
    spn = np.clip(x[idx.sp], 0.0, None)
    soc = (
        x[idx.e] / site.energy_mwh
        if site.energy_mwh > 0
        else np.full(len(idx.e), site.soc_initial)
    )
    grid = None
    if site.btm is not None:
        a_up, a_dn = scn.regulation.deploy_up, scn.regulation.deploy_down
        grid = _clean(np.asarray(site.btm.load_mw) + c + a_dn * rd - d - a_up * ru)
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
        reg_up_mw=_clean(ru),
        reg_down_mw=_clean(rd),
        spin_mw=_clean(spn),
        capacity_mw=float(max(0.0, x[idx.cap])) if abs(x[idx.cap]) > 1e-9 else 0.0,
        soc=[float(v) for v in soc],
        grid_import_mw=grid,
        energy_value_usd_per_mwh=value,
        throughput_shadow_usd_per_mwh=shadow,
    )
