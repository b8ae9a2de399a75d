"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from fleet.api import queries
from fleet.api.deps import MetricsDep, StoreDep, ViewerKey
from fleet.api.routers._common import AUTH_RESPONSES_NON_JSON
from fleet.api.schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> HealthOut:
    """Liveness: the process answers."""
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "A dependency is down."}},
)
def readyz(request: Request, engine: StoreDep) -> Any:
    """Readiness: the store answers, ingest workers are alive, the broker connected us.

    ``ingest`` is checked once a worker has registered a heartbeat: it fails when every
    registered worker has been silent for more than 10 s without stopping cleanly.
    """
    checks: dict[str, bool] = {}
    detail: dict[str, str] = {}
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            queries.schedule_rows(conn, limit=1)
        checks["store"] = True
    except sa.exc.SQLAlchemyError as exc:
        checks["store"] = False
        detail["store"] = type(exc).__name__
    try:
        from fleet.store.heartbeats import ingest_liveness

        live = ingest_liveness(engine)
        if live.workers:
            checks["ingest"] = live.ok
            if not live.ok:
                detail["ingest"] = (
                    f"no ingest worker alive: {', '.join(live.dead)} silent for "
                    f"{live.newest_beat_age_s or 0:.0f} s"
                )
    except sa.exc.SQLAlchemyError as exc:
        checks["ingest"] = False
        detail["ingest"] = type(exc).__name__
    probe = request.app.state.broker
    if probe is not None:
        checks["broker"] = bool(probe.connected)
        if not checks["broker"]:
            detail["broker"] = f"not connected to {probe.host}:{probe.port}"
    ok = all(checks.values())
    body = HealthOut(status="ok" if ok else "unavailable", checks=checks, detail=detail)
    return JSONResponse(status_code=200 if ok else 503, content=body.model_dump())


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        **AUTH_RESPONSES_NON_JSON,
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
    },
)
def metrics(
    request: Request, engine: StoreDep, _key: ViewerKey, api_metrics: MetricsDep
) -> PlainTextResponse:
    """Prometheus metrics: ingest rate and lag, quarantine, solve time and status."""
    from fleet.store.heartbeats import ingest_liveness

    with engine.connect() as conn:
        store = queries.store_metrics(conn)
    text = api_metrics.render(
        store, subscribers=request.app.state.bus.subscriber_count, now_s=time.time()
    )
    live = ingest_liveness(engine)
    text += (
        "# HELP bessfleet_ingest_workers_alive Ingest workers with a fresh heartbeat.\n"
        "# TYPE bessfleet_ingest_workers_alive gauge\n"
        f"bessfleet_ingest_workers_alive {live.alive}\n"
        "# HELP bessfleet_ingest_workers_dead Ingest workers silent without stopping.\n"
        "# TYPE bessfleet_ingest_workers_dead gauge\n"
        f"bessfleet_ingest_workers_dead {len(live.dead)}\n"
    )
    if live.lag_s is not None:
        text += (
            "# HELP bessfleet_ingest_commit_lag_seconds Age of the newest ingest "
            "commit.\n"
            "# TYPE bessfleet_ingest_commit_lag_seconds gauge\n"
            f"bessfleet_ingest_commit_lag_seconds {live.lag_s:.3f}\n"
        )
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")
