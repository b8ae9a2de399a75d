"""Read the store for the API: sites with state, telemetry history, schedules, awards.

Plain functions over a SQLAlchemy connection; they return plain dicts and dataclasses
that the routers turn into response models.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from fleet.store.tables import (
    UtcDateTime,
    awards,
    bid_sets,
    price_forecasts,
    schedule_intervals,
    schedules,
    sites,
)
from fleet.store.telemetry_tables import (
    tlm_counters,
    tlm_latest,
    tlm_measurements,
    tlm_quarantine,
    tlm_site_sessions,
)

logger = logging.getLogger(__name__)

AGGREGATE_DEV = "site"
"""Device id of a site's aggregate telemetry (spec/telemetry.md §1)."""


def market_timezone(market: str) -> str:
    """Return the IANA time zone of ``market`` from its rules (UTC when it has none)."""
    from dispatch.errors import DispatchInputError
    from dispatch.markets import market_timezone as rules_timezone

    try:
        return rules_timezone(market)
    except DispatchInputError:
        return "UTC"


def ms_to_dt(ts_ms: int) -> dt.datetime:
    """Return an aware UTC datetime from epoch milliseconds."""
    return dt.datetime.fromtimestamp(ts_ms / 1000.0, tz=dt.UTC)


def dt_to_ms(when: dt.datetime) -> int:
    """Return epoch milliseconds of an aware datetime."""
    return round(when.timestamp() * 1000.0)


@dataclass(frozen=True, slots=True)
class SiteState:
    """A site's latest state, aggregated over its devices."""

    ts_ms: int | None
    """Newest sample time [ms since epoch, UTC]."""
    online: bool | None
    """Gateway online per its birth/state messages (None: never seen)."""
    soc: float | None
    """State of charge, fraction 0-1."""
    power_mw: float | None
    """Net power [MW], + discharge."""
    soh: float | None
    """State of health, fraction 0-1."""
    quality: str | None
    """Worst quality flag among the newest samples."""


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def aggregate_state(
    rows: Sequence[Mapping[Any, Any]], online: bool | None
) -> SiteState:
    """Aggregate the latest rows of one site's devices into a :class:`SiteState`.

    The ``site`` aggregate device wins when it carries a value; otherwise SoC is the
    mean over battery banks and power the sum over PCS AC power (or bank DC power).
    """
    if not rows:
        return SiteState(None, online, None, None, None, None)
    agg = next((r for r in rows if r["dev_id"] == AGGREGATE_DEV), None)
    banks = [r for r in rows if r["dev_id"].startswith("bank")]
    pcs = [r for r in rows if r["dev_id"].startswith("pcs")]
    soc: float | None = None
    if agg is not None and agg["soc_pct"] is not None:
        soc = agg["soc_pct"] / 100.0
    else:
        socs = [r["soc_pct"] for r in banks if r["soc_pct"] is not None]
        soc = sum(socs) / len(socs) / 100.0 if socs else None
    power_w: float | None = None
    if agg is not None and (agg["p_ac_w"] is not None or agg["p_dc_w"] is not None):
        power_w = agg["p_ac_w"] if agg["p_ac_w"] is not None else agg["p_dc_w"]
    elif any(r["p_ac_w"] is not None for r in pcs):
        power_w = sum(r["p_ac_w"] for r in pcs if r["p_ac_w"] is not None)
    elif any(r["p_dc_w"] is not None for r in banks):
        power_w = sum(r["p_dc_w"] for r in banks if r["p_dc_w"] is not None)
    sohs = [
        s
        for r in (([agg] if agg else []) + banks)
        if (s := _float((r["m"] or {}).get("soh_pct"))) is not None
    ]
    order = {"good": 0, "uncertain": 1, "bad": 2}
    quality = max((r["q"] for r in rows), key=lambda q: order.get(q, 3))
    return SiteState(
        ts_ms=max(int(r["ts_ms"]) for r in rows),
        online=online,
        soc=soc,
        power_mw=None if power_w is None else power_w / 1e6,
        soh=min(sohs) / 100.0 if sohs else None,
        quality=quality,
    )


