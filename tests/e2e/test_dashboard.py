"""The dashboard in headless Chromium against a running app with a simulated fleet."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from fleet.api import queries, sample
from fleet.domain import Fleet
from fleet.fleetfile import load_fleet
from fleet.store import alerts as alert_store
from fleet.store import keys as key_store
from fleet.store.engine import make_engine
from fleet.store.migrate import upgrade
from fleet.store.sites import save_fleet
from fleet.store.tables import awards
from tests.api.cdp import Browser, chromium_path
from tests.api.server import live_server
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARTIFACTS = REPO_ROOT / "artifacts"
README_SCREENSHOT = REPO_ROOT / "docs" / "img" / "dashboard.png"
CHICAGO = ZoneInfo("America/Chicago")


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


@pytest.fixture
def fleet() -> Fleet:
    return load_fleet(REPO_ROOT / "deploy" / "examples" / "fleet.toml")


def _seed(
    url: str, fleet: Fleet, *, stale_site: str | None = None
) -> tuple[sa.Engine, str]:
    engine = make_engine(url)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with engine.begin() as conn:
        save_fleet(conn, fleet)
        viewer = key_store.create_key(conn, role="viewer", note="e2e").secret
        current = [s for s in fleet.sites if s.id != stale_site]
        sample.write_telemetry(
            conn, current, start=now - dt.timedelta(hours=20), end=now, step_s=120
        )
        if stale_site is not None:
            old = [s for s in fleet.sites if s.id == stale_site]
            sample.write_telemetry(
                conn,
                old,
                start=now - dt.timedelta(hours=20),
                end=now - dt.timedelta(hours=3),
                step_s=120,
            )
        for market, tz in (
            ("ERCOT", CHICAGO),
            ("CAISO", ZoneInfo("America/Los_Angeles")),
        ):
            day = now.astimezone(tz).date()
            sample.write_schedule(conn, fleet.sites, market=market, operating_day=day)
            sample.write_awards(conn, fleet.sites, market=market, operating_day=day)
    return engine, viewer


def _reserve_award(engine: sa.Engine, site_id: str, day: dt.date, mw: float) -> None:
    start = dt.datetime.combine(day, dt.time(), tzinfo=CHICAGO)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(awards),
            [
                {
                    "market": "ERCOT",
                    "operating_day": day,
                    "version": 1,
                    "site_id": site_id,
                    "ts": (start + dt.timedelta(hours=h)).astimezone(dt.UTC),
                    "product": "reg_up",
                    "award_mw": mw,
                    "price": 9.0,
                    "unit": "usd_per_mw",
                    "received_at": dt.datetime.now(dt.UTC),
                }
                for h in range(6)
            ],
        )


def _settle(
    engine: sa.Engine, day: dt.date, site_id: str, amounts: dict[str, float]
) -> None:
    """Write settled rows as the operations engine's settlement step does."""
    table = sa.Table(
        "settlements",
        sa.MetaData(),
        sa.Column("market", sa.String(16), primary_key=True),
        sa.Column("operating_day", sa.Date(), primary_key=True),
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("item", sa.String(32), primary_key=True),
        sa.Column("amount_usd", sa.Float(), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(16), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=False),
    )
    with engine.begin() as conn:
        table.create(conn, checkfirst=True)
        conn.execute(
            sa.insert(table),
            [
                {
                    "market": "ERCOT",
                    "operating_day": day,
                    "site_id": site_id,
                    "item": item,
                    "amount_usd": amount,
                    "settled_at": dt.datetime.now(dt.UTC),
                }
                for item, amount in amounts.items()
            ],
        )


def _pick_day(browser: Browser, day: dt.date) -> None:
    browser.evaluate(
        f"(() => {{ const d = document.querySelector('#day'); d.value = '{day}'; "
        "d.dispatchEvent(new Event('change')); return true; })()"
    )


