"""API keys: hashing, roles, 401/403 boundaries, revocation and the audit log."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from fleet.errors import FleetInputError
from fleet.store import keys as key_store
from fleet.store.tables import api_keys
from tests.api.conftest import Store, auth

BID_BODY = {
    "bids": [
        {
            "site_id": "tx-odessa-01",
            "product": "energy",
            "hour_ending": 18,
            "curve": [[-10.0, 15.0], [0.0, 30.0], [10.0, 120.0]],
        }
    ]
}


def test_keys_store_only_a_hash_when_created(store: Store) -> None:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(api_keys.c.hash, api_keys.c.prefix)).all()
    secrets = set(store.keys.values())
    assert rows
    for stored_hash, prefix in rows:
        assert stored_hash.startswith("sha256:")
        assert all(stored_hash != s and s not in stored_hash for s in secrets)
        assert any(prefix in s for s in secrets) or len(rows) > len(secrets)


def test_create_key_raises_when_role_unknown(store: Store) -> None:
    with (
        store.engine.begin() as conn,
        pytest.raises(FleetInputError, match="role='root'"),
    ):
        key_store.create_key(conn, role="root")


def test_authenticate_returns_none_when_secret_tampered(store: Store) -> None:
    secret = store.keys["viewer"]
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    with store.engine.connect() as conn:
        assert key_store.authenticate(conn, secret) is not None
        assert key_store.authenticate(conn, tampered) is None
        assert key_store.authenticate(conn, "not-a-key") is None


@pytest.mark.parametrize(
    "path",
    ["/v1/sites", "/v1/fleet", "/metrics", "/v1/awards", "/v1/schedules", "/v1/keys"],
)
def test_endpoint_answers_401_when_key_missing(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "missing API key" in response.json()["detail"]


def test_endpoint_answers_401_when_key_wrong(
    client: httpx.Client, store: Store
) -> None:
    bad = store.keys["admin"][:-3] + "xyz"
    assert (
        client.get("/v1/sites", headers={"Authorization": f"Bearer {bad}"}).status_code
        == 401
    )
    assert client.get("/v1/sites", headers={"X-API-Key": "bfk_nope"}).status_code == 401


def test_endpoint_accepts_x_api_key_header_when_valid(
    client: httpx.Client, store: Store
) -> None:
    response = client.get("/v1/sites", headers={"X-API-Key": store.keys["viewer"]})
    assert response.status_code == 200


def test_health_endpoints_are_open_when_no_key(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}, "detail": {}}
    assert client.get("/readyz").status_code == 200


def test_viewer_key_cannot_push_bids_when_role_viewer(
    client: httpx.Client, store: Store
) -> None:
    response = client.put(
        f"/v1/markets/ERCOT/bids/{store.operating_day}",
        json=BID_BODY,
        headers=auth(store, "viewer"),
    )
    assert response.status_code == 403
    assert "needs role 'scheduler'" in response.json()["detail"]


def test_scheduler_key_cannot_change_fleet_when_role_scheduler(
    client: httpx.Client, store: Store
) -> None:
    site = store.fleet.sites[0].model_dump(mode="json")
    response = client.put(
        f"/v1/sites/{site['id']}", json=site, headers=auth(store, "scheduler")
    )
    assert response.status_code == 403
    assert "needs role 'admin'" in response.json()["detail"]


def test_scheduler_key_cannot_manage_keys_when_role_scheduler(
    client: httpx.Client, store: Store
) -> None:
    response = client.post(
        "/v1/keys", json={"role": "viewer"}, headers=auth(store, "scheduler")
    )
    assert response.status_code == 403


def test_admin_can_create_and_revoke_key_when_admin(
    client: httpx.Client, store: Store
) -> None:
    created = client.post(
        "/v1/keys",
        json={"role": "viewer", "note": "ops laptop"},
        headers=auth(store, "admin"),
    )
    assert created.status_code == 201
    body = created.json()
    new_secret = body["secret"]
    assert client.get("/v1/sites", headers={"X-API-Key": new_secret}).status_code == 200
    listed = client.get("/v1/keys", headers=auth(store, "admin")).json()["items"]
    assert body["key_id"] in {k["key_id"] for k in listed}
    assert all("secret" not in k for k in listed)
    revoked = client.delete(f"/v1/keys/{body['key_id']}", headers=auth(store, "admin"))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert client.get("/v1/sites", headers={"X-API-Key": new_secret}).status_code == 401
    log = client.get(
        "/v1/audit", params={"object_type": "api_key"}, headers=auth(store, "admin")
    ).json()["items"]
    actions = [(e["action"], e["object_id"], e["actor"]) for e in log]
    assert ("key.create", body["key_id"], store.key_ids["admin"]) in actions
    assert ("key.revoke", body["key_id"], store.key_ids["admin"]) in actions


def test_revoke_answers_404_when_key_unknown(
    client: httpx.Client, store: Store
) -> None:
    response = client.delete("/v1/keys/key-000000000000", headers=auth(store, "admin"))
    assert response.status_code == 404


def test_bid_push_is_audit_logged_with_key_id_when_scheduler(
    client: httpx.Client, store: Store
) -> None:
    response = client.put(
        f"/v1/markets/ercot/bids/{store.operating_day}",
        json=BID_BODY,
        headers=auth(store, "scheduler"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["submitted_by"] == store.key_ids["scheduler"]
    log = client.get(
        "/v1/audit", params={"object_type": "bid_set"}, headers=auth(store, "admin")
    ).json()["items"]
    assert log[0]["actor"] == store.key_ids["scheduler"]
    assert log[0]["action"] == "bids.accepted"
    assert log[0]["object_id"] == str(body["bid_set_id"])
    assert log[0]["detail"]["version"] == body["version"]


def test_audit_log_is_admin_only_when_viewer(
    client: httpx.Client, store: Store
) -> None:
    assert client.get("/v1/audit", headers=auth(store, "viewer")).status_code == 403
