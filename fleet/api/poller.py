"""Poll the store for new schedules, setpoints, state changes and alerts; publish them."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from fleet.api import queries
from fleet.store.tables import alerts, schedule_intervals, schedules, setpoints
from fleet.store.telemetry_tables import tlm_latest, tlm_site_sessions

if TYPE_CHECKING:
    from fleet.api.events import EventBus

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_KIND = 200
"""Most events of one kind published per poll (the rest wait for the next poll)."""


@dataclass
class Cursor:
    """How far the poller has read each source."""

    schedule_id: int = 0
    alert_id: int = 0
    setpoint_ms: int = 0
    latest_ms: int = 0
    session_ms: int = 0
    primed: bool = False
    last_error: str | None = field(default=None)


def _max(conn: sa.Connection, column: sa.ColumnElement[Any]) -> int:
    value = conn.execute(sa.select(sa.func.max(column))).scalar()
    return int(value or 0)


def prime(conn: sa.Connection, cursor: Cursor) -> None:
    """Start the cursor at the store's current end (history is not replayed)."""
    cursor.schedule_id = _max(conn, schedules.c.id)
    cursor.alert_id = _max(conn, alerts.c.id)
    newest_setpoint = conn.execute(
        sa.select(sa.func.max(setpoints.c.issued_ts))
    ).scalar()
    cursor.setpoint_ms = (
        0 if newest_setpoint is None else queries.dt_to_ms(newest_setpoint)
    )
    cursor.latest_ms = _max(conn, tlm_latest.c.updated_at_ms)
    cursor.session_ms = _max(conn, tlm_site_sessions.c.updated_at_ms)
    cursor.primed = True


def poll_once(conn: sa.Connection, cursor: Cursor) -> list[tuple[str, dict[str, Any]]]:
    """Return the events for what changed since ``cursor`` and advance it."""
    if not cursor.primed:
        prime(conn, cursor)
        return []
    events: list[tuple[str, dict[str, Any]]] = []
    for row in conn.execute(
        sa.select(schedules)
        .where(schedules.c.id > cursor.schedule_id)
        .order_by(schedules.c.id)
        .limit(MAX_EVENTS_PER_KIND)
    ):
        site_ids = [
            r[0]
            for r in conn.execute(
                sa.select(schedule_intervals.c.site_id)
                .where(schedule_intervals.c.schedule_id == row.id)
                .distinct()
            )
        ]
        events.append(
            (
                "schedule",
                {
                    "schedule_id": int(row.id),
                    "market": row.market,
                    "operating_day": row.operating_day.isoformat(),
                    "version": int(row.version),
                    "status": row.status,
                    "objective_usd": row.objective_usd,
                    "site_ids": site_ids,
                    "ts": row.created_at.isoformat(),
                    "summary": f"v{row.version} {row.status}",
                },
            )
        )
        cursor.schedule_id = max(cursor.schedule_id, int(row.id))
    setpoint_since = queries.ms_to_dt(cursor.setpoint_ms)
    for row in conn.execute(
        sa.select(setpoints)
        .where(setpoints.c.issued_ts > setpoint_since)
        .order_by(setpoints.c.issued_ts)
        .limit(MAX_EVENTS_PER_KIND)
    ):
        events.append(
            (
                "setpoint",
                {
                    "cmd_id": row.cmd_id,
                    "site_id": row.site_id,
                    "p_mw": row.p_ac_w_setpoint / 1e6,
                    "status": row.status,
                    "ts": row.issued_ts.isoformat(),
                    "summary": f"{row.p_ac_w_setpoint / 1e6:+.2f} MW ({row.status})",
                },
            )
        )
        cursor.setpoint_ms = max(cursor.setpoint_ms, queries.dt_to_ms(row.issued_ts))
    for row in conn.execute(
        sa.select(alerts)
        .where(alerts.c.id > cursor.alert_id)
        .order_by(alerts.c.id)
        .limit(MAX_EVENTS_PER_KIND)
    ):
        events.append(
            (
                "alarm",
                {
                    "alert_id": int(row.id),
                    "site_id": row.site_id,
                    "kind": row.kind,
                    "severity": row.severity,
                    "ts": row.opened_at.isoformat(),
                    "summary": f"{row.severity}: {row.kind}",
                },
            )
        )
        cursor.alert_id = max(cursor.alert_id, int(row.id))
    changed = {
        r.site_id: int(r.u)
        for r in conn.execute(
            sa.select(
                tlm_latest.c.site_id, sa.func.max(tlm_latest.c.updated_at_ms).label("u")
            )
            .where(tlm_latest.c.updated_at_ms > cursor.latest_ms)
            .group_by(tlm_latest.c.site_id)
        )
    }
    sessions = {
        r.site_id: int(r.updated_at_ms)
        for r in conn.execute(
            sa.select(
                tlm_site_sessions.c.site_id, tlm_site_sessions.c.updated_at_ms
            ).where(tlm_site_sessions.c.updated_at_ms > cursor.session_ms)
        )
    }
    site_ids = sorted(set(changed) | set(sessions))[:MAX_EVENTS_PER_KIND]
    if site_ids:
        states = queries.site_states(conn, site_ids)
        now_ms = int(time.time() * 1000)
        for site_id in site_ids:
            state = queries.state_dict(states.get(site_id), now_ms)
            events.append(
                (
                    "state",
                    {
                        "site_id": site_id,
                        "state": state,
                        "ts": None if state is None else state["ts"],
                        "summary": _state_summary(state),
                    },
                )
            )
        cursor.latest_ms = max([cursor.latest_ms, *changed.values()])
        cursor.session_ms = max([cursor.session_ms, *sessions.values()])
    return events


def _state_summary(state: dict[str, Any] | None) -> str:
    if state is None:
        return ""
    parts = []
    if state.get("soc") is not None:
        parts.append(f"SoC {state['soc'] * 100:.1f} %")
    if state.get("power_mw") is not None:
        parts.append(f"{state['power_mw']:+.2f} MW")
    if state.get("online") is False:
        parts.append("offline")
    return ", ".join(parts)


async def run_poller(
    engine: sa.Engine, bus: EventBus, interval_s: float, cursor: Cursor
) -> None:
    """Poll the store every ``interval_s`` seconds until cancelled."""

    def work() -> list[tuple[str, dict[str, Any]]]:
        with engine.connect() as conn:
            return poll_once(conn, cursor)

    while True:
        try:
            for kind, data in await asyncio.to_thread(work):
                bus.publish(kind, data)
            cursor.last_error = None
        except sa.exc.SQLAlchemyError as exc:
            if cursor.last_error != str(exc):
                logger.warning("store poller: %s", exc)
            cursor.last_error = str(exc)
        await asyncio.sleep(interval_s)
