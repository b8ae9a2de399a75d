"""Fleet and sites: configuration, latest state, availability, telemetry, warranty."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query

from fleet.api import queries
from fleet.api.deps import AdminKey, BusDep, OptionsDep, StoreDep, ViewerKey
from fleet.api.errors import InputError, NotFoundError
from fleet.api.routers._common import (
    AUTH_RESPONSES,
    NOT_FOUND,
    as_utc,
    check_range,
    utc_now,
)
from fleet.api.schemas import (
    ApiDatetime,
    AvailabilityOut,
    ComplianceOut,
    FleetOut,
    SiteComplianceOut,
    SiteDetailOut,
    SiteListOut,
    SiteOut,
    SiteStateOut,
    TelemetryPageOut,
    TelemetryPointOut,
    WarrantyOut,
)
from fleet.compliance import compliance_report
from fleet.domain import Fleet, Site
from fleet.store import audit
from fleet.store.sites import save_fleet
from fleet.types import SITE_ID_PATTERN

router = APIRouter(prefix="/v1", tags=["fleet"], responses=AUTH_RESPONSES)

SiteIdParam = Annotated[
    str,
    Path(pattern=SITE_ID_PATTERN, description="Site id.", examples=["tx-odessa-01"]),
]
DEV_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
DEFAULT_SAMPLE_S = 1.0
"""Expected telemetry cadence for availability when the birth gives none [s]."""


def _require_site(conn: sa.Connection, site_id: str) -> None:
    if not queries.site_exists(conn, site_id):
        msg = f"site_id={site_id!r}: no such site"
        raise NotFoundError(msg)


def _site_or_404(rows: list[dict[str, Any]], site_id: str) -> dict[str, Any]:
    if not rows:
        msg = f"site_id={site_id!r}: no such site"
        raise NotFoundError(msg)
    return rows[0]


@router.get("/fleet", response_model=FleetOut)
def get_fleet(
    engine: StoreDep,
    options: OptionsDep,
    _key: ViewerKey,
    market: Annotated[
        str | None, Query(pattern=r"^[A-Za-z]{2,16}$", examples=["ERCOT"])
    ] = None,
) -> FleetOut:
    """Fleet totals: ratings, and power, stored energy, SoC of fresh sites only.

    A site counts in the live totals when its newest sample is at most
    ``stale_after_s`` old and it is not offline; the others are counted as stale or
    missing, never summed with old values.
    """
    with engine.connect() as conn:
        rows = queries.site_rows(conn)
        states = queries.site_states(conn)
    if market is not None:
        rows = [r for r in rows if str(r["market"]).upper() == market.upper()]
    summaries = [queries.site_summary(r) for r in rows]
    now_ms = int(time.time() * 1000)
    stored = power = soc_sum = 0.0
    fresh = stale = missing = online = soc_n = 0
    for summary in summaries:
        state = states.get(summary["site_id"])
        if state is None or state.ts_ms is None:
            missing += 1
            continue
        if not queries.is_fresh(state, now_ms, options.stale_after_s):
            stale += 1
            continue
        fresh += 1
        online += int(state.online is True)
        if state.soc is not None:
            soc_sum += state.soc
            soc_n += 1
            if summary["energy_mwh"] is not None:
                stored += state.soc * summary["energy_mwh"]
        if state.power_mw is not None:
            power += state.power_mw
    return FleetOut(
        site_count=len(rows),
        online_count=online,
        fresh_count=fresh,
        stale_count=stale,
        missing_count=missing,
        stale_after_s=options.stale_after_s,
        discharge_mw=sum(s["discharge_mw"] or 0.0 for s in summaries),
        charge_mw=sum(s["charge_mw"] or 0.0 for s in summaries),
        energy_mwh=sum(s["energy_mwh"] or 0.0 for s in summaries),
        stored_energy_mwh=stored if soc_n else None,
        power_mw=power if fresh else None,
        mean_soc=soc_sum / soc_n if soc_n else None,
        markets=sorted({s["market"] for s in summaries}),
    )


@router.get("/sites", response_model=SiteListOut)
async def list_sites(
    engine: StoreDep,
    options: OptionsDep,
    _key: ViewerKey,
    market: Annotated[
        str | None, Query(pattern=r"^[A-Za-z]{2,16}$", examples=["ERCOT"])
    ] = None,
) -> SiteListOut:
    """Every site with its ratings and latest state."""
    with engine.connect() as conn:
        summaries = queries.site_summaries(conn)
        states = queries.site_states(conn)
    if market is not None:
        summaries = [s for s in summaries if s["market"].upper() == market.upper()]
    now_ms = int(time.time() * 1000)
    items = [
        SiteOut(
            **s,
            state=queries.state_dict(
                states.get(s["site_id"]), now_ms, options.stale_after_s
            ),
        )
        for s in summaries
    ]
    return SiteListOut(items=items, count=len(items))


@router.get("/sites/{site_id}", response_model=SiteDetailOut, responses=NOT_FOUND)
def get_site(site_id: SiteIdParam, engine: StoreDep, _key: ViewerKey) -> SiteDetailOut:
    """One site's full configuration and latest state."""
    with engine.connect() as conn:
        row = _site_or_404(queries.site_rows(conn, site_id), site_id)
        state = queries.site_states(conn, [site_id]).get(site_id)
    return SiteDetailOut(
        **queries.site_summary(row),
        state=queries.state_dict(state, int(time.time() * 1000)),
        config=row["config"],
        updated_at=row["updated_at"],
    )


