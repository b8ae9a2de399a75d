"""Alerts endpoints: list and filter, read, acknowledge (scheduler), audit, stream."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import httpx
import pytest

from fleet.store import alerts as alert_store
from tests.api.conftest import Store, auth
from tests.api.test_stream import StreamReader

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
THERMAL_ACTION = "inspect the string's cooling (fan, HVAC duct, filter)"


@dataclass(frozen=True)
class Seeded:
    """Ids of the alerts written for this module."""

    thermal: int
    imbalance: int
    closed: int
    for_ack: int
    for_stream: int
    caiso_site: str
    ercot_site: str


@pytest.fixture(scope="module")
def seeded(store: Store) -> Seeded:
    ercot = next(s.id for s in store.fleet.sites if s.market.upper() == "ERCOT")
    caiso = next(s.id for s in store.fleet.sites if s.market.upper() == "CAISO")

    def raise_(site: str, dev: str, kind: str, severity: str, hours: int) -> int:
        alert_id, new = alert_store.raise_alert(
            store.engine,
            site_id=site,
            dev_id=dev,
            kind=kind,
            severity=severity,
            detail={"statistic": "test", "value": 1.0, "action": f"fix {kind}"},
            now=T0 + dt.timedelta(hours=hours),
        )
        assert new
        return alert_id

    thermal, _ = alert_store.raise_alert(
        store.engine,
        site_id=ercot,
        dev_id="bank2",
        kind="thermal_outlier",
        severity="critical",
        detail={"value": 6.1, "threshold": 3.5, "action": THERMAL_ACTION},
        now=T0,
    )
    imbalance = raise_(caiso, "bank1", "cell_imbalance", "warning", 1)
    closed = raise_(ercot, "bank1", "telemetry_quality", "info", 2)
    alert_store.close_alert(store.engine, closed, now=T0 + dt.timedelta(hours=3))
    for_ack = raise_(caiso, "bank3", "rte_slide", "warning", 4)
    for_stream = raise_(caiso, "bank4", "fast_fade", "warning", 5)
    return Seeded(thermal, imbalance, closed, for_ack, for_stream, caiso, ercot)


def _get(
    client: httpx.Client, store: Store, path: str, **params: str | int
) -> httpx.Response:
    return client.get(path, params=params or None, headers=auth(store, "viewer"))


def test_alerts_list_open_newest_first_with_action_and_timezone_when_stored(
    client: httpx.Client, store: Store, seeded: Seeded
) -> None:
    response = _get(client, store, "/v1/alerts")
    assert response.status_code == 200
    body = response.json()
    ids = [a["alert_id"] for a in body["items"]]
    assert seeded.closed not in ids
    assert {seeded.thermal, seeded.imbalance} <= set(ids)
    opened = [a["opened_at"] for a in body["items"]]
    assert opened == sorted(opened, reverse=True)
    assert body["count"] == len(ids)
    thermal = next(a for a in body["items"] if a["alert_id"] == seeded.thermal)
    assert thermal["site_id"] == seeded.ercot_site
    assert thermal["dev_id"] == "bank2"
    assert thermal["severity"] == "critical"
    assert thermal["action"] == THERMAL_ACTION
    assert thermal["timezone"] == "America/Chicago"
    assert thermal["open"] is True
    assert thermal["detail"]["threshold"] == 3.5
    assert dt.datetime.fromisoformat(thermal["opened_at"]) == T0
    caiso = next(a for a in body["items"] if a["alert_id"] == seeded.imbalance)
    assert caiso["timezone"] == "America/Los_Angeles"


def test_alerts_list_filters_and_pages_when_query_given(
    client: httpx.Client, store: Store, seeded: Seeded
) -> None:
    by_site = _get(client, store, "/v1/alerts", site_id=seeded.caiso_site).json()
    assert by_site["items"]
    assert {a["site_id"] for a in by_site["items"]} == {seeded.caiso_site}
    critical = _get(client, store, "/v1/alerts", severity="critical").json()
    assert [a["alert_id"] for a in critical["items"]] == [seeded.thermal]
    with_closed = _get(client, store, "/v1/alerts", open_only="false").json()
    closed = next(a for a in with_closed["items"] if a["alert_id"] == seeded.closed)
    assert closed["open"] is False
    assert closed["closed_at"] is not None
    open_count = _get(client, store, "/v1/alerts").json()["count"]
    assert with_closed["count"] == open_count + 1
    everything = [a["alert_id"] for a in with_closed["items"]]
    page1 = _get(client, store, "/v1/alerts", open_only="false", limit=2).json()
    page2 = _get(
        client, store, "/v1/alerts", open_only="false", limit=2, offset=2
    ).json()
    assert [a["alert_id"] for a in page1["items"]] == everything[:2]
    assert [a["alert_id"] for a in page2["items"]] == everything[2:4]
    assert page2["count"] == len(everything)
    assert page2["offset"] == 2
    none = _get(client, store, "/v1/alerts", site_id="no-such-site").json()
    assert none == {"items": [], "count": 0, "limit": 100, "offset": 0}


def test_alert_get_returns_alert_when_exists_and_404_when_unknown(
    client: httpx.Client, store: Store, seeded: Seeded
) -> None:
    body = _get(client, store, f"/v1/alerts/{seeded.closed}").json()
    assert body["alert_id"] == seeded.closed
    assert body["kind"] == "telemetry_quality"
    assert body["open"] is False
    missing = _get(client, store, "/v1/alerts/987654321")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/json")
    assert missing.json() == {"detail": "alert_id=987654321: no such alert"}
    ack_missing = client.post(
        "/v1/alerts/987654321/ack", headers=auth(store, "scheduler")
    )
    assert ack_missing.status_code == 404
    assert "alert_id=987654321" in ack_missing.json()["detail"]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/alerts", {"limit": 0}, ["query", "limit"]),
        ("/v1/alerts", {"limit": 1001}, ["query", "limit"]),
        ("/v1/alerts", {"offset": -1}, ["query", "offset"]),
        ("/v1/alerts", {"severity": "fatal"}, ["query", "severity"]),
        ("/v1/alerts", {"open_only": "maybe"}, ["query", "open_only"]),
        ("/v1/alerts", {"site_id": "Bad Site!"}, ["query", "site_id"]),
        ("/v1/alerts/abc", {}, ["path", "alert_id"]),
        ("/v1/alerts/0", {}, ["path", "alert_id"]),
    ],
)
def test_alerts_answer_422_naming_field_when_query_invalid(
    client: httpx.Client,
    store: Store,
    path: str,
    params: dict[str, str | int],
    field: list[str],
) -> None:
    response = _get(client, store, path, **params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == field


def test_alert_ack_answers_422_naming_alert_id_when_path_invalid(
    client: httpx.Client, store: Store
) -> None:
    response = client.post("/v1/alerts/x1/ack", headers=auth(store, "scheduler"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "alert_id"]


def test_alerts_answer_401_when_key_missing(client: httpx.Client) -> None:
    assert client.get("/v1/alerts").status_code == 401
    assert client.post("/v1/alerts/1/ack").status_code == 401


def test_alert_ack_is_refused_403_when_key_is_viewer(
    client: httpx.Client, store: Store, seeded: Seeded
) -> None:
    response = client.post(
        f"/v1/alerts/{seeded.for_ack}/ack", headers=auth(store, "viewer")
    )
    assert response.status_code == 403
    assert "scheduler" in response.json()["detail"]
    assert alert_store.get_alert(store.engine, seeded.for_ack).acknowledged_by is None


def test_alert_ack_records_key_audits_once_and_keeps_first_when_acked_twice(
    client: httpx.Client, store: Store, seeded: Seeded
) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    response = client.post(
        f"/v1/alerts/{seeded.for_ack}/ack", headers=auth(store, "scheduler")
    )
    assert response.status_code == 200
    body = response.json()
    scheduler_id = store.key_ids["scheduler"]
    assert body["acknowledged_by"] == scheduler_id
    assert dt.datetime.fromisoformat(body["acknowledged_at"]) >= before
    assert body["open"] is True
    stored = alert_store.get_alert(store.engine, seeded.for_ack)
    assert stored.acknowledged_by == scheduler_id
    again = client.post(
        f"/v1/alerts/{seeded.for_ack}/ack", headers=auth(store, "admin")
    )
    assert again.status_code == 200
    assert again.json()["acknowledged_by"] == scheduler_id
    assert again.json()["acknowledged_at"] == body["acknowledged_at"]
    audit = client.get(
        "/v1/audit", params={"object_type": "alert"}, headers=auth(store, "admin")
    ).json()["items"]
    mine = [e for e in audit if e["object_id"] == str(seeded.for_ack)]
    assert len(mine) == 1
    assert mine[0]["actor"] == scheduler_id
    assert mine[0]["action"] == "alert.ack"
    assert mine[0]["detail"]["kind"] == "rte_slide"
    listed = _get(client, store, "/v1/alerts", site_id=seeded.caiso_site).json()
    row = next(a for a in listed["items"] if a["alert_id"] == seeded.for_ack)
    assert row["acknowledged_by"] == scheduler_id


def test_alert_ack_pushes_alert_event_when_acknowledged(
    client: httpx.Client, store: Store, seeded: Seeded
) -> None:
    reader = StreamReader(str(client.base_url), auth(store, "viewer"))
    try:
        assert reader.opened.wait(10)
        assert reader.status == 200
        response = client.post(
            f"/v1/alerts/{seeded.for_stream}/ack", headers=auth(store, "admin")
        )
        assert response.status_code == 200
        event = reader.wait_for("alert")
        assert event["alert_id"] == seeded.for_stream
        assert event["acknowledged_by"] == store.key_ids["admin"]
        assert event["site_id"] == seeded.caiso_site
        assert event["kind"] == "fast_fade"
    finally:
        reader.close()


def test_openapi_documents_alert_routes_with_roles_when_fetched(
    client: httpx.Client,
) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/v1/alerts", "/v1/alerts/{alert_id}", "/v1/alerts/{alert_id}/ack"} <= set(
        spec["paths"]
    )
    ack = spec["paths"]["/v1/alerts/{alert_id}/ack"]["post"]
    assert {"401", "403", "404", "422"} <= set(ack["responses"])
    assert spec["components"]["schemas"]["AlertOut"]["examples"]