# The read endpoints' statements, built once: building a statement costs more than
# running it (about 100 us against 40 us for a small SQLite query); the engine's
# compiled cache then serves each execution.
_LATEST = sa.select(
    tlm_latest.c.site_id,
    tlm_latest.c.dev_id,
    tlm_latest.c.ts_ms,
    tlm_latest.c.q,
    tlm_latest.c.soc_pct,
    tlm_latest.c.p_dc_w,
    tlm_latest.c.p_ac_w,
    tlm_latest.c.m,
)
_SESSIONS = sa.select(tlm_site_sessions.c.site_id, tlm_site_sessions.c.online)
_STATE_QUERIES = {
    "all": (_LATEST, _SESSIONS),
    "one": (
        _LATEST.where(tlm_latest.c.site_id == sa.bindparam("site_id")),
        _SESSIONS.where(tlm_site_sessions.c.site_id == sa.bindparam("site_id")),
    ),
    "some": (
        _LATEST.where(
            tlm_latest.c.site_id.in_(sa.bindparam("site_ids", expanding=True))
        ),
        _SESSIONS.where(
            tlm_site_sessions.c.site_id.in_(sa.bindparam("site_ids", expanding=True))
        ),
    ),
}
_SITE_EXISTS = sa.select(sites.c.id).where(sites.c.id == sa.bindparam("site_id"))
_SITE_ROWS = sa.select(sites).order_by(sites.c.id)
_SITE_ROW = _SITE_ROWS.where(sites.c.id == sa.bindparam("site_id"))
_SITE_TEXTS = sa.select(
    sites.c.id,
    sites.c.name,
    sites.c.market,
    sites.c.node,
    sites.c.meter,
    sa.cast(sites.c.config, sa.Text()).label("config"),
).order_by(sites.c.id)
_SUMMARIES: dict[tuple[Any, ...], dict[str, Any]] = {}
"""Site summaries by the stored row's text (content-addressed: never stale)."""
_SUMMARIES_MAX = 4096


def _dicts(result: sa.Result[Any]) -> list[dict[str, Any]]:
    # dict(row._mapping) builds a key view per row: zip with the keys once instead
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]


def site_states(
    conn: sa.Connection, site_ids: list[str] | None = None
) -> dict[str, SiteState]:
    """Return the latest aggregated state of each site (all sites when None)."""
    params: dict[str, Any]
    if site_ids is None:
        (query, sessions), params = _STATE_QUERIES["all"], {}
    elif len(site_ids) == 1:
        (query, sessions), params = _STATE_QUERIES["one"], {"site_id": site_ids[0]}
    else:
        (query, sessions), params = _STATE_QUERIES["some"], {"site_ids": site_ids}
    by_site: dict[str, list[Mapping[Any, Any]]] = defaultdict(list)
    for row in conn.execute(query, params):
        by_site[row[0]].append(row._mapping)
    online = {row[0]: bool(row[1]) for row in conn.execute(sessions, params)}
    keys = set(by_site) | set(online)
    return {sid: aggregate_state(by_site.get(sid, []), online.get(sid)) for sid in keys}


def site_exists(conn: sa.Connection, site_id: str) -> bool:
    """Return whether the store holds a site with id ``site_id``."""
    return conn.execute(_SITE_EXISTS, {"site_id": site_id}).first() is not None


def site_rows(conn: sa.Connection, site_id: str | None = None) -> list[dict[str, Any]]:
    """Return stored sites (id, name, market, node, meter, config, updated_at)."""
    if site_id is None:
        return _dicts(conn.execute(_SITE_ROWS))
    return _dicts(conn.execute(_SITE_ROW, {"site_id": site_id}))


def site_summary(row: dict[str, Any]) -> dict[str, Any]:
    """Return the SiteOut fields (without state) from a stored site row."""
    config: dict[str, Any] = row.get("config") or {}
    battery: dict[str, Any] = config.get("battery") or {}
    location: dict[str, Any] = config.get("location") or {}
    return {
        "site_id": row["id"],
        "name": row["name"],
        "market": row["market"],
        "node": row["node"],
        "meter": row["meter"],
        "timezone": market_timezone(row["market"]),
        "latitude": _float(location.get("lat")),
        "longitude": _float(location.get("lon")),
        "discharge_mw": _float(battery.get("discharge_mw")),
        "charge_mw": _float(battery.get("charge_mw")),
        "energy_mwh": _float(battery.get("energy_mwh")),
        "services": [str(s) for s in config.get("services") or []],
    }