@dataclass(frozen=True)
class _FleetOfOne:
    sites: list[Site]


@router.put(
    "/sites/{site_id}",
    response_model=SiteDetailOut,
    responses={422: {"description": "Invalid site; the message names the field."}},
)
def put_site(
    site_id: SiteIdParam,
    site: Site,
    engine: StoreDep,
    key: AdminKey,
    bus: BusDep,
) -> SiteDetailOut:
    """Add or change a site of the fleet (admin); audit-logged."""
    if site.id != site_id:
        msg = f"body id={site.id!r} differs from the path site_id={site_id!r}"
        raise InputError(msg, ("body", "id"))
    with engine.begin() as conn:
        existed = bool(queries.site_rows(conn, site_id))
        save_fleet(conn, _FleetOfOne([site]))
        audit.record(
            conn,
            actor=key.id,
            action="site.update" if existed else "site.create",
            object_type="site",
            object_id=site_id,
            detail={"market": str(site.market), "node": site.node},
        )
        row = queries.site_rows(conn, site_id)[0]
    bus.publish_threadsafe(
        "fleet",
        {"site_id": site_id, "summary": "site updated" if existed else "site added"},
    )
    return SiteDetailOut(
        **queries.site_summary(row),
        state=None,
        config=row["config"],
        updated_at=row["updated_at"],
    )


@router.get("/sites/{site_id}/state", response_model=SiteStateOut, responses=NOT_FOUND)
async def get_site_state(
    site_id: SiteIdParam, engine: StoreDep, _key: ViewerKey
) -> SiteStateOut:
    """Return the site's latest measured state (SoC, net power, SoH, online)."""
    with engine.connect() as conn:
        _require_site(conn, site_id)
        state = queries.site_states(conn, [site_id]).get(site_id)
    now_ms = int(time.time() * 1000)
    out = queries.state_dict(state, now_ms) or queries.state_dict(
        queries.aggregate_state([], None), now_ms
    )
    return SiteStateOut(**(out or {}))


@router.get(
    "/sites/{site_id}/availability", response_model=AvailabilityOut, responses=NOT_FOUND
)
def get_availability(
    site_id: SiteIdParam,
    engine: StoreDep,
    _key: ViewerKey,
    hours: Annotated[
        float, Query(gt=0, le=744, description="Window ending now [h].")
    ] = 24.0,
) -> AvailabilityOut:
    """Share of expected telemetry received over the last ``hours`` and power now."""
    end = utc_now()
    start = end - dt.timedelta(hours=hours)
    with engine.connect() as conn:
        row = _site_or_404(queries.site_rows(conn, site_id), site_id)
        state = queries.site_states(conn, [site_id]).get(site_id)
        samples, _devices = queries.count_samples(
            conn,
            site_id=site_id,
            start_ms=queries.dt_to_ms(start),
            end_ms=queries.dt_to_ms(end),
        )
    expected = int(hours * 3600 / DEFAULT_SAMPLE_S)
    summary = queries.site_summary(row)
    online = None if state is None else state.online
    available = summary["discharge_mw"]
    if online is False:
        available = 0.0
    return AvailabilityOut(
        site_id=site_id,
        start=start,
        end=end,
        online=online,
        samples=samples,
        expected_samples=expected,
        availability=min(1.0, samples / expected) if expected else 0.0,
        available_discharge_mw=available,
    )


