"""Awards checked by the API (one check: ``fleet.ops.awards.check_awards``), bid versions."""

from __future__ import annotations

import httpx

from tests.api.conftest import Store, auth

DAY = "2030-08-01"
# 2030-08-01 00:00 CDT = 05:00 UTC: hour_ending 1 of the operating day.
HE1 = "2030-08-01T05:00:00Z"


def _bids(
    client: httpx.Client,
    store: Store,
    version: int,
    *,
    day: str = DAY,
    reg_up_mw: float = 10.0,
) -> httpx.Response:
    body = {
        "bids": [
            {
                "site_id": "tx-odessa-01",
                "product": "energy",
                "hour_ending": 1,
                "curve": [[-20.0, 10.0], [0.0, 20.0], [20.0, 40.0]],
            },
            {
                "site_id": "tx-odessa-01",
                "product": "reg_up",
                "hour_ending": 1,
                "curve": [[reg_up_mw, 1.0]],
            },
        ],
        "schedule_version": version,
    }
    return client.put(
        f"/v1/markets/ERCOT/bids/{day}", json=body, headers=auth(store, "scheduler")
    )


def _award(
    product: str, mw: float, unit: str = "usd_per_mw", ts: str = HE1
) -> dict[str, object]:
    return {
        "site_id": "tx-odessa-01",
        "ts": ts,
        "product": product,
        "award_mw": mw,
        "unit": unit,
    }


def _put_awards(
    client: httpx.Client, store: Store, day: str, awards: list[dict[str, object]]
) -> httpx.Response:
    return client.put(
        f"/v1/markets/ERCOT/awards/{day}",
        json={"version": 1, "awards": awards},
        headers=auth(store, "scheduler"),
    )


def test_awards_answer_422_when_no_accepted_bid_set_for_the_day(
    client: httpx.Client, store: Store
) -> None:
    response = _put_awards(
        client,
        store,
        "2030-08-09",
        [_award("reg_up", 1.0) | {"ts": "2030-08-09T05:00:00Z"}],
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "version"]
    assert "no bid set ERCOT 2030-08-09 version=1" in detail["msg"]


def test_bid_versions_answer_409_when_stored_twice_and_awards_are_checked(
    client: httpx.Client, store: Store
) -> None:
    first = _bids(client, store, 1)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "accepted", first.json()["refusal_reason"]
    again = _bids(client, store, 1)
    assert again.status_code == 409, again.text
    assert "version=1 is already stored" in again.json()["detail"]

    # 5,000 MW of reg-up for a 100 MW site: refused naming award, site, product, hour.
    huge = _put_awards(client, store, DAY, [_award("reg_up", 5000.0)])
    assert huge.status_code == 422, huge.text
    detail = huge.json()["detail"][0]
    assert detail["loc"] == ["body", "awards", 0, "award_mw"]
    assert detail["msg"].startswith(
        "awards[0]: site tx-odessa-01, reg_up, hour_ending 1: award_mw=5000 exceeds"
    )
    over = _put_awards(client, store, DAY, [_award("reg_up", 11.0)])
    assert over.status_code == 422
    assert (
        "exceed the 10 MW of the linked blocks offered"
        in over.json()["detail"][0]["msg"]
    )
    unit = _put_awards(client, store, DAY, [_award("reg_up", 5.0, "usd_per_mwh")])
    assert unit.json()["detail"][0]["loc"] == ["body", "awards", 0, "unit"]
    capacity = _put_awards(client, store, DAY, [_award("capacity", 5.0)])
    assert capacity.status_code == 422
    assert capacity.json()["detail"][0]["loc"][:3] == ["body", "awards", 0]
    got = client.get(f"/v1/markets/ERCOT/awards/{DAY}", headers=auth(store, "viewer"))
    assert got.status_code == 404

    valid = _put_awards(
        client,
        store,
        DAY,
        [_award("reg_up", 10.0), _award("energy", 15.5, "usd_per_mwh")],
    )
    assert valid.status_code == 201, valid.text
    assert sorted(a["award_mw"] for a in valid.json()["awards"]) == [10.0, 15.5]


