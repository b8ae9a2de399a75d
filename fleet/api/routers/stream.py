"""The live stream for operators: Server-Sent Events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from fleet.api.deps import BusDep, OptionsDep, ViewerKey
from fleet.api.errors import UnavailableError
from fleet.api.routers._common import AUTH_RESPONSES_NON_JSON

router = APIRouter(prefix="/v1", tags=["stream"], responses=AUTH_RESPONSES_NON_JSON)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": (
                "`text/event-stream`; events `schedule`, `setpoint`, `state`, `alarm`, "
                "`alert`, `bids`, `awards`, `fleet`, each with a JSON `data` line."
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
    _key: ViewerKey,
    bus: BusDep,
    options: OptionsDep,
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

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n: connected\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), options.sse_ping_s)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": ping\n\n"
                    continue
                yield event.to_sse()
        finally:
            bus.unsubscribe(queue)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
