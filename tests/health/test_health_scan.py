from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from fleet.assets import import_assets, read_asset_file
from fleet.cli import main
from fleet.health import HealthPolicy, dispatch_limits, scan_fleet, scan_site
from fleet.store import alerts as alert_store
from fleet.store import assets as asset_store
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
    assert alert.detail["occurrences"] == 1  # one episode, seen twice
    assert "cooling" in alert.detail["action"]
    assert alert.detail["site_id"] == "site-01"
    evidence = alert.detail["evidence"]
    assert len(evidence["days"]) == 30
    hot = evidence["series"]["temp_at_power_c"][-1]
    assert hot - evidence["series"]["peer_median_c"][-1] > 3.0


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


def _scan_daily(engine: sa.Engine, first: int, last: int, **policy: int) -> list[int]:
    """Scan ``site-01`` once a day (just after midnight); return every alert id seen."""
    ids: set[int] = set()
    for n in range(first, last + 1):
        result = scan_site(
            engine,
            "site-01",
            now=_day(n) + dt.timedelta(minutes=30),
            site_energy_mwh=4.0,
            policy=HealthPolicy(**policy),
        )
        ids.update(result.opened)
    return sorted(ids)


def test_unrepaired_fan_keeps_one_alert_and_its_ack_when_scanned_daily(
    engine: sa.Engine,
) -> None:
    # Issue 20: a fan at x1.5 gave 12 alert rows in 120 days, each closing itself.
    site = SyntheticSite("site-01", step_minutes=30)
    fault = InjectedFault("fan_failure", "bank2", 20, 1.5)
    frame = simulate_site(site, 120, rng=np.random.default_rng(4), faults=(fault,))
    insert_samples(engine, frame)
    opened = _scan_daily(engine, 15, 60)
    assert len(opened) == 1
    alert_store.acknowledge(engine, opened[0], by="ana", now=_day(60))
    opened += _scan_daily(engine, 61, 120)
    rows = alert_store.list_alerts(engine, open_only=False)
    assert [(a.id, a.dev_id, a.kind) for a in rows] == [
        (opened[0], "bank2", "thermal_outlier")
    ]
    assert rows[0].closed_at is None
    assert rows[0].acknowledged_by == "ana"
    assert rows[0].detail["occurrences"] >= 1
    assert len(rows[0].detail["episodes"]) == rows[0].detail["occurrences"]


def test_repaired_fault_alert_closes_only_after_clear_period_and_ack(
    engine: sa.Engine,
) -> None:
    site = SyntheticSite("site-01", step_minutes=30)
    fault = InjectedFault("fan_failure", "bank2", 20, 3.0)
    broken = simulate_site(site, 70, rng=np.random.default_rng(5), faults=(fault,))
    healthy = simulate_site(site, 70, rng=np.random.default_rng(5))
    # The fan is replaced on day 40: from then on the string runs like its peers.
    repair_ms = EPOCH_2026_MS + 40 * 86_400_000
    frame = pd.concat(
        [broken[broken["ts_ms"] < repair_ms], healthy[healthy["ts_ms"] >= repair_ms]]
    )
    insert_samples(engine, frame)
    [alert_id] = _scan_daily(engine, 20, 45)
    assert alert_store.get_alert(engine, alert_id).state == "absent"
    assert dispatch_limits(engine, ["site-01"]) == {"site-01": 0.5}
    _scan_daily(engine, 46, 55)
    alert = alert_store.get_alert(engine, alert_id)
    assert alert.state == "cleared"  # absent > 7 days, nobody acknowledged it
    assert dispatch_limits(engine, ["site-01"]) == {"site-01": 1.0}
    alert_store.acknowledge(engine, alert_id, by="crew", now=_day(55))
    assert alert_store.get_alert(engine, alert_id).state == "closed"


def test_comm_fault_counts_bad_samples_and_raises_no_efficiency_alert(
    engine: sa.Engine,
) -> None:
    # Issue 20: bad samples counted as zero energy: a critical rte_slide, derated.
    site = SyntheticSite("site-01", step_minutes=30)
    fault = InjectedFault("dropout", "bank2", 30, 0.15)
    frame = simulate_site(site, 60, rng=np.random.default_rng(6), faults=(fault,))
    insert_samples(engine, frame)
    result = scan_site(engine, "site-01", now=_day(60), site_energy_mwh=4.0)
    kinds = {(f.dev_id, f.kind.value) for f in result.findings}
    assert kinds == {("bank2", "telemetry_quality")}
    [quality] = result.findings
    assert quality.detail["bad_fraction"] > 0.05
    assert dispatch_limits(engine, ["site-01"]) == {"site-01": 1.0}


def test_cli_health_tables_show_action_and_resolve_refuses_empty_note(
    faulty: sa.Engine,
    migrated_db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    now = _day(30).isoformat()
    with pytest.raises(SystemExit):
        main(
            [
                "health",
                "scan",
                "--site",
                "site-01",
                "--now",
                now,
                "--db",
                migrated_db_url,
            ]
        )
    scanned = capsys.readouterr().out
    assert "inspect the string's cooling" in scanned
    with pytest.raises(SystemExit):
        main(["health", "alerts", "--db", migrated_db_url])
    listed = capsys.readouterr().out
    assert "inspect the string's cooling" in listed
    assert "active" in listed
    [alert] = alert_store.list_alerts(faulty)
    with pytest.raises(SystemExit) as info:
        main(
            ["health", "resolve", str(alert.id), "--note", " ", "--db", migrated_db_url]
        )
    assert info.value.code == 2
    assert "note must say what was done" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(
            [
                "health",
                "resolve",
                str(alert.id),
                "--note",
                "fan replaced",
                "--by",
                "crew",
                "--db",
                migrated_db_url,
            ]
        )
    assert "open until its condition clears" in capsys.readouterr().out


def test_scan_restarts_baselines_and_names_serial_when_registry_records_swap(
    engine: sa.Engine, tmp_path: Path
) -> None:
    # Issue 20: a healthy used module (SoH 90 %) swapped in raised a critical
    # fast_fade (site derated) and cell_imbalance for about 58 days.
    site = SyntheticSite("site-01", step_minutes=30)
    swap = InjectedFault("swap", "bank2", 30, 0.90)
    fan = InjectedFault("fan_failure", "bank3", 50, 3.0)
    frame = simulate_site(site, 70, rng=np.random.default_rng(8), faults=(swap, fan))
    insert_samples(engine, frame)
    rows = [
        "serial,kind,manufacturer,country_of_manufacture,feoc,energy_mwh,"
        "site_id,position,dev_id,installed_at"
    ]
    for i in range(1, 5):
        rows.append(
            f"MOD-{i},module,Cell Co,US,false,1.0,site-01,rack1/string{i},bank{i},"
            "2026-01-01T00:00:00Z"
        )
    rows.append("USED-7,module,Cell Co,US,false,1.0,,,,")
    path = tmp_path / "assets.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    now = _day(70)
    import_assets(engine, read_asset_file(path), now=START, actor="ana")
    asset_store.swap(
        engine,
        out_serial="MOD-2",
        in_serial="used-7",
        at=_day(30),
        now=now,
        actor="crew",
        reason="cell imbalance",
    )
    opened = _scan_daily(engine, 20, 70)
    found = [alert_store.get_alert(engine, i) for i in opened]
    assert [(a.kind, a.dev_id) for a in found] == [("thermal_outlier", "bank3")]
    [alert] = found
    assert alert.detail["serials"] == ["MOD-3"]
    assert alert.detail["position"] == "rack1/string3"
    assert alert.detail["site_id"] == "site-01"