def site_summaries(conn: sa.Connection) -> list[dict[str, Any]]:
    """Return :func:`site_summary` of every stored site, ordered by id.

    The configuration is read as text and each summary kept by the row's text, so a
    site's document is parsed once per change rather than once per request.
    """
    out = []
    for row in conn.execute(_SITE_TEXTS):
        key = tuple(row)
        summary = _SUMMARIES.get(key)
        if summary is None:
            if len(_SUMMARIES) >= _SUMMARIES_MAX:
                _SUMMARIES.clear()
            summary = site_summary({**row._mapping, "config": json.loads(row[5])})
            _SUMMARIES[key] = summary
        out.append({**summary, "services": list(summary["services"])})
    return out


STALE_AFTER_S = 300.0
"""Age beyond which a site's newest sample is stale: not counted in fleet totals [s]."""


def is_fresh(state: SiteState | None, now_ms: int, stale_after_s: float) -> bool:
    """Return True when ``state`` may count in totals: recent and not offline."""
    return (
        state is not None
        and state.ts_ms is not None
        and state.online is not False
        and (now_ms - state.ts_ms) / 1e3 <= stale_after_s
    )


def state_dict(
    state: SiteState | None, now_ms: int, stale_after_s: float = STALE_AFTER_S
) -> dict[str, Any] | None:
    """Return the SiteStateOut fields of a state (None when nothing is known)."""
    if state is None:
        return None
    return {
        "stale": state.ts_ms is None or (now_ms - state.ts_ms) / 1e3 > stale_after_s,
        "ts": None if state.ts_ms is None else ms_to_dt(state.ts_ms),
        "online": state.online,
        "soc": state.soc,
        "power_mw": state.power_mw,
        "soh": state.soh,
        "quality": state.quality,
        "lag_s": None
        if state.ts_ms is None
        else max(0.0, (now_ms - state.ts_ms) / 1e3),
    }


@dataclass(frozen=True, slots=True)
class Bucket:
    """One resampled telemetry bucket."""

    ts_ms: int
    """Bucket start [ms since epoch, UTC]."""
    soc: float | None
    """Mean SoC, fraction 0-1."""
    power_mw: float | None
    """Mean net power [MW], + discharge."""
    samples: int
    """Samples in the bucket (all devices)."""


