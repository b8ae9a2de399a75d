"""Pure infeasibility pre-checks that name the site and the constraint group."""

from __future__ import annotations

import logging

from dispatch.scenario import Scenario, Site

logger = logging.getLogger(__name__)

_TOL = 1e-9


def max_capacity_mw(scn: Scenario, site: Site) -> float:
    """Upper bound on the capacity commitment a site can carry [MW].

    Parameters
    ----------
    scn : Scenario
        The scenario (capacity window and duration).
    site : Site
        The site.

    Returns
    -------
    float
        min(P_d, η_d·E·(soc_max - soc_min) / min(D, (b - a)·Δ)); 0 when not enrolled.

    Notes
    -----
    At the first interval of the window the stored energy above soc_min must cover
    cap·min(D, (b - a)·Δ)/η_d, and it can be at most E·(soc_max - soc_min).
    """
    if scn.capacity is None or not site.enrolled("capacity"):
        return 0.0
    a, b = scn.capacity.window
    hold_h = min(scn.capacity.duration_h, (b - a) * scn.delta_h)
    band_mwh = site.energy_mwh * (site.soc_max - site.soc_min)
    return min(site.discharge_mw, site.eta_discharge * band_mwh / hold_h)


def _max_charge_mw(scn: Scenario, site: Site) -> float:
    charge = site.charge_mw if (site.is_btm or site.enrolled("energy")) else 0.0
    if site.enrolled("reg_down"):
        charge = max(charge, scn.regulation.deploy_down * site.charge_mw)
    return charge


def precheck(scn: Scenario) -> str | None:
    """Return the reason the scenario is infeasible, or None when no quick check fails.

    Parameters
    ----------
    scn : Scenario
        A validated scenario.

    Returns
    -------
    str or None
        A reason naming the site (or the fleet constraint) and the constraint group.
    """
    horizon_h = scn.intervals * scn.delta_h
    need_mwh: dict[str, float] = {}
    for site in scn.sites:
        lo, hi = site.soc_min, site.soc_max
        if not lo - _TOL <= site.soc_initial <= hi + _TOL:
            return (
                f"site {site.id}: energy limits: soc_initial={site.soc_initial:g} is outside "
                f"[soc_min={lo:g}, soc_max={hi:g}]"
            )
        if site.soc_final_min > hi + _TOL:
            return (
                f"site {site.id}: final energy: soc_final_min={site.soc_final_min:g} is above "
                f"soc_max={hi:g}"
            )
        need = site.energy_mwh * (site.soc_final_min - site.soc_initial)
        need_mwh[site.id] = max(0.0, need) / site.eta_charge
        reach = site.eta_charge * _max_charge_mw(scn, site) * horizon_h
        if need > reach + 1e-7:
            return (
                f"site {site.id}: final energy: soc_final_min={site.soc_final_min:g} is unreachable "
                f"from soc_initial={site.soc_initial:g} at full charge power "
                f"(needs {need:.4g} MWh, at most {reach:.4g} MWh can be stored)"
            )
    if scn.fleet is not None:
        for g, group in enumerate(scn.fleet.poi_groups):
            need = sum(need_mwh.get(x, 0.0) for x in group.sites)
            if need > group.import_mw * horizon_h + 1e-7:
                return (
                    f"fleet: poi_groups[{g}] import limit: import_mw={group.import_mw:g} cannot bring "
                    f"the {need:.4g} MWh its sites need to reach soc_final_min"
                )
        cmin = scn.fleet.capacity_min_mw
        if cmin is not None and cmin > 0:
            carry = sum(max_capacity_mw(scn, s) for s in scn.sites)
            if carry < cmin - 1e-9:
                why = (
                    ""
                    if scn.capacity is not None
                    else " (the scenario has no capacity block)"
                )
                return (
                    f"fleet: capacity_min_mw={cmin:g} is above the {carry:.4g} MW the sites enrolled "
                    f"in capacity can carry{why}"
                )
    return None
