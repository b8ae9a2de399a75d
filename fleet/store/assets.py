"""Store serialized assets and their append-only history of events.

Every import, correction and swap is an event row with the actor who entered it,
its entry time (``recorded_at``), its effective time (``ts``) and a reason; events are
never updated or deleted. ``assets`` holds the current state the events lead to.
An installation may not start in the future or overlap the unit's own history, and
a device position holds one installed unit at a time.
"""

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
    country_of_manufacture: str | None
    """ISO 3166 alpha-2 country code (None: unknown origin)."""
    feoc: bool | None
    """Made by a foreign entity of concern (None: unknown, a compliance risk)."""
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
    """``register``, ``install``, ``remove``, ``swap_in``, ``swap_out`` or
    ``correct``."""
    ts: dt.datetime
    """Effective time (when it happened), UTC."""
    site_id: str | None
    """Site."""
    position: str | None
    """Position in the site."""
    dev_id: str | None
    """Telemetry device."""
    detail: dict[str, Any]
    """Free-form detail (the other serial of a swap, a correction's before/after…)."""
    actor: str | None = None
    """Who entered it (None for rows older than migration 0008)."""
    recorded_at: dt.datetime | None = None
    """Entry time (when it was recorded), UTC."""
    reason: str | None = None
    """Why."""

    def as_json(self) -> dict[str, Any]:
        """Return the event as a JSON-ready document."""
        return {
            "kind": self.kind,
            "ts": self.ts.isoformat(),
            "recorded_at": self.recorded_at.isoformat() if self.recorded_at else None,
            "actor": self.actor,
            "reason": self.reason,
            "site_id": self.site_id,
            "position": self.position,
            "dev_id": self.dev_id,
            "detail": self.detail,
        }


FACT_FIELDS = (
    "kind",
    "manufacturer",
    "model",
    "country_of_manufacture",
    "feoc",
    "energy_mwh",
    "parent_serial",
)
"""What a unit *is*: changed only by an explicit correction event."""

PLACEMENT_FIELDS = ("site_id", "position", "dev_id", "installed_at")
"""Where it is: changed only by install, swap and remove events."""


def _asset(row: sa.Row[Any]) -> AssetRow:
    return AssetRow(**{c: getattr(row, c) for c in AssetRow.__slots__})


def _record(
    conn: sa.Connection,
    *,
    serial: str,
    kind: str,
    ts: dt.datetime,
    actor: str,
    now: dt.datetime,
    reason: str | None,
    site_id: str | None = None,
    position: str | None = None,
    dev_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        asset_events.insert().values(
            serial=serial,
            kind=kind,
            ts=ts,
            site_id=site_id,
            position=position,
            dev_id=dev_id,
            detail=detail or {},
            actor=actor,
            recorded_at=now,
            reason=reason,
        )
    )


def _check_actor(actor: str) -> None:
    if not actor.strip():
        msg = "actor must name who enters the change"
        raise FleetInputError(msg)


def occupant(
    bind: Bind,
    *,
    site_id: str,
    dev_id: str | None,
    position: str | None,
    exclude: str | None = None,
) -> AssetRow | None:
    """Return the unit installed at a site's device or position now, if any."""
    if dev_id is None and position is None:
        return None
    query = sa.select(assets).where(
        assets.c.site_id == site_id, assets.c.removed_at.is_(None)
    )
    same = []
    if dev_id is not None:
        same.append(assets.c.dev_id == dev_id)
    if position is not None:
        same.append(assets.c.position == position)
    query = query.where(sa.or_(*same))
    if exclude is not None:
        query = query.where(assets.c.serial != exclude)
    with transaction(bind) as conn:
        row = conn.execute(query).first()
    return None if row is None else _asset(row)


