"""Schedules (current and by version, per site and fleet totals) and revenue."""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query, Response
from pydantic import TypeAdapter

from fleet.api import answers, queries
from fleet.api.deps import StoreDep, ViewerKey
from fleet.api.errors import NotFoundError
from fleet.api.routers._common import (
    AUTH_RESPONSES,
    NOT_FOUND,
    as_utc,
    check_range,
    market_name,
    utc_now,
)
from fleet.api.routers.sites import SiteIdParam
from fleet.api.schemas import (
    ApiDate,
    ApiDatetime,
    ReserveCoverageItemOut,
    ReserveCoverageOut,
    RevenueOut,
    ScheduleListOut,
    ScheduleOut,
    SchedulePointOut,
    ScheduleSummaryOut,
    ScheduleVsRealizedOut,
    ScheduleWindowOut,
    SettlementOut,
    TelemetryPointOut,
)
from fleet.ops.settlement import net_usd

router = APIRouter(prefix="/v1", tags=["schedules"], responses=AUTH_RESPONSES)

MarketParam = Annotated[
    str, Path(pattern=r"^[A-Za-z]{2,16}$", description="Market.", examples=["ERCOT"])
]
MarketQuery = Annotated[
    str | None, Query(pattern=r"^[A-Za-z]{2,16}$", examples=["ERCOT"])
]
REVENUE_MAX_DAYS = 366.0
"""Longest window of a revenue query [days]."""


def _summary(row: dict[str, Any]) -> ScheduleSummaryOut:
    return ScheduleSummaryOut(**_summary_fields(row))


def _summary_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "schedule_id": int(row["id"]),
        "market": row["market"],
        "operating_day": row["operating_day"],
        "version": int(row["version"]),
        "created_at": row["created_at"],
        "status": row["status"],
        "objective_usd": row["objective_usd"],
        "solve_path": row["solve_path"],
        "interval_minutes": queries.schedule_interval_minutes(row),
        "revenue_usd": queries.schedule_revenue(row),
    }


def _point(r: dict[str, Any]) -> SchedulePointOut:
    return SchedulePointOut(
        ts=r["ts"],
        power_mw=r["discharge_mw"] - r["charge_mw"],
        charge_mw=r["charge_mw"],
        discharge_mw=r["discharge_mw"],
        reg_up_mw=r["reg_up_mw"],
        reg_down_mw=r["reg_down_mw"],
        spin_mw=r["spin_mw"],
        soc=r["soc"],
    )


_SCHEDULE_OUT = TypeAdapter(ScheduleOut)


def _answer(conn: sa.Connection, head: dict[str, Any], site_id: str | None) -> Response:
    """Return a stored schedule's answer (kept per store: it never changes)."""
    cache = answers.for_engine(conn.engine)
    key = ("schedule", int(head["id"]), head["created_at"], site_id)
    body = cache.get(key)
    if body is None:
        row = (
            head if "status" in head else queries.schedule_by_id(conn, int(head["id"]))
        )
        if row is None:  # deleted since the head was read
            msg = f"schedule_id={head['id']}: no such schedule"
            raise NotFoundError(msg)
        body = _SCHEDULE_OUT.dump_json(
            _SCHEDULE_OUT.validate_python(_full(conn, row, site_id))
        )
        cache.put(key, body)
    return Response(body, media_type="application/json")


def _full(conn: Any, row: dict[str, Any], site_id: str | None) -> dict[str, Any]:
    # plain dicts: FastAPI validates the answer once against ScheduleOut
    intervals = queries.interval_rows(conn, int(row["id"]), site_id=site_id)
    by_site: dict[str, list[dict[str, Any]]] = defaultdict(list)
    fleet: dict[dt.datetime, float] = defaultdict(float)
    for r in intervals:
        power = r["discharge_mw"] - r["charge_mw"]
        by_site[r["site_id"]].append(
            {
                "ts": r["ts"],
                "power_mw": power,
                "charge_mw": r["charge_mw"],
                "discharge_mw": r["discharge_mw"],
                "reg_up_mw": r["reg_up_mw"],
                "reg_down_mw": r["reg_down_mw"],
                "spin_mw": r["spin_mw"],
                "soc": r["soc"],
            }
        )
        fleet[r["ts"]] += power
    times = sorted(fleet)
    return {
        **_summary_fields(row),
        "sites": [{"site_id": s, "points": p} for s, p in sorted(by_site.items())],
        "fleet_ts": times,
        "fleet_power_mw": [fleet[t] for t in times],
    }


