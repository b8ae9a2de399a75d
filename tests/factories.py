"""Test factories: valid fleet data and domain objects, with deep overrides.

``site_data()``/``fleet_data()`` return plain data as a fleet file holds it (what
``load_fleet`` parses); ``make_site()``/``make_fleet()`` validate it into models.
Overrides merge into nested tables: ``make_site(battery={"soc_min": 0.2})`` changes one
field; ``DELETE`` removes a key: ``site_data(node=DELETE)``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import yaml

from fleet.domain import Fleet, Site

DELETE = object()
"""Override value that removes the key."""


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``overrides`` merged in (dicts recursively)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is DELETE:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def battery_data(**overrides: Any) -> dict[str, Any]:
    """A 10 MW / 20 MWh LFP battery (one-way efficiencies 0.95)."""
    base: dict[str, Any] = {
        "chemistry": "LFP",
        "energy_mwh": 20.0,
        "charge_mw": 10.0,
        "discharge_mw": 10.0,
        "soc_min": 0.05,
        "soc_max": 0.95,
        "soc_initial": 0.5,
        "eta_charge": 0.95,
        "eta_discharge": 0.95,
        "aux_load_mw": 0.05,
        "commissioned": dt.date(2025, 6, 1),
        "warranty": {"years": 15, "throughput_mwh": 109_500.0},
        "cells_in_series": 416,
        "strings": 53,
        "cell_capacity_ah": 314.0,
        "replacement_cost_usd_per_kwh": 135.0,
    }
    return merge(base, overrides)


def provenance_data(
    feoc_kinds: tuple[str, ...] = (),
    shares: tuple[float, float, float, float] = (0.4, 0.1, 0.3, 0.2),
) -> list[dict[str, Any]]:
    """Cell, module, inverter and enclosure entries; ``feoc_kinds`` are flagged FEOC."""
    kinds = ("cell", "module", "inverter", "enclosure")
    return [
        {
            "component": kind,
            "manufacturer": f"Test {kind.title()} Co",
            "country_of_manufacture": "CN" if kind in feoc_kinds else "US",
            "feoc": kind in feoc_kinds,
            "cost_share": share,
        }
        for kind, share in zip(kinds, shares, strict=True)
    ]


def tariff_data(**overrides: Any) -> dict[str, Any]:
    """A C&I tariff: base 60 $/MWh, summer weekday peak 16-20 h at 120 $/MWh, $15/kW-month."""
    base: dict[str, Any] = {
        "name": "test C&I",
        "energy_usd_per_mwh": 60.0,
        "demand_usd_per_kw_month": 15.0,
        "billing_cycle_day": 1,
        "export_allowed": False,
        "periods": [
            {
                "name": "summer peak",
                "energy_usd_per_mwh": 120.0,
                "hours": [16, 17, 18, 19, 20],
                "weekdays": [0, 1, 2, 3, 4],
                "months": [6, 7, 8, 9],
            }
        ],
    }
    return merge(base, overrides)


def site_data(
    site_id: str = "site-01", *, btm: bool = False, **overrides: Any
) -> dict[str, Any]:
    """A valid ERCOT site as a fleet file holds it (front of meter unless ``btm``)."""
    base: dict[str, Any] = {
        "id": site_id,
        "name": f"Test site {site_id}",
        "market": "ERCOT",
        "node": "HB_HOUSTON",
        "resource_id": f"ERCOT_ESR_{site_id.upper().replace('-', '_')}",
        "location": {"lat": 29.76, "lon": -95.37, "county": "Harris", "state": "TX"},
        "meter": "front",
        "poi": {"export_mw": 10.0, "import_mw": 10.0},
        "battery": battery_data(),
        "services": ["energy", "reg_up", "reg_down", "spin"],
        "provenance": provenance_data(),
    }
    if btm:
        base.update(
            meter="behind",
            node="LZ_HOUSTON",
            services=["peak_shaving"],
            tariff=tariff_data(),
            load={
                "dataset": "building_load_cambridge_hourly",
                "profile": "UCam_Building_b2",
                "scale": 1.5,
            },
            battery=battery_data(
                energy_mwh=2.0, charge_mw=1.0, discharge_mw=1.0, strings=6
            ),
            poi={"export_mw": 1.0, "import_mw": 1.0},
        )
        del base["resource_id"]
    return merge(base, overrides)


def fleet_data(n: int = 3, **overrides: Any) -> dict[str, Any]:
    """A valid fleet of ``n`` front-of-meter sites ``site-01``… as plain data."""
    base: dict[str, Any] = {
        "name": "test fleet",
        "sites": [site_data(f"site-{i + 1:02d}") for i in range(n)],
    }
    return merge(base, overrides)


def make_site(site_id: str = "site-01", *, btm: bool = False, **overrides: Any) -> Site:
    """A validated ``Site``; see ``site_data`` for the overrides."""
    return Site.model_validate(site_data(site_id, btm=btm, **overrides))


def make_fleet(n: int = 3, **overrides: Any) -> Fleet:
    """A validated ``Fleet`` of ``n`` sites; see ``fleet_data`` for the overrides."""
    return Fleet.model_validate(fleet_data(n, **overrides))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
        )
    raise TypeError(f"cannot write {value!r} as TOML")


def _is_table_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) for v in value)
    )


def _toml_table(prefix: str, data: dict[str, Any], lines: list[str]) -> None:
    for key, value in data.items():
        if not isinstance(value, dict) and not _is_table_list(value):
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            name = f"{prefix}.{key}" if prefix else key
            lines.extend(["", f"[{name}]"])
            _toml_table(name, value, lines)
    for key, value in data.items():
        if _is_table_list(value):
            name = f"{prefix}.{key}" if prefix else key
            for item in value:
                lines.extend(["", f"[[{name}]]"])
                _toml_table(name, item, lines)


def to_toml(data: dict[str, Any]) -> str:
    """Write fleet data as TOML (tables and arrays of tables, like the examples)."""
    lines: list[str] = []
    _toml_table("", data, lines)
    return "\n".join(lines) + "\n"


def write_fleet_file(
    directory: Path, data: dict[str, Any], suffix: str = ".toml"
) -> Path:
    """Write fleet data to ``directory/fleet<suffix>`` (TOML or YAML); return the path."""
    path = directory / f"fleet{suffix}"
    if suffix == ".toml":
        path.write_text(to_toml(data), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