def save_asset(
    bind: Bind,
    values: dict[str, Any],
    *,
    now: dt.datetime,
    actor: str,
    reason: str | None = None,
    correction: bool = False,
) -> str:
    """Register a unit, or check a known one against the registry; record the event.

    Returns ``"new"`` (a ``register`` or ``install`` event at ``installed_at``),
    ``"unchanged"`` (same facts and placement: nothing recorded) or ``"corrected"``
    (facts changed by an explicit correction: a ``correct`` event with the values
    before and after).

    Raises
    ------
    FleetInputError
        When ``actor`` is empty; a new installation is in the future or its device
        or position is taken; a known serial comes with different facts and
        ``correction`` is false (or true without a ``reason``); or with a different
        placement (placements change by swap events, never by import).
    """
    _check_actor(actor)
    serial = values["serial"]
    with transaction(bind) as conn:
        row = conn.execute(sa.select(assets).where(assets.c.serial == serial)).first()
        if row is None:
            installed_at = values.get("installed_at")
            if installed_at is not None and installed_at > now:
                msg = (
                    f"serial={serial!r}: installed_at={installed_at.isoformat()} is in "
                    f"the future (now {now.isoformat()})"
                )
                raise FleetInputError(msg)
            if values.get("site_id") is not None:
                taken = occupant(
                    conn,
                    site_id=values["site_id"],
                    dev_id=values.get("dev_id"),
                    position=values.get("position"),
                )
                if taken is not None:
                    msg = (
                        f"serial={serial!r}: {values['site_id']} "
                        f"{values.get('position') or values.get('dev_id')} already "
                        f"holds {taken.serial} (installed "
                        f"{taken.installed_at.isoformat() if taken.installed_at else '?'});"
                        " record a swap instead"
                    )
                    raise FleetInputError(msg)
            conn.execute(assets.insert().values(**values))
            installed = values.get("site_id") and installed_at
            _record(
                conn,
                serial=serial,
                kind="install" if installed else "register",
                ts=installed_at or now,
                actor=actor,
                now=now,
                reason=reason,
                site_id=values.get("site_id"),
                position=values.get("position"),
                dev_id=values.get("dev_id"),
            )
            return "new"
        current = _asset(row)
        # A row with a placement must match the current one; a row without one
        # (stock list) says nothing about where the unit is now.
        moved = [
            f"{k}: {getattr(current, k)!r} -> {values.get(k)!r}"
            for k in PLACEMENT_FIELDS
            if values.get("site_id") is not None
            and values.get(k) != getattr(current, k)
        ]
        if moved:
            msg = (
                f"serial={serial!r} is registered with another placement "
                f"({'; '.join(moved)}); placements change by `assets swap`, not import"
            )
            raise FleetInputError(msg)
        before = {k: getattr(current, k) for k in FACT_FIELDS}
        after = {k: values.get(k) for k in FACT_FIELDS}
        changed = {k for k in FACT_FIELDS if before[k] != after[k]}
        if not changed:
            return "unchanged"
        diff = "; ".join(f"{k}: {before[k]!r} -> {after[k]!r}" for k in sorted(changed))
        if not correction:
            msg = (
                f"serial={serial!r} is registered with other facts ({diff}); "
                "import it as an explicit correction (--correction --reason …) "
                "if the registry is wrong"
            )
            raise FleetInputError(msg)
        if not (reason or "").strip():
            msg = f"serial={serial!r}: a correction needs a reason"
            raise FleetInputError(msg)
        conn.execute(
            assets.update()
            .where(assets.c.serial == serial)
            .values(**{k: after[k] for k in changed})
        )
        _record(
            conn,
            serial=serial,
            kind="correct",
            ts=now,
            actor=actor,
            now=now,
            reason=reason,
            site_id=current.site_id,
            position=current.position,
            dev_id=current.dev_id,
            detail={
                "before": {k: before[k] for k in sorted(changed)},
                "after": {k: after[k] for k in sorted(changed)},
            },
        )
        return "corrected"


def get_asset(bind: Bind, serial: str) -> AssetRow:
    """Return one asset.

    Raises
    ------
    FleetInputError
        When ``serial`` is not registered.
    """
    serial = serial.strip().upper()
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
    """Return an asset's events, oldest first (by effective time, then entry)."""
    serial = serial.strip().upper()
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
            actor=r.actor,
            recorded_at=r.recorded_at,
            reason=r.reason,
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
    now: dt.datetime,
    actor: str,
    reason: str | None = None,
) -> None:
    """Replace an installed asset by another at the same site position and device.

    Raises
    ------
    FleetInputError
        When ``actor`` is empty; ``at`` is in the future; ``out_serial`` is not
        installed, or ``at`` is not after its installation; ``in_serial`` is
        installed anywhere, or has history after ``at`` (its installations would
        overlap); or the two are of different kinds.
    """
    _check_actor(actor)
    out_serial, in_serial = out_serial.strip().upper(), in_serial.strip().upper()
    if at > now:
        msg = f"at={at.isoformat()} is in the future (now {now.isoformat()})"
        raise FleetInputError(msg)
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
    if old.installed_at is not None and at <= old.installed_at:
        msg = (
            f"at={at.isoformat()} is not after {out_serial} was installed "
            f"({old.installed_at.isoformat()})"
        )
        raise FleetInputError(msg)
    later = [
        e
        for e in events(bind, in_serial)
        if e.ts > at and e.kind not in {"register", "correct"}
    ]
    if later:
        msg = (
            f"at={at.isoformat()} overlaps the history of {in_serial}: "
            f"{later[-1].kind} at {later[-1].ts.isoformat()}"
            f"{' at ' + later[-1].site_id if later[-1].site_id else ''}"
        )
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
            _record(
                conn,
                serial=serial,
                kind=kind,
                ts=at,
                actor=actor,
                now=now,
                reason=reason,
                detail={"other_serial": other},
                **where,
            )