class _AccessLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_dashboard_signs_in_by_session_and_leaves_no_key_in_log_when_used(
    browser: Browser, tmp_path: Path, fleet: Fleet
) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine, viewer = _seed(url, fleet)
    ercot = [s for s in fleet.sites if str(s.market) == "ERCOT"]
    site = ercot[1]
    held = 0.1 * site.battery.discharge_mw
    _reserve_award(engine, site.id, dt.datetime.now(CHICAGO).date(), held + 1.5)
    log = _AccessLog()
    access = logging.getLogger("uvicorn.access")
    try:
        with live_server(url, poll_interval_s=0.2, log_level="info") as server:
            access.addHandler(log)
            # an old-style link with the key: refused, redirected, redacted in the log
            browser.goto(f"{server.url}/?key={viewer}")
            message = browser.wait_for(
                "!document.querySelector('#error').hidden && "
                "document.querySelector('#error').innerText"
            )
            assert "not accepted in links" in message
            assert "key=" not in browser.evaluate("location.href")
            browser.sign_in(server.url, viewer)
            browser.wait_for("document.body.dataset.loaded === 'true'")
            rows = browser.wait_for(
                f"document.querySelectorAll('#sites tbody tr').length === {len(ercot)} && "
                "[...document.querySelectorAll('#sites tbody tr')].map(r => r.dataset.site)"
            )
            assert sorted(rows) == sorted(s.id for s in ercot)
            assert "bessfleet_session" not in browser.evaluate("document.cookie")
            assert browser.evaluate("localStorage.length") == 0
            assert "America/Chicago" in browser.evaluate(
                "document.querySelector('#tz').innerText"
            )
            text = browser.evaluate("document.querySelector('#sites').innerText")
            assert "MW" in text
            assert "%" in text
            assert any(z in text for z in ("CST", "CDT"))
            today = dt.datetime.now(CHICAGO)
            assert f"{today:%b} {today.day}," in text  # times carry a date
            browser.wait_for(
                "document.querySelector('#chart-power path.plan') !== null"
            )
            browser.wait_for(
                "document.querySelectorAll('#awards tbody tr').length >= 1"
            )
            short = browser.wait_for(
                f"document.querySelector('#reserve tr[data-site=\"{site.id}\"]') && "
                f"document.querySelector('#reserve tr[data-site=\"{site.id}\"]').innerText"
            )
            assert "reg up" in short
            assert "9.0 MWh" in short  # 6 h x 1.5 MW short
            assert "6 of 6" in short
            assert "planned" in browser.evaluate(
                "document.querySelector('#sum-revenue-note').innerText"
            )
            browser.wait_for(
                "document.querySelector('#conn').textContent === 'stream: live'"
            )
            target = ercot[3]
            with engine.begin() as conn:
                sample.write_state(
                    conn,
                    target,
                    fleet.sites.index(target),
                    ts=dt.datetime.now(dt.UTC),
                    online=False,
                    soc=0.123,
                )
            row = f"document.querySelector('#sites tr[data-site=\"{target.id}\"]')"
            cell = browser.wait_for(
                f"{row} && {row}.innerText.includes('12.3 %') && "
                f"{row}.innerText.includes('offline') && {row}.innerText"
            )
            assert "12.3 %" in cell
            assert int(browser.evaluate("document.body.dataset.events || '0'")) >= 1
            browser.wait_for(f"document.body.dataset.fresh === '{len(ercot) - 1}'")
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
        access.removeHandler(log)
        engine.dispose()
    assert any("/v1/session" in line for line in log.lines), log.lines[:5]
    assert any("/v1/stream" in line for line in log.lines)
    assert not [line for line in log.lines if "bfk_" in line]


def test_dashboard_totals_leave_out_stale_site_when_one_site_stale(
    browser: Browser, tmp_path: Path, fleet: Fleet
) -> None:
    ercot = [s for s in fleet.sites if str(s.market) == "ERCOT"]
    stale = ercot[2]
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine, viewer = _seed(url, fleet, stale_site=stale.id)
    try:
        with engine.connect() as conn:
            states = queries.site_states(conn)
        fresh = [s for s in ercot if s.id != stale.id]
        expected_mw = sum(states[s.id].power_mw or 0.0 for s in fresh)
        with_stale_mw = expected_mw + (states[stale.id].power_mw or 0.0)
        with live_server(url, poll_interval_s=0.2) as server:
            browser.sign_in(server.url, viewer)
            browser.wait_for("document.body.dataset.loaded === 'true'")
            browser.wait_for(f"document.body.dataset.fresh === '{len(fresh)}'")
            cards = browser.evaluate("document.querySelector('#summary').innerText")
            assert f"{len(fresh)} of {len(ercot)}" in cards
            assert "1 stale or offline" in cards
            assert f"from {len(fresh)} reporting sites" in cards
            power = browser.evaluate("document.querySelector('#sum-power').innerText")
            assert power == f"{expected_mw:,.2f} MW".replace("-", "-")
            assert power != f"{with_stale_mw:,.2f} MW"
            row = f"document.querySelector('#sites tr[data-site=\"{stale.id}\"]')"
            assert browser.evaluate(f"{row}.dataset.status") == "stale"
            assert "h ago" in browser.evaluate(f"{row}.innerText")
            dot = f"document.querySelector('#map g[data-site=\"{stale.id}\"] circle')"
            assert browser.evaluate(f"{dot}.getAttribute('fill')") == "#d68910"
            browser.screenshot(ARTIFACTS / "dashboard-stale.png")
            browser.goto("about:blank")
    finally:
        engine.dispose()


