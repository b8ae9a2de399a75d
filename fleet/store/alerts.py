"""Store condition alerts and their life cycle, and the daily health features.

One open alert per (site, device, kind, unit serial). Its life cycle (docs/health.md):

- a finding opens it, or refreshes the open one (severity only rises);
- a finding after the condition had been absent starts a new *episode* of the same
  alert (``detail.occurrences`` counts episodes, ``detail.episodes`` lists their first
  and last days): flapping folds into one alert and its acknowledgement stays;
- :func:`mark_absent` records a scan without the condition; once it has been absent
  for ``clear_days`` the alert is ``cleared`` (still open);
- it closes only when cleared *and* acknowledged (:func:`acknowledge`) or resolved
  (:func:`resolve`), whichever comes last.

The device id, serial, acknowledgement and resolution times live in ``detail``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from fleet.errors import FleetInputError
from fleet.store.asset_tables import HEALTH_FEATURE_COLUMNS, health_daily
from fleet.store.dml import Bind, transaction, upsert
from fleet.store.tables import ALERT_SEVERITIES, alerts

SEVERITY_RANK = {name: rank for rank, name in enumerate(ALERT_SEVERITIES)}

MAX_EPISODES = 50
"""Most episodes an alert keeps in ``detail.episodes`` (the count goes on)."""


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert row."""

    id: int
    """Row id."""
    site_id: str | None
    """Site id."""
    kind: str
    """Detector kind, e.g. ``thermal_outlier``."""
    severity: str
    """``info``, ``warning`` or ``critical``."""
    opened_at: dt.datetime
    """When it was first raised, UTC."""
    closed_at: dt.datetime | None
    """When the condition cleared, UTC (None while open)."""
    acknowledged_by: str | None
    """Who acknowledged it."""
    detail: dict[str, Any]
    """Statistic, value, threshold, action, device, occurrences…"""

    @property
    def dev_id(self) -> str:
        """The device the alert is about (``"*"`` for site-wide)."""
        return str(self.detail.get("dev_id", "*"))

    @property
    def serial(self) -> str | None:
        """The unit (module serial) the alert is about, when the registry knows it."""
        value = self.detail.get("serial")
        return str(value) if value else None

    @property
    def state(self) -> str:
        """``active`` (condition present), ``absent``, ``cleared`` or ``closed``."""
        if self.closed_at is not None:
            return "closed"
        return str(self.detail.get("state", "active"))


def _alert(row: sa.Row[Any]) -> Alert:
    return Alert(
        id=int(row.id),
        site_id=row.site_id,
        kind=row.kind,
        severity=row.severity,
        opened_at=row.opened_at,
        closed_at=row.closed_at,
        acknowledged_by=row.acknowledged_by,
        detail=dict(row.detail or {}),
    )


def _open_rows(conn: sa.Connection, site_id: str, kind: str) -> list[Alert]:
    rows = conn.execute(
        sa.select(alerts).where(
            alerts.c.site_id == site_id,
            alerts.c.kind == kind,
            alerts.c.closed_at.is_(None),
        )
    ).all()
    return [_alert(r) for r in rows]


def raise_alert(
    bind: Bind,
    *,
    site_id: str,
    dev_id: str,
    kind: str,
    severity: str,
    detail: dict[str, Any],
    now: dt.datetime,
    day: dt.date | None = None,
    serial: str | None = None,
) -> tuple[int, bool]:
    """Open an alert, or update the open one with the same (site, device, kind, serial).

    Parameters
    ----------
    bind
        Engine or connection.
    site_id, dev_id, kind, serial
        The deduplication key (``serial`` None when the registry knows no unit).
    severity
        ``info``, ``warning`` or ``critical``; an update keeps the higher one.
    detail
        JSON detail (statistic, value, threshold, action…).
    now
        Time of the scan (aware).
    day
        UTC day of the finding (the day of ``now`` by default).

    Returns
    -------
    tuple[int, bool]
        The alert id and whether it was newly opened.

    Raises
    ------
    FleetInputError
        When ``severity`` is unknown.
    """
    if severity not in SEVERITY_RANK:
        msg = f"severity={severity!r} must be one of {', '.join(ALERT_SEVERITIES)}"
        raise FleetInputError(msg)
    seen = (day or now.date()).isoformat()
    with transaction(bind) as conn:
        for existing in _open_rows(conn, site_id, kind):
            if existing.dev_id != dev_id or existing.serial != serial:
                continue
            previous = existing.detail
            episodes = [dict(e) for e in previous.get("episodes", [])]
            occurrences = int(previous.get("occurrences", 1))
            merged = {**previous, **detail}
            if previous.get("state", "active") != "active":
                occurrences += 1
                episodes.append({"first_day": seen, "last_day": seen})
                if previous.get("resolved_by"):
                    # The repair did not hold: keep it on record, wait for another.
                    merged["resolutions"] = [
                        *previous.get("resolutions", []),
                        {
                            "by": previous["resolved_by"],
                            "at": previous.get("resolved_at"),
                            "note": previous.get("resolution"),
                        },
                    ]
                    for key in ("resolved_by", "resolved_at", "resolution"):
                        merged.pop(key, None)
                merged.pop("cleared_at", None)
            elif episodes:
                episodes[-1]["last_day"] = max(seen, str(episodes[-1]["last_day"]))
            else:
                episodes = [{"first_day": seen, "last_day": seen}]
            latest = max(seen, str(previous.get("last_seen_day") or seen))
            merged.update(
                {
                    "dev_id": dev_id,
                    "serial": serial,
                    "state": "active",
                    "occurrences": occurrences,
                    "episodes": episodes[-MAX_EPISODES:],
                    "last_seen_day": latest,
                    "last_seen_at": now.isoformat(),
                }
            )
            higher = max(severity, existing.severity, key=SEVERITY_RANK.__getitem__)
            conn.execute(
                alerts.update()
                .where(alerts.c.id == existing.id)
                .values(severity=higher, detail=merged)
            )
            return existing.id, False
        new_id = conn.execute(
            alerts.insert()
            .values(
                site_id=site_id,
                kind=kind,
                severity=severity,
                opened_at=now,
                detail={
                    **detail,
                    "dev_id": dev_id,
                    "serial": serial,
                    "state": "active",
                    "occurrences": 1,
                    "episodes": [{"first_day": seen, "last_day": seen}],
                    "last_seen_day": seen,
                    "last_seen_at": now.isoformat(),
                },
            )
            .returning(alerts.c.id)
        ).scalar_one()
        return int(new_id), True


