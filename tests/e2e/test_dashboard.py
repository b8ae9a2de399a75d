"""The dashboard in headless Chromium against a running app with a simulated fleet."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from fleet.api import sample
from fleet.domain import Fleet
from fleet.fleetfile import load_fleet
from fleet.store import alerts as alert_store
from fleet.store import keys as key_store
from fleet.store.engine import make_engine
from fleet.store.migrate import upgrade
from fleet.store.sites import save_fleet
from tests.api.cdp import Browser, chromium_path
from tests.api.server import live_server
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARTIFACTS = REPO_ROOT / "artifacts"
README_SCREENSHOT = REPO_ROOT / "docs" / "img" / "dashboard.png"


@pytest.fixture
def browser() -> Iterator[Browser]:
    binary = chromium_path()
    if binary is None:
        pytest.skip(
            "chromium is not installed (Debian package `chromium`; .ci/run installs it)"
        )
    b = Browser(binary)
    yield b
    b.close()


def _seed(url: str, fleet: Fleet) -> tuple[sa.Engine, str]:
    engine = make_engine(url)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with engine.begin() as conn:
        save_fleet(conn, fleet)
        viewer = key_store.create_key(conn, role="viewer", note="e2e").secret
        sample.write_telemetry(
            conn, fleet.sites, start=now - dt.timedelta(hours=20), end=now, step_s=120
        )
        for market, tz_hours in (("ERCOT", -6), ("CAISO", -8)):
            day = now.astimezone(dt.timezone(dt.timedelta(hours=tz_hours))).date()
            sample.write_schedule(conn, fleet.sites, market=market, operating_day=day)
            sample.write_awards(conn, fleet.sites, market=market, operating_day=day)
    return engine, viewer


def test_dashboard_shows_every_site_and_live_updates_when_loaded(
    browser: Browser, tmp_path: Path
) -> None:
    fleet = load_fleet(REPO_ROOT / "deploy" / "examples" / "fleet.toml")
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine, viewer = _seed(url, fleet)
    try:
        with live_server(url, poll_interval_s=0.2) as server:
            browser.goto(f"{server.url}/?key={viewer}")
            browser.wait_for("document.body.dataset.loaded === 'true'")
            rows = browser.wait_for(
                "document.querySelectorAll('#sites tbody tr').length === 12 && "
                "[...document.querySelectorAll('#sites tbody tr')].map(r => r.dataset.site)"
            )
            assert sorted(rows) == sorted(s.id for s in fleet.sites)
            text = browser.evaluate("document.querySelector('#sites').innerText")
            assert "MW" in text
            assert "%" in text
            assert any(zone in text for zone in ("CST", "CDT", "PST", "PDT"))
            assert browser.evaluate("localStorage.getItem('bessfleet.key')") == viewer
            assert "key=" not in browser.evaluate("location.href")
            browser.wait_for("document.querySelector('#chart-power path') !== null")
            browser.wait_for(
                "document.querySelectorAll('#awards tbody tr').length >= 2"
            )
            browser.wait_for(
                "document.querySelector('#conn').textContent === 'stream: live'"
            )
            site = fleet.sites[3]
            with engine.begin() as conn:
                sample.write_state(
                    conn, site, 3, ts=dt.datetime.now(dt.UTC), online=False, soc=0.123
                )
            row = f"document.querySelector('#sites tr[data-site=\"{site.id}\"]')"
            cell = browser.wait_for(
                f"{row} && {row}.innerText.includes('12.3 %') && "
                f"{row}.innerText.includes('offline') && {row}.innerText"
            )
            assert "12.3 %" in cell
            assert int(browser.evaluate("document.body.dataset.events || '0'")) >= 1
            assert "state" in browser.evaluate(
                "document.querySelector('#events').innerText"
            )
            assert browser.evaluate("document.querySelector('#error').hidden") is True
            shot = ARTIFACTS / "dashboard.png"
            browser.screenshot(shot)
            assert shot.stat().st_size > 10_000
            if (
                os.environ.get("BESSFLEET_UPDATE_README_SCREENSHOT")
                or not README_SCREENSHOT.exists()
            ):
                README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, README_SCREENSHOT)
            browser.goto("about:blank")
    finally:
        engine.dispose()


def test_dashboard_reports_refused_key_when_key_wrong(
    browser: Browser, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    with live_server(url) as server:
        browser.goto(f"{server.url}/?key=bfk_000000000000_{'x' * 43}")
        message = browser.wait_for(
            "!document.querySelector('#error').hidden && document.querySelector('#error').innerText"
        )
        assert "401" in message


def test_dashboard_shows_open_alerts_and_refuses_viewer_ack_when_alert_raised(
    browser: Browser, tmp_path: Path
) -> None:
    fleet = load_fleet(REPO_ROOT / "deploy" / "examples" / "fleet.toml")
    ercot = next(s for s in fleet.sites if s.market.upper() == "ERCOT")
    caiso = next(s for s in fleet.sites if s.market.upper() == "CAISO")
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    opened = dt.datetime(2026, 11, 20, 18, 30, tzinfo=dt.UTC)  # 12:30 CST
    action = "inspect the string's cooling (fan, HVAC duct, filter)"
    try:
        with engine.begin() as conn:
            save_fleet(conn, fleet)
            viewer = key_store.create_key(conn, role="viewer").secret
            scheduler = key_store.create_key(conn, role="scheduler")
        first, _ = alert_store.raise_alert(
            engine,
            site_id=ercot.id,
            dev_id="bank2",
            kind="thermal_outlier",
            severity="critical",
            detail={"value": 6.1, "threshold": 3.5, "action": action},
            now=opened,
        )
        with live_server(url, poll_interval_s=0.2) as server:
            browser.goto(f"{server.url}/?key={viewer}")
            row = f"document.querySelector('#alerts tr[data-alert=\"{first}\"]')"
            text = browser.wait_for(f"{row} && {row}.innerText")
            assert ercot.name in text
            assert "bank2" in text
            assert "thermal outlier" in text
            assert "critical" in text
            assert action in text
            assert "12:30:00 CST" in text
            assert (
                browser.evaluate("document.querySelector('#alerts-count').textContent")
                == "1"
            )
            browser.wait_for(
                "document.querySelector('#conn').textContent === 'stream: live'"
            )
            second, _ = alert_store.raise_alert(
                engine,
                site_id=caiso.id,
                dev_id="bank1",
                kind="cell_imbalance",
                severity="warning",
                detail={"action": "run a full balancing charge"},
                now=dt.datetime.now(dt.UTC),
            )
            live = f"document.querySelector('#alerts tr[data-alert=\"{second}\"]')"
            assert "balancing" in browser.wait_for(f"{live} && {live}.innerText")
            assert any(
                z in browser.evaluate(f"{live}.innerText") for z in ("PST", "PDT")
            )
            browser.evaluate(f"{row}.querySelector('button.ack').click()")
            message = browser.wait_for(
                "!document.querySelector('#alerts-msg').hidden && "
                "document.querySelector('#alerts-msg').innerText"
            )
            assert "403" in message
            assert "scheduler" in message
            assert alert_store.get_alert(engine, first).acknowledged_by is None
            shot = ARTIFACTS / "dashboard-alerts.png"
            browser.screenshot(shot)
            assert shot.stat().st_size > 10_000
            browser.evaluate(
                f"document.querySelector('#apikey').value = '{scheduler.secret}'; "
                "document.querySelector('#keyform').requestSubmit(); true"
            )
            browser.wait_for(
                "localStorage.getItem('bessfleet.key') === "
                f"'{scheduler.secret}' && document.querySelector('#alerts-msg').hidden"
            )
            browser.wait_for(
                f"{row} !== null && {row}.querySelector('button.ack') !== null"
            )
            browser.evaluate(f"{row}.querySelector('button.ack').click()")
            acked = browser.wait_for(
                f"{row} && {row}.innerText.includes('by {scheduler.key.id}') && "
                f"{row}.innerText"
            )
            assert scheduler.key.id in acked
            assert alert_store.get_alert(engine, first).acknowledged_by == (
                scheduler.key.id
            )
            browser.goto("about:blank")
    finally:
        engine.dispose()
