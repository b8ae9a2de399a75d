"""The hot read path serves what the store holds now: kept answers are never stale.

The current schedule's answer is kept by the schedule row's identity and the site list's
summaries by the stored row's text (``fleet.api.answers``, ``queries.site_summaries``);
authentication is one dependency whose schemes the OpenAPI document still lists.
"""

from __future__ import annotations

import datetime as dt

import httpx
import sqlalchemy as sa

from fleet.api import sample
from fleet.domain import Fleet
from fleet.store.sites import save_fleet
from fleet.store.tables import schedules
from tests.api.conftest import Store, auth


def _current(client: httpx.Client, store: Store, site_id: str | None = None) -> dict:
    params = {"market": "ERCOT"} | ({"site_id": site_id} if site_id else {})
    answer = client.get(
        "/v1/schedules/current", params=params, headers=auth(store, "viewer")
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-content-type-options"] == "nosniff"
    return answer.json()


def test_current_schedule_is_the_new_version_when_one_is_stored_after_a_read(
    client: httpx.Client, store: Store
) -> None:
    first = _current(client, store)
    site = first["sites"][0]["site_id"]
    one_site = _current(client, store, site)
    assert [s["site_id"] for s in one_site["sites"]] == [site]
    with store.engine.begin() as conn:
        new_id = sample.write_schedule(
            conn,
            store.fleet.sites,
            market="ERCOT",
            operating_day=store.operating_day,
            version=first["version"] + 1,
            interval_minutes=60,
        )
    after = _current(client, store)
    assert after["schedule_id"] == new_id
    assert after["version"] == first["version"] + 1
    assert after["interval_minutes"] == 60
    assert len(after["fleet_ts"]) == 24
    assert _current(client, store, site)["schedule_id"] == new_id


def test_current_schedule_is_the_new_row_when_the_newest_id_is_reused(
    client: httpx.Client, store: Store
) -> None:
    before = _current(client, store)
    # SQLite hands out the largest id again once that row is gone: the kept answer
    # must not outlive the row it was built from
    with store.engine.begin() as conn:
        conn.execute(
            sa.delete(schedules).where(schedules.c.id == before["schedule_id"])
        )
        new_id = sample.write_schedule(
            conn,
            store.fleet.sites,
            market="ERCOT",
            operating_day=store.operating_day,
            version=before["version"] + 5,
            interval_minutes=30,
            created_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
        )
    after = _current(client, store)
    assert after["schedule_id"] == new_id
    assert after["version"] == before["version"] + 5
    assert after["interval_minutes"] == 30
    assert len(after["fleet_ts"]) == 48


def test_site_list_shows_a_change_saved_by_another_process_at_once(
    client: httpx.Client, store: Store, example_fleet: Fleet
) -> None:
    listed = client.get("/v1/sites", headers=auth(store, "viewer")).json()["items"]
    site = example_fleet.sites[0]
    assert next(i for i in listed if i["site_id"] == site.id)["name"] == site.name
    changed = site.model_copy(
        update={
            "name": f"{site.name} (renamed)",
            "battery": site.battery.model_copy(
                update={"energy_mwh": site.battery.energy_mwh + 1.0}
            ),
        }
    )
    try:
        save_fleet(store.engine, Fleet.model_construct(sites=[changed]))
        listed = client.get("/v1/sites", headers=auth(store, "viewer")).json()["items"]
        item = next(i for i in listed if i["site_id"] == site.id)
        assert item["name"] == changed.name
        assert item["energy_mwh"] == site.battery.energy_mwh + 1.0
    finally:
        save_fleet(store.engine, Fleet.model_construct(sites=[site]))
    listed = client.get("/v1/sites", headers=auth(store, "viewer")).json()["items"]
    assert next(i for i in listed if i["site_id"] == site.id)["name"] == site.name


def test_site_state_is_the_newest_sample_when_telemetry_arrives_between_reads(
    client: httpx.Client, store: Store
) -> None:
    site = store.fleet.sites[0]
    first = client.get(f"/v1/sites/{site.id}/state", headers=auth(store, "viewer"))
    assert first.status_code == 200
    now = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=30)
    with store.engine.begin() as conn:
        sample.write_telemetry(
            conn, [site], start=now, end=now + dt.timedelta(seconds=1), step_s=1
        )
    second = client.get(f"/v1/sites/{site.id}/state", headers=auth(store, "viewer"))
    assert second.json()["ts"] == now.isoformat().replace("+00:00", "Z")
    assert second.json()["ts"] != first.json()["ts"]


def test_openapi_lists_the_key_schemes_on_every_operation_that_needs_a_key(
    client: httpx.Client,
) -> None:
    doc = client.get("/openapi.json").json()
    expected = [{"HTTPBearer": []}, {"APIKeyHeader": []}, {"APIKeyCookie": []}]
    open_ops = {
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("post", "/v1/session"),
        ("delete", "/v1/session"),
    }
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            if (method, path) in open_ops:
                assert "security" not in operation, (method, path)
            else:
                assert operation["security"] == expected, (method, path)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {
        "type": "http",
        "description": schemes["HTTPBearer"]["description"],
        "scheme": "bearer",
    }
    assert schemes["APIKeyHeader"]["name"] == "X-API-Key"
    assert schemes["APIKeyCookie"] == {
        "type": "apiKey",
        "description": schemes["APIKeyCookie"]["description"],
        "in": "cookie",
        "name": "bessfleet_session",
    }
