"""The operating day through the API: steps, interval commands, settlement, commands."""

from __future__ import annotations

import datetime as dt
import uuid

from fleet.ops.intraday import IntervalReport
from fleet.ops.runs import mark_step, record_interval
from fleet.ops.settlement import DaySettlement, store_settlement
from fleet.store.dml import transaction
from fleet.store.telemetry import record_ack, record_setpoint
from telemetry.payloads import AckPayload, SetpointPayload
from tests.api.conftest import auth

DAY = dt.date(2025, 4, 9)
NOW = dt.datetime(2025, 4, 10, 6, 0, tzinfo=dt.UTC)


def _seed(store) -> str:
    site = store.fleet.sites[0].id
    mark_step(store.engine, "ERCOT", DAY, "dayahead", "running", now=NOW)
    mark_step(
        store.engine, "ERCOT", DAY, "dayahead", "done", now=NOW, detail={"bids": 96}
    )
    record_interval(
        store.engine,
        "ERCOT",
        DAY,
        IntervalReport(
            index=4,
            start=NOW,
            status="optimal",
            reason=None,
            version="v1.5",
            setpoints_mw={site: 12.5},
            awarded_mw={site: {"reg_up": 10.0}},
            held_mw={site: {"reg_up": 10.0}},
        ),
        now=NOW,
    )
    day = DaySettlement("ERCOT", DAY)
    day.rows.append(
        {
            "market": "ERCOT",
            "operating_day": DAY,
            "site_id": site,
            "item": "da_energy",
            "amount_usd": 1234.5,
            "quantity": 50.0,
            "unit": "mwh",
            "detail": {},
        }
    )
    store_settlement(store.engine, day, now=NOW)
    cmd = f"{site}-{uuid.uuid4().hex[:8]}"
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    sp = SetpointPayload.model_validate(
        {
            "v": 1,
            "cmd_id": cmd,
            "site": site,
            "issued_ts": now_ms,
            "valid_from": now_ms,
            "expires_at": now_ms + 60_000,
            "mode": "power",
            "p_ac_w_setpoint": 5e6,
            "ramp_w_per_s": 1e6,
            "soc_min_pct": 5.0,
            "soc_max_pct": 95.0,
            "source": "test",
        }
    )
    with transaction(store.engine) as conn:
        record_setpoint(conn, setpoint=sp)
        record_ack(
            conn,
            ack=AckPayload.model_validate(
                {"cmd_id": cmd, "site": site, "status": "applied", "ts": now_ms}
            ),
        )
    return cmd


def test_operations_routes_show_the_day_and_the_site_commands(store, client):
    cmd = _seed(store)
    site = store.fleet.sites[0].id
    viewer = auth(store, "viewer")
    runs = client.get("/v1/operations/runs?market=ERCOT", headers=viewer)
    assert runs.status_code == 200, runs.text
    step = next(r for r in runs.json() if r["step"] == "dayahead")
    assert step["status"] == "done"
    assert step["detail"] == {"bids": 96}
    got = client.get(f"/v1/operations/intervals?market=ERCOT&day={DAY}", headers=viewer)
    assert got.status_code == 200, got.text
    assert got.json()[0]["setpoints_mw"] == {site: 12.5}
    settled = client.get(f"/v1/settlements?start={DAY}&end={DAY}", headers=viewer)
    assert settled.status_code == 200
    assert settled.json()["total_usd"] == 1234.5
    commands = client.get(f"/v1/sites/{site}/commands", headers=viewer)
    assert commands.status_code == 200
    mine = next(c for c in commands.json() if c["cmd_id"] == cmd)
    assert mine["status"] == "applied"
    assert mine["p_mw"] == 5.0
    assert client.get("/v1/sites/nope-01/commands", headers=viewer).status_code == 404
    assert client.get("/v1/operations/runs").status_code == 401
    bad = client.get(
        "/v1/operations/intervals?market=ERCOT&day=9999-12-31", headers=viewer
    )
    assert bad.status_code == 422