def test_awards_answer_422_naming_the_field_when_site_sign_unit_or_limit_is_wrong(
    client: httpx.Client, store: Store
) -> None:
    day, he1 = "2030-08-02", "2030-08-02T05:00:00Z"
    pushed = _bids(client, store, 1, day=day)
    assert pushed.status_code == 201, pushed.text
    assert pushed.json()["status"] == "accepted", pushed.json()["refusal_reason"]

    def refused(award: dict[str, object]) -> dict[str, object]:
        response = _put_awards(client, store, day, [award])
        assert response.status_code == 422, response.text
        detail: dict[str, object] = response.json()["detail"][0]
        return detail

    nowhere = refused(_award("reg_up", 1.0, ts=he1) | {"site_id": "tx-nowhere-99"})
    assert nowhere["loc"] == ["body", "awards", 0, "site_id"]
    assert "site_id='tx-nowhere-99' is not a ERCOT site of the fleet" in str(
        nowhere["msg"]
    )
    negative = refused(_award("reg_up", -1.0, ts=he1))
    assert negative["loc"] == ["body", "awards", 0, "award_mw"]
    assert "award_mw=-1 must be >= 0" in str(negative["msg"])
    per_mw = refused(_award("energy", 5.0, "usd_per_mw", he1))
    assert per_mw["loc"] == ["body", "awards", 0, "unit"]
    assert "energy is priced in usd_per_mwh" in str(per_mw["msg"])
    beyond = refused(_award("energy", 5000.0, "usd_per_mwh", he1))
    assert beyond["loc"] == ["body", "awards", 0, "award_mw"]
    assert "award_mw=5000 is outside the site's" in str(beyond["msg"])
    unbid = refused(_award("reg_up", 1.0, ts="2030-08-02T06:00:00Z"))
    assert unbid["loc"] == ["body", "awards", 0, "product"]
    assert "offered no upward block here" in str(unbid["msg"])
    got = client.get(f"/v1/markets/ERCOT/awards/{day}", headers=auth(store, "viewer"))
    assert got.status_code == 404, "a refused award set stores nothing"


def test_bid_version_answers_409_when_pushed_again_after_a_refusal(
    client: httpx.Client, store: Store
) -> None:
    day = "2030-08-03"
    # 500 MW of reg-up on a 100 MW site: stored as refused, version 1 is taken.
    first = _bids(client, store, 1, day=day, reg_up_mw=500.0)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "refused"
    fixed = _bids(client, store, 1, day=day)
    assert fixed.status_code == 409, fixed.text
    assert "version=1 is already stored (refused)" in fixed.json()["detail"]
    assert _bids(client, store, 2, day=day).json()["status"] == "accepted"
    # Awards answer the accepted version only.
    award = _award("reg_up", 5.0, ts="2030-08-03T05:00:00Z")
    response = client.put(
        f"/v1/markets/ERCOT/awards/{day}",
        json={"version": 1, "awards": [award]},
        headers=auth(store, "scheduler"),
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "version"]
    assert "was refused, not accepted" in response.json()["detail"][0]["msg"]


def test_bids_answer_422_naming_the_bid_when_site_unknown_or_duplicated(
    client: httpx.Client, store: Store
) -> None:
    body = {
        "bids": [
            {
                "site_id": "tx-odessa-01",
                "product": "reg_up",
                "hour_ending": 1,
                "curve": [[10.0, 1.0]],
            },
            {
                "site_id": "tx-nowhere-99",
                "product": "reg_up",
                "hour_ending": 1,
                "curve": [[10.0, 1.0]],
            },
        ]
    }
    url = "/v1/markets/ERCOT/bids/2030-08-04"
    headers = auth(store, "scheduler")
    unknown = client.put(url, json=body, headers=headers)
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["detail"][0]["loc"] == ["body", "bids", 1, "site_id"]
    twice = client.put(
        url, json={"bids": [body["bids"][0], body["bids"][0]]}, headers=headers
    )
    assert twice.status_code == 422, twice.text
    assert twice.json()["detail"][0]["loc"] == ["body", "bids", 1]
    got = client.get(url, headers=auth(store, "viewer"))
    assert got.status_code == 404, "nothing is stored for a malformed bid set"


def test_ecrs_is_bid_and_awarded_through_the_api_and_an_unknown_product_is_422(
    client: httpx.Client, store: Store
) -> None:
    """Products come from the market rules: ECRS (listed by tx-odessa-01) goes through."""
    day, he1 = "2030-08-04", "2030-08-04T05:00:00Z"
    body = {
        "bids": [
            {
                "site_id": "tx-odessa-01",
                "product": "ecrs",
                "hour_ending": 1,
                "curve": [[10.0, 2.0]],
            }
        ],
        "schedule_version": 1,
    }
    pushed = client.put(
        f"/v1/markets/ERCOT/bids/{day}", json=body, headers=auth(store, "scheduler")
    )
    assert pushed.status_code == 201, pushed.text
    assert pushed.json()["status"] == "accepted", pushed.json()["refusal_reason"]
    awarded = _put_awards(client, store, day, [_award("ecrs", 10.0, ts=he1)])
    assert awarded.status_code == 201, awarded.text
    assert [a["product"] for a in awarded.json()["awards"]] == ["ecrs"]
    over = _put_awards(client, store, day, [_award("ecrs", 11.0, ts=he1)])
    assert over.status_code == 422
    assert (
        "exceed the 10 MW of the linked blocks offered"
        in over.json()["detail"][0]["msg"]
    )
    bogus = body | {"bids": [body["bids"][0] | {"product": "bogus"}]}  # type: ignore[operator]
    refused = client.put(
        f"/v1/markets/ERCOT/bids/{day}", json=bogus, headers=auth(store, "scheduler")
    )
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"][0]
    assert detail["loc"] == ["body", "bids", 0, "product"]
    assert "unknown product 'bogus'" in detail["msg"]
