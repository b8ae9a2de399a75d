"""Define the fleet domain: sites, LFP batteries, services, tariffs and provenance.

These pydantic v2 models are the boundary objects of a fleet file (see
``fleet/fleetfile.py``): every model forbids unknown fields and is frozen. Physical
quantities carry their unit at the end of the name (``energy_mwh``, ``discharge_mw``,
``demand_usd_per_kw_month``); fractions carry no suffix and are always in 0-1, never
percent. Where a field also exists in the dispatch scenario
(``spec/dispatch-model.md``) it has the same name here: ``energy_mwh``, ``charge_mw``,
``discharge_mw``, ``soc_min``, ``soc_max``, ``soc_initial``, ``eta_charge``,
``eta_discharge``, ``services``, ``degradation_usd_per_mwh``, ``export_allowed``,
``capacity_min_mw``, ``export_mw``, ``import_mw``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

import pycountry
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from dispatch.errors import DispatchInputError
from dispatch.markets import MarketRules, load_market_rules
from fleet.types import (
    NODE_PATTERN,
    RESOURCE_ID_PATTERN,
    SITE_ID_PATTERN,
    US_STATE_PATTERN,
    SiteId,
)

LFP_NOMINAL_CELL_V = 3.2
"""Nominal voltage of an LFP cell [V], used for the cells' nameplate energy."""

EFFICIENCY_TOLERANCE = 1e-6
"""Largest allowed gap between eta_charge·eta_discharge and round_trip_efficiency."""

COST_SHARE_TOLERANCE = 1e-6
"""Largest allowed gap between the sum of provenance cost shares and 1."""

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
"""A fraction in [0, 1] (never percent)."""

Efficiency = Annotated[float, Field(gt=0.0, le=1.0)]
"""An efficiency in (0, 1] (never percent)."""

