"""Read, validate and write dispatch scenarios (spec/dispatch-model.md, format 1)."""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dispatch.errors import ScenarioError

logger = logging.getLogger(__name__)

SCENARIO_SCHEMA = "bess-dispatch-scenario/1"
SERVICES = frozenset(
    {"energy", "reg_up", "reg_down", "spin", "capacity", "peak_shaving"}
)
BUILTIN_RESERVES: dict[str, Literal["up", "down"]] = {
    "reg_up": "up",
    "reg_down": "down",
    "spin": "up",
}
"""The spec's reserve products and their directions (always present in a scenario)."""
LEGACY_RESERVE_KEYS: dict[str, str] = {
    "reg_up_mw": "reg_up",
    "reg_down_mw": "reg_down",
    "spin_mw": "spin",
}
"""Per-product series names of the spec's result format -> product name."""


@dataclass(frozen=True, slots=True)
class Reserve:
    """A reserve product as the model carries it (resolved from the scenario).

    Attributes
    ----------
    name : str
        Product name (``reg_up``, ``spin``, ``ecrs``, …); also its service and its
        price series name in ``markets``.
    direction : str
        ``up`` (discharge headroom, stored energy) or ``down`` (charge footroom, room).
    sustain_h : float
        Hours the award must be sustainable from both ends of each interval [h].
    deploy : float
        Expected deployed fraction of the award, settled as energy (0-1).
    """

    name: str
    direction: Literal["up", "down"]
    sustain_h: float
    deploy: float

    @property
    def up(self) -> bool:
        """Whether the product uses discharge headroom."""
        return self.direction == "up"


_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True)


