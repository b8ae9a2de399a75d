"""Hold what the telemetry package needs to know about sites (ids, groups, limits)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from telemetry.errors import TelemetryInputError
from telemetry.topics import check_id


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """A site as telemetry sees it: identity, topic group and battery limits."""

    site_id: str
    """Gateway identity (MQTT username, certificate CN, topic level)."""
    group: str
    """Topic group (market/ISO partition)."""
    energy_mwh: float
    """Usable nameplate energy [MWh]."""
    charge_mw: float
    """Maximum charge power [MW] (positive number)."""
    discharge_mw: float
    """Maximum discharge power [MW]."""
    soc_min: float = 0.05
    """Minimum state of charge, fraction 0-1."""
    soc_max: float = 0.95
    """Maximum state of charge, fraction 0-1."""
    eta_charge: float = 0.95
    """Charge efficiency, fraction 0-1."""
    eta_discharge: float = 0.95
    """Discharge efficiency, fraction 0-1."""
    cells_in_series: int | None = None
    """Cells in series per string (sets the DC voltage bound); ``None`` if unknown."""
    strings: int = 1
    """Parallel strings."""

    def __post_init__(self) -> None:
        check_id(self.site_id, "site_id")
        check_id(self.group, f"site {self.site_id}: group")
        for name in ("energy_mwh", "charge_mw", "discharge_mw"):
            if not getattr(self, name) > 0:
                msg = f"site {self.site_id}: {name}={getattr(self, name)} must be > 0"
                raise TelemetryInputError(msg)
        if not 0 <= self.soc_min < self.soc_max <= 1:
            msg = (
                f"site {self.site_id}: soc_min={self.soc_min}, soc_max={self.soc_max} "
                "must satisfy 0 <= soc_min < soc_max <= 1"
            )
            raise TelemetryInputError(msg)


@dataclass(frozen=True, slots=True)
class SiteRegistry:
    """The known sites, by id."""

    sites: Mapping[str, SiteSpec]
    """Site specs keyed by ``site_id``."""

    @classmethod
    def of(cls, specs: Iterable[SiteSpec]) -> SiteRegistry:
        """Build a registry from specs; duplicate ids are an error."""
        out: dict[str, SiteSpec] = {}
        for spec in specs:
            if spec.site_id in out:
                msg = f"site_id={spec.site_id!r} appears twice"
                raise TelemetryInputError(msg)
            out[spec.site_id] = spec
        return cls(out)

    def get(self, site_id: str) -> SiteSpec | None:
        """Return the spec of ``site_id`` or ``None`` if unknown."""
        return self.sites.get(site_id)

    def __contains__(self, site_id: object) -> bool:
        return site_id in self.sites

    def __len__(self) -> int:
        return len(self.sites)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def site_spec_from(site: Any) -> SiteSpec:
    """Build a :class:`SiteSpec` from a duck-typed site (domain object or dict).

    Parameters
    ----------
    site
        An object or mapping with ``id``, ``mqtt_group`` (or ``market``) and
        ``battery`` carrying ``energy_mwh``, ``charge_mw``, ``discharge_mw``,
        ``soc_min``, ``soc_max`` and optionally ``eta_charge``, ``eta_discharge``,
        ``cells_in_series``, ``strings``.

    Returns
    -------
    SiteSpec
    """
    site_id = _get(site, "id") or _get(site, "site_id")
    group = _get(site, "mqtt_group") or _get(site, "market")
    battery = _get(site, "battery")
    if site_id is None or group is None or battery is None:
        msg = f"site {site_id!r}: needs id, mqtt_group (or market) and battery"
        raise TelemetryInputError(msg)
    try:
        cells = _get(battery, "cells_in_series")
        return SiteSpec(
            site_id=str(site_id),
            group=str(group).lower(),
            energy_mwh=float(_get(battery, "energy_mwh")),
            charge_mw=float(_get(battery, "charge_mw")),
            discharge_mw=float(_get(battery, "discharge_mw")),
            soc_min=float(_get(battery, "soc_min", 0.05)),
            soc_max=float(_get(battery, "soc_max", 0.95)),
            eta_charge=float(_get(battery, "eta_charge", 0.95)),
            eta_discharge=float(_get(battery, "eta_discharge", 0.95)),
            cells_in_series=int(cells) if cells is not None else None,
            strings=int(_get(battery, "strings", 1) or 1),
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, TelemetryInputError):
            raise
        msg = f"site {site_id!r}: bad battery field: {exc}"
        raise TelemetryInputError(msg) from None
