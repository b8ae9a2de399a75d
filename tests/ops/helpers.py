"""Synthetic prices, scenarios and fleets for the operations tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from dispatch.scenario import Scenario, parse_scenario
from fleet.domain import Fleet
from tests.factories import make_fleet

NODE = "HB_HOUSTON"


def daily_prices(
    hours: int = 24, *, spike: float = 0.0, shift: float = 0.0
) -> list[float]:
    """A duck-curve energy price day [$/MWh] with an optional evening spike."""
    h = np.arange(hours)
    base = 30 + 25 * np.sin(2 * np.pi * (h - 11) / 24) + shift
    base[18 % hours] += spike
    return [float(v) for v in base]


def scenario(
    *,
    hours: int = 24,
    soc_initial: float = 0.5,
    services: tuple[str, ...] = ("energy", "reg_up", "reg_down", "spin"),
    commitments: dict[str, Any] | None = None,
    prices: list[float] | None = None,
    n_sites: int = 1,
) -> Scenario:
    """An hourly ERCOT-like scenario starting at local midnight of 2024-07-01."""
    site: dict[str, Any] = {
        "node": NODE,
        "discharge_mw": 10.0,
        "charge_mw": 10.0,
        "energy_mwh": 20.0,
        "soc_min": 0.05,
        "soc_max": 0.95,
        "soc_initial": soc_initial,
        "soc_final_min": 0.5,
        "eta_charge": 0.95,
        "eta_discharge": 0.95,
        "services": list(services),
        "degradation_usd_per_mwh": [2.0, 4.0, 8.0, 16.0],
    }
    sites = [{**site, "id": f"site-{i + 1:02d}"} for i in range(n_sites)]
    if commitments is not None:
        sites[0]["commitments"] = commitments
    return parse_scenario(
        {
            "schema": "bess-dispatch-scenario/1",
            "start": "2024-07-01T05:00:00Z",
            "interval_minutes": 60,
            "intervals": hours,
            "markets": {
                NODE: {
                    "energy": prices or daily_prices(hours, spike=60.0),
                    "reg_up": [6.0] * hours,
                    "reg_down": [4.0] * hours,
                    "spin": [3.0] * hours,
                }
            },
            "regulation": {"deploy_up": 0.1, "deploy_down": 0.1},
            "reserve_duration_h": 0.5,
            "sites": sites,
        }
    )


def fleet(n: int = 2) -> Fleet:
    """A fleet of ``n`` 10 MW / 20 MWh ERCOT sites at HB_HOUSTON."""
    return make_fleet(n)


def price_frame(
    start: dt.date, end: dt.date, *, node: str = NODE, seed: int = 0
) -> pd.DataFrame:
    """A long price frame (read_prices layout) of synthetic DA/RT energy and AS prices."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range(
        pd.Timestamp(start, tz="America/Chicago").tz_convert("UTC"),
        pd.Timestamp(end + dt.timedelta(days=1), tz="America/Chicago").tz_convert(
            "UTC"
        ),
        freq="h",
        inclusive="left",
    )
    local_hour = np.asarray(idx.tz_convert("America/Chicago").hour)
    da = (
        30
        + 25 * np.sin(2 * np.pi * (local_hour - 11) / 24)
        + rng.normal(0, 4, len(idx))
    )
    rows = []
    series = {
        (node, "da_energy"): da,
        (node, "rt_energy"): da + rng.normal(0, 6, len(idx)),
        ("SYSTEM", "reg_up"): 5 + rng.gamma(2.0, 1.5, len(idx)),
        ("SYSTEM", "reg_down"): 3 + rng.gamma(2.0, 1.0, len(idx)),
        ("SYSTEM", "rrs_spin"): 2 + rng.gamma(2.0, 1.0, len(idx)),
    }
    for (n, product), values in series.items():
        rows.append(
            pd.DataFrame(
                {
                    "timestamp_utc": idx,
                    "market": "ERCOT",
                    "node": n,
                    "product": product,
                    "price": values,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)
