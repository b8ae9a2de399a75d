"""Bids and awards per market and operating day (scheduler writes, viewer reads)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query
from pydantic import ValidationError

from dispatch.markets import load_market_rules
from fleet.api import queries
from fleet.api.deps import BusDep, SchedulerKey, StoreDep, ViewerKey
from fleet.api.errors import ConflictError, InputError, NotFoundError
from fleet.api.routers._common import AUTH_RESPONSES, NOT_FOUND, market_name, utc_now
from fleet.api.schemas import (
    ApiDate,
    AwardListOut,
    AwardRowOut,
    AwardSetIn,
    AwardSetOut,
    AwardSummaryOut,
    BidSetIn,
    BidSetOut,
    ErrorOut,
)
from fleet.ops import awards as ops_awards
from fleet.ops import bids as ops_bids
from fleet.store import audit
from fleet.store.bids import BidVersionExistsError, save_bid_set
from fleet.store.tables import awards

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["markets"], responses=AUTH_RESPONSES)

MarketParam = Annotated[
    str, Path(pattern=r"^[A-Za-z]{2,16}$", description="Market.", examples=["ERCOT"])
]
DayParam = Annotated[
    ApiDate, Path(description="Operating day (market local).", examples=["2026-11-25"])
]
OPERATING_DAY_RANGE = (dt.date(2000, 1, 1), dt.date(2100, 1, 1))
"""Operating days the API accepts."""


def _check_day(day: dt.date) -> None:
    if not OPERATING_DAY_RANGE[0] <= day < OPERATING_DAY_RANGE[1]:
        msg = f"operating_day={day} is outside {OPERATING_DAY_RANGE[0]}..{OPERATING_DAY_RANGE[1]}"
        raise InputError(msg, ("path", "operating_day"))


def check_bid_set(
    market: str, operating_day: dt.date, bid_set: BidSetIn, engine: sa.Engine
) -> str | None:
    """Return a refusal reason for a bid set, or None to accept it.

    Both checks are ``fleet.ops.bids``'s (the CLI's ``bids push`` runs the same):
    :func:`~fleet.ops.bids.screen_bid_set` (known sites, one bid per site/product/hour,
    monotone curves; 422 naming the bid and field, nothing stored) then
    :func:`~fleet.ops.bids.check_bid_set` (market rules and delivery; a reason is
    stored with the refused bid set).
    """
    payload = bid_set.model_dump(mode="json")
    try:
        ops_bids.screen_bid_set(engine, payload)
    except ops_bids.BidSetInputError as exc:
        raise InputError(str(exc), ("body", *exc.loc)) from None
    return ops_bids.check_bid_set(market, operating_day, payload, engine=engine)


def check_award_set(
    engine: sa.Engine, market: str, operating_day: dt.date, award_set: AwardSetIn
) -> None:
    """Run :func:`fleet.ops.awards.check_awards` (the CLI's check) on an API award set.

    Raises
    ------
    InputError
        422 naming the award index and field (site, product and hour in the text).
    """
    try:
        checked = ops_awards.AwardSetIn.model_validate(award_set.model_dump())
    except ValidationError as exc:
        err = exc.errors()[0]
        bad = tuple(err["loc"])
        where = ".".join(str(p) for p in bad)
        msg = f"{where}: {err['msg']}"
        raise InputError(msg, ("body", *bad)) from None
    rules = load_market_rules(market)
    fleet = ops_bids.fleet_from_store(engine, rules.name)
    if fleet is None:
        msg = f"market={market}: the store has no sites of this market to award"
        raise InputError(msg, ("path", "market"))
    try:
        ops_awards.check_awards(engine, checked, rules, operating_day, fleet)
    except ops_awards.AwardRefusedError as exc:
        first = exc.refusals[0]
        loc: tuple[str | int, ...] = (
            ("body", "version")
            if first.index is None and first.field == "version"
            else ("body", "awards")
            if first.index is None
            else ("body", "awards", first.index, first.field)
        )
        raise InputError(str(exc), loc) from None


def _bid_out(row: dict[str, Any]) -> BidSetOut:
    return BidSetOut(
        bid_set_id=int(row["id"]),
        market=row["market"],
        operating_day=row["operating_day"],
        version=int(row["version"]),
        status=row["status"],
        submitted_by=row["submitted_by"],
        created_at=row["created_at"],
        refusal_reason=row["refusal_reason"],
        payload=row["payload"],
    )


@router.put(
    "/markets/{market}/bids/{operating_day}",
    response_model=BidSetOut,
    status_code=201,
    responses={409: {"model": ErrorOut}},
)
def put_bids(
    market: MarketParam,
    operating_day: DayParam,
    bid_set: BidSetIn,
    engine: StoreDep,
    key: SchedulerKey,
    bus: BusDep,
) -> BidSetOut:
    """Push a bid set (scheduler); it is stored with its version and audit-logged."""
    mkt = market_name(market)
    _check_day(operating_day)
    reason = check_bid_set(mkt, operating_day, bid_set, engine)
    status = "accepted" if reason is None else "refused"
    try:
        with engine.begin() as conn:
            version = bid_set.schedule_version or queries.next_bid_version(
                conn, market=mkt, operating_day=operating_day
            )
            stored = save_bid_set(
                conn,
                market=mkt,
                operating_day=operating_day,
                version=version,
                status=status,
                submitted_by=key.id,
                payload=bid_set.model_dump(mode="json"),
                refusal_reason=reason,
            )
    except BidVersionExistsError as exc:
        raise ConflictError(str(exc)) from None
    new_id = stored.id
    row = {
        "id": stored.id,
        "market": stored.market,
        "operating_day": stored.operating_day,
        "version": stored.version,
        "status": stored.status,
        "submitted_by": stored.submitted_by,
        "created_at": stored.created_at,
        "refusal_reason": stored.refusal_reason,
        "payload": stored.payload,
    }
    logger.info(
        "bid set %s %s v%s %s by %s", mkt, operating_day, version, status, key.id
    )
    bus.publish_threadsafe(
        "bids",
        {
            "market": mkt,
            "operating_day": operating_day.isoformat(),
            "version": version,
            "status": status,
            "bid_set_id": int(new_id),
            "summary": f"{operating_day} v{version} {status}",
        },
    )
    return _bid_out(row)


@router.get(
    "/markets/{market}/bids/{operating_day}",
    response_model=BidSetOut,
    responses=NOT_FOUND,
)
def get_bids(
    market: MarketParam,
    operating_day: DayParam,
    engine: StoreDep,
    _key: ViewerKey,
    version: Annotated[int | None, Query(ge=1, le=100000)] = None,
) -> BidSetOut:
    """Return a stored bid set (newest version by default)."""
    mkt = market_name(market)
    with engine.connect() as conn:
        rows = queries.bid_set_rows(
            conn, market=mkt, operating_day=operating_day, version=version
        )
    if not rows:
        msg = f"market={mkt} operating_day={operating_day}: no bid set"
        raise NotFoundError(msg)
    return _bid_out(rows[0])


@router.put(
    "/markets/{market}/awards/{operating_day}",
    response_model=AwardSetOut,
    status_code=201,
    responses={422: {"description": "Awards refused: the reason names the award."}},
)
def put_awards(
    market: MarketParam,
    operating_day: DayParam,
    award_set: AwardSetIn,
    engine: StoreDep,
    key: SchedulerKey,
    bus: BusDep,
) -> AwardSetOut:
    """Record the awards of an accepted bid version (scheduler); replaces its rows."""
    mkt = market_name(market)
    _check_day(operating_day)
    check_award_set(engine, mkt, operating_day, award_set)
    received = utc_now()
    rows = [
        {
            "market": mkt,
            "operating_day": operating_day,
            "version": award_set.version,
            "site_id": a.site_id,
            "ts": a.ts.astimezone(dt.UTC),
            "product": a.product,
            "award_mw": a.award_mw,
            "price": a.price,
            "unit": a.unit,
            "received_at": received,
        }
        for a in award_set.awards
    ]
    with engine.begin() as conn:
        conn.execute(
            sa.delete(awards).where(
                awards.c.market == mkt,
                awards.c.operating_day == operating_day,
                awards.c.version == award_set.version,
            )
        )
        conn.execute(sa.insert(awards), rows)
        audit.record(
            conn,
            actor=key.id,
            action="awards.record",
            object_type="awards",
            object_id=f"{mkt}/{operating_day}/v{award_set.version}",
            detail={"rows": len(rows)},
        )
        version, stored = queries.award_rows(
            conn, market=mkt, operating_day=operating_day, version=award_set.version
        )
    bus.publish_threadsafe(
        "awards",
        {
            "market": mkt,
            "operating_day": operating_day.isoformat(),
            "version": award_set.version,
            "summary": f"{operating_day} v{award_set.version}: {len(rows)} awards",
        },
    )
    return AwardSetOut(
        market=mkt,
        operating_day=operating_day,
        version=int(version or award_set.version),
        awards=[AwardRowOut(**r) for r in stored],
    )


@router.get(
    "/markets/{market}/awards/{operating_day}",
    response_model=AwardSetOut,
    responses=NOT_FOUND,
)
def get_awards(
    market: MarketParam,
    operating_day: DayParam,
    engine: StoreDep,
    _key: ViewerKey,
    version: Annotated[int | None, Query(ge=1, le=100000)] = None,
) -> AwardSetOut:
    """Return the awards of a market and operating day (newest version by default)."""
    mkt = market_name(market)
    with engine.connect() as conn:
        found, rows = queries.award_rows(
            conn, market=mkt, operating_day=operating_day, version=version
        )
    if found is None or not rows:
        msg = f"market={mkt} operating_day={operating_day}: no awards"
        raise NotFoundError(msg)
    return AwardSetOut(
        market=mkt,
        operating_day=operating_day,
        version=found,
        awards=[AwardRowOut(**r) for r in rows],
    )


@router.get("/awards", response_model=AwardListOut)
def list_awards(
    engine: StoreDep,
    _key: ViewerKey,
    market: Annotated[str | None, Query(pattern=r"^[A-Za-z]{2,16}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> AwardListOut:
    """Award sets (market, day, version), newest day first."""
    mkt = None if market is None else market_name(market, "query")
    with engine.connect() as conn:
        items = queries.award_summaries(conn, market=mkt, limit=limit)
    return AwardListOut(items=[AwardSummaryOut(**i) for i in items])
