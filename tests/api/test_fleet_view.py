"""What the dashboard's numbers come from: fresh-only fleet totals, reserve coverage."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa

from fleet.api import queries, sample
from fleet.store.tables import awards
from tests.api.conftest import Store, auth


def _ercot(store: Store) -> list[str]:
    return [s.id for s in store.fleet.sites if str(s.market) == "ERCOT"]


def test_fleet_totals_leave_out_stale_site_when_newest_sample_old(
    client: httpx.Client, store: Store
) -> None:
    ercot = [s for s in store.fleet.sites if str(s.market) == "ERCOT"]
    stale_site = ercot[0]
    index = store.fleet.sites.index(stale_site)
    with store.engine.begin() as conn:
        # the newest sample of this site is now in the past; the others are current
        conn.execute(
            sa.text("DELETE FROM tlm_measurements WHERE site_id = :s"),
            {"s": stale_site.id},
        )
        sample.write_state(
            conn,
            stale_site,
            index,
            ts=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2),
            soc=0.9,
        )
        states = queries.site_states(conn)
    body = client.get("/v1/fleet?market=ERCOT", headers=auth(store, "viewer")).json()
    assert body["site_count"] == len(ercot)
    assert body["stale_count"] == 1
    assert body["missing_count"] == 0
    assert body["fresh_count"] == len(ercot) - 1
    fresh = [s for s in ercot if s.id != stale_site.id]
    expected_power = sum(states[s.id].power_mw or 0.0 for s in fresh)
    expected_energy = sum(
        (states[s.id].soc or 0.0) * s.battery.energy_mwh for s in fresh
    )
    assert body["power_mw"] == pytest.approx(expected_power, abs=1e-6)
    assert body["stored_energy_mwh"] == pytest.approx(expected_energy, abs=1e-6)
    sites = client.get("/v1/sites?market=ERCOT", headers=auth(store, "viewer")).json()
    flags = {s["site_id"]: s["state"]["stale"] for s in sites["items"]}
    assert flags[stale_site.id] is True
    assert not any(v for k, v in flags.items() if k != stale_site.id)


def test_fleet_totals_are_null_when_no_site_has_telemetry(
    client: httpx.Client, store: Store
) -> None:
    body = client.get("/v1/fleet?market=PJM", headers=auth(store, "viewer")).json()
    assert body["site_count"] == 0
    assert body["power_mw"] is None
    assert body["stored_energy_mwh"] is None


def test_reserve_coverage_reports_shortfall_when_award_above_plan(
    client: httpx.Client, store: Store
) -> None:
    day = store.operating_day
    site = next(s for s in store.fleet.sites if str(s.market) == "ERCOT")
    held_mw = 0.1 * site.battery.discharge_mw  # what the sample plan holds
    start = dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo("America/Chicago"))
    rows = [
        {
            "market": "ERCOT",
            "operating_day": day,
            "version": 7,
            "site_id": site.id,
            "ts": (start + dt.timedelta(hours=h)).astimezone(dt.UTC),
            "product": product,
            "award_mw": mw,
            "price": 9.0,
            "unit": "usd_per_mw",
            "received_at": dt.datetime.now(dt.UTC),
        }
        for h in range(4)
        for product, mw in (("reg_up", held_mw + 2.0), ("reg_down", held_mw / 2))
    ]
    with store.engine.begin() as conn:
        conn.execute(sa.insert(awards), rows)
    body = client.get(
        f"/v1/markets/ERCOT/reserve-coverage/{day}", headers=auth(store, "viewer")
    ).json()
    assert body["award_version"] == 7
    assert body["timezone"] == "America/Chicago"
    assert "energy" not in body["products"]
    items = {(i["site_id"], i["product"]): i for i in body["items"]}
    up = items[(site.id, "reg_up")]
    assert up["intervals"] == 4
    assert up["awarded_mwh"] == pytest.approx(4 * (held_mw + 2.0))
    assert up["held_mwh"] == pytest.approx(4 * held_mw)
    assert up["shortfall_mwh"] == pytest.approx(8.0)
    assert up["short_intervals"] == 4
    down = items[(site.id, "reg_down")]
    assert down["shortfall_mwh"] == pytest.approx(0.0)
    assert down["held_mwh"] == pytest.approx(down["awarded_mwh"])


def test_reserve_coverage_holds_nothing_when_no_plan_for_day(
    client: httpx.Client, store: Store
) -> None:
    day = store.operating_day - dt.timedelta(days=40)
    site = next(s for s in store.fleet.sites if str(s.market) == "ERCOT")
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(awards),
            [
                {
                    "market": "ERCOT",
                    "operating_day": day,
                    "version": 1,
                    "site_id": site.id,
                    "ts": dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC),
                    "product": "spin",
                    "award_mw": 3.0,
                    "price": 5.0,
                    "unit": "usd_per_mw",
                    "received_at": dt.datetime.now(dt.UTC),
                }
            ],
        )
    body = client.get(
        f"/v1/markets/ERCOT/reserve-coverage/{day}", headers=auth(store, "viewer")
    ).json()
    assert body["schedule_version"] is None
    assert body["items"][0]["shortfall_mwh"] == pytest.approx(3.0)


def test_settlement_reports_unavailable_then_sums_by_item_when_table_filled(
    client: httpx.Client, store: Store
) -> None:
    day = store.operating_day
    url = f"/v1/markets/ERCOT/settlement/{day}"
    with store.engine.connect() as conn:
        had_table = sa.inspect(conn).has_table("settlements")
    if not had_table:
        body = client.get(url, headers=auth(store, "viewer")).json()
        assert body["available"] is False
        assert body["total_usd"] is None
    # the operations engine's table (its migration creates it where merged)
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
    settled = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)
    sites = _ercot(store)[:2]
    with store.engine.begin() as conn:
        table.create(conn, checkfirst=True)
        conn.execute(
            sa.insert(table),
            [
                {
                    "market": "ERCOT",
                    "operating_day": day,
                    "site_id": site,
                    "item": item,
                    "amount_usd": amount,
                    "settled_at": settled,
                }
                for site in sites
                for item, amount in (("energy", 100.0), ("reg_up", 20.5))
            ],
        )
    body = client.get(url, headers=auth(store, "viewer")).json()
    assert body["available"] is True
    assert body["by_item_usd"] == {"energy": 200.0, "reg_up": 41.0}
    assert body["total_usd"] == pytest.approx(241.0)
    assert body["sites"] == 2
    assert dt.datetime.fromisoformat(body["settled_at"]) == settled
