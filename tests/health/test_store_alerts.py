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
    assert alert.detail["occurrences"] == 2
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
