"""Scenario factories for dispatch tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from dispatch.precheck import max_capacity_mw
from dispatch.scenario import Scenario, parse_scenario


def site(
    site_id: str = "a",
    *,
    node: str = "N",
    p_mw: float = 1.0,
    e_mwh: float = 2.0,
    soc: tuple[float, float, float, float] = (0.0, 1.0, 0.5, 0.0),
    eta: tuple[float, float] = (1.0, 1.0),
    services: tuple[str, ...] = ("energy",),
    deg: tuple[float, ...] = (0.0,),
    **extra: Any,
) -> dict[str, Any]:
    """A site dict; ``soc`` is (min, max, initial, final_min)."""
    out: dict[str, Any] = {
        "id": site_id,
        "node": node,
        "discharge_mw": p_mw,
        "charge_mw": p_mw,
        "energy_mwh": e_mwh,
        "soc_min": soc[0],
        "soc_max": soc[1],
        "soc_initial": soc[2],
        "soc_final_min": soc[3],
        "eta_charge": eta[0],
        "eta_discharge": eta[1],
        "services": list(services),
        "degradation_usd_per_mwh": list(deg),
    }
    out.update(extra)
    return out


def scenario_dict(
    sites: list[dict[str, Any]],
    *,
    energy: list[float],
    interval_minutes: float = 60,
    **extra: Any,
) -> dict[str, Any]:
    """A scenario dict with one node ``N`` whose energy prices are ``energy``."""
    markets = extra.pop("markets", {"N": {"energy": energy}})
    out: dict[str, Any] = {
        "schema": "bess-dispatch-scenario/1",
        "start": "2026-11-24T06:00:00Z",
        "interval_minutes": interval_minutes,
        "intervals": len(energy),
        "markets": markets,
        "sites": sites,
    }
    out.update(extra)
    return out


def scenario(sites: list[dict[str, Any]], **kwargs: Any) -> Scenario:
    """A validated scenario (see :func:`scenario_dict`)."""
    return parse_scenario(scenario_dict(sites, **kwargs))


ALL = ("energy", "reg_up", "reg_down", "spin", "capacity")


@st.composite
def random_scenarios(
    draw: st.DrawFn, max_sites: int = 3, coupled: bool = False, negative: bool = False
) -> Scenario:
    """Small random scenarios over every option of the spec (1-3 sites, 4-12 intervals).

    ``coupled`` forces a capacity product every site is enrolled in and a fleet capacity
    minimum between 30 % and 90 % of what the sites can carry. ``negative`` draws
    energy prices mostly below zero (where the LP burns energy through the losses).
    """
    n = draw(st.integers(4, 12))
    low, high = (-80.0, 40.0) if negative else (-40.0, 150.0)
    price = st.floats(low, high, allow_nan=False).map(lambda x: round(x, 2))
    as_price = st.floats(0.0, 15.0).map(lambda x: round(x, 2))
    markets = {
        "N": {
            "energy": draw(st.lists(price, min_size=n, max_size=n)),
            "reg_up": draw(st.lists(as_price, min_size=n, max_size=n)),
            "reg_down": draw(st.lists(as_price, min_size=n, max_size=n)),
            "spin": draw(st.lists(as_price, min_size=n, max_size=n)),
        }
    }
    n_sites = draw(st.integers(1, max_sites))
    sites = []
    for k in range(n_sites):
        lo = draw(st.sampled_from([0.0, 0.05, 0.1]))
        hi = draw(st.sampled_from([0.9, 0.95, 1.0]))
        init = round(draw(st.floats(lo, hi)), 3)
        final = round(draw(st.floats(0.0, min(init, hi))), 3)
        k_seg = draw(st.integers(1, 4))
        deg = sorted(round(draw(st.floats(0.0, 20.0)), 2) for _ in range(k_seg))
        btm = None
        if draw(st.booleans()) and k > 0:
            btm = {
                "load_mw": [round(draw(st.floats(0.0, 3.0)), 3) for _ in range(n)],
                "energy_usd_per_mwh": [
                    round(draw(st.floats(20.0, 120.0)), 2) for _ in range(n)
                ],
                "demand_usd_per_mw": round(draw(st.floats(0.0, 2000.0)), 1),
                "peak_so_far_mw": round(draw(st.floats(0.0, 3.0)), 3),
                "export_allowed": draw(st.booleans()),
            }
        services = draw(st.lists(st.sampled_from(ALL), unique=True, max_size=5))
        if coupled and "capacity" not in services:
            services.append("capacity")
        extra: dict[str, Any] = {}
        if btm is not None:
            extra["btm"] = btm
            services = [*services, "peak_shaving"]
        sites.append(
            site(
                f"s{k}",
                p_mw=draw(st.sampled_from([0.5, 1.0, 2.0])),
                e_mwh=draw(st.sampled_from([1.0, 2.0, 4.0])),
                soc=(lo, hi, init, final),
                eta=(
                    round(draw(st.floats(0.8, 1.0)), 3),
                    round(draw(st.floats(0.8, 1.0)), 3),
                ),
                services=tuple(services),
                deg=tuple(deg),
                **extra,
            )
        )
    extra_scn: dict[str, Any] = {
        "regulation": {
            "deploy_up": draw(st.sampled_from([0.0, 0.1, 0.3])),
            "deploy_down": draw(st.sampled_from([0.0, 0.1, 0.3])),
        },
        "reserve_duration_h": draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])),
    }
    if coupled or draw(st.booleans()):
        a = draw(st.integers(0, n - 2))
        b = draw(st.integers(a + 1, n))
        extra_scn["capacity"] = {
            "price_usd_per_mw": round(draw(st.floats(0.0, 60.0)), 2),
            "window": [a, b],
            "duration_h": draw(st.sampled_from([1.0, 2.0, 4.0])),
        }
    fleet: dict[str, Any] = {}
    if n_sites >= 2 and draw(st.booleans()):
        fleet["poi_groups"] = [
            {
                "sites": ["s0", "s1"],
                "export_mw": draw(st.sampled_from([0.5, 1.0, 2.0])),
                "import_mw": draw(st.sampled_from([0.5, 1.0, 2.0])),
            }
        ]
    if "capacity" in extra_scn and draw(st.booleans()):
        fleet["capacity_min_mw"] = round(draw(st.floats(0.0, 1.5)), 2)
    if fleet:
        extra_scn["fleet"] = fleet
    scn = parse_scenario(
        scenario_dict(
            sites,
            energy=markets["N"]["energy"],
            interval_minutes=draw(st.sampled_from([15, 60])),
            markets=markets,
            **extra_scn,
        )
    )
    if coupled:
        carry = sum(max_capacity_mw(scn, s) for s in scn.sites)
        fleet["capacity_min_mw"] = round(carry * draw(st.floats(0.3, 0.9)), 4)
        extra_scn["fleet"] = fleet
        scn = parse_scenario(
            scenario_dict(
                sites,
                energy=markets["N"]["energy"],
                interval_minutes=scn.interval_minutes,
                markets=markets,
                **extra_scn,
            )
        )
    return scn
