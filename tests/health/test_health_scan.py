from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
import sqlalchemy as sa

from fleet.cli import main
from fleet.health import HealthPolicy, dispatch_limits, scan_fleet, scan_site
from fleet.store import alerts as alert_store
from fleet.store.sites import save_fleet
from forecasting.health.synthetic import (
    EPOCH_2026_MS,
    InjectedFault,
    SyntheticSite,
    simulate_site,
)
from tests.factories import make_fleet
from tests.health.helpers import insert_samples

SITE = SyntheticSite("site-01", step_minutes=60)
START = dt.datetime.fromtimestamp(EPOCH_2026_MS / 1000, dt.UTC)


def _day(n: int) -> dt.datetime:
    return START + dt.timedelta(days=n)


@pytest.fixture
def faulty(engine: sa.Engine) -> sa.Engine:
    """30 days of a 4-string site whose bank3 fan fails on day 15."""
    frame = simulate_site(
        SITE,
        30,
        rng=np.random.default_rng(2),
        faults=(InjectedFault("fan_failure", "bank3", 15, 3.0),),
    )
    insert_samples(engine, frame)
    save_fleet(engine, make_fleet(2))
    return engine


def test_scan_site_opens_then_refreshes_alert_when_fault_persists(
    faulty: sa.Engine,
) -> None:
    first = scan_site(faulty, "site-01", now=_day(30), site_energy_mwh=4.0)
    assert [(f.dev_id, f.kind.value) for f in first.findings] == [
        ("bank3", "thermal_outlier")
    ]
    assert len(first.opened) == 1
    again = scan_site(faulty, "site-01", now=_day(30), site_energy_mwh=4.0)
    assert again.opened == ()
    assert again.refreshed == first.opened
    alert = alert_store.get_alert(faulty, first.opened[0])
    assert alert.severity == "critical"
    assert alert.detail["occurrences"] == 2
    assert "cooling" in alert.detail["action"]


def test_scan_site_closes_alert_when_condition_gone_from_window(
    faulty: sa.Engine,
) -> None:
    opened = scan_site(faulty, "site-01", now=_day(30)).opened
    # Seen from day 14, before the fault, nothing is found: the alert closes.
    earlier = scan_site(faulty, "site-01", now=_day(14))
    assert earlier.findings == ()
    assert earlier.closed == opened
    assert alert_store.list_alerts(faulty) == []


def test_scan_site_reports_nothing_when_no_telemetry(engine: sa.Engine) -> None:
    result = scan_site(engine, "site-99", now=_day(30))
    assert result.day is None
    assert result.opened == ()


def test_dispatch_limits_follow_policy_when_site_has_open_critical(
    faulty: sa.Engine,
) -> None:
    scan_site(faulty, "site-01", now=_day(30))
    sites = ["site-01", "site-02"]
    assert dispatch_limits(faulty, sites) == {"site-01": 0.5, "site-02": 1.0}
    exclude = HealthPolicy(on_critical="exclude")
    assert dispatch_limits(faulty, sites, exclude) == {"site-01": 0.0, "site-02": 1.0}
    ignore = HealthPolicy(on_critical="none")
    assert dispatch_limits(faulty, sites, ignore)["site-01"] == 1.0


def test_scan_fleet_scans_every_stored_site_when_none_named(faulty: sa.Engine) -> None:
    results = scan_fleet(faulty, now=_day(30))
    assert [r.site_id for r in results] == ["site-01", "site-02"]
    assert results[1].day is None


def test_health_policy_refuses_unknown_field() -> None:
    with pytest.raises(ValueError, match="derate_fraktion"):
        HealthPolicy.model_validate({"derate_fraktion": 0.5})


def test_cli_health_scan_alerts_and_ack_work_together(
    faulty: sa.Engine,
    migrated_db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    now = _day(30).isoformat()
    with pytest.raises(SystemExit) as info:
        main(
            [
                "health",
                "scan",
                "--site",
                "site-01",
                "--now",
                now,
                "--json",
                "--db",
                migrated_db_url,
            ]
        )
    assert info.value.code in (0, None)
    scanned = json.loads(capsys.readouterr().out)
    alert_id = scanned[0]["opened"][0]
    assert scanned[0]["findings"][0]["kind"] == "thermal_outlier"
    with pytest.raises(SystemExit):
        main(["health", "ack", str(alert_id), "--by", "ana", "--db", migrated_db_url])
    assert f"Alert {alert_id} acknowledged by ana" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["health", "alerts", "--json", "--db", migrated_db_url])
    listed = json.loads(capsys.readouterr().out)
    assert [(a["id"], a["acknowledged_by"]) for a in listed] == [(alert_id, "ana")]
    with pytest.raises(SystemExit) as info:
        main(["health", "ack", "12345", "--db", migrated_db_url])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["health", "scan", "--now", "2026-01-01", "--db", migrated_db_url])
    assert info.value.code == 2


def test_scan_site_keeps_feature_history_when_raw_telemetry_purged(
    faulty: sa.Engine,
) -> None:
    from fleet.store.alerts import load_daily_features
    from fleet.store.telemetry_tables import tlm_measurements

    first = scan_site(faulty, "site-01", now=_day(30))
    with faulty.begin() as conn:
        conn.execute(
            tlm_measurements.delete().where(
                tlm_measurements.c.ts_ms < int(_day(28).timestamp() * 1000)
            )
        )
    again = scan_site(faulty, "site-01", now=_day(30))
    assert again.refreshed == first.opened
    stored = load_daily_features(faulty, site_id="site-01")
    assert len(stored) == 4 * 30
    assert {r["day"] for r in stored} == {_day(n).date() for n in range(30)}
