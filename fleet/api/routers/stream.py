"""The live stream for operators: Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from fleet.api.deps import BusDep, OptionsDep, StoreDep, ViewerKey
from fleet.api.errors import UnavailableError
from fleet.api.routers._common import AUTH_RESPONSES_NON_JSON
from fleet.store import keys as key_store

logger = logging.getLogger(__name__)


def _still_valid(engine: sa.Engine, key_id: str, session_token: str | None) -> bool:
    try:
        with engine.connect() as conn:
            if session_token is not None:
                found = key_store.session_key(conn, session_token)
                return found is not None and found[0].id == key_id
            return key_store.key_is_active(conn, key_id)
    except sa.exc.SQLAlchemyError as exc:
        # the store is down: keep the stream (it carries no store data then) and
        # check again next time rather than cutting every operator off
        logger.warning("stream key check for %s failed: %s", key_id, exc)
        return True


router = APIRouter(prefix="/v1", tags=["stream"], responses=AUTH_RESPONSES_NON_JSON)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": (
                "`text/event-stream`; events `schedule`, `setpoint`, `state`, `alarm`, "
                "`alert`, `bids`, `awards`, `fleet`, each with a JSON `data` line. "
                "The key (or session) is re-checked every `stream_auth_check_s` "
                "(5 s by default): once it is revoked or expired the stream sends "
                "`event: revoked` and closes."
            ),
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        503: {
            "description": "Too many stream clients.",
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/ErrorOut"}
                }
            },
        },
    },
)
async def stream(
    request: Request,
    key: ViewerKey,
    bus: BusDep,
    options: OptionsDep,
    engine: StoreDep,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=20)
    ] = None,
) -> StreamingResponse:
    """Live events: new schedules, setpoints, site state changes, alarms and acks."""
    if bus.subscriber_count >= options.sse_max_subscribers:
        msg = f"{bus.subscriber_count} stream clients connected; the limit is reached"
        raise UnavailableError(msg)
    resume = int(last_event_id) if last_event_id and last_event_id.isdigit() else None
    queue = bus.subscribe(resume)
    session_token = getattr(request.state, "session_token", None)
    check_s = options.stream_auth_check_s

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n: connected\n\n"
            last_ping = last_check = time.monotonic()
            while True:
                wait_s = min(options.sse_ping_s, check_s)
                try:
                    event = await asyncio.wait_for(queue.get(), wait_s)
                except TimeoutError:
                    event = None
                now = time.monotonic()
                if now - last_check >= check_s:
                    last_check = now
                    if not await asyncio.to_thread(
                        _still_valid, engine, key.id, session_token
                    ):
                        detail = {"key_id": key.id, "summary": "key revoked or expired"}
                        yield f"event: revoked\ndata: {json.dumps(detail)}\n\n"
                        return
                if event is not None:
                    yield event.to_sse()
                elif now - last_ping >= options.sse_ping_s:
                    last_ping = now
                    if await request.is_disconnected():
                        return
                    yield ": ping\n\n"
        finally:
            bus.unsubscribe(queue)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
