"""Store serialized assets and their install, removal and swap events."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from fleet.errors import FleetInputError
from fleet.store.asset_tables import asset_events, assets
from fleet.store.dml import Bind, transaction


@dataclass(frozen=True, slots=True)
class AssetRow:
    """One registered asset."""

    serial: str
    """Serial number."""
    kind: str
    """``cell``, ``module``, ``string``, ``rack`` or ``pcs``."""
    manufacturer: str
    """Manufacturer."""
    model: str | None
    """Model name."""
    country_of_manufacture: str
    """ISO 3166 alpha-2 country code."""
    feoc: bool
    """Made by a foreign entity of concern."""
    energy_mwh: float | None
    """Nameplate energy [MWh] (batteries only)."""
    site_id: str | None
    """Site it is installed at (None when in stock or removed)."""
    position: str | None
    """Position in the site, e.g. ``rack1/bank2``."""
    dev_id: str | None
    """Telemetry device whose measurements are this asset's while installed."""
    parent_serial: str | None
    """Serial of the assembly it belongs to."""
    installed_at: dt.datetime | None
    """Current installation time, UTC."""
    removed_at: dt.datetime | None
    """Removal time, UTC (None while installed)."""


@dataclass(frozen=True, slots=True)
class AssetEvent:
    """One event in an asset's life."""

    serial: str
    """Serial number."""
    kind: str
    """``register``, ``install``, ``remove``, ``swap_in`` or ``swap_out``."""
    ts: dt.datetime
    """When, UTC."""
    site_id: str | None
    """Site."""
    position: str | None
    """Position in the site."""
    dev_id: str | None
    """Telemetry device."""
    detail: dict[str, Any]
    """Free-form detail (the other serial of a swap, a reason…)."""


def _asset(row: sa.Row[Any]) -> AssetRow:
    return AssetRow(**{c: getattr(row, c) for c in AssetRow.__slots__})


def save_asset(bind: Bind, values: dict[str, Any], *, now: dt.datetime) -> bool:
    """Insert or update an asset by serial; record an event; return True when new.

    A new installed asset gets an ``install`` event at ``installed_at``; a new one in
    stock gets ``register``.
    """
    with transaction(bind) as conn:
        exists = conn.execute(
            sa.select(assets.c.serial).where(assets.c.serial == values["serial"])
        ).first()
        if exists:
            conn.execute(
                assets.update()
                .where(assets.c.serial == values["serial"])
                .values(**{k: v for k, v in values.items() if k != "serial"})
            )
            return False
        conn.execute(assets.insert().values(**values))
        installed = values.get("site_id") and values.get("installed_at")
        conn.execute(
            asset_events.insert().values(
                serial=values["serial"],
                kind="install" if installed else "register",
                ts=values.get("installed_at") or now,
                site_id=values.get("site_id"),
                position=values.get("position"),
                dev_id=values.get("dev_id"),
                detail={},
            )
        )
        return True


def get_asset(bind: Bind, serial: str) -> AssetRow:
    """Return one asset.

    Raises
    ------
    FleetInputError
        When ``serial`` is not registered.
    """
    with transaction(bind) as conn:
        row = conn.execute(sa.select(assets).where(assets.c.serial == serial)).first()
    if row is None:
        msg = f"serial={serial!r} is not in the asset registry"
        raise FleetInputError(msg)
    return _asset(row)


def list_assets(bind: Bind, *, site_id: str | None = None) -> list[AssetRow]:
    """Return assets (of one site if given), by serial."""
    query = sa.select(assets).order_by(assets.c.serial)
    if site_id is not None:
        query = query.where(assets.c.site_id == site_id)
    with transaction(bind) as conn:
        return [_asset(r) for r in conn.execute(query).all()]


def events(bind: Bind, serial: str) -> list[AssetEvent]:
    """Return an asset's events, oldest first."""
    with transaction(bind) as conn:
        rows = conn.execute(
            sa.select(asset_events)
            .where(asset_events.c.serial == serial)
            .order_by(asset_events.c.ts, asset_events.c.id)
        ).all()
    return [
        AssetEvent(
            serial=r.serial,
            kind=r.kind,
            ts=r.ts,
            site_id=r.site_id,
            position=r.position,
            dev_id=r.dev_id,
            detail=dict(r.detail or {}),
        )
        for r in rows
    ]


def site_serials(bind: Bind, site_id: str) -> list[str]:
    """Return the serials that have ever had an event at ``site_id``."""
    with transaction(bind) as conn:
        rows = conn.execute(
            sa.select(asset_events.c.serial)
            .where(asset_events.c.site_id == site_id)
            .distinct()
            .order_by(asset_events.c.serial)
        ).all()
    return [str(r.serial) for r in rows]


def swap(
    bind: Bind,
    *,
    out_serial: str,
    in_serial: str,
    at: dt.datetime,
    reason: str | None = None,
) -> None:
    """Replace an installed asset by another at the same site position and device.

    Raises
    ------
    FleetInputError
        When ``out_serial`` is not installed, ``in_serial`` is installed elsewhere,
        the two are of different kinds, or ``at`` precedes the installation.
    """
    old = get_asset(bind, out_serial)
    new = get_asset(bind, in_serial)
    if old.site_id is None or old.removed_at is not None:
        msg = f"out serial={out_serial!r} is not installed at any site"
        raise FleetInputError(msg)
    if new.site_id is not None and new.removed_at is None:
        msg = f"in serial={in_serial!r} is already installed at {new.site_id}"
        raise FleetInputError(msg)
    if old.kind != new.kind:
        msg = f"in serial={in_serial!r} is a {new.kind}, out serial is a {old.kind}"
        raise FleetInputError(msg)
    if old.installed_at is not None and at < old.installed_at:
        msg = f"at={at.isoformat()} is before {out_serial} was installed"
        raise FleetInputError(msg)
    where = {"site_id": old.site_id, "position": old.position, "dev_id": old.dev_id}
    with transaction(bind) as conn:
        conn.execute(
            assets.update()
            .where(assets.c.serial == out_serial)
            .values(removed_at=at, site_id=None, position=None, dev_id=None)
        )
        conn.execute(
            assets.update()
            .where(assets.c.serial == in_serial)
            .values(installed_at=at, removed_at=None, **where)
        )
        for serial, kind, other in (
            (out_serial, "swap_out", in_serial),
            (in_serial, "swap_in", out_serial),
        ):
            conn.execute(
                asset_events.insert().values(
                    serial=serial,
                    kind=kind,
                    ts=at,
                    detail={"other_serial": other, "reason": reason},
                    **where,
                )
            )
