"""Dashboard sessions (HttpOnly cookie), key expiry, revocation ending open streams."""

from __future__ import annotations

import datetime as dt
import logging
import queue

import httpx
import pytest

from fleet.store import keys as key_store
from tests.api.conftest import Store, auth
from tests.api.server import http_client, live_server
from tests.api.test_stream import StreamReader


def _new_key(store: Store, role: str, **kwargs: object) -> key_store.NewKey:
    with store.engine.begin() as conn:
        return key_store.create_key(conn, role=role, note="session test", **kwargs)  # type: ignore[arg-type]


def _sign_in(client: httpx.Client, secret: str) -> httpx.Response:
    return client.post("/v1/session", json={"key": secret})


def test_sign_in_sets_httponly_strict_cookie_without_key_when_key_valid(
    client: httpx.Client, store: Store
) -> None:
    client.cookies.clear()
    response = _sign_in(client, store.keys["viewer"])
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("bessfleet_session=bfs_")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    max_age = int(cookie.split("Max-Age=")[1].split(";")[0])
    assert 0 < max_age <= 8 * 3600
    assert store.keys["viewer"] not in cookie
    body = response.json()
    assert body["key_id"] == store.key_ids["viewer"]
    assert body["role"] == "viewer"
    # the cookie alone authenticates reads
    sites = client.get("/v1/sites")
    assert sites.status_code == 200
    assert sites.json()["count"] == len(store.fleet.sites)
    who = client.get("/v1/session").json()
    assert who["key_id"] == store.key_ids["viewer"]
    assert who["expires_at"] is not None
    client.cookies.clear()
    assert client.get("/v1/sites").status_code == 401


def test_sign_in_answers_401_and_no_cookie_when_key_wrong(
    client: httpx.Client,
) -> None:
    client.cookies.clear()
    response = _sign_in(client, "bfk_000000000000_" + "x" * 43)
    assert response.status_code == 401
    assert "set-cookie" not in response.headers


def test_cookie_write_needs_csrf_header_when_authenticated_by_session(
    client: httpx.Client, store: Store
) -> None:
    client.cookies.clear()
    assert _sign_in(client, store.keys["admin"]).status_code == 200
    refused = client.post("/v1/keys", json={"role": "viewer", "note": "csrf"})
    assert refused.status_code == 403
    assert "X-Requested-With" in refused.json()["detail"]
    accepted = client.post(
        "/v1/keys",
        json={"role": "viewer", "note": "csrf"},
        headers={"X-Requested-With": "bessfleet-dashboard"},
    )
    assert accepted.status_code == 201, accepted.text
    client.cookies.clear()


def test_sign_out_ends_session_when_cookie_replayed(
    client: httpx.Client, store: Store
) -> None:
    client.cookies.clear()
    assert _sign_in(client, store.keys["viewer"]).status_code == 200
    token = client.cookies["bessfleet_session"]
    out = client.delete("/v1/session")
    assert out.status_code == 204
    assert "bessfleet_session=" in out.headers["set-cookie"]
    client.cookies.clear()
    replay = client.get("/v1/sites", headers={"Cookie": f"bessfleet_session={token}"})
    assert replay.status_code == 401


def test_key_with_expiry_stops_working_when_expired(store: Store) -> None:
    now = dt.datetime.now(dt.UTC)
    new = _new_key(store, "viewer", expires_at=now + dt.timedelta(hours=1))
    with store.engine.begin() as conn:
        assert key_store.authenticate(conn, new.secret) is not None
        later = now + dt.timedelta(hours=2)
        assert key_store.authenticate(conn, new.secret, now=later) is None
        token, expires = key_store.create_session(conn, new.key, ttl_s=8 * 3600)
        # a session never outlives its key
        assert expires == new.key.expires_at
        assert key_store.session_key(conn, token) is not None
        assert key_store.session_key(conn, token, now=later) is None


def test_session_expires_when_ttl_passed(store: Store) -> None:
    key = _new_key(store, "viewer").key
    then = dt.datetime.now(dt.UTC) - dt.timedelta(hours=9)
    with store.engine.begin() as conn:
        token, _ = key_store.create_session(conn, key, ttl_s=8 * 3600, now=then)
        assert key_store.session_key(conn, token) is None
        assert key_store.session_key(conn, token, now=then) is not None


def test_create_key_stores_expiry_and_refuses_past_expiry_when_given(
    client: httpx.Client, store: Store
) -> None:
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).replace(microsecond=0)
    created = client.post(
        "/v1/keys",
        json={"role": "viewer", "expires_at": until.isoformat()},
        headers=auth(store, "admin"),
    )
    assert created.status_code == 201, created.text
    assert dt.datetime.fromisoformat(created.json()["expires_at"]) == until
    past = client.post(
        "/v1/keys",
        json={"role": "viewer", "expires_at": "2020-01-01T00:00:00Z"},
        headers=auth(store, "admin"),
    )
    assert past.status_code == 422
    assert "expires_at" in past.text


def _read_until_closed(reader: StreamReader, timeout_s: float) -> list[str]:
    kinds: list[str] = []
    reader._thread.join(timeout_s)
    while True:
        try:
            kinds.append(reader.events.get_nowait()[0])
        except queue.Empty:
            return kinds


@pytest.mark.parametrize("how", ["header", "cookie"])
def test_stream_closes_with_revoked_event_when_key_revoked(
    store: Store, how: str
) -> None:
    new = _new_key(store, "viewer")
    with (
        live_server(store.url, stream_auth_check_s=0.2, auth_cache_s=0) as server,
        http_client(server) as admin,
    ):
        if how == "header":
            headers = {"Authorization": f"Bearer {new.secret}"}
        else:
            session = _sign_in(admin, new.secret)
            admin.cookies.clear()
            token = session.cookies["bessfleet_session"]
            headers = {"Cookie": f"bessfleet_session={token}"}
        reader = StreamReader(server.url, headers)
        assert reader.opened.wait(20)
        assert reader.status == 200
        revoked = admin.delete(f"/v1/keys/{new.key.id}", headers=auth(store, "admin"))
        assert revoked.status_code == 200
        kinds = _read_until_closed(reader, 20)
        assert not reader._thread.is_alive(), "stream still open after revocation"
        assert kinds[-1:] == ["revoked"]
        again = httpx.get(f"{server.url}/v1/sites", headers=headers, timeout=10)
        assert again.status_code == 401


def test_access_log_holds_no_key_when_key_sent_in_url(store: Store) -> None:
    records: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Capture()
    access = logging.getLogger("uvicorn.access")
    with live_server(store.url, log_level="info") as server:
        access.addHandler(handler)
        try:
            secret = store.keys["viewer"]
            response = httpx.get(
                f"{server.url}/?key={secret}", timeout=10, follow_redirects=False
            )
            assert response.status_code == 303
            assert response.headers["location"] == "/?signin=url-key"
            httpx.get(f"{server.url}/v1/sites?key={secret}", timeout=10)
        finally:
            access.removeHandler(handler)
    assert len(records) >= 2, records
    assert any("GET /?key=<key-" in r for r in records), records
    assert not any("bfk_" in r for r in records), records
