"""The operating day as it ran: steps, interval commands, settlement, site commands."""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from fleet.api.deps import StoreDep, ViewerKey
from fleet.api.errors import NotFoundError
from fleet.api.routers._common import AUTH_RESPONSES, NOT_FOUND
from fleet.ops.runs import load_intervals, load_runs
from fleet.ops.settlement import load_settlements
from fleet.store.tables import setpoints, sites
from fleet.types import SITE_ID_PATTERN

router = APIRouter(prefix="/v1", tags=["operations"], responses=AUTH_RESPONSES)

MarketQuery = Annotated[
    str | None,
    Query(
        pattern="^[A-Za-z]{2,16}$",
        description="Market (ERCOT, CAISO).",
        examples=["ERCOT"],
    ),
]
DayQuery = Annotated[
    dt.date | None,
    Query(
        ge=dt.date(2000, 1, 1),
        le=dt.date(2100, 12, 31),
        description="Operating day (market local).",
        examples=["2025-04-09"],
    ),
]
SiteParam = Annotated[
    str, Path(pattern=SITE_ID_PATTERN, max_length=64, description="Site id.")
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpsStepOut(_Out):
    """One step of a market's operating day."""

    market: str
    operating_day: dt.date
    step: str = Field(
        description="forecast, dayahead, bids, export, awards, intraday, settle"
    )
    status: str = Field(description="running, done, failed or skipped")
    started_at: dt.datetime
    finished_at: dt.datetime | None
    attempts: int
    detail: dict[str, Any] | None
    error: str | None


class OpsIntervalOut(_Out):
    """What one intraday step commanded."""

    market: str
    operating_day: dt.date
    interval_index: int
    start_ts: dt.datetime
    status: str
    fallback: str
    version: str
    setpoints_mw: dict[str, float] = Field(
        description="Net AC power per site, + = discharge [MW]."
    )
    stale: list[str]
    awarded_mw: dict[str, dict[str, float]]
    held_mw: dict[str, dict[str, float]]
    shortfall_mw: dict[str, float]
    solve_seconds: float


class SettlementOut(_Out):
    """One settled amount of a site's day."""

    market: str
    operating_day: dt.date
    site_id: str
    item: str = Field(
        description="da_energy, rt_deviation, reg_up, reg_down, spin, "
        "as_shortfall_up/down, degradation, btm_bill, btm_baseline_bill, btm_savings"
    )
    amount_usd: float
    quantity: float | None
    unit: str | None
    detail: dict[str, Any] | None


class SettlementListOut(_Out):
    """Settled rows and their total (baseline bills excluded)."""

    rows: list[SettlementOut]
    total_usd: float = Field(
        description="Net revenue of the rows (savings not double counted)."
    )


class CommandOut(_Out):
    """A setpoint sent to a site and what its gateway answered."""

    cmd_id: str
    site_id: str
    issued_ts: dt.datetime
    valid_from: dt.datetime
    expires_at: dt.datetime
    p_mw: float = Field(description="Net AC power commanded, + = discharge [MW].")
    schedule_version: int | None
    status: str = Field(description="sent, accepted, applied, rejected or expired")
    ack_ts: dt.datetime | None
    reason: str | None


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _records(frame: Any) -> list[dict[str, Any]]:
    if frame.empty:
        return []
    out = []
    for row in frame.to_dict(orient="records"):
        clean = {k: _clean(v) for k, v in row.items()}
        for key in ("started_at", "finished_at", "start_ts"):
            if (
                key in clean
                and clean[key] is not None
                and hasattr(clean[key], "to_pydatetime")
            ):
                clean[key] = clean[key].to_pydatetime()
        if clean.get("finished_at") is not None and str(clean["finished_at"]) == "NaT":
            clean["finished_at"] = None
        out.append(clean)
    return out


@router.get("/operations/runs", response_model=list[OpsStepOut])
def operation_runs(
    engine: StoreDep, _key: ViewerKey, market: MarketQuery = None, day: DayQuery = None
) -> list[OpsStepOut]:
    """Return the steps of the operating days the operator ran (newest day first)."""
    frame = load_runs(engine, market=market.upper() if market else None, day=day)
    return [OpsStepOut.model_validate(r) for r in _records(frame)]


@router.get("/operations/intervals", response_model=list[OpsIntervalOut])
def operation_intervals(
    engine: StoreDep,
    _key: ViewerKey,
    market: Annotated[
        str,
        Query(pattern="^[A-Za-z]{2,16}$", description="Market.", examples=["ERCOT"]),
    ],
    day: Annotated[
        dt.date,
        Query(
            ge=dt.date(2000, 1, 1),
            le=dt.date(2100, 12, 31),
            description="Operating day.",
        ),
    ],
) -> list[OpsIntervalOut]:
    """Every intraday step of a market's day: setpoints, stale sites, AS awarded vs held."""
    frame = load_intervals(engine, market=market.upper(), day=day)
    out = []
    for r in _records(frame):
        r["setpoints_mw"] = r.pop("setpoints")
        r.pop("recorded_at", None)
        out.append(OpsIntervalOut.model_validate(r))
    return out


@router.get("/settlements", response_model=SettlementListOut)
def settlements_list(
    engine: StoreDep,
    _key: ViewerKey,
    market: MarketQuery = None,
    start: DayQuery = None,
    end: DayQuery = None,
    site_id: Annotated[
        str | None,
        Query(pattern=SITE_ID_PATTERN, max_length=64, description="Site id."),
    ] = None,
) -> SettlementListOut:
    """Settled revenue and charges from metered telemetry, per site, day and item."""
    frame = load_settlements(
        engine,
        market=market.upper() if market else None,
        start=start,
        end=end,
        site_id=site_id,
    )
    rows = [
        SettlementOut.model_validate({k: v for k, v in r.items() if k != "settled_at"})
        for r in _records(frame)
    ]
    total = sum(
        r.amount_usd for r in rows if r.item not in ("btm_baseline_bill", "btm_savings")
    )
    return SettlementListOut(rows=rows, total_usd=round(total, 2))


@router.get(
    "/sites/{site_id}/commands", response_model=list[CommandOut], responses=NOT_FOUND
)
def site_commands(
    site_id: SiteParam,
    engine: StoreDep,
    _key: ViewerKey,
    limit: Annotated[
        int, Query(ge=1, le=5000, description="Newest commands first.")
    ] = 200,
) -> list[CommandOut]:
    """Return the setpoints the site was sent and its gateway's acks, newest first."""
    with engine.connect() as conn:
        known = conn.execute(sa.select(sites.c.id).where(sites.c.id == site_id)).first()
        if known is None:
            msg = f"site_id={site_id!r}: no such site"
            raise NotFoundError(msg)
        rows = (
            conn.execute(
                sa.select(setpoints)
                .where(setpoints.c.site_id == site_id)
                .order_by(setpoints.c.issued_ts.desc())
                .limit(limit)
            )
            .mappings()
            .all()
        )
    return [
        CommandOut(
            cmd_id=r["cmd_id"],
            site_id=r["site_id"],
            issued_ts=r["issued_ts"],
            valid_from=r["valid_from"],
            expires_at=r["expires_at"],
            p_mw=float(r["p_ac_w_setpoint"]) / 1e6,
            schedule_version=r["schedule_version"],
            status=r["status"],
            ack_ts=r["ack_ts"],
            reason=r["reason"],
        )
        for r in rows
    ]