def telemetry_buckets(
    conn: sa.Connection,
    *,
    site_id: str,
    start_ms: int,
    end_ms: int,
    bucket_ms: int,
    dev: str | None = None,
) -> list[Bucket]:
    """Return mean SoC and power per ``bucket_ms`` bucket in [start_ms, end_ms).

    Buckets are aligned on multiples of ``bucket_ms`` since the epoch; devices are
    averaged per bucket, then combined as in :func:`aggregate_state`.
    """
    m = tlm_measurements.c
    bucket = (m.ts_ms // sa.literal(bucket_ms, sa.BigInteger())).label("bucket")
    query = (
        sa.select(
            bucket,
            m.dev_id,
            sa.func.avg(m.soc_pct).label("soc_pct"),
            sa.func.avg(m.p_ac_w).label("p_ac_w"),
            sa.func.avg(m.p_dc_w).label("p_dc_w"),
            sa.func.count().label("n"),
        )
        .where(m.site_id == site_id, m.ts_ms >= start_ms, m.ts_ms < end_ms)
        .group_by(bucket, m.dev_id)
        .order_by(bucket)
    )
    if dev is not None:
        query = query.where(m.dev_id == dev)
    else:
        devs = site_devices(conn, site_id)
        if devs:
            # lets the (site_id, dev_id, ts_ms) key serve the time range
            query = query.where(m.dev_id.in_(devs))
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in conn.execute(query):
        grouped[int(row.bucket)].append(
            {
                "dev_id": row.dev_id,
                "soc_pct": _float(row.soc_pct),
                "p_ac_w": _float(row.p_ac_w),
                "p_dc_w": _float(row.p_dc_w),
                "n": int(row.n),
            }
        )
    out: list[Bucket] = []
    for key in sorted(grouped):
        rows = grouped[key]
        state = aggregate_state(
            [{**r, "ts_ms": key * bucket_ms, "q": "good", "m": None} for r in rows],
            None,
        )
        out.append(
            Bucket(
                ts_ms=key * bucket_ms,
                soc=state.soc,
                power_mw=state.power_mw,
                samples=sum(r["n"] for r in rows),
            )
        )
    return out


def site_devices(conn: sa.Connection, site_id: str) -> list[str]:
    """Return the device ids a site has reported (from the latest-state table)."""
    return [
        str(r[0])
        for r in conn.execute(
            sa.select(tlm_latest.c.dev_id).where(tlm_latest.c.site_id == site_id)
        )
    ]


def count_samples(
    conn: sa.Connection, *, site_id: str, start_ms: int, end_ms: int
) -> tuple[int, int]:
    """Return (distinct sample times, devices) of a site in [start_ms, end_ms)."""
    m = tlm_measurements.c
    query = sa.select(
        sa.func.count(sa.distinct(m.ts_ms)), sa.func.count(sa.distinct(m.dev_id))
    ).where(m.site_id == site_id, m.ts_ms >= start_ms, m.ts_ms < end_ms)
    devs = site_devices(conn, site_id)
    if devs:
        query = query.where(m.dev_id.in_(devs))
    row = conn.execute(query).one()
    return int(row[0]), int(row[1])


def _summary_columns() -> list[sa.ColumnElement[Any]]:
    # the result document holds every site's series: read only the parts we answer
    s = schedules.c
    return [
        s.id,
        s.market,
        s.operating_day,
        s.version,
        s.created_at,
        s.status,
        s.objective_usd,
        s.solve_path,
        s.scenario["interval_minutes"].label("interval_minutes"),
        s.result["revenue_usd"].label("revenue_usd"),
    ]


def schedule_interval_minutes(row: dict[str, Any]) -> int | None:
    """Return a schedule's interval length [minutes] from its scenario, if stored."""
    value = row.get("interval_minutes")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def schedule_revenue(row: dict[str, Any]) -> dict[str, float]:
    """Return a schedule's revenue by service [USD] from its stored result."""
    revenue = row.get("revenue_usd")
    if not isinstance(revenue, dict):
        return {}
    return {str(k): float(v) for k, v in revenue.items() if _float(v) is not None}


def schedule_rows(
    conn: sa.Connection,
    *,
    market: str | None = None,
    operating_day: dt.date | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Return stored schedules, newest first."""
    query = (
        sa.select(*_summary_columns())
        .order_by(schedules.c.created_at.desc(), schedules.c.id.desc())
        .limit(limit)
    )
    if market is not None:
        query = query.where(schedules.c.market == market)
    if operating_day is not None:
        query = query.where(schedules.c.operating_day == operating_day)
    return [dict(row._mapping) for row in conn.execute(query)]


def schedule_by_id(conn: sa.Connection, schedule_id: int) -> dict[str, Any] | None:
    """Return one schedule row, or None."""
    row = conn.execute(
        sa.select(*_summary_columns()).where(schedules.c.id == schedule_id)
    ).first()
    return None if row is None else dict(row._mapping)


def schedule_by_version(
    conn: sa.Connection, *, market: str, operating_day: dt.date, version: int | None
) -> dict[str, Any] | None:
    """Return the schedule of a market and day at ``version`` (newest when None)."""
    query = sa.select(*_summary_columns()).where(
        schedules.c.market == market, schedules.c.operating_day == operating_day
    )
    if version is None:
        query = query.order_by(schedules.c.version.desc()).limit(1)
    else:
        query = query.where(schedules.c.version == version)
    row = conn.execute(query).first()
    return None if row is None else dict(row._mapping)


_HEAD_COLUMNS = (schedules.c.id, schedules.c.created_at)
_NEWEST_OF_DAY = (
    sa.select(*_HEAD_COLUMNS)
    .where(
        schedules.c.market == sa.bindparam("market"),
        schedules.c.operating_day == sa.bindparam("operating_day"),
    )
    .order_by(schedules.c.version.desc())
    .limit(1)
)
_NEWEST_OF_MARKET = (
    sa.select(*_HEAD_COLUMNS)
    .where(schedules.c.market == sa.bindparam("market"))
    .order_by(schedules.c.created_at.desc(), schedules.c.id.desc())
    .limit(1)
)


def newest_schedule_head(
    conn: sa.Connection, *, market: str, operating_day: dt.date | None
) -> dict[str, Any] | None:
    """Return ``id`` and ``created_at`` of the newest schedule of a market and day.

    With ``operating_day`` None: of the market's most recently created schedule (as
    :func:`schedule_rows` orders them). Reads no JSON document (cheap).
    """
    if operating_day is None:
        result = conn.execute(_NEWEST_OF_MARKET, {"market": market})
    else:
        result = conn.execute(
            _NEWEST_OF_DAY, {"market": market, "operating_day": operating_day}
        )
    row = result.first()
    return None if row is None else {"id": row[0], "created_at": row[1]}


def interval_rows(
    conn: sa.Connection,
    schedule_id: int,
    *,
    site_id: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Return a schedule's interval rows ordered by site and time."""
    c = schedule_intervals.c
    query = (
        sa.select(schedule_intervals)
        .where(c.schedule_id == schedule_id)
        .order_by(c.site_id, c.ts)
    )
    if site_id is not None:
        query = query.where(c.site_id == site_id)
    if start is not None:
        query = query.where(c.ts >= start)
    if end is not None:
        query = query.where(c.ts < end)
    return _dicts(conn.execute(query))


def newest_schedule_for_site(
    conn: sa.Connection, *, site_id: str, start: dt.datetime, end: dt.datetime
) -> dict[str, Any] | None:
    """Return the newest schedule with intervals for ``site_id`` in [start, end)."""
    c = schedule_intervals.c
    newest = (
        sa.select(sa.func.max(c.schedule_id))
        .where(c.site_id == site_id, c.ts >= start, c.ts < end)
        .scalar_subquery()
    )
    row = conn.execute(
        sa.select(*_summary_columns()).where(schedules.c.id == newest)
    ).first()
    return None if row is None else dict(row._mapping)


def newest_per_day(
    conn: sa.Connection, *, start_day: dt.date, end_day: dt.date
) -> list[dict[str, Any]]:
    """Return the newest schedule version of each (market, day) in [start_day, end_day]."""
    s = schedules.c
    newest = (
        sa.select(sa.func.max(s.id))
        .where(s.operating_day >= start_day, s.operating_day <= end_day)
        .group_by(s.market, s.operating_day)
    )
    query = (
        sa.select(*_summary_columns()).where(s.id.in_(newest)).order_by(s.operating_day)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


def planned_discharge_mwh(conn: sa.Connection, *, site_id: str) -> float:
    """Return the discharge energy [MWh] of a site in the newest schedule of each day."""
    s = schedules.c
    newest = sa.select(sa.func.max(s.id)).group_by(s.market, s.operating_day)
    c = schedule_intervals.c
    rows = conn.execute(
        sa.select(c.schedule_id, sa.func.sum(c.discharge_mw), sa.func.count())
        .where(c.site_id == site_id, c.schedule_id.in_(newest))
        .group_by(c.schedule_id)
    ).all()
    total = 0.0
    for schedule_id, discharge_sum, _n in rows:
        row = schedule_by_id(conn, int(schedule_id))
        minutes = schedule_interval_minutes(row or {}) or 15
        total += float(discharge_sum or 0.0) * minutes / 60.0
    return total


def forecast(
    conn: sa.Connection,
    *,
    market: str,
    node: str,
    product: str,
    issued_before: dt.datetime | None,
    limit: int,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Return (header, points) of the newest price forecast issued before a time."""
    f = price_forecasts.c
    head_query = (
        sa.select(f.issue_time, f.model_version, f.unit)
        .where(f.market == market, f.node == node, f.product == product)
        .order_by(f.issue_time.desc())
        .limit(1)
    )
    if issued_before is not None:
        head_query = head_query.where(f.issue_time <= issued_before)
    head = conn.execute(head_query).first()
    if head is None:
        return None, []
    points = conn.execute(
        sa.select(f.ts, f.p10, f.p50, f.p90)
        .where(
            f.market == market,
            f.node == node,
            f.product == product,
            f.issue_time == head.issue_time,
            f.model_version == head.model_version,
        )
        .order_by(f.ts)
        .limit(limit)
    ).all()
    return dict(head._mapping), [dict(p._mapping) for p in points]


def bid_set_rows(
    conn: sa.Connection,
    *,
    market: str,
    operating_day: dt.date,
    version: int | None = None,
) -> list[dict[str, Any]]:
    """Return the bid sets of a market and day, newest version first."""
    b = bid_sets.c
    query = (
        sa.select(bid_sets)
        .where(b.market == market, b.operating_day == operating_day)
        .order_by(b.version.desc())
    )
    if version is not None:
        query = query.where(b.version == version)
    return [dict(row._mapping) for row in conn.execute(query)]


def next_bid_version(
    conn: sa.Connection, *, market: str, operating_day: dt.date
) -> int:
    """Return the next bid set version of a market and day (1 for the first)."""
    b = bid_sets.c
    current = conn.execute(
        sa.select(sa.func.max(b.version)).where(
            b.market == market, b.operating_day == operating_day
        )
    ).scalar()
    return int(current or 0) + 1


def award_summaries(
    conn: sa.Connection, *, market: str | None, limit: int
) -> list[dict[str, Any]]:
    """Return per (market, day, version) award summaries, newest day first."""
    a = awards.c
    keys = (
        sa.select(a.market, a.operating_day, a.version, sa.func.max(a.received_at))
        .group_by(a.market, a.operating_day, a.version)
        .order_by(a.operating_day.desc(), a.version.desc())
        .limit(limit)
    )
    if market is not None:
        keys = keys.where(a.market == market)
    out = []
    for mkt, day, version, received in conn.execute(keys).all():
        rows = conn.execute(
            sa.select(a.site_id, a.ts, a.product, a.award_mw).where(
                a.market == mkt, a.operating_day == day, a.version == version
            )
        ).all()
        mwh: dict[str, float] = defaultdict(float)
        times = sorted({r.ts for r in rows})
        step_h = (
            (times[1] - times[0]).total_seconds() / 3600.0 if len(times) > 1 else 1.0
        )
        for r in rows:
            mwh[r.product] += abs(float(r.award_mw)) * step_h
        out.append(
            {
                "market": mkt,
                "operating_day": day,
                "version": int(version),
                "created_at": received,
                "interval_count": len(times),
                "sites": sorted({r.site_id for r in rows}),
                "award_mwh_by_product": dict(mwh),
            }
        )
    return out


def award_rows(
    conn: sa.Connection, *, market: str, operating_day: dt.date, version: int | None
) -> tuple[int | None, list[dict[str, Any]]]:
    """Return (version, rows) of the awards of a market and day (newest version)."""
    a = awards.c
    if version is None:
        version = conn.execute(
            sa.select(sa.func.max(a.version)).where(
                a.market == market, a.operating_day == operating_day
            )
        ).scalar()
        if version is None:
            return None, []
    rows = conn.execute(
        sa.select(a.site_id, a.ts, a.product, a.award_mw, a.price, a.unit)
        .where(
            a.market == market, a.operating_day == operating_day, a.version == version
        )
        .order_by(a.site_id, a.ts, a.product)
    ).all()
    return int(version), [dict(r._mapping) for r in rows]


@dataclass(frozen=True, slots=True)
class StoreMetrics:
    """Figures for ``/metrics`` read from the store."""

    stored_total: int
    """Telemetry rows stored since the start (all sites)."""
    duplicates_total: int
    """Duplicate telemetry rows absorbed."""
    newest_ts_ms: dict[str, int]
    """Newest sample time per site [ms since epoch]."""
    quarantine_by_reason: dict[str, int]
    """Quarantined messages per reason."""
    latest_solves: list[dict[str, Any]]
    """Newest schedule per market: market, status, seconds, objective_usd."""


def store_metrics(conn: sa.Connection) -> StoreMetrics:
    """Read the store figures exported on ``/metrics``."""
    stored, dups = conn.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(tlm_counters.c.stored), 0),
            sa.func.coalesce(sa.func.sum(tlm_counters.c.duplicates), 0),
        )
    ).one()
    newest = {
        row.site_id: int(row.ts)
        for row in conn.execute(
            sa.select(
                tlm_latest.c.site_id, sa.func.max(tlm_latest.c.ts_ms).label("ts")
            ).group_by(tlm_latest.c.site_id)
        )
    }
    quarantine = {
        row.reason: int(row.n)
        for row in conn.execute(
            sa.select(tlm_quarantine.c.reason, sa.func.count().label("n")).group_by(
                tlm_quarantine.c.reason
            )
        )
    }
    s = schedules.c
    newest_ids = sa.select(sa.func.max(s.id)).group_by(s.market)
    solves = []
    for row in conn.execute(
        sa.select(s.market, s.status, s.objective_usd, s.result).where(
            s.id.in_(newest_ids)
        )
    ):
        result = row.result if isinstance(row.result, dict) else {}
        solve = result.get("solve") if isinstance(result.get("solve"), dict) else {}
        solves.append(
            {
                "market": row.market,
                "status": row.status,
                "seconds": _float((solve or {}).get("seconds")),
                "objective_usd": row.objective_usd,
            }
        )
    return StoreMetrics(int(stored), int(dups), newest, quarantine, solves)


@dataclass(frozen=True, slots=True)
class ReserveCoverage:
    """One site's award of one reserve product against what the plan holds."""

    site_id: str
    """Site."""
    product: str
    """Reserve product (one with a ``<product>_mw`` column in the schedule)."""
    intervals: int
    """Awarded intervals (award > 0)."""
    awarded_mwh: float
    """Awarded reserve times interval length, summed [MW·h]."""
    held_mwh: float
    """Reserve the plan holds against the award (at most the award), summed [MW·h]."""
    shortfall_mwh: float
    """Award the plan does not hold, summed [MW·h]."""
    short_intervals: int
    """Awarded intervals where the plan holds less than the award."""


def reserve_products() -> list[str]:
    """Return the products a schedule holds reserve for (its ``<product>_mw`` columns)."""
    energy = {"charge_mw", "discharge_mw"}
    return [
        c.name.removesuffix("_mw")
        for c in schedule_intervals.c
        if c.name.endswith("_mw") and c.name not in energy
    ]


def reserve_coverage(
    award_rows: list[dict[str, Any]], intervals: list[dict[str, Any]]
) -> list[ReserveCoverage]:
    """Compare reserve awards with the reserve a schedule holds, per site and product.

    Parameters
    ----------
    award_rows
        Award rows (``site_id``, ``ts``, ``product``, ``award_mw``); products without
        a schedule column (energy, capacity) are ignored.
    intervals
        The schedule's interval rows (``site_id``, ``ts``, ``<product>_mw``).

    Notes
    -----
    An award covers ``[ts, ts + L)``, ``L`` the smallest gap between a site's award
    times for that product (60 minutes when there is one award). The plan holds
    ``min`` over its intervals in that span (0 when it has none there): reserve must
    be held for the whole awarded interval.
    """
    products = set(reserve_products())
    by_site: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in intervals:
        by_site[row["site_id"]].append(row)
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in award_rows:
        if row["product"] in products and row["award_mw"] > 0:
            grouped[(row["site_id"], row["product"])].append(row)
    out = []
    for (site_id, product), rows in sorted(grouped.items()):
        rows.sort(key=lambda r: r["ts"])
        gaps = [
            (b["ts"] - a["ts"]).total_seconds()
            for a, b in itertools.pairwise(rows)
            if b["ts"] > a["ts"]
        ]
        length_s = min(gaps) if gaps else 3600.0
        awarded = held = short = 0.0
        short_count = 0
        for row in rows:
            end = row["ts"] + dt.timedelta(seconds=length_s)
            inside = [
                float(i[f"{product}_mw"])
                for i in by_site.get(site_id, [])
                if row["ts"] <= i["ts"] < end
            ]
            held_mw = min(inside) if inside else 0.0
            award = float(row["award_mw"])
            hours = length_s / 3600.0
            awarded += award * hours
            held += min(held_mw, award) * hours
            if held_mw < award - 1e-6:
                short += (award - held_mw) * hours
                short_count += 1
        out.append(
            ReserveCoverage(
                site_id=site_id,
                product=product,
                intervals=len(rows),
                awarded_mwh=awarded,
                held_mwh=held,
                shortfall_mwh=short,
                short_intervals=short_count,
            )
        )
    return out


_SETTLEMENTS = sa.table(
    "settlements",
    sa.column("market", sa.String()),
    sa.column("operating_day", sa.Date()),
    sa.column("site_id", sa.String()),
    sa.column("item", sa.String()),
    sa.column("amount_usd", sa.Float()),
    sa.column("settled_at", UtcDateTime()),
)
"""The operations engine's ``settlements`` table, read only (declared by fleet.store)."""


def settlement_rows(
    conn: sa.Connection, *, market: str, operating_day: dt.date
) -> list[dict[str, Any]] | None:
    """Return the settled rows of a market day, or None when the store keeps none.

    The ``settlements`` table belongs to the operations engine's migration; a store
    without it answers None (nothing settled can be shown), one with it the rows
    (``site_id``, ``item``, ``amount_usd``, ``settled_at``).
    """
    if not sa.inspect(conn).has_table("settlements"):
        return None
    s = _SETTLEMENTS.c
    query = sa.select(s.site_id, s.item, s.amount_usd, s.settled_at).where(
        s.market == market, s.operating_day == operating_day
    )
    return [dict(r._mapping) for r in conn.execute(query)]