class MarketPrices(BaseModel):
    """Price series of one pricing node; a missing series is all zeros.

    Attributes
    ----------
    energy : list of float or None
        Energy price λ per interval [$/MWh].
    reg_up, reg_down, spin : list of float or None
        Capacity prices per interval [$/MW-h].

    Extension: a key named after a product of the scenario's ``products`` holds that
    product's capacity price [$/MW-h] (any other key is an error).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    energy: list[float] | None = None
    reg_up: list[float] | None = None
    reg_down: list[float] | None = None
    spin: list[float] | None = None

    def series(self, name: str) -> list[float] | None:
        """Return the price series ``name`` (``energy`` or a product), None if absent."""
        if name in type(self).model_fields:
            value: list[float] | None = getattr(self, name)
            return value
        return (self.model_extra or {}).get(name)


class ReserveProduct(BaseModel):
    """Extension: a reserve product's definition (``scenario.products``).

    Attributes
    ----------
    direction : str
        ``up`` or ``down``. A built-in product (reg_up, reg_down, spin) keeps its own.
    sustain_h : float or None
        Sustain duration [h]; None: the scenario's ``reserve_duration_h``.
    deploy : float
        Expected deployed fraction (0-1); built-in regulation products take
        ``regulation.deploy_up``/``deploy_down`` instead.
    """

    model_config = _MODEL_CONFIG

    direction: Literal["up", "down"]
    sustain_h: float | None = Field(None, ge=0.0)
    deploy: float = Field(0.0, ge=0.0, le=1.0)


class Regulation(BaseModel):
    """Expected deployed fraction of awarded regulation (fractions, 0-1)."""

    model_config = _MODEL_CONFIG

    deploy_up: float = Field(0.0, ge=0.0, le=1.0)
    deploy_down: float = Field(0.0, ge=0.0, le=1.0)


class Capacity(BaseModel):
    """Resource-adequacy style capacity product.

    Attributes
    ----------
    price_usd_per_mw : float
        Payment per MW of commitment over the horizon [$/MW].
    window : tuple of int
        Interval indices [a, b) during which the commitment must be deliverable.
    duration_h : float
        Hours the commitment must be sustainable [h].
    """

    model_config = _MODEL_CONFIG

    price_usd_per_mw: float
    window: tuple[int, int]
    duration_h: float = Field(gt=0.0)


class PoiGroup(BaseModel):
    """Sites behind one point of interconnection with shared export/import limits [MW]."""

    model_config = _MODEL_CONFIG

    sites: list[str] = Field(min_length=1)
    export_mw: float = Field(ge=0.0)
    import_mw: float = Field(ge=0.0)


class Fleet(BaseModel):
    """Fleet coupling: a capacity minimum [MW] and POI groups."""

    model_config = _MODEL_CONFIG

    capacity_min_mw: float | None = Field(None, ge=0.0)
    poi_groups: list[PoiGroup] = Field(default_factory=list)


class Btm(BaseModel):
    """Behind-the-meter block of a site.

    Attributes
    ----------
    load_mw : list of float
        Site load per interval [MW].
    energy_usd_per_mwh : list of float
        Retail energy tariff τ per interval [$/MWh].
    demand_usd_per_mw : float
        Demand charge r for a new monthly peak [$/MW].
    peak_so_far_mw : float
        Monthly peak already set p0 [MW].
    export_allowed : bool
        Whether the meter may export (credited at τ, net metering).
    """

    model_config = _MODEL_CONFIG

    load_mw: list[float]
    energy_usd_per_mwh: list[float]
    demand_usd_per_mw: float = Field(ge=0.0)
    peak_so_far_mw: float = Field(ge=0.0)
    export_allowed: bool = False


def legacy_reserves(data: Any, field: str) -> Any:
    """Move ``reg_up_mw``/``reg_down_mw``/``spin_mw`` keys of ``data`` into ``field``."""
    if not isinstance(data, dict) or not any(k in data for k in LEGACY_RESERVE_KEYS):
        return data
    out = dict(data)
    reserves = dict(out.get(field) or {})
    for key, product in LEGACY_RESERVE_KEYS.items():
        if key in out:
            value = out.pop(key)
            if value is not None:
                reserves[product] = value
    out[field] = reserves
    return out


class Commitments(BaseModel):
    """Extension: awards already fixed (lower bounds on reserves [MW], fixed net power [MW]).

    ``reserves_mw`` maps a reserve product to its award per interval (the keys
    ``reg_up_mw``, ``reg_down_mw``, ``spin_mw`` are read as the built-in products).
    ``net_mw`` entries that are null leave that interval free; a fixed net power
    sets d_i - c_i to the value.
    """

    model_config = _MODEL_CONFIG

    reserves_mw: dict[str, list[float]] = Field(default_factory=dict)
    net_mw: list[float | None] | None = None
    shortfall_usd_per_mw_h: float | None = Field(None, ge=0.0)
    """When set, the reserve awards are soft: a shortfall below them is allowed and
    costs this much per MW-h (the market's charge-back). None: hard lower bounds."""

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        return legacy_reserves(data, "reserves_mw")

    @property
    def soft(self) -> bool:
        """Whether the reserve awards may be missed at a price."""
        return self.shortfall_usd_per_mw_h is not None

    def award(self, product: str) -> list[float] | None:
        """Award series of ``product`` [MW] (None when there is none)."""
        return self.reserves_mw.get(product)

    @property
    def reg_up_mw(self) -> list[float] | None:
        """Reg-up award [MW] (``reserves_mw['reg_up']``)."""
        return self.award("reg_up")

    @property
    def reg_down_mw(self) -> list[float] | None:
        """Reg-down award [MW] (``reserves_mw['reg_down']``)."""
        return self.award("reg_down")

    @property
    def spin_mw(self) -> list[float] | None:
        """Spinning-reserve award [MW] (``reserves_mw['spin']``)."""
        return self.award("spin")


class Foldback(BaseModel):
    """Extension: the BMS power taper near the SoC limits (``spec/markets.md`` B1).

    Charge power (with reg-down footroom) tapers linearly from ``charge_mw`` at SoC
    ``charge_taper_soc`` to 0 at SoC 1; discharge power (with up reserves) from
    ``discharge_mw`` at ``discharge_taper_soc`` to 0 at SoC 0 (fractions, 0-1).
    """

    model_config = _MODEL_CONFIG

    charge_taper_soc: float = Field(0.9, gt=0.0, lt=1.0)
    discharge_taper_soc: float = Field(0.1, gt=0.0, lt=1.0)


class Site(BaseModel):
    """One battery site of the scenario (fractions in 0-1, powers in MW, energy in MWh)."""

    model_config = _MODEL_CONFIG

    id: str = Field(min_length=1)
    node: str
    discharge_mw: float = Field(ge=0.0)
    charge_mw: float = Field(ge=0.0)
    energy_mwh: float = Field(ge=0.0)
    soc_min: float = Field(ge=0.0, le=1.0)
    soc_max: float = Field(ge=0.0, le=1.0)
    soc_initial: float
    soc_final_min: float = Field(ge=0.0, le=1.0)
    eta_charge: float
    eta_discharge: float
    services: list[str]
    degradation_usd_per_mwh: list[float] = Field(min_length=1)
    btm: Btm | None = None
    throughput_budget_mwh: float | None = Field(None, ge=0.0)
    commitments: Commitments | None = None
    foldback: Foldback | None = None

    @property
    def is_btm(self) -> bool:
        """Whether the site is behind the meter."""
        return self.btm is not None

    @property
    def is_fom(self) -> bool:
        """Whether the site is front-of-meter (settled at its node's prices)."""
        return self.btm is None

    def enrolled(self, service: str) -> bool:
        """Whether the site is enrolled in ``service``."""
        return service in self.services


class Scenario(BaseModel):
    """A self-contained dispatch problem for a fleet (spec/dispatch-model.md, format 1).

    Validation names the field and the bad value; see :func:`load_scenario`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_: Literal["bess-dispatch-scenario/1"] = Field(alias="schema")
    start: datetime
    interval_minutes: float = Field(gt=0.0)
    intervals: int = Field(ge=1)
    markets: dict[str, MarketPrices]
    regulation: Regulation = Field(default_factory=Regulation)
    reserve_duration_h: float = Field(1.0, ge=0.0)
    products: dict[str, ReserveProduct] = Field(default_factory=dict)
    capacity: Capacity | None = None
    fleet: Fleet | None = None
    sites: list[Site] = Field(min_length=1)

    @property
    def delta_h(self) -> float:
        """Interval length Δ [h]."""
        return self.interval_minutes / 60.0

    @property
    def reserves(self) -> tuple[Reserve, ...]:
        """The reserve products the model carries: the built-ins, then ``products``."""
        out: list[Reserve] = []
        reg = self.regulation
        deploy = {"reg_up": reg.deploy_up, "reg_down": reg.deploy_down, "spin": 0.0}
        for name, direction in BUILTIN_RESERVES.items():
            spec = self.products.get(name)
            sustain = spec.sustain_h if spec is not None else None
            out.append(
                Reserve(
                    name,
                    direction,
                    self.reserve_duration_h if sustain is None else sustain,
                    deploy[name],
                )
            )
        for name, spec in self.products.items():
            if name in BUILTIN_RESERVES:
                continue
            sustain = (
                self.reserve_duration_h if spec.sustain_h is None else spec.sustain_h
            )
            out.append(Reserve(name, spec.direction, sustain, spec.deploy))
        return tuple(out)

    def with_sustain_factor(self, factor: float) -> Scenario:
        """Return the scenario with every reserve's sustain duration times ``factor``."""
        products = {
            r.name: ReserveProduct(
                direction=r.direction,
                sustain_h=r.sustain_h * factor,
                deploy=self.products[r.name].deploy if r.name in self.products else 0.0,
            )
            for r in self.reserves
        }
        return self.model_copy(
            update={
                "reserve_duration_h": self.reserve_duration_h * factor,
                "products": products,
            }
        )

    @property
    def reserve_names(self) -> tuple[str, ...]:
        """Names of :attr:`reserves`, in order."""
        return tuple(r.name for r in self.reserves)

    @property
    def services(self) -> frozenset[str]:
        """Every service name a site of this scenario may list."""
        return SERVICES | frozenset(self.products)

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        errors = _consistency_errors(self)
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def site(self, site_id: str) -> Site:
        """Return the site named ``site_id``."""
        for site in self.sites:
            if site.id == site_id:
                return site
        msg = f"unknown site {site_id!r}"
        raise KeyError(msg)

    def subset(
        self, site_ids: list[str], capacity_min_mw: float | None = None
    ) -> Scenario:
        """Return the scenario restricted to ``site_ids`` (POI groups among them kept)."""
        keep = set(site_ids)
        groups = [
            g
            for g in (self.fleet.poi_groups if self.fleet else [])
            if set(g.sites) <= keep
        ]
        fleet = Fleet(capacity_min_mw=capacity_min_mw, poi_groups=groups)
        sites = [s for s in self.sites if s.id in keep]
        nodes = {s.node for s in sites}
        return self.model_copy(
            update={
                "sites": sites,
                "fleet": fleet,
                "markets": {k: v for k, v in self.markets.items() if k in nodes},
            }
        )

    def to_json_dict(self) -> dict[str, object]:
        """Return the scenario as the spec's JSON object."""
        out = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        if not self.products:
            out.pop("products", None)
        return out


def _consistency_errors(scn: Scenario) -> list[str]:
    errors: list[str] = []
    n = scn.intervals
    for name, spec in scn.products.items():
        builtin = BUILTIN_RESERVES.get(name)
        if builtin is not None and spec.direction != builtin:
            errors.append(
                f"products.{name}.direction={spec.direction!r}: the built-in product is {builtin!r}"
            )
        elif builtin is None and name in SERVICES:
            errors.append(f"products.{name}: {name!r} is a service, not a reserve")
    known = set(scn.reserve_names)
    for node, prices in scn.markets.items():
        for extra, value in (prices.model_extra or {}).items():
            if extra not in known:
                errors.append(f"markets.{node}.{extra}: unknown field")
            elif not isinstance(value, list) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value
            ):
                errors.append(f"markets.{node}.{extra} must be a list of numbers")
        for name in ("energy", *scn.reserve_names):
            series = prices.series(name)
            if isinstance(series, list) and len(series) != n:
                errors.append(
                    f"markets.{node}.{name} has {len(series)} values, expected intervals={n}"
                )
    if scn.capacity is not None:
        a, b = scn.capacity.window
        if not (0 <= a < b <= n):
            errors.append(
                f"capacity.window=[{a}, {b}] outside the horizon of {n} intervals"
            )
    ids: set[str] = set()
    for k, site in enumerate(scn.sites):
        where = f"sites[{k}]"
        if site.id in ids:
            errors.append(f"{where}.id={site.id!r} is a duplicate")
        ids.add(site.id)
        errors.extend(_site_errors(where, site, scn))
    if scn.fleet is not None:
        for g, group in enumerate(scn.fleet.poi_groups):
            for sid in group.sites:
                if sid not in ids:
                    errors.append(
                        f'fleet.poi_groups[{g}].sites names unknown site "{sid}"'
                    )
        seen: dict[str, int] = {}
        for g, group in enumerate(scn.fleet.poi_groups):
            for sid in group.sites:
                if sid in seen and seen[sid] != g:
                    errors.append(
                        f'fleet.poi_groups[{g}].sites: site "{sid}" is already in poi_groups[{seen[sid]}]'
                    )
                seen[sid] = g
    return errors


