from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from fleet.errors import FleetInputError
from fleet.store import alerts as alert_store

NOW = dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.UTC)


def _raise(
    engine: sa.Engine, dev: str = "bank1", severity: str = "warning"
) -> tuple[int, bool]:
    return alert_store.raise_alert(
        engine,
        site_id="s1",
        dev_id=dev,
        kind="thermal_outlier",
        severity=severity,
        detail={"value": 4.2},
        now=NOW,
    )


def test_raise_alert_updates_open_alert_when_same_key(engine: sa.Engine) -> None:
    first, new = _raise(engine)
    again, new_again = _raise(engine, severity="critical")
    other, other_new = _raise(engine, dev="bank2")
    assert new
    assert not new_again
    assert other_new
    assert again == first != other
    alert = alert_store.get_alert(engine, first)
    assert alert.severity == "critical"
    assert alert.detail["occurrences"] == 1  # the same episode
    assert alert.dev_id == "bank1"
    assert len(alert_store.list_alerts(engine, site_id="s1")) == 2


def test_raise_alert_keeps_higher_severity_when_finding_milder(
    engine: sa.Engine,
) -> None:
    alert_id, _ = _raise(engine, severity="critical")
    _raise(engine, severity="warning")
    assert alert_store.get_alert(engine, alert_id).severity == "critical"


def test_raise_alert_opens_new_alert_when_previous_closed(engine: sa.Engine) -> None:
    first, _ = _raise(engine)
    alert_store.close_alert(engine, first, now=NOW)
    second, new = _raise(engine)
    assert new
    assert second != first
    assert [a.id for a in alert_store.list_alerts(engine)] == [second]
    assert len(alert_store.list_alerts(engine, open_only=False)) == 2


def test_acknowledge_keeps_first_operator_when_acknowledged_twice(
    engine: sa.Engine,
) -> None:
    alert_id, _ = _raise(engine)
    alert_store.acknowledge(engine, alert_id, by="ana", now=NOW)
    alert = alert_store.acknowledge(engine, alert_id, by="bo", now=NOW)
    assert alert.acknowledged_by == "ana"
    assert alert.detail["acknowledged_at"] == NOW.isoformat()


def test_acknowledge_raises_naming_id_when_alert_missing(engine: sa.Engine) -> None:
    with pytest.raises(FleetInputError, match="alert id=999"):
        alert_store.acknowledge(engine, 999, by="ana", now=NOW)


def test_raise_alert_raises_when_severity_unknown(engine: sa.Engine) -> None:
    with pytest.raises(FleetInputError, match="severity='fatal'"):
        _raise(engine, severity="fatal")


def test_sites_with_open_lists_only_open_critical_sites(engine: sa.Engine) -> None:
    alert_id, _ = _raise(engine, severity="critical")
    assert alert_store.sites_with_open(engine) == {"s1"}
    alert_store.close_alert(engine, alert_id, now=NOW)
    assert alert_store.sites_with_open(engine) == set()


DAY = NOW.date()


def _at(days: int) -> tuple[dt.date, dt.datetime]:
    return DAY + dt.timedelta(days=days), NOW + dt.timedelta(days=days)


def _find(engine: sa.Engine, days: int) -> int:
    day, now = _at(days)
    alert_id, _ = alert_store.raise_alert(
        engine,
        site_id="s1",
        dev_id="bank1",
        kind="thermal_outlier",
        severity="warning",
        detail={"value": 4.2},
        now=now,
        day=day,
        serial="MOD-1",
    )
    return alert_id


def _absent(engine: sa.Engine, alert_id: int, days: int) -> bool:
    day, now = _at(days)
    return alert_store.mark_absent(engine, alert_id, day=day, now=now, clear_days=7)


def test_alert_stays_open_when_condition_absent_but_not_acknowledged(
    engine: sa.Engine,
) -> None:
    alert_id = _find(engine, 0)
    assert not _absent(engine, alert_id, 3)
    assert alert_store.get_alert(engine, alert_id).state == "absent"
    assert not _absent(engine, alert_id, 30)
    alert = alert_store.get_alert(engine, alert_id)
    assert alert.state == "cleared"
    assert alert.closed_at is None
    assert alert_store.sites_with_open(engine, "warning") == set()
    closed = alert_store.acknowledge(engine, alert_id, by="ana", now=_at(31)[1])
    assert closed.closed_at == _at(31)[1]


def test_alert_stays_open_when_acknowledged_but_condition_recent(
    engine: sa.Engine,
) -> None:
    alert_id = _find(engine, 0)
    alert_store.acknowledge(engine, alert_id, by="ana", now=_at(0)[1])
    assert not _absent(engine, alert_id, 6)  # absent 6 days < 7
    assert alert_store.get_alert(engine, alert_id).closed_at is None
    assert _absent(engine, alert_id, 7)
    assert alert_store.get_alert(engine, alert_id).state == "closed"


def test_flapping_condition_folds_into_one_alert_with_episodes(
    engine: sa.Engine,
) -> None:
    alert_id = _find(engine, 0)
    alert_store.acknowledge(engine, alert_id, by="ana", now=_at(0)[1])
    for start in (5, 10, 15):
        _absent(engine, alert_id, start - 1)
        assert _find(engine, start) == alert_id
        _find(engine, start + 1)
    alert = alert_store.get_alert(engine, alert_id)
    assert alert.detail["occurrences"] == 4
    assert [e["first_day"] for e in alert.detail["episodes"]] == [
        _at(d)[0].isoformat() for d in (0, 5, 10, 15)
    ]
    assert alert.detail["episodes"][-1]["last_day"] == _at(16)[0].isoformat()
    assert alert.acknowledged_by == "ana"  # the acknowledgement stays
    assert len(alert_store.list_alerts(engine, open_only=False)) == 1


def test_resolve_voids_when_condition_returns_and_closes_when_cleared(
    engine: sa.Engine,
) -> None:
    alert_id = _find(engine, 0)
    alert_store.resolve(engine, alert_id, by="crew", note="fan replaced", now=_at(1)[1])
    _absent(engine, alert_id, 2)
    _find(engine, 3)  # the repair did not hold
    alert = alert_store.get_alert(engine, alert_id)
    assert "resolved_by" not in alert.detail
    assert alert.detail["resolutions"][0]["note"] == "fan replaced"
    assert not _absent(engine, alert_id, 20)  # cleared, but nobody signed it off
    alert_store.resolve(engine, alert_id, by="crew", note="duct fixed", now=_at(21)[1])
    assert alert_store.get_alert(engine, alert_id).closed_at == _at(21)[1]


def test_resolve_raises_naming_field_when_note_empty(engine: sa.Engine) -> None:
    alert_id = _find(engine, 0)
    with pytest.raises(FleetInputError, match="note"):
        alert_store.resolve(engine, alert_id, by="crew", note=" ", now=NOW)


def test_raise_alert_opens_new_alert_when_serial_differs(engine: sa.Engine) -> None:
    first = _find(engine, 0)
    day, now = _at(1)
    other, new = alert_store.raise_alert(
        engine,
        site_id="s1",
        dev_id="bank1",
        kind="thermal_outlier",
        severity="warning",
        detail={},
        now=now,
        day=day,
        serial="MOD-2",
    )
    assert new
    assert other != first
