"""Append to and read the audit log (who did what to which object, when)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from fleet.store.dml import Bind, transaction
from fleet.store.tables import audit_log


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit log row."""

    id: int
    """Row id (increasing)."""
    ts: dt.datetime
    """When it happened, UTC."""
    actor: str
    """API key id, ``"system"`` or ``"cli"``."""
    action: str
    """Verb, e.g. ``"schedule.save"``."""
    object_type: str
    """Kind of object acted on, e.g. ``"schedule"``."""
    object_id: str | None
    """Id of the object acted on."""
    detail: dict[str, Any] | None
    """Free-form JSON detail."""


def record(
    bind: Bind,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int | None = None,
    detail: dict[str, Any] | None = None,
    ts: dt.datetime | None = None,
) -> int:
    """Append one audit entry and return its id.

    Pass the connection of the write being audited so that both commit together.

    Parameters
    ----------
    bind
        Engine or connection.
    actor
        API key id, ``"system"`` or ``"cli"``.
    action
        What was done, e.g. ``"prices.import"``.
    object_type, object_id
        What it was done to.
    detail
        JSON-serializable detail.
    ts
        When (aware); defaults to now, UTC.
    """
    if not actor:
        msg = "audit actor must be a non-empty key id, 'system' or 'cli'"
        raise ValueError(msg)
    values = {
        "ts": ts or dt.datetime.now(dt.UTC),
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id),
        "detail": detail,
    }
    with transaction(bind) as conn:
        result = conn.execute(
            sa.insert(audit_log).values(**values).returning(audit_log.c.id)
        )
        return int(result.scalar_one())


def list_entries(
    bind: Bind,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    actor: str | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Return the newest audit entries first, optionally filtered."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if object_type is not None:
        query = query.where(audit_log.c.object_type == object_type)
    if object_id is not None:
        query = query.where(audit_log.c.object_id == object_id)
    if actor is not None:
        query = query.where(audit_log.c.actor == actor)
    with transaction(bind) as conn:
        return [AuditEntry(**row._mapping) for row in conn.execute(query)]