def _site_errors(where: str, site: Site, scn: Scenario) -> list[str]:
    errors: list[str] = []
    n = scn.intervals
    if site.node not in scn.markets:
        errors.append(f"{where}.node={site.node!r} is not a key of markets")
    for name in ("eta_charge", "eta_discharge"):
        value = getattr(site, name)
        if not 0.0 < value <= 1.0:
            errors.append(f"{where}.{name}={value:g} must be in (0, 1]")
    if site.soc_min >= site.soc_max:
        errors.append(
            f"{where}.soc_min={site.soc_min:g} must be < soc_max={site.soc_max:g}"
        )
    if not 0.0 <= site.soc_initial <= 1.0:
        errors.append(f"{where}.soc_initial={site.soc_initial:g} must be in [0, 1]")
    unknown = sorted(set(site.services) - scn.services)
    if unknown:
        errors.append(
            f"{where}.services has unknown service(s) {unknown}; known: {sorted(scn.services)}"
        )
    deg = site.degradation_usd_per_mwh
    if any(v < 0 for v in deg):
        errors.append(
            f"{where}.degradation_usd_per_mwh={deg} must have no negative value"
        )
    if any(b < a for a, b in itertools.pairwise(deg)):
        errors.append(
            f"{where}.degradation_usd_per_mwh={deg} must be non-decreasing from shallow to deep"
        )
    if site.btm is not None:
        for name in ("load_mw", "energy_usd_per_mwh"):
            series = getattr(site.btm, name)
            if len(series) != n:
                errors.append(
                    f"{where}.btm.{name} has {len(series)} values, expected intervals={n}"
                )
    if site.commitments is not None:
        com = site.commitments
        known = set(scn.reserve_names)
        for product, series in com.reserves_mw.items():
            if product not in known:
                errors.append(
                    f"{where}.commitments.reserves_mw.{product}: unknown product; known: {sorted(known)}"
                )
            elif len(series) != n:
                errors.append(
                    f"{where}.commitments.reserves_mw.{product} has {len(series)} values, expected intervals={n}"
                )
        if com.net_mw is not None and len(com.net_mw) != n:
            errors.append(
                f"{where}.commitments.net_mw has {len(com.net_mw)} values, expected intervals={n}"
            )
    return errors


