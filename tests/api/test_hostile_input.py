"""Hostile input gets a 4xx naming the field, on SQLite and PostgreSQL; never a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import Store, auth

DAY = "2026-11-25"


def _strict_json(response: httpx.Response) -> Any:
    """Parse an answer as strict JSON (NaN/Infinity refused, as browsers do)."""

    def refuse(name: str) -> None:
        msg = f"answer holds {name}, which is not JSON"
        raise AssertionError(msg)

    return json.loads(response.text, parse_constant=refuse)


def _locs(response: httpx.Response) -> list[list[Any]]:
    return [d["loc"] for d in _strict_json(response)["detail"]]


def _bid_body(store: Store, price: str) -> str:
    site = store.fleet.sites[0].id
    return (
        f'{{"bids": [{{"site_id": "{site}", "product": "energy", "hour_ending": 18, '
        f'"curve": [[-5.0, 10.0], [5.0, {price}]]}}]}}'
    )


def _award_body(store: Store, award_mw: str = "1.0", version: str = "1") -> str:
    site = store.fleet.sites[0].id
    return (
        f'{{"version": {version}, "awards": [{{"site_id": "{site}", '
        f'"ts": "{DAY}T18:00:00Z", "product": "energy", "award_mw": {award_mw}, '
        '"price": 30.0, "unit": "usd_per_mwh"}]}'
    )


def _put(
    client: httpx.Client, store: Store, path: str, body: str | bytes
) -> httpx.Response:
    return client.put(
        path,
        content=body.encode() if isinstance(body, str) else body,
        headers={**auth(store, "scheduler"), "Content-Type": "application/json"},
    )


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e309"])
def test_put_bids_answers_422_naming_curve_when_price_not_finite(
    client: httpx.Client, store: Store, literal: str
) -> None:
    response = _put(
        client, store, f"/v1/markets/ERCOT/bids/{DAY}", _bid_body(store, literal)
    )
    assert response.status_code == 422, response.text
    assert _locs(response) == [["body", "bids", 0, "curve", 1, 1]]
    assert "bids[0].curve[1][1]" in response.text
    assert "finite" in response.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "1e309", "-1e400"])
def test_put_awards_answers_422_naming_award_mw_when_not_finite(
    client: httpx.Client, store: Store, literal: str
) -> None:
    response = _put(
        client,
        store,
        f"/v1/markets/ERCOT/awards/{DAY}",
        _award_body(store, award_mw=literal),
    )
    assert response.status_code == 422, response.text
    assert _locs(response) == [["body", "awards", 0, "award_mw"]]


@pytest.mark.parametrize("version", [2**31, 2**63, 10**500])
def test_put_awards_answers_422_naming_version_when_beyond_int32(
    client: httpx.Client, store: Store, version: int
) -> None:
    response = _put(
        client,
        store,
        f"/v1/markets/ERCOT/awards/{DAY}",
        _award_body(store, version=str(version)),
    )
    assert response.status_code == 422, response.text
    assert _locs(response) == [["body", "version"]]


def test_put_awards_answers_4xx_naming_version_when_int32_max(
    client: httpx.Client, store: Store
) -> None:
    # The largest version both stores keep passes the schema; the award check then
    # refuses it (no accepted bid set has that version) with a 422 naming the field.
    response = _put(
        client,
        store,
        f"/v1/markets/ERCOT/awards/{DAY}",
        _award_body(store, version=str(2**31 - 1)),
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "version"]
    assert "version=2147483647" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/sites/{site}/schedule-vs-realized?start=9999-12-31T12:00:00Z", "start"),
        (
            "/v1/sites/{site}/schedule-vs-realized?start=0001-01-01T00:00:00%2B01:00",
            "start",
        ),
        (
            "/v1/sites/{site}/telemetry?start=2026-01-01T00:00:00Z"
            "&end=9999-12-31T23:59:59Z",
            "end",
        ),
        ("/v1/revenue?start=1900-01-01T00:00:00Z&end=2026-01-01T00:00:00Z", "start"),
        (
            "/v1/forecasts/prices?market=ERCOT&node=HB_WEST&issued_before=9999-12-31T00:00:00Z",
            "issued_before",
        ),
    ],
)
def test_time_query_answers_422_naming_field_when_far_date(
    client: httpx.Client, store: Store, path: str, field: str
) -> None:
    url = path.format(site=store.fleet.sites[0].id)
    response = client.get(url, headers=auth(store, "viewer"))
    assert response.status_code == 422, response.text
    assert ["query", field] in _locs(response)


def test_get_awards_answers_422_naming_day_when_year_9999(
    client: httpx.Client, store: Store
) -> None:
    response = client.get(
        "/v1/markets/ERCOT/awards/9999-12-31", headers=auth(store, "viewer")
    )
    assert response.status_code == 422, response.text
    assert ["path", "operating_day"] in _locs(response)


def test_availability_answers_valid_json_422_when_hours_nan(
    client: httpx.Client, store: Store
) -> None:
    site = store.fleet.sites[0].id
    for value in ("nan", "inf", "-inf", "1e309"):
        response = client.get(
            f"/v1/sites/{site}/availability?hours={value}",
            headers=auth(store, "viewer"),
        )
        assert response.status_code == 422, response.text
        assert _locs(response) == [["query", "hours"]]


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"note": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


def test_put_bids_answers_413_when_chunked_body_over_4_mib(
    client: httpx.Client, store: Store
) -> None:
    response = client.put(
        f"/v1/markets/ERCOT/bids/{DAY}",
        content=_chunks(5 * 1024 * 1024),
        headers={**auth(store, "scheduler"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413, response.text
    assert "4194304 bytes" in _strict_json(response)["detail"]


def test_put_bids_answers_413_when_declared_length_over_4_mib(
    client: httpx.Client, store: Store
) -> None:
    body = b'{"note": "' + b"x" * (4 * 1024 * 1024 + 10) + b'"}'
    response = _put(client, store, f"/v1/markets/ERCOT/bids/{DAY}", body)
    assert response.status_code == 413


def test_put_bids_answers_documented_422_when_body_not_utf8(
    client: httpx.Client, store: Store
) -> None:
    body = _bid_body(store, "30.0").encode().replace(b"energy", b"en\xffergy")
    response = _put(client, store, f"/v1/markets/ERCOT/bids/{DAY}", body)
    assert response.status_code == 422, response.text
    detail = _strict_json(response)["detail"][0]
    assert detail["type"] == "utf8_invalid"
    assert "0xff" in detail["msg"]
    spec = client.get("/openapi.json").json()
    documented = spec["paths"]["/v1/markets/{market}/bids/{operating_day}"]["put"]
    assert "UTF-8" in documented["responses"]["422"]["description"]


def test_create_key_answers_422_naming_note_when_nul_in_body(
    client: httpx.Client, store: Store
) -> None:
    response = client.post(
        "/v1/keys",
        content=b'{"role": "viewer", "note": "a\\u0000b"}',
        headers={**auth(store, "admin"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert _locs(response) == [["body", "note"]]


def test_query_answers_422_naming_parameter_when_nul(
    client: httpx.Client, store: Store
) -> None:
    response = client.get("/v1/audit?actor=a%00b", headers=auth(store, "admin"))
    assert response.status_code == 422, response.text
    assert _locs(response) == [["query", "actor"]]


def test_validation_error_truncates_echo_when_input_long(
    client: httpx.Client, store: Store
) -> None:
    response = client.post(
        "/v1/keys",
        json={"role": "viewer", "note": "n" * 100_000},
        headers=auth(store, "admin"),
    )
    assert response.status_code == 422
    assert len(response.content) < 2000


def test_openapi_lists_422_and_503_for_every_operation_and_413_for_bodies(
    client: httpx.Client,
) -> None:
    spec = client.get("/openapi.json").json()
    operations = [
        (path, method, op)
        for path, methods in spec["paths"].items()
        for method, op in methods.items()
    ]
    assert len(operations) >= 20
    for path, method, op in operations:
        assert {"422", "503"} <= set(op["responses"]), (path, method)
        if "requestBody" in op:
            assert "413" in op["responses"], (path, method)


@pytest.mark.parametrize("path", ["/", "/v1/sites", "/openapi.json", "/nowhere"])
def test_answer_carries_security_headers_when_any_path(
    client: httpx.Client, store: Store, path: str
) -> None:
    response = client.get(path, headers=auth(store, "viewer"))
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp


def test_guard_names_nested_field_when_number_not_finite() -> None:
    from fleet.api import guard

    loc, msg, kind = guard.check_json_body(b'{"a": [1, {"b": 1e999}]}') or ([], "", "")
    assert loc == ["body", "a", 1, "b"]
    assert "a[1].b=1e999" in msg
    assert kind == "value_error"
    assert guard.check_json_body(b'{"a": 1.5, "b": "ok"}') is None
    assert guard.check_json_body(b'{"a": ') is None  # syntax errors are FastAPI's


def test_redact_keys_hides_secret_and_keeps_prefix_when_key_in_text() -> None:
    from fleet.api import guard

    secret = "bfk_0123456789ab_" + "A" * 43
    text = guard.redact_keys(f'GET /?key={secret} HTTP/1.1 "{secret}"')
    assert "bfk_" not in text
    assert "A" * 43 not in text
    assert text.count("<key-0123456789ab redacted>") == 2


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 50_000 + b"1"])
def test_put_bids_answers_422_when_body_nests_too_deep(
    client: httpx.Client, store: Store, body: bytes
) -> None:
    response = _put(client, store, f"/v1/markets/ERCOT/bids/{DAY}", body)
    assert response.status_code == 422, response.text
    assert _locs(response) == [["body"]]