def test_dashboard_shows_schedule_of_picked_past_day_when_day_changed(
    browser: Browser, tmp_path: Path, fleet: Fleet
) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine, viewer = _seed(url, fleet)
    past = dt.datetime.now(CHICAGO).date() - dt.timedelta(days=5)
    with engine.begin() as conn:
        sample.write_schedule(
            conn, fleet.sites, market="ERCOT", operating_day=past, version=4
        )
    try:
        with live_server(url, poll_interval_s=0.2) as server:
            browser.sign_in(server.url, viewer)
            browser.wait_for("document.body.dataset.loaded === 'true'")
            _pick_day(browser, past)
            browser.wait_for(f"document.body.dataset.view === 'ERCOT {past}'")
            chart = "document.querySelector('#chart-power')"
            assert browser.evaluate(f"{chart}.dataset.day") == past.isoformat()
            assert int(browser.evaluate(f"{chart}.dataset.planPoints")) == 96
            assert browser.evaluate(f"{chart}.querySelector('path.plan') !== null")
            note = browser.evaluate("document.querySelector('#detail-note').innerText")
            assert "Schedule version 4" in note
            assert "America/Chicago" in note
            revenue = browser.evaluate(
                "document.querySelector('#revenue-note').innerText"
            )
            assert "plan v4" in revenue
            assert "not settled yet" in revenue  # the store keeps settlements
            assert browser.evaluate("document.body.dataset.revenue") == "planned"
            # once the day is settled, the panel shows the settled amounts instead
            _settle(engine, past, fleet.sites[0].id, {"energy": 1234.0, "reg_up": 56.0})
            _pick_day(browser, past - dt.timedelta(days=1))
            browser.wait_for(
                f"document.body.dataset.view === 'ERCOT {past - dt.timedelta(days=1)}'"
            )
            _pick_day(browser, past)
            browser.wait_for("document.body.dataset.revenue === 'settled'")
            cards = browser.evaluate("document.querySelector('#summary').innerText")
            assert "SETTLED REVENUE" in cards.upper()
            assert "$1,290" in cards
            assert "plan v4" in browser.evaluate(
                "document.querySelector('#revenue-note').innerText"
            )
            # a day without plan or telemetry: one message, no gridline labels
            empty = past - dt.timedelta(days=30)
            _pick_day(browser, empty)
            browser.wait_for(f"document.body.dataset.view === 'ERCOT {empty}'")
            assert browser.evaluate(f"{chart}.querySelectorAll('text').length") == 1
            assert "no schedule and no telemetry" in browser.evaluate(
                f"{chart}.textContent"
            )
            browser.goto("about:blank")
    finally:
        engine.dispose()


def test_dashboard_map_labels_do_not_overlap_when_sites_cluster(
    browser: Browser, tmp_path: Path, fleet: Fleet
) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine, viewer = _seed(url, fleet)
    try:
        with live_server(url, poll_interval_s=0.2) as server:
            browser.sign_in(server.url, viewer)
            browser.wait_for("document.body.dataset.loaded === 'true'")
            browser.wait_for(
                "document.querySelectorAll('#map path.state').length === 2"
            )
            boxes = browser.evaluate(
                "[...document.querySelectorAll('#map .site-label')].map(e => {"
                " const r = e.getBoundingClientRect();"
                " return [e.closest('g').dataset.site, r.left, r.top, r.right, r.bottom]; })"
            )
            dots = browser.evaluate(
                "[...document.querySelectorAll('#map circle')].map(e => {"
                " const r = e.getBoundingClientRect();"
                " return [e.closest('g').dataset.site, r.left, r.top, r.right, r.bottom]; })"
            )
            names = browser.evaluate(
                "[...document.querySelectorAll('#map .state-name')].map(e => e.textContent)"
            )
    finally:
        engine.dispose()
    assert sorted(names) == ["California", "Texas"]
    located = [s.id for s in fleet.sites if s.location is not None]
    assert sorted(b[0] for b in boxes) == sorted(located)  # every site labelled

    def overlap(a: list[float], b: list[float]) -> bool:
        return a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]

    clashes = [
        (a[0], b[0]) for a, b in itertools.combinations(boxes, 2) if overlap(a, b)
    ]
    assert not clashes
    covered = [(a[0], d[0]) for a in boxes for d in dots if overlap(a, d)]
    assert not covered


def test_dashboard_reports_refused_key_when_key_wrong(
    browser: Browser, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    with live_server(url) as server:
        browser.sign_in(server.url, f"bfk_000000000000_{'x' * 43}")
        message = browser.wait_for(
            "document.querySelector('#error').innerText.includes('401') && "
            "document.querySelector('#error').innerText"
        )
        assert "401" in message


def test_dashboard_shows_open_alerts_and_refuses_viewer_ack_when_alert_raised(
    browser: Browser, tmp_path: Path, fleet: Fleet
) -> None:
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
            browser.sign_in(server.url, viewer)
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
                "document.querySelector('#who').innerText.includes("
                f"'{scheduler.key.id}') && document.querySelector('#alerts-msg').hidden"
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