def mark_absent(
    bind: Bind, alert_id: int, *, day: dt.date, now: dt.datetime, clear_days: int
) -> bool:
    """Record a scan whose window did not find an open alert's condition.

    The alert becomes ``absent``; once its last finding is ``clear_days`` or more
    before ``day`` it is ``cleared``, and it closes if it is acknowledged or resolved.

    Returns
    -------
    bool
        True when the alert was closed.
    """
    alert = get_alert(bind, alert_id)
    if alert.closed_at is not None:
        return False
    last = alert.detail.get("last_seen_day")
    last_day = dt.date.fromisoformat(last) if isinstance(last, str) else day
    detail = dict(alert.detail)
    if (day - last_day).days >= clear_days:
        detail["state"] = "cleared"
        detail.setdefault("cleared_at", now.isoformat())
    else:
        detail["state"] = "absent"
    closing = detail["state"] == "cleared" and _handled(alert)
    with transaction(bind) as conn:
        conn.execute(
            alerts.update()
            .where(alerts.c.id == alert_id)
            .values(detail=detail, closed_at=now if closing else None)
        )
    return closing


def _handled(alert: Alert) -> bool:
    return alert.acknowledged_by is not None or bool(alert.detail.get("resolved_by"))


def list_alerts(
    bind: Bind,
    *,
    site_id: str | None = None,
    open_only: bool = True,
    severity: str | None = None,
) -> list[Alert]:
    """Return alerts, newest first (open ones only by default)."""
    query = sa.select(alerts).order_by(alerts.c.opened_at.desc(), alerts.c.id.desc())
    if site_id is not None:
        query = query.where(alerts.c.site_id == site_id)
    if open_only:
        query = query.where(alerts.c.closed_at.is_(None))
    if severity is not None:
        query = query.where(alerts.c.severity == severity)
    with transaction(bind) as conn:
        return [_alert(r) for r in conn.execute(query).all()]


def get_alert(bind: Bind, alert_id: int) -> Alert:
    """Return one alert.

    Raises
    ------
    FleetInputError
        When no alert has id ``alert_id``.
    """
    with transaction(bind) as conn:
        row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).first()
    if row is None:
        msg = f"alert id={alert_id} does not exist"
        raise FleetInputError(msg)
    return _alert(row)


def acknowledge(bind: Bind, alert_id: int, *, by: str, now: dt.datetime) -> Alert:
    """Mark an alert acknowledged by ``by`` at ``now``; return it.

    Acknowledging twice keeps the first acknowledgement. A ``cleared`` alert closes.

    Raises
    ------
    FleetInputError
        When the alert does not exist or ``by`` is empty.
    """
    if not by.strip():
        msg = "by must name who acknowledges the alert"
        raise FleetInputError(msg)
    alert = get_alert(bind, alert_id)
    if alert.acknowledged_by is not None:
        return alert
    with transaction(bind) as conn:
        conn.execute(
            alerts.update()
            .where(alerts.c.id == alert_id)
            .values(
                acknowledged_by=by,
                detail={**alert.detail, "acknowledged_at": now.isoformat()},
                closed_at=now if alert.state == "cleared" else alert.closed_at,
            )
        )
    return get_alert(bind, alert_id)