NonNegativeMw = Annotated[float, Field(ge=0.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
LaxDate = Annotated[date, Strict(False)]
"""A date given as a TOML/YAML date or as ISO text (YYYY-MM-DD)."""
SiteIdField = Annotated[SiteId, Field(pattern=SITE_ID_PATTERN)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class Market(StrEnum):
    """An ISO/RTO market a site bids into (PJM and others are added here)."""

    ERCOT = "ERCOT"
    CAISO = "CAISO"


def market_timezone(market: Market | str) -> str:
    """Return the market clock of ``market`` (IANA name), from its rules file."""
    return load_market_rules(str(market)).timezone


class Meter(StrEnum):
    """Which side of the utility meter the battery sits on."""

    FRONT = "front"
    BEHIND = "behind"


class Service(StrEnum):
    """A service a site can be enrolled in; the names of the dispatch scenario."""

    ENERGY = "energy"
    REG_UP = "reg_up"
    REG_DOWN = "reg_down"
    SPIN = "spin"
    ECRS = "ecrs"
    NONSPIN = "nonspin"
    CAPACITY = "capacity"
    PEAK_SHAVING = "peak_shaving"


SPEC_SERVICES = frozenset(
    {
        Service.ENERGY,
        Service.REG_UP,
        Service.REG_DOWN,
        Service.SPIN,
        Service.CAPACITY,
        Service.PEAK_SHAVING,
    }
)
"""The services of the dispatch scenario format 1 (``spec/dispatch-model.md``)."""
RETAIL_SERVICES = frozenset({Service.PEAK_SHAVING})
"""Services settled with the utility, not the ISO."""


def _service(value: Any, info: ValidationInfo) -> Any:
    """Check a service against its site's market rules; a known one as :class:`Service`.

    Raises
    ------
    PydanticCustomError
        ``unknown_service``, with the allowed names in its context.
    """
    market = (info.data or {}).get("market")
    rules = _market_rules(market, info) if isinstance(market, Market) else None
    reserves = rules.reserve_services if rules is not None else ()
    allowed = [Service.ENERGY.value, *reserves]
    allowed += [Service.CAPACITY.value, Service.PEAK_SHAVING.value]
    if not isinstance(value, str) or value not in allowed:
        if rules is None and value in Service._value2member_map_:
            return Service(value)
        kind = "unknown_service"
        template = "{value} is not a known service (allowed: {allowed})"
        raise PydanticCustomError(
            kind, template, {"value": repr(value), "allowed": ", ".join(allowed)}
        )
    if value in Service._value2member_map_:
        return Service(value)
    return value


ServiceName = Annotated[
    Service | str, WrapValidator(lambda v, handler, info: _service(handler(v), info))
]
"""A service of a site: a :class:`Service`, or an ancillary service that only the
market rules name (a product added to a rules file needs no code change)."""


class ComponentKind(StrEnum):
    """A part of the battery system whose origin counts toward FEOC compliance."""

    CELL = "cell"
    MODULE = "module"
    INVERTER = "inverter"
    ENCLOSURE = "enclosure"


class LoadDataset(StrEnum):
    """A real load data set (folder of the shared data) that can drive a BTM site."""

    BUILDING_LOAD_CAMBRIDGE_HOURLY = "building_load_cambridge_hourly"
    INDUSTRIAL_LOAD_STEEL_15MIN = "industrial_load_steel_15min"


def _as_float(value: Any) -> float | None:
    """Read a number given as int, float or numeric text; None otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


class _Frozen(BaseModel):
    # Strict: a fleet file's "40" or "no" is a wrong type, not a number or a bool.
    # Enums and dates stay lax (text in TOML/YAML/JSON) through the Lax* aliases.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Location(_Frozen):
    """Where a site is: coordinates [degrees], county and US state."""

    lat: float = Field(ge=-90.0, le=90.0, description="Latitude [degrees north].")
    lon: float = Field(ge=-180.0, le=180.0, description="Longitude [degrees east].")
    county: Name
    state: str = Field(pattern=US_STATE_PATTERN, description="US state code, e.g. TX.")


class Poi(_Frozen):
    """The site's point of interconnection limits [MW], and its shared POI group."""

    export_mw: NonNegativeMw = Field(description="Largest export to the grid [MW].")
    import_mw: NonNegativeMw = Field(description="Largest import from the grid [MW].")
    group: str | None = Field(
        default=None,
        pattern=SITE_ID_PATTERN,
        description="Name of a fleet-level poi_groups entry shared with other sites.",
    )


class PoiGroup(_Frozen):
    """A POI shared by several sites; its limits [MW] apply to their summed flows."""

    name: str = Field(pattern=SITE_ID_PATTERN)
    export_mw: NonNegativeMw
    import_mw: NonNegativeMw


class Warranty(_Frozen):
    """The battery warranty: years, throughput [MWh] and optional operating limits."""

    years: int = Field(gt=0, le=40)
    throughput_mwh: PositiveFloat = Field(
        description="Discharge energy throughput covered by the warranty [MWh]."
    )
    max_average_soc: Fraction | None = Field(
        default=None, description="Largest allowed average state of charge (0-1)."
    )
    max_c_rate_per_h: PositiveFloat | None = Field(
        default=None, description="Largest allowed C-rate [1/h] (power / energy)."
    )


class Battery(_Frozen):
    """An LFP battery: energy, power, state-of-charge window, efficiencies, cells.

    Give either both one-way efficiencies (``eta_charge``, ``eta_discharge``) or the
    ``round_trip_efficiency``; the other is derived (one-way = sqrt(round trip)). All
    fractions are in 0-1, never percent.
    """

    chemistry: Literal["LFP"] = "LFP"
    energy_mwh: PositiveFloat = Field(description="Usable energy at the AC side [MWh].")
    charge_mw: PositiveFloat = Field(description="Largest charge power [MW].")
    discharge_mw: PositiveFloat = Field(description="Largest discharge power [MW].")
    soc_min: Fraction = Field(default=0.05, description="Lowest SoC, fraction of E.")
    soc_max: Fraction = Field(default=0.95, description="Highest SoC, fraction of E.")
    soc_initial: Fraction = Field(
        default=0.5, description="Default SoC at start of a plan, fraction of E."
    )
    eta_charge: Efficiency = Field(description="One-way charge efficiency (0-1].")
    eta_discharge: Efficiency = Field(description="One-way discharge efficiency (0-1].")
    round_trip_efficiency: Efficiency = Field(
        description="Round-trip efficiency = eta_charge·eta_discharge (0-1]."
    )
    charge_taper_soc: Fraction = Field(
        default=0.9,
        description="SoC above which the BMS tapers charge power linearly to 0 at "
        "SoC 1 (fraction; LFP default).",
    )
    discharge_taper_soc: Fraction = Field(
        default=0.1,
        description="SoC below which the BMS tapers discharge power linearly to 0 at "
        "SoC 0 (fraction; LFP default).",
    )
    aux_load_mw: NonNegativeMw = Field(
        default=0.0, description="Auxiliary load (HVAC, controls) [MW]."
    )
    commissioned: LaxDate
    warranty: Warranty
    cells_in_series: int = Field(gt=0, description="Cells in series per string.")
    strings: int = Field(gt=0, description="Parallel strings of cells.")
    cell_capacity_ah: PositiveFloat = Field(description="Cell capacity [Ah].")
    replacement_cost_usd_per_kwh: PositiveFloat = Field(
        description="Cost of replacing the cells [USD/kWh]."
    )

    @model_validator(mode="before")
    @classmethod
    def _resolve_efficiencies(cls, data: Any) -> Any:
        """Derive the missing efficiencies: one-way = sqrt(round trip) and back."""
        if not isinstance(data, dict):
            return data
        eta_c = data.get("eta_charge")
        eta_d = data.get("eta_discharge")
        rte = data.get("round_trip_efficiency")
        if eta_c is None and eta_d is None and rte is None:
            msg = "give eta_charge and eta_discharge, or round_trip_efficiency"
            raise ValueError(msg)
        if (eta_c is None) != (eta_d is None):
            given, missing = (
                ("eta_charge", "eta_discharge")
                if eta_d is None
                else ("eta_discharge", "eta_charge")
            )
            msg = f"{given} is given but {missing} is missing: give both or neither"
            raise ValueError(msg)
        out = dict(data)
        if eta_c is None:
            value = _as_float(rte)
            # An invalid round_trip_efficiency is reported on its own field: fill the
            # one-way values with a placeholder so they do not add "missing" noise.
            one_way = math.sqrt(value) if value is not None and 0 < value <= 1 else 1.0
            out["eta_charge"] = one_way
            out["eta_discharge"] = one_way
        elif rte is None:
            first, second = _as_float(eta_c), _as_float(eta_d)
            product = (
                first * second if first is not None and second is not None else 1.0
            )
            out["round_trip_efficiency"] = product
        return out

    @model_validator(mode="after")
    def _check_consistency(self) -> Battery:
        problems: list[str] = []
        if self.soc_min >= self.soc_max:
            problems.append(
                f"soc_min={self.soc_min} must be less than soc_max={self.soc_max}"
            )
        elif not self.soc_min <= self.soc_initial <= self.soc_max:
            problems.append(
                f"soc_initial={self.soc_initial} must be between "
                f"soc_min={self.soc_min} and soc_max={self.soc_max}"
            )
        gap = abs(self.eta_charge * self.eta_discharge - self.round_trip_efficiency)
        if gap > EFFICIENCY_TOLERANCE:
            problems.append(
                f"round_trip_efficiency={self.round_trip_efficiency} must equal "
                f"eta_charge·eta_discharge={self.eta_charge * self.eta_discharge:.6g}"
                " (give one or the other)"
            )
        if self.energy_mwh > self.cell_nameplate_mwh * (1 + 1e-9):
            problems.append(
                f"energy_mwh={self.energy_mwh} exceeds the cells' nameplate "
                f"{self.cell_nameplate_mwh:.6g} MWh (cells_in_series·strings·"
                f"cell_capacity_ah·{LFP_NOMINAL_CELL_V} V)"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def cell_nameplate_mwh(self) -> float:
        """Nameplate DC energy of the cells [MWh] at the LFP nominal voltage."""
        return (
            self.cells_in_series
            * self.strings
            * self.cell_capacity_ah
            * LFP_NOMINAL_CELL_V
            / 1e6
        )

    @property
    def duration_h(self) -> float:
        """Energy over discharge power [h]."""
        return self.energy_mwh / self.discharge_mw

    @property
    def usable_energy_mwh(self) -> float:
        """Energy between soc_min and soc_max [MWh]."""
        return self.energy_mwh * (self.soc_max - self.soc_min)


Hour = Annotated[int, Field(ge=0, le=23)]
Weekday = Annotated[int, Field(ge=0, le=6)]
Month = Annotated[int, Field(ge=1, le=12)]


class TouPeriod(_Frozen):
    """A time-of-use energy price [USD/MWh] on local hours, weekdays and months.

    ``hours`` are the local hour starts (0-23) the price applies to, ``weekdays`` are
    0 = Monday … 6 = Sunday, ``months`` are 1-12; an omitted list means all of them.
    """

    name: Name
    energy_usd_per_mwh: float
    hours: list[Hour] = Field(min_length=1)
    weekdays: list[Weekday] = Field(default_factory=lambda: list(range(7)))
    months: list[Month] = Field(default_factory=lambda: list(range(1, 13)))

    def applies(self, *, month: int, weekday: int, hour: int) -> bool:
        """Say whether this period covers a local month, weekday and hour."""
        return month in self.months and weekday in self.weekdays and hour in self.hours


class Tariff(_Frozen):
    """A behind-the-meter utility tariff: TOU energy prices and a demand charge.

    Hours covered by no period are billed at ``energy_usd_per_mwh`` (the base or
    off-peak price); periods may not overlap. The demand charge applies to the
    billing cycle's highest 15-minute import, and cycles start on
    ``billing_cycle_day`` of each month.
    """

    name: Name | None = None
    energy_usd_per_mwh: float = Field(description="Base energy price [USD/MWh].")
    periods: list[TouPeriod] = Field(default_factory=list)
    demand_usd_per_kw_month: float = Field(ge=0.0, le=200.0)
    billing_cycle_day: int = Field(default=1, ge=1, le=28)
    export_allowed: bool = False

    @model_validator(mode="after")
    def _check_no_overlap(self) -> Tariff:
        problems: list[str] = []
        for i, first in enumerate(self.periods):
            for j in range(i + 1, len(self.periods)):
                second = self.periods[j]
                months = sorted(set(first.months) & set(second.months))
                days = sorted(set(first.weekdays) & set(second.weekdays))
                hours = sorted(set(first.hours) & set(second.hours))
                if months and days and hours:
                    problems.append(
                        f'periods[{i}] "{first.name}" and periods[{j}] '
                        f'"{second.name}" overlap (months {months}, '
                        f"weekdays {days}, hours {hours}): each hour has one price"
                    )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def demand_usd_per_mw_month(self) -> float:
        """The demand charge in the dispatch scenario's unit [USD/MW-month]."""
        return self.demand_usd_per_kw_month * 1000.0

    def energy_price_usd_per_mwh(self, *, month: int, weekday: int, hour: int) -> float:
        """Energy price [USD/MWh] at a local month (1-12), weekday (0=Mon) and hour."""
        for period in self.periods:
            if period.applies(month=month, weekday=weekday, hour=hour):
                return period.energy_usd_per_mwh
        return self.energy_usd_per_mwh


class SiteLoad(_Frozen):
    """Which real load profile drives a behind-the-meter site, scaled.

    ``profile`` is the ``site`` value in the data set (e.g. ``UCam_Building_b2`` or
    ``DAEWOO_Steel_Gwangyang``); the site load [MW] is ``scale`` times the data set's
    ``load_kw`` / 1000.
    """

    dataset: Annotated[LoadDataset, Strict(False)]
    profile: str = Field(min_length=1, max_length=100)
    scale: PositiveFloat = 1.0


class Component(_Frozen):
    """Where one part of the battery system comes from, and its share of capex.

    ``cost_share`` is a fraction (0-1) of the site's capex counted for FEOC
    compliance; ``feoc`` marks a part made by a foreign entity of concern
    (prohibited foreign entity). ``"unknown"`` is allowed for ``feoc`` and
    ``country_of_manufacture``: such a part counts against the compliance ratio.
    """

    component: Annotated[ComponentKind, Strict(False)]
    manufacturer: Name
    country_of_manufacture: str
    feoc: bool | Literal["unknown"]
    cost_share: Fraction

    @field_validator("feoc", mode="before")
    @classmethod
    def _feoc(cls, value: Any) -> Any:
        if isinstance(value, bool) or value == "unknown":
            return value
        shown = f'"{value}"' if isinstance(value, str) else repr(value)
        msg = f'{shown} has the wrong type: expected true, false or "unknown"'
        raise ValueError(msg)

    @field_validator("country_of_manufacture")
    @classmethod
    def _country(cls, value: str) -> str:
        if value == "unknown" or (
            len(value) == 2
            and value.isupper()
            and pycountry.countries.get(alpha_2=value)
        ):
            return value
        msg = (
            f'"{value}" is not an ISO 3166-1 alpha-2 country code (such as US or CN) '
            'nor "unknown"'
        )
        raise ValueError(msg)

    @property
    def unknown_origin(self) -> bool:
        """True when the FEOC status or the country is not known."""
        return self.feoc == "unknown" or self.country_of_manufacture == "unknown"


class Site(_Frozen):
    """A battery site: where it is, how it connects and bids, what it is made of."""

    id: SiteIdField
    name: Name
    market: Annotated[Market, Strict(False)]
    node: str = Field(pattern=NODE_PATTERN, description="Pricing node as in the data.")
    mqtt_group: str = Field(
        pattern=SITE_ID_PATTERN,
        description="MQTT group topic level; defaults to the market in lowercase.",
    )
    resource_id: str | None = Field(
        default=None,
        pattern=RESOURCE_ID_PATTERN,
        description="Market resource id used in bids; needed for wholesale services.",
    )
    location: Location
    meter: Annotated[Meter, Strict(False)]
    poi: Poi
    battery: Battery
    services: list[ServiceName] = Field(min_length=1)
    tariff: Tariff | None = None
    load: SiteLoad | None = None
    provenance: list[Component] = Field(min_length=1)
    construction_start: LaxDate | None = Field(
        default=None,
        description="Day construction began; its year sets the FEOC threshold.",
    )
    degradation_usd_per_mwh: list[Annotated[float, Field(ge=0.0)]] | None = Field(
        default=None,
        min_length=1,
        description="Degradation cost per segment, shallow to deep [USD/MWh].",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_mqtt_group(cls, data: Any) -> Any:
        """Default ``mqtt_group`` to the lowercase market."""
        if isinstance(data, dict) and "mqtt_group" not in data:
            market = data.get("market")
            if isinstance(market, str):
                return {**data, "mqtt_group": market.lower()}
        return data

    @model_validator(mode="after")
    def _check_site(self) -> Site:
        problems: list[str] = []
        duplicates = sorted(
            {str(s) for s in self.services if self.services.count(s) > 1}
        )
        if duplicates:
            problems.append(f"services lists {', '.join(duplicates)} more than once")
        if self.is_btm:
            if self.tariff is None:
                problems.append(
                    'tariff is required for a behind-the-meter site (meter="behind")'
                )
            if self.load is None:
                problems.append(
                    'load is required for a behind-the-meter site (meter="behind")'
                )
            if Service.ENERGY in self.services:
                problems.append(
                    'services: "energy" (wholesale arbitrage) is for front-of-meter '
                    'sites; a behind-the-meter site uses "peak_shaving"'
                )
        else:
            if self.tariff is not None:
                problems.append(
                    'tariff is only for a behind-the-meter site (meter="behind")'
                )
            if self.load is not None:
                problems.append(
                    'load is only for a behind-the-meter site (meter="behind")'
                )
            if Service.PEAK_SHAVING in self.services:
                problems.append(
                    'services: "peak_shaving" is only for a behind-the-meter site '
                    '(meter="behind")'
                )
        if self.resource_id is None and self.wholesale_services:
            names = ", ".join(str(s) for s in sorted(self.wholesale_services))
            problems.append(f"resource_id is required for wholesale services ({names})")
        total = math.fsum(c.cost_share for c in self.provenance)
        if abs(total - 1.0) > COST_SHARE_TOLERANCE:
            problems.append(
                f"provenance: cost_share values sum to {total:.6g}, must sum to 1"
            )
        curve = self.degradation_usd_per_mwh
        if curve is not None and any(b < a for a, b in itertools.pairwise(curve)):
            problems.append(
                f"degradation_usd_per_mwh={curve} must be non-decreasing "
                "from shallow to deep"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def is_btm(self) -> bool:
        """Whether the battery sits behind the utility meter."""
        return self.meter is Meter.BEHIND

    @property
    def is_fom(self) -> bool:
        """Whether the battery is front-of-meter: priced at its node, bid to the ISO."""
        return self.meter is Meter.FRONT

    @property
    def timezone(self) -> str:
        """The market clock (IANA name), derived from the market."""
        return market_timezone(self.market)

    @property
    def wholesale_services(self) -> frozenset[str]:
        """The services this site sells to the ISO."""
        return frozenset(self.services) - RETAIL_SERVICES

    def has_service(self, service: Service | str) -> bool:
        """Whether the site is enrolled in ``service``."""
        return str(service) in {str(s) for s in self.services}

    def scenario_site_fields(
        self, products: Collection[str] | None = None
    ) -> dict[str, Any]:
        """Return this site's fields of a dispatch scenario site (same names).

        The caller adds what depends on the day: ``soc_initial`` from telemetry,
        ``soc_final_min``, the degradation curve when the site has no override, and
        the ``btm`` block of a behind-the-meter site. ``services`` keeps the spec's
        services and, of the other ancillary services (``ecrs``, …), those in
        ``products`` (the scenario's ``products`` block must define them); None keeps
        the spec's only (a plain format-1 scenario).
        """
        fields: dict[str, Any] = {
            "id": self.id,
            "node": self.node,
            "discharge_mw": self.battery.discharge_mw,
            "charge_mw": self.battery.charge_mw,
            "energy_mwh": self.battery.energy_mwh,
            "soc_min": self.battery.soc_min,
            "soc_max": self.battery.soc_max,
            "soc_initial": self.battery.soc_initial,
            "eta_charge": self.battery.eta_charge,
            "eta_discharge": self.battery.eta_discharge,
            "services": [
                str(service)
                for service in self.services
                if service in SPEC_SERVICES or str(service) in (products or ())
            ],
            "foldback": {
                "charge_taper_soc": self.battery.charge_taper_soc,
                "discharge_taper_soc": self.battery.discharge_taper_soc,
            },
        }
        if self.degradation_usd_per_mwh is not None:
            fields["degradation_usd_per_mwh"] = list(self.degradation_usd_per_mwh)
        return fields

    @property
    def non_feoc_share(self) -> float:
        """Material assistance cost ratio (0-1): (total - prohibited) / total.

        Parts flagged FEOC or of unknown origin count as prohibited
        (``fleet.compliance.non_feoc_share``).
        """
        total = math.fsum(c.cost_share for c in self.provenance)
        against = math.fsum(
            c.cost_share for c in self.provenance if c.feoc is True or c.unknown_origin
        )
        return (total - against) / total if total > 0 else 0.0


def _market_rules(market: Market, info: ValidationInfo) -> MarketRules | None:
    """Return the rules of ``market``.

    The validation context's ``market_rules`` mapping (market name ->
    :class:`MarketRules`) when given, else the market's rules file.
    """
    given = (info.context or {}).get("market_rules") if info is not None else None
    if given and market.value in given:
        rules: MarketRules = given[market.value]
        return rules
    try:
        return load_market_rules(market.value)
    except DispatchInputError:
        return None


class Fleet(_Frozen):
    """A fleet of sites, its shared POIs and its fleet-wide capacity commitment."""

    name: Name
    sites: list[Site] = Field(min_length=1)
    poi_groups: list[PoiGroup] = Field(default_factory=list)
    capacity_min_mw: NonNegativeMw | None = Field(
        default=None, description="Least total capacity commitment of the fleet [MW]."
    )

    @model_validator(mode="after")
    def _check_fleet(self) -> Fleet:
        problems = fleet_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def by_id(self, site_id: str) -> Site:
        """Return the site with id ``site_id``.

        Raises
        ------
        KeyError
            When the fleet has no such site; the message lists the known ids.
        """
        for site in self.sites:
            if site.id == site_id:
                return site
        msg = f"fleet {self.name!r} has no site {site_id!r} (sites: {', '.join(self.site_ids)})"
        raise KeyError(msg)

    @property
    def site_ids(self) -> list[SiteId]:
        """The site ids in file order."""
        return [site.id for site in self.sites]

    def poi_group(self, name: str) -> PoiGroup:
        """Return the POI group called ``name`` (KeyError when absent)."""
        for group in self.poi_groups:
            if group.name == name:
                return group
        msg = f"fleet {self.name!r} has no poi group {name!r}"
        raise KeyError(msg)

    def poi_group_sites(self, name: str) -> list[SiteId]:
        """Return the ids of the sites behind POI group ``name``, in file order."""
        return [site.id for site in self.sites if site.poi.group == name]

    def scenario_fleet_block(self) -> dict[str, Any]:
        """Return the dispatch scenario's ``fleet`` block (capacity and POI groups)."""
        block: dict[str, Any] = {
            "poi_groups": [
                {
                    "sites": list(self.poi_group_sites(group.name)),
                    "export_mw": group.export_mw,
                    "import_mw": group.import_mw,
                }
                for group in self.poi_groups
            ]
        }
        if self.capacity_min_mw is not None:
            block["capacity_min_mw"] = self.capacity_min_mw
        return block


def fleet_problems(fleet: Fleet) -> list[str]:
    """List the fleet-level problems: duplicate ids, dangling or empty POI groups.

    Parameters
    ----------
    fleet
        A fleet whose sites already validated (built with ``model_construct`` or
        being validated).

    Returns
    -------
    list[str]
        One line per problem; empty when the fleet is consistent.
    """
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, site in enumerate(fleet.sites):
        if site.id in seen:
            problems.append(
                f'site "{site.id}": id is used by site #{seen[site.id] + 1} and '
                f"site #{index + 1}: site ids must be unique"
            )
        else:
            seen[site.id] = index
    resources: dict[str, str] = {}
    for site in fleet.sites:
        if site.resource_id is None:
            continue
        other = resources.setdefault(site.resource_id, site.id)
        if other != site.id:
            problems.append(
                f'site "{site.id}": resource_id="{site.resource_id}" is also used by '
                f'site "{other}": resource ids must be unique'
            )
    group_names: set[str] = set()
    for group in fleet.poi_groups:
        if group.name in group_names:
            problems.append(f'poi group "{group.name}" is declared more than once')
        group_names.add(group.name)
    used: set[str] = set()
    for site in fleet.sites:
        group_name = site.poi.group
        if group_name is None:
            continue
        used.add(group_name)
        if group_name not in group_names:
            known = ", ".join(sorted(group_names)) or "none declared"
            problems.append(
                f'site "{site.id}": poi.group="{group_name}" is not a declared '
                f"poi_groups name (declared: {known})"
            )
    problems.extend(
        f'poi group "{name}" has no sites (no site has poi.group="{name}")'
        for name in sorted(group_names - used)
    )
    return problems
