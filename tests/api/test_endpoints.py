"""Each endpoint answers what the store holds, validates its input and bounds its work."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
import sqlalchemy as sa

from fleet.store.tables import price_forecasts
from tests.api.conftest import Store, auth


def _get(
    client: httpx.Client, store: Store, path: str, **params: object
) -> httpx.Response:
    return client.get(path, params=params or None, headers=auth(store, "viewer"))


def test_fleet_sums_ratings_and_counts_online_when_all_sites_report(
    client: httpx.Client, store: Store
) -> None:
    body = _get(client, store, "/v1/fleet").json()
    assert body["site_count"] == len(store.fleet.sites)
    assert body["online_count"] == len(store.fleet.sites)
    assert body["energy_mwh"] == pytest.approx(
        sum(s.battery.energy_mwh for s in store.fleet.sites)
    )
    assert body["markets"] == ["CAISO", "ERCOT"]
    assert 0 < body["stored_energy_mwh"] < body["energy_mwh"]


def test_sites_lists_every_site_with_state_when_telemetry_stored(
    client: httpx.Client, store: Store
) -> None:
    body = _get(client, store, "/v1/sites").json()
    assert [s["site_id"] for s in body["items"]] == sorted(
        s.id for s in store.fleet.sites
    )
    first = body["items"][0]
    assert first["timezone"] in {"America/Chicago", "America/Los_Angeles"}
    assert 0.0 <= first["state"]["soc"] <= 1.0
    assert first["state"]["online"] is True
    assert first["latitude"] is not None
    ercot = _get(client, store, "/v1/sites", market="ercot").json()
    assert {s["market"] for s in ercot["items"]} == {"ERCOT"}


def test_site_detail_returns_config_when_site_exists(
    client: httpx.Client, store: Store
) -> None:
    site = store.fleet.sites[0]
    body = _get(client, store, f"/v1/sites/{site.id}").json()
    assert body["config"]["battery"]["energy_mwh"] == site.battery.energy_mwh
    assert body["energy_mwh"] == site.battery.energy_mwh


def test_site_endpoints_answer_404_when_site_unknown(
    client: httpx.Client, store: Store
) -> None:
    for path in ("", "/state", "/availability", "/warranty", "/schedule-vs-realized"):
        response = _get(client, store, f"/v1/sites/no-such-site{path}")
        assert response.status_code == 404, path
        assert "no-such-site" in response.json()["detail"]


def test_site_path_answers_422_naming_field_when_id_malformed(
    client: httpx.Client, store: Store
) -> None:
    response = _get(client, store, "/v1/sites/BAD ID")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "site_id"]


def test_state_reports_soc_and_power_when_latest_state_stored(
    client: httpx.Client, store: Store
) -> None:
    site = store.fleet.sites[0]
    body = _get(client, store, f"/v1/sites/{site.id}/state").json()
    assert 0.0 <= body["soc"] <= 1.0
    assert abs(body["power_mw"]) <= max(
        site.battery.charge_mw, site.battery.discharge_mw
    )
    assert body["soh"] == pytest.approx(0.975)
    assert body["lag_s"] >= 0


def test_availability_counts_samples_when_window_given(
    client: httpx.Client, store: Store
) -> None:
    site = store.fleet.sites[0]
    body = _get(client, store, f"/v1/sites/{site.id}/availability", hours=2).json()
    assert 100 <= body["samples"] <= 121
    assert body["expected_samples"] == 7200
    assert 0 < body["availability"] < 0.05
    assert body["available_discharge_mw"] == site.battery.discharge_mw


def test_telemetry_resamples_and_paginates_when_range_spans_pages(
    client: httpx.Client, store: Store
) -> None:
    site = store.fleet.sites[0].id
    end = dt.datetime.now(dt.UTC)
    start = end - dt.timedelta(hours=5)
    first = _get(
        client,
        store,
        f"/v1/sites/{site}/telemetry",
        start=start.isoformat(),
        end=end.isoformat(),
        resample_s=900,
        limit=8,
    ).json()
    assert len(first["points"]) <= 8
    assert first["next_cursor"] is not None
    times = [p["ts"] for p in first["points"]]
    assert times == sorted(times)
    assert all(p["samples"] <= 15 for p in first["points"])
    cursor = first["next_cursor"]
    pages = 1
    while cursor is not None:
        page = _get(
            client,
            store,
            f"/v1/sites/{site}/telemetry",
            start=cursor,
            end=end.isoformat(),
            resample_s=900,
            limit=8,
        ).json()
        pages += 1
        assert page["points"][0]["ts"] > times[-1]
        times += [p["ts"] for p in page["points"]]
        cursor = page["next_cursor"]
        assert pages < 10
    assert pages == 3
    assert len(times) == len(set(times))
    rating = max(
        store.fleet.sites[0].battery.charge_mw,
        store.fleet.sites[0].battery.discharge_mw,
    )
    assert all(abs(p["power_mw"]) <= rating for p in first["points"])
    assert all(p["samples"] >= 10 for p in first["points"][1:])
    assert 20 <= len(times) <= 22


def test_telemetry_answers_422_naming_end_when_range_too_long(
    client: httpx.Client, store: Store
) -> None:
    site = store.fleet.sites[0].id
    response = _get(
        client,
        store,
        f"/v1/sites/{site}/telemetry",
        start="2026-01-01T00:00:00Z",
        end="2026-03-01T00:00:00Z",
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "end"]
    assert "31 days" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-01-01T00:00:00", "end": "2026-01-02T00:00:00Z"}, "start"),
        ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "end"),
        (
            {
                "start": "2026-01-01T00:00:00Z",
                "end": "2026-01-02T00:00:00Z",
                "limit": 0,
            },
            "limit",
        ),
        (
            {
                "start": "2026-01-01T00:00:00Z",
                "end": "2026-01-02T00:00:00Z",
                "resample_s": 10**9,
            },
            "resample_s",
        ),
        ({"start": "yesterday", "end": "2026-01-02T00:00:00Z"}, "start"),
    ],
)
def test_telemetry_answers_422_naming_field_when_query_invalid(
    client: httpx.Client, store: Store, params: dict[str, object], field: str
) -> None:
    site = store.fleet.sites[0].id
    response = _get(client, store, f"/v1/sites/{site}/telemetry", **params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == field


def test_current_schedule_returns_site_series_and_fleet_totals_when_stored(
    client: httpx.Client, store: Store
) -> None:
    body = _get(client, store, "/v1/schedules/current", market="ERCOT").json()
    assert body["schedule_id"] == store.schedule_id
    assert body["status"] == "optimal"
    assert body["interval_minutes"] == 15
    ercot = [s.id for s in store.fleet.sites if str(s.market) == "ERCOT"]
    assert [s["site_id"] for s in body["sites"]] == sorted(ercot)
    assert len(body["fleet_power_mw"]) == 96
    first_total = sum(s["points"][0]["power_mw"] for s in body["sites"])
    assert body["fleet_power_mw"][0] == pytest.approx(first_total)
    one = _get(
        client, store, "/v1/schedules/current", market="ERCOT", site_id=ercot[0]
    ).json()
    assert [s["site_id"] for s in one["sites"]] == [ercot[0]]


def test_schedule_by_version_and_by_id_agree_when_stored(
    client: httpx.Client, store: Store
) -> None:
    by_version = _get(
        client, store, f"/v1/markets/ERCOT/schedules/{store.operating_day}", version=1
    ).json()
    by_id = _get(client, store, f"/v1/schedules/{store.schedule_id}").json()
    assert by_version == by_id
    listed = _get(client, store, "/v1/schedules", market="ERCOT").json()["items"]
    assert listed[0]["schedule_id"] == store.schedule_id
    assert _get(client, store, "/v1/schedules/999999").status_code == 404
    missing = _get(
        client, store, f"/v1/markets/ERCOT/schedules/{store.operating_day}", version=7
    )
    assert missing.status_code == 404


def test_schedule_answers_422_naming_market_when_market_unknown(
    client: httpx.Client, store: Store
) -> None:
    response = _get(client, store, "/v1/markets/MISO/schedules/2026-11-25")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "market"]


def test_schedule_vs_realized_returns_plan_and_telemetry_when_both_stored(
    client: httpx.Client, store: Store
) -> None:
    site = next(s for s in store.fleet.sites if str(s.market) == "ERCOT")
    end = dt.datetime.now(dt.UTC)
    start = end - dt.timedelta(hours=4)
    body = _get(
        client,
        store,
        f"/v1/sites/{site.id}/schedule-vs-realized",
        start=start.isoformat(),
        end=end.isoformat(),
    ).json()
    assert body["timezone"] == "America/Chicago"
    assert body["realized"]
    assert body["schedule"] is None or body["schedule"]["interval_minutes"] == 15
    default = _get(client, store, f"/v1/sites/{site.id}/schedule-vs-realized").json()
    assert default["schedule"]["schedule_id"] == store.schedule_id
    assert len(default["schedule"]["points"]) >= 92


def test_revenue_sums_services_of_newest_schedules_when_window_covers_them(
    client: httpx.Client, store: Store
) -> None:
    start = dt.datetime.combine(
        store.operating_day, dt.time(), tzinfo=dt.UTC
    ) - dt.timedelta(days=1)
    end = start + dt.timedelta(days=3)
    body = _get(
        client, store, "/v1/revenue", start=start.isoformat(), end=end.isoformat()
    ).json()
    assert body["schedules"] == 1
    assert body["degradation_usd"] > 0
    assert body["by_service_usd"]["degradation"] == pytest.approx(
        -body["degradation_usd"]
    )
    assert body["total_usd"] == pytest.approx(sum(body["by_service_usd"].values()))
    too_long = _get(
        client,
        store,
        "/v1/revenue",
        start="2020-01-01T00:00:00Z",
        end="2026-01-01T00:00:00Z",
    )
    assert too_long.status_code == 422


def test_forecast_returns_newest_issue_with_quantiles_when_stored(
    client: httpx.Client, store: Store
) -> None:
    issue_old = dt.datetime(2026, 11, 23, 15, tzinfo=dt.UTC)
    issue_new = dt.datetime(2026, 11, 24, 15, tzinfo=dt.UTC)
    rows = [
        {
            "market": "ERCOT",
            "node": "HB_TESTFC",
            "product": "energy",
            "ts": dt.datetime(2026, 11, 25, 6, tzinfo=dt.UTC) + dt.timedelta(hours=h),
            "issue_time": issue,
            "model_version": "gbr-1",
            "horizon_h": 15.0 + h,
            "p10": 10.0 + h,
            "p50": 20.0 + h + (issue == issue_new),
            "p90": 40.0 + h,
            "unit": "usd_per_mwh",
        }
        for h in range(24)
        for issue in (issue_old, issue_new)
    ]
    with store.engine.begin() as conn:
        conn.execute(sa.insert(price_forecasts), rows)
    body = _get(
        client, store, "/v1/forecasts/prices", market="ERCOT", node="HB_TESTFC"
    ).json()
    assert body["issue_time"].startswith("2026-11-24T15:00:00")
    assert len(body["points"]) == 24
    assert body["points"][0] == {
        "ts": body["points"][0]["ts"],
        "p10": 10.0,
        "p50": 21.0,
        "p90": 40.0,
    }
    older = _get(
        client,
        store,
        "/v1/forecasts/prices",
        market="ERCOT",
        node="HB_TESTFC",
        issued_before="2026-11-24T00:00:00Z",
    ).json()
    assert older["points"][0]["p50"] == 20.0
    assert (
        _get(
            client, store, "/v1/forecasts/prices", market="ERCOT", node="HB_NONE"
        ).status_code
        == 404
    )
    bad = _get(client, store, "/v1/forecasts/prices", market="ERCOT", node="hb lower")
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "node"]


def test_warranty_reports_throughput_and_soh_when_schedule_stored(
    client: httpx.Client, store: Store
) -> None:
    site = next(s for s in store.fleet.sites if str(s.market) == "ERCOT")
    body = _get(client, store, f"/v1/sites/{site.id}/warranty").json()
    assert body["warranty_throughput_mwh"] == site.battery.warranty.throughput_mwh
    assert body["planned_throughput_mwh"] > 0
    assert body["throughput_used"] == pytest.approx(
        body["planned_throughput_mwh"] / body["warranty_throughput_mwh"]
    )
    assert body["soh"] == pytest.approx(0.975)


def test_compliance_reports_every_site_when_year_in_table(
    client: httpx.Client, store: Store
) -> None:
    body = _get(client, store, "/v1/compliance/feoc", year=2026).json()
    assert body["site_count"] == len(store.fleet.sites)
    assert {s["site_id"] for s in body["sites"]} == {s.id for s in store.fleet.sites}
    assert body["passing_count"] == sum(s["passes"] for s in body["sites"])
    assert _get(client, store, "/v1/compliance/feoc", year=1999).status_code == 422


def test_bids_are_versioned_when_pushed_twice(
    client: httpx.Client, store: Store
) -> None:
    body = {
        "bids": [
            {
                "site_id": "tx-pecos-01",
                "product": "reg_up",
                "hour_ending": h,
                "curve": [[0.0, 5.0], [2.0, 9.0]],
            }
            for h in (1, 2, 3)
        ],
        "note": "test",
    }
    day = "2030-06-01"
    first = client.put(
        f"/v1/markets/ERCOT/bids/{day}", json=body, headers=auth(store, "scheduler")
    )
    second = client.put(
        f"/v1/markets/ERCOT/bids/{day}", json=body, headers=auth(store, "admin")
    )
    assert (first.status_code, second.status_code) == (201, 201)
    assert (first.json()["version"], second.json()["version"]) == (1, 2)
    assert first.json()["status"] == "accepted"
    latest = _get(client, store, f"/v1/markets/ERCOT/bids/{day}").json()
    assert latest["version"] == 2
    assert latest["payload"]["bids"][0]["curve"] == [[0.0, 5.0], [2.0, 9.0]]
    v1 = _get(client, store, f"/v1/markets/ERCOT/bids/{day}", version=1).json()
    assert v1["submitted_by"] == store.key_ids["scheduler"]
    pinned = client.put(
        f"/v1/markets/ERCOT/bids/{day}",
        json={**body, "schedule_version": 7},
        headers=auth(store, "scheduler"),
    )
    assert pinned.json()["version"] == 7


@pytest.mark.parametrize(
    ("bids", "loc"),
    [
        (
            [
                {
                    "site_id": "tx-pecos-01",
                    "product": "energy",
                    "hour_ending": 1,
                    "curve": [[5.0, 9.0], [2.0, 10.0]],
                }
            ],
            ["body", "bids", 0, "curve", 1],
        ),
        (
            [
                {
                    "site_id": "nowhere",
                    "product": "energy",
                    "hour_ending": 1,
                    "curve": [[0.0, 9.0]],
                }
            ],
            ["body", "bids", 0, "site_id"],
        ),
        (
            [
                {
                    "site_id": "tx-pecos-01",
                    "product": "energy",
                    "hour_ending": 30,
                    "curve": [[0.0, 9.0]],
                }
            ],
            ["body", "bids", 0, "hour_ending"],
        ),
        (
            [
                {
                    "site_id": "tx-pecos-01",
                    "product": "bitcoin",
                    "hour_ending": 1,
                    "curve": [[0.0, 9.0]],
                }
            ],
            ["body", "bids", 0, "product"],
        ),
        (
            [
                {
                    "site_id": "tx-pecos-01",
                    "product": "energy",
                    "hour_ending": 1,
                    "curve": [[0.0, 9.0]],
                    "extra": 1,
                }
            ],
            ["body", "bids", 0, "extra"],
        ),
    ],
)
def test_bids_answer_422_naming_field_when_bid_invalid(
    client: httpx.Client, store: Store, bids: list[dict[str, object]], loc: list[object]
) -> None:
    response = client.put(
        "/v1/markets/ERCOT/bids/2030-06-02",
        json={"bids": bids},
        headers=auth(store, "scheduler"),
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc


def test_awards_are_stored_and_listed_when_pushed(
    client: httpx.Client, store: Store
) -> None:
    day = dt.date(2030, 7, 1)
    # Awards answer an accepted bid set of their version (fleet.ops.awards.check_awards).
    bids = {
        "bids": [
            {
                "site_id": "tx-ennis-01",
                "product": "energy",
                "hour_ending": h + 1,
                "curve": [[-4.0, 10.0], [4.0, 30.0]],
            }
            for h in range(3)
        ],
        "schedule_version": 1,
    }
    accepted = client.put(
        f"/v1/markets/ERCOT/bids/{day}", json=bids, headers=auth(store, "scheduler")
    )
    assert accepted.json()["status"] == "accepted", accepted.text
    body = {
        "version": 1,
        "awards": [
            {
                "site_id": "tx-ennis-01",
                "ts": f"2030-07-01T{h + 5:02d}:00:00Z",
                "product": "energy",
                "award_mw": 4.0,
                "price": 30.5,
                "unit": "usd_per_mwh",
            }
            for h in range(3)
        ],
    }
    pushed = client.put(
        f"/v1/markets/ERCOT/awards/{day}", json=body, headers=auth(store, "scheduler")
    )
    assert pushed.status_code == 201, pushed.text
    assert len(pushed.json()["awards"]) == 3
    again = client.put(
        f"/v1/markets/ERCOT/awards/{day}", json=body, headers=auth(store, "scheduler")
    )
    assert len(again.json()["awards"]) == 3
    got = _get(client, store, f"/v1/markets/ERCOT/awards/{day}").json()
    assert got["version"] == 1
    assert [a["award_mw"] for a in got["awards"]] == [4.0, 4.0, 4.0]
    listed = _get(client, store, "/v1/awards", market="ERCOT").json()["items"]
    entry = next(i for i in listed if i["operating_day"] == str(day))
    assert entry["interval_count"] == 3
    assert entry["award_mwh_by_product"]["energy"] == pytest.approx(12.0)
    viewer = client.put(
        f"/v1/markets/ERCOT/awards/{day}", json=body, headers=auth(store, "viewer")
    )
    assert viewer.status_code == 403


def test_awards_answer_422_naming_ts_when_outside_operating_day(
    client: httpx.Client, store: Store
) -> None:
    body = {
        "version": 1,
        "awards": [
            {
                "site_id": "tx-ennis-01",
                "ts": "2030-07-03T12:00:00Z",
                "product": "energy",
                "award_mw": 1.0,
                "unit": "usd_per_mwh",
            }
        ],
    }
    response = client.put(
        "/v1/markets/ERCOT/awards/2030-07-01",
        json=body,
        headers=auth(store, "scheduler"),
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "awards", 0, "ts"]


def test_admin_put_site_updates_fleet_and_audits_when_admin(
    client: httpx.Client, store: Store
) -> None:
    site = store.fleet.sites[-1].model_dump(mode="json")
    site["name"] = "Renamed by test"
    response = client.put(
        f"/v1/sites/{site['id']}", json=site, headers=auth(store, "admin")
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Renamed by test"
    assert (
        _get(client, store, f"/v1/sites/{site['id']}").json()["name"]
        == "Renamed by test"
    )
    log = client.get(
        "/v1/audit", params={"object_type": "site"}, headers=auth(store, "admin")
    ).json()
    assert log["items"][0]["object_id"] == site["id"]
    assert log["items"][0]["actor"] == store.key_ids["admin"]
    mismatch = client.put("/v1/sites/other-id", json=site, headers=auth(store, "admin"))
    assert mismatch.status_code == 422
    assert mismatch.json()["detail"][0]["loc"] == ["body", "id"]
    broken = dict(site, battery=dict(site["battery"], soc_min=1.5))
    invalid = client.put(
        f"/v1/sites/{site['id']}", json=broken, headers=auth(store, "admin")
    )
    assert invalid.status_code == 422
    assert "soc_min" in str(invalid.json()["detail"][0]["loc"])


def test_body_answers_413_when_too_large(client: httpx.Client, store: Store) -> None:
    blob = b"{" + b" " * (5 * 1024 * 1024) + b"}"
    response = client.put(
        "/v1/markets/ERCOT/bids/2030-06-03",
        content=blob,
        headers={**auth(store, "scheduler"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_malformed_json_answers_422_when_body_not_json(
    client: httpx.Client, store: Store
) -> None:
    response = client.put(
        "/v1/markets/ERCOT/bids/2030-06-03",
        content=b"{not json",
        headers={**auth(store, "scheduler"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422


def test_metrics_export_ingest_quarantine_and_solve_when_scraped(
    client: httpx.Client, store: Store
) -> None:
    response = _get(client, store, "/metrics")
    assert response.status_code == 200
    text = response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert "bessfleet_ingest_stored_total" in text
    assert "bessfleet_ingest_rate_per_second" in text
    assert 'bessfleet_ingest_lag_seconds{site="tx-odessa-01"}' in text
    assert 'bessfleet_quarantine_total{reason="all"} 0' in text
    assert 'bessfleet_solve_seconds{market="ERCOT"} 1.230' in text
    assert 'bessfleet_solve_status{market="ERCOT",status="optimal"} 1' in text
    assert 'bessfleet_solve_status{market="ERCOT",status="infeasible"} 0' in text
    assert 'route="/v1/sites"' in text


def test_dashboard_is_served_when_root_requested(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "bessfleet" in page.text
    assert "/static/app.js" in page.text
    script = client.get("/static/app.js")
    assert script.status_code == 200
    code = script.text.replace("http://www.w3.org/2000/svg", "")  # a namespace, no URL
    assert "http://" not in code
    assert "https://" not in code
    assert "http" not in page.text.replace("http-equiv", "")


def test_openapi_documents_examples_and_security_when_fetched(
    client: httpx.Client,
) -> None:
    doc = client.get("/openapi.json").json()
    assert "/v1/stream" in doc["paths"]
    assert "/v1/markets/{market}/bids/{operating_day}" in doc["paths"]
    schemes = doc["components"]["securitySchemes"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schemes)
    assert doc["components"]["schemas"]["BidSetIn"]["examples"]


def test_bids_are_stored_refused_with_reason_when_ops_check_refuses(
    client: httpx.Client, store: Store
) -> None:
    pytest.importorskip("fleet.ops.bids")
    body = {
        "bids": [
            {
                "site_id": "tx-ennis-01",
                "product": "energy",
                "hour_ending": 10,
                "curve": [[0.0, 10.0], [500.0, 20.0]],
            }
        ]
    }
    response = client.put(
        "/v1/markets/ERCOT/bids/2030-06-05", json=body, headers=auth(store, "scheduler")
    )
    assert response.status_code == 201, response.text
    stored = response.json()
    assert stored["status"] == "refused"
    assert "tx-ennis-01" in stored["refusal_reason"]
    log = client.get(
        "/v1/audit", params={"object_type": "bid_set"}, headers=auth(store, "admin")
    ).json()["items"]
    assert log[0]["action"] == "bids.refused"