@router.get(
    "/sites/{site_id}/telemetry",
    response_model=TelemetryPageOut,
    responses=NOT_FOUND,
)
def get_telemetry(
    site_id: SiteIdParam,
    engine: StoreDep,
    options: OptionsDep,
    _key: ViewerKey,
    start: Annotated[
        ApiDatetime,
        Query(
            description="Range start (inclusive), with a zone.",
            examples=["2026-11-24T06:00:00Z"],
        ),
    ],
    end: Annotated[
        ApiDatetime,
        Query(
            description="Range end (exclusive), at most 31 days after start.",
            examples=["2026-11-25T06:00:00Z"],
        ),
    ],
    resample_s: Annotated[
        int, Query(ge=1, le=86400, description="Bucket length [s].")
    ] = 60,
    limit: Annotated[
        int, Query(ge=1, le=5000, description="Most points per page.")
    ] = 1000,
    dev: Annotated[str | None, Query(pattern=DEV_PATTERN)] = None,
) -> TelemetryPageOut:
    """Telemetry history resampled to ``resample_s`` buckets, one page at a time."""
    start_utc = as_utc(start, "start")
    end_utc = as_utc(end, "end")
    check_range(start_utc, end_utc, max_days=options.history_max_days)
    limit = min(limit, options.page_size_max)
    bucket_ms = resample_s * 1000
    start_ms = queries.dt_to_ms(start_utc) // bucket_ms * bucket_ms
    end_ms = queries.dt_to_ms(end_utc)
    page_end_ms = min(end_ms, start_ms + limit * bucket_ms)
    with engine.connect() as conn:
        _require_site(conn, site_id)
        buckets = queries.telemetry_buckets(
            conn,
            site_id=site_id,
            start_ms=start_ms,
            end_ms=page_end_ms,
            bucket_ms=bucket_ms,
            dev=dev,
        )
    return TelemetryPageOut(
        site_id=site_id,
        dev=dev,
        start=start_utc,
        end=end_utc,
        resample_s=resample_s,
        points=[
            TelemetryPointOut(
                ts=queries.ms_to_dt(b.ts_ms),
                soc=b.soc,
                power_mw=b.power_mw,
                samples=b.samples,
            )
            for b in buckets
        ],
        next_cursor=queries.ms_to_dt(page_end_ms) if page_end_ms < end_ms else None,
    )


@router.get(
    "/sites/{site_id}/warranty", response_model=WarrantyOut, responses=NOT_FOUND
)
def get_warranty(
    site_id: SiteIdParam, engine: StoreDep, _key: ViewerKey
) -> WarrantyOut:
    """Warranty terms, throughput planned so far and the latest state of health."""
    with engine.connect() as conn:
        row = _site_or_404(queries.site_rows(conn, site_id), site_id)
        state = queries.site_states(conn, [site_id]).get(site_id)
        planned = queries.planned_discharge_mwh(conn, site_id=site_id)
    site = Site.model_validate(row["config"])
    warranty = site.battery.warranty
    commissioned = site.battery.commissioned
    years = max(0.0, (utc_now().date() - commissioned).days / 365.25)
    return WarrantyOut(
        site_id=site_id,
        soh=None if state is None else state.soh,
        warranty_years=warranty.years,
        warranty_throughput_mwh=warranty.throughput_mwh,
        commissioned=commissioned,
        years_in_service=years,
        planned_throughput_mwh=planned,
        throughput_used=planned / warranty.throughput_mwh,
        max_average_soc=warranty.max_average_soc,
        max_c_rate_per_h=warranty.max_c_rate_per_h,
    )


@router.get(
    "/compliance/feoc",
    response_model=ComplianceOut,
    responses=NOT_FOUND,
)
def get_feoc_compliance(
    engine: StoreDep,
    _key: ViewerKey,
    year: Annotated[int, Query(ge=2020, le=2100, examples=[2026])],
) -> ComplianceOut:
    """Return the fleet's FEOC compliance report for ``year``."""
    with engine.connect() as conn:
        rows = queries.site_rows(conn)
    if not rows:
        msg = "the store holds no sites"
        raise NotFoundError(msg)
    sites = [Site.model_validate(r["config"]) for r in rows]
    fleet = Fleet.model_construct(name="fleet", sites=sites, poi_groups=[])
    report = compliance_report(fleet, year)
    items = [
        SiteComplianceOut(
            site_id=str(c.site),
            year=c.year,
            non_feoc_share=c.non_feoc_share,
            threshold=c.threshold,
            passes=c.passes,
            margin=c.margin,
            feoc_components=[str(k) for k in c.feoc_components],
        )
        for c in report
    ]
    return ComplianceOut(
        year=year,
        site_count=len(items),
        passing_count=sum(c.passes for c in items),
        sites=items,
    )