def _format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = _loc(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            parts.append(f"{loc}: unknown field")
        elif err["type"] == "value_error" and not loc:
            parts.append(msg)
        else:
            value = err.get("input")
            shown = "" if isinstance(value, dict | list) else f"={value!r}"
            parts.append(f"{loc}{shown}: {msg}")
    return "; ".join(parts)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + ("schema" if part == "schema" else str(part))
    return out


def parse_scenario(data: object, source: str = "scenario") -> Scenario:
    """Validate a decoded JSON object as a scenario.

    Parameters
    ----------
    data : object
        The decoded JSON.
    source : str
        Name used in error messages (e.g. the file name).

    Returns
    -------
    Scenario

    Raises
    ------
    ScenarioError
        Naming the field, the bad value and the expected range.
    """
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        msg = f"{source}: {_format_validation_error(exc)}"
        raise ScenarioError(msg) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario JSON file.

    Raises
    ------
    ScenarioError
        For a missing file, a JSON syntax error (with line and column) or a bad field.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        msg = f"{path}: scenario file not found"
        raise ScenarioError(msg) from None
    except OSError as exc:
        msg = f"{path}: cannot read scenario file ({exc.strerror})"
        raise ScenarioError(msg) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = (
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        )
        raise ScenarioError(msg) from None
    return parse_scenario(data, source=str(path))
