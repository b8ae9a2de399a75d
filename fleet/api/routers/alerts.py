"""Condition alerts of the health scan: list, read, acknowledge (scheduler)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from fleet.api import queries
from fleet.api.deps import BusDep, SchedulerKey, StoreDep, ViewerKey
from fleet.api.errors import NotFoundError
from fleet.api.routers._common import AUTH_RESPONSES, NOT_FOUND, utc_now
from fleet.api.schemas import AlertListOut, AlertOut
from fleet.errors import FleetInputError
from fleet.store import alerts as alert_store
from fleet.store import audit
from fleet.types import SITE_ID_PATTERN

if TYPE_CHECKING:
    import sqlalchemy as sa

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["alerts"], responses=AUTH_RESPONSES)

AlertIdParam = Annotated[
    int, Path(ge=1, le=2**62, description="Alert id.", examples=[7])
]
MAX_OFFSET = 1_000_000
"""Largest ``offset`` accepted by ``GET /v1/alerts``."""


def _timezones(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {
            str(r["id"]): queries.market_timezone(str(r["market"]))
            for r in queries.site_rows(conn)
        }


def _iso_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def _alert_out(alert: alert_store.Alert, timezones: dict[str, str]) -> AlertOut:
    action = alert.detail.get("action")
    return AlertOut(
        alert_id=alert.id,
        site_id=alert.site_id,
        dev_id=alert.dev_id,
        kind=alert.kind,
        severity=alert.severity,
        opened_at=alert.opened_at,
        closed_at=alert.closed_at,
        open=alert.closed_at is None,
        acknowledged_by=alert.acknowledged_by,
        acknowledged_at=_iso_time(alert.detail.get("acknowledged_at")),
        action=None if action is None else str(action),
        timezone=timezones.get(alert.site_id or "", "UTC"),
        detail=alert.detail,
    )


def _get_or_404(engine: sa.Engine, alert_id: int) -> alert_store.Alert:
    try:
        return alert_store.get_alert(engine, alert_id)
    except FleetInputError as exc:
        msg = f"alert_id={alert_id}: no such alert"
        raise NotFoundError(msg) from exc


@router.get("/alerts", response_model=AlertListOut)
def list_alerts(
    engine: StoreDep,
    _key: ViewerKey,
    site_id: Annotated[
        str | None, Query(pattern=SITE_ID_PATTERN, examples=["tx-odessa-01"])
    ] = None,
    open_only: Annotated[
        bool, Query(description="Only alerts whose condition has not cleared.")
    ] = True,
    severity: Annotated[
        Literal["info", "warning", "critical"] | None, Query(examples=["critical"])
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> AlertListOut:
    """Alerts, newest first (open ones by default), with the recommended action."""
    found = alert_store.list_alerts(
        engine, site_id=site_id, open_only=open_only, severity=severity
    )
    timezones = _timezones(engine)
    return AlertListOut(
        items=[_alert_out(a, timezones) for a in found[offset : offset + limit]],
        count=len(found),
        limit=limit,
        offset=offset,
    )


@router.get("/alerts/{alert_id}", response_model=AlertOut, responses=NOT_FOUND)
def get_alert(alert_id: AlertIdParam, engine: StoreDep, _key: ViewerKey) -> AlertOut:
    """One alert, open or closed."""
    alert = _get_or_404(engine, alert_id)
    return _alert_out(alert, _timezones(engine))


@router.post("/alerts/{alert_id}/ack", response_model=AlertOut, responses=NOT_FOUND)
def acknowledge_alert(
    alert_id: AlertIdParam, engine: StoreDep, key: SchedulerKey, bus: BusDep
) -> AlertOut:
    """Acknowledge an alert (scheduler); audit-logged and pushed as an ``alert`` event.

    Acknowledging again keeps the first acknowledgement and writes nothing.
    """
    _get_or_404(engine, alert_id)
    now = utc_now()
    with engine.begin() as conn:
        before = alert_store.get_alert(conn, alert_id)
        if before.acknowledged_by is not None:
            return _alert_out(before, _timezones(engine))
        acked = alert_store.acknowledge(conn, alert_id, by=key.id, now=now)
        audit.record(
            conn,
            actor=key.id,
            action="alert.ack",
            object_type="alert",
            object_id=alert_id,
            detail={
                "site_id": acked.site_id,
                "dev_id": acked.dev_id,
                "kind": acked.kind,
                "severity": acked.severity,
            },
            ts=now,
        )
    logger.info("alert %s (%s) acknowledged by %s", alert_id, acked.kind, key.id)
    bus.publish_threadsafe(
        "alert",
        {
            "alert_id": acked.id,
            "site_id": acked.site_id,
            "dev_id": acked.dev_id,
            "kind": acked.kind,
            "severity": acked.severity,
            "open": acked.closed_at is None,
            "acknowledged_by": acked.acknowledged_by,
            "ts": now.isoformat(),
            "summary": f"{acked.kind} acknowledged by {key.id}",
        },
    )
    return _alert_out(acked, _timezones(engine))