@router.get("/schedules", response_model=ScheduleListOut)
def list_schedules(
    engine: StoreDep,
    _key: ViewerKey,
    market: MarketQuery = None,
    operating_day: dt.date | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ScheduleListOut:
    """List stored schedules (all versions), newest first."""
    mkt = None if market is None else market_name(market, "query")
    with engine.connect() as conn:
        rows = queries.schedule_rows(
            conn, market=mkt, operating_day=operating_day, limit=limit
        )
    return ScheduleListOut(items=[_summary(r) for r in rows])


@router.get("/schedules/current", response_model=ScheduleOut, responses=NOT_FOUND)
async def current_schedule(
    engine: StoreDep,
    _key: ViewerKey,
    market: Annotated[str, Query(pattern=r"^[A-Za-z]{2,16}$", examples=["ERCOT"])],
    site_id: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")] = None,
) -> Response:
    """Return the newest version of today's schedule (market local day)."""
    mkt = market_name(market, "query")
    today = utc_now().astimezone(ZoneInfo(queries.market_timezone(mkt))).date()
    with engine.connect() as conn:
        head = queries.newest_schedule_head(
            conn, market=mkt, operating_day=today
        ) or queries.newest_schedule_head(conn, market=mkt, operating_day=None)
        if head is None:
            msg = f"market={mkt}: no schedule stored"
            raise NotFoundError(msg)
        return _answer(conn, head, site_id)


@router.get("/schedules/{schedule_id}", response_model=ScheduleOut, responses=NOT_FOUND)
def get_schedule(
    engine: StoreDep,
    _key: ViewerKey,
    schedule_id: Annotated[int, Path(ge=1, le=2**62)],
    site_id: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")] = None,
) -> Response:
    """One stored schedule with per-site series and fleet totals."""
    with engine.connect() as conn:
        row = queries.schedule_by_id(conn, schedule_id)
        if row is None:
            msg = f"schedule_id={schedule_id}: no such schedule"
            raise NotFoundError(msg)
        return _answer(conn, row, site_id)


@router.get(
    "/markets/{market}/schedules/{operating_day}",
    response_model=ScheduleOut,
    responses=NOT_FOUND,
)
def schedule_by_version(
    market: MarketParam,
    operating_day: dt.date,
    engine: StoreDep,
    _key: ViewerKey,
    version: Annotated[int | None, Query(ge=1, le=100000)] = None,
    site_id: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")] = None,
) -> Response:
    """Return a market's schedule for a day at ``version`` (newest by default)."""
    mkt = market_name(market)
    with engine.connect() as conn:
        row = queries.schedule_by_version(
            conn, market=mkt, operating_day=operating_day, version=version
        )
        if row is None:
            msg = (
                f"market={mkt} operating_day={operating_day}"
                f"{'' if version is None else f' version={version}'}: no schedule"
            )
            raise NotFoundError(msg)
        return _answer(conn, row, site_id)


@router.get(
    "/sites/{site_id}/schedule-vs-realized",
    response_model=ScheduleVsRealizedOut,
    responses=NOT_FOUND,
)
def schedule_vs_realized(
    site_id: SiteIdParam,
    engine: StoreDep,
    _key: ViewerKey,
    start: Annotated[
        ApiDatetime | None,
        Query(description="Window start; default: the market's local midnight today."),
    ] = None,
    end: Annotated[
        ApiDatetime | None,
        Query(description="Window end; default: start + 24 h (at most 7 days)."),
    ] = None,
    resample_s: Annotated[int, Query(ge=60, le=3600)] = 300,
) -> ScheduleVsRealizedOut:
    """Return a site's planned power and SoC next to its realized telemetry."""
    with engine.connect() as conn:
        rows = queries.site_rows(conn, site_id)
        if not rows:
            msg = f"site_id={site_id!r}: no such site"
            raise NotFoundError(msg)
        tz = queries.market_timezone(rows[0]["market"])
        if start is None:
            local_now = utc_now().astimezone(ZoneInfo(tz))
            start_utc = local_now.replace(
                hour=0, minute=0, second=0, microsecond=0
            ).astimezone(dt.UTC)
        else:
            start_utc = as_utc(start, "start")
        end_utc = (
            as_utc(end, "end") if end is not None else start_utc + dt.timedelta(days=1)
        )
        check_range(start_utc, end_utc, max_days=7.0)
        schedule = queries.newest_schedule_for_site(
            conn, site_id=site_id, start=start_utc, end=end_utc
        )
        window = None
        if schedule is not None:
            intervals = queries.interval_rows(
                conn, int(schedule["id"]), site_id=site_id, start=start_utc, end=end_utc
            )
            minutes = queries.schedule_interval_minutes(schedule)
            if minutes is None and len(intervals) > 1:
                minutes = int(
                    (intervals[1]["ts"] - intervals[0]["ts"]).total_seconds() // 60
                )
            window = ScheduleWindowOut(
                schedule_id=int(schedule["id"]),
                version=int(schedule["version"]),
                status=schedule["status"],
                created_at=schedule["created_at"],
                interval_minutes=minutes or 15,
                points=[_point(r) for r in intervals],
            )
        bucket_ms = resample_s * 1000
        buckets = queries.telemetry_buckets(
            conn,
            site_id=site_id,
            start_ms=queries.dt_to_ms(start_utc) // bucket_ms * bucket_ms,
            end_ms=min(queries.dt_to_ms(end_utc), int(time.time() * 1000) + bucket_ms),
            bucket_ms=bucket_ms,
        )
    return ScheduleVsRealizedOut(
        site_id=site_id,
        timezone=tz,
        start=start_utc,
        end=end_utc,
        schedule=window,
        realized=[
            TelemetryPointOut(
                ts=queries.ms_to_dt(b.ts_ms),
                soc=b.soc,
                power_mw=b.power_mw,
                samples=b.samples,
            )
            for b in buckets
        ],
    )


@router.get(
    "/markets/{market}/reserve-coverage/{operating_day}",
    response_model=ReserveCoverageOut,
)
def reserve_coverage(
    market: MarketParam,
    operating_day: Annotated[ApiDate, Path(examples=["2026-11-25"])],
    engine: StoreDep,
    _key: ViewerKey,
) -> ReserveCoverageOut:
    """Reserve awards per site and product, what the newest plan holds, the shortfall."""
    mkt = market_name(market)
    with engine.connect() as conn:
        award_version, rows = queries.award_rows(
            conn, market=mkt, operating_day=operating_day, version=None
        )
        schedule = queries.schedule_by_version(
            conn, market=mkt, operating_day=operating_day, version=None
        )
        intervals = (
            [] if schedule is None else queries.interval_rows(conn, int(schedule["id"]))
        )
    items = queries.reserve_coverage(rows, intervals)
    return ReserveCoverageOut(
        market=mkt,
        operating_day=operating_day,
        timezone=queries.market_timezone(mkt),
        award_version=award_version,
        schedule_version=None if schedule is None else int(schedule["version"]),
        products=queries.reserve_products(),
        items=[
            ReserveCoverageItemOut(
                site_id=i.site_id,
                product=i.product,
                intervals=i.intervals,
                awarded_mwh=i.awarded_mwh,
                held_mwh=i.held_mwh,
                shortfall_mwh=i.shortfall_mwh,
                short_intervals=i.short_intervals,
            )
            for i in items
        ],
    )


@router.get(
    "/markets/{market}/settlement/{operating_day}", response_model=SettlementOut
)
def settlement(
    market: MarketParam,
    operating_day: Annotated[ApiDate, Path(examples=["2026-11-25"])],
    engine: StoreDep,
    _key: ViewerKey,
) -> SettlementOut:
    """Settled amounts of a market day by item (empty until the day is settled)."""
    mkt = market_name(market)
    with engine.connect() as conn:
        rows = queries.settlement_rows(conn, market=mkt, operating_day=operating_day)
    by_item: dict[str, float] = defaultdict(float)
    for row in rows or []:
        by_item[str(row["item"])] += float(row["amount_usd"])
    times = [r["settled_at"] for r in rows or [] if r["settled_at"] is not None]
    return SettlementOut(
        market=mkt,
        operating_day=operating_day,
        available=rows is not None,
        settled_at=max(times) if times else None,
        by_item_usd=dict(by_item),
        total_usd=net_usd(by_item) if by_item else None,
        sites=len({r["site_id"] for r in rows or []}),
    )


@router.get("/revenue", response_model=RevenueOut)
def revenue(
    engine: StoreDep,
    _key: ViewerKey,
    start: Annotated[ApiDatetime, Query(examples=["2026-11-01T00:00:00Z"])],
    end: Annotated[ApiDatetime, Query(examples=["2026-12-01T00:00:00Z"])],
) -> RevenueOut:
    """Revenue by service and degradation cost of the newest schedule of each day."""
    start_utc = as_utc(start, "start")
    end_utc = as_utc(end, "end")
    check_range(start_utc, end_utc, max_days=REVENUE_MAX_DAYS)
    with engine.connect() as conn:
        rows = queries.newest_per_day(
            conn, start_day=start_utc.date(), end_day=end_utc.date()
        )
    by_service: dict[str, float] = defaultdict(float)
    for row in rows:
        for service, value in queries.schedule_revenue(row).items():
            by_service[service] += value
    degradation = -by_service.get("degradation", 0.0)
    return RevenueOut(
        start=start_utc,
        end=end_utc,
        by_service_usd=dict(by_service),
        degradation_usd=degradation,
        total_usd=sum(by_service.values()),
        schedules=len(rows),
    )