def resolve(
    bind: Bind, alert_id: int, *, by: str, note: str, now: dt.datetime
) -> Alert:
    """Record that ``by`` repaired what an alert is about; return it.

    The alert closes at once when its condition is already cleared, else when it
    clears; a finding before then starts a new episode and voids the resolution
    (kept in ``detail.resolutions``).

    Raises
    ------
    FleetInputError
        When the alert does not exist or is closed, or ``by`` or ``note`` is empty.
    """
    if not by.strip():
        msg = "by must name who resolved the alert"
        raise FleetInputError(msg)
    if not note.strip():
        msg = "note must say what was done (e.g. 'fan replaced')"
        raise FleetInputError(msg)
    alert = get_alert(bind, alert_id)
    if alert.closed_at is not None:
        msg = f"alert id={alert_id} is closed already"
        raise FleetInputError(msg)
    detail = {
        **alert.detail,
        "resolved_by": by,
        "resolved_at": now.isoformat(),
        "resolution": note,
    }
    with transaction(bind) as conn:
        conn.execute(
            alerts.update()
            .where(alerts.c.id == alert_id)
            .values(detail=detail, closed_at=now if alert.state == "cleared" else None)
        )
    return get_alert(bind, alert_id)


def close_alert(bind: Bind, alert_id: int, *, now: dt.datetime) -> None:
    """Close an open alert at once (for alerts outside the health life cycle)."""
    with transaction(bind) as conn:
        conn.execute(
            alerts.update()
            .where(alerts.c.id == alert_id, alerts.c.closed_at.is_(None))
            .values(closed_at=now)
        )


def sites_with_open(
    bind: Bind, severity: str = "critical", *, kinds: frozenset[str] | None = None
) -> set[str]:
    """Return the sites with an open alert of ``severity`` whose condition is present.

    A ``cleared`` alert waiting for its acknowledgement does not count; ``kinds``
    limits the alert kinds that count.
    """
    with transaction(bind) as conn:
        rows = conn.execute(
            sa.select(alerts).where(
                alerts.c.closed_at.is_(None), alerts.c.severity == severity
            )
        ).all()
    return {
        str(a.site_id)
        for a in map(_alert, rows)
        if a.site_id is not None
        and a.state != "cleared"
        and (kinds is None or a.kind in kinds)
    }


def save_daily_features(
    bind: Bind, rows: list[dict[str, Any]], *, now: dt.datetime
) -> int:
    """Upsert daily health features (keys ``site_id``, ``dev_id``, ``day``).

    Parameters
    ----------
    bind
        Engine or connection.
    rows
        One mapping per device-day with ``samples`` and the columns of
        :data:`fleet.store.asset_tables.HEALTH_FEATURE_COLUMNS` (NaN is stored as NULL).
    now
        Computation time (aware).

    Returns
    -------
    int
        Rows written.
    """
    if not rows:
        return 0
    clean = []
    for row in rows:
        out: dict[str, Any] = {
            "site_id": str(row["site_id"]),
            "dev_id": str(row["dev_id"]),
            "day": row["day"],
            "samples": int(row["samples"]),
            "computed_at": now,
        }
        for name in HEALTH_FEATURE_COLUMNS:
            value = row.get(name)
            out[name] = (
                None
                if value is None or not math.isfinite(float(value))
                else float(value)
            )
        clean.append(out)
    with transaction(bind) as conn:
        return upsert(conn, health_daily, clean, ["site_id", "dev_id", "day"])


def load_daily_features(
    bind: Bind,
    *,
    site_id: str,
    dev_id: str | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> list[dict[str, Any]]:
    """Return stored daily features of a site (one device if given), by device and day.

    ``since`` is inclusive and ``until`` exclusive.
    """
    table = health_daily
    query = sa.select(table).where(table.c.site_id == site_id)
    if dev_id is not None:
        query = query.where(table.c.dev_id == dev_id)
    if since is not None:
        query = query.where(table.c.day >= since)
    if until is not None:
        query = query.where(table.c.day < until)
    with transaction(bind) as conn:
        rows = conn.execute(query.order_by(table.c.dev_id, table.c.day)).all()
    return [dict(r._mapping) for r in rows]


def last_feature_day(bind: Bind, site_id: str) -> dt.date | None:
    """Return the latest day with stored features for a site (None when none)."""
    with transaction(bind) as conn:
        value = conn.execute(
            sa.select(sa.func.max(health_daily.c.day)).where(
                health_daily.c.site_id == site_id
            )
        ).scalar()
    return value if isinstance(value, dt.date) else None


def open_alert_ids(
    bind: Bind,
    site_id: str,
    kind: str,
    *,
    dev_id: str | None = None,
    serial: str | None = None,
) -> list[int]:
    """Return the ids of the open alerts of one site and kind (and device, serial)."""
    with transaction(bind) as conn:
        return [
            a.id
            for a in _open_rows(conn, site_id, kind)
            if (dev_id is None or a.dev_id == dev_id)
            and (serial is None or a.serial == serial)
        ]
