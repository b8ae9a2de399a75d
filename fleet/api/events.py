"""Fan out live events (schedules, setpoints, state, alarms) to SSE subscribers."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

EVENT_KINDS = (
    "schedule",
    "setpoint",
    "state",
    "alarm",
    "alert",
    "bids",
    "awards",
    "fleet",
)
"""Event names a client may receive on ``/v1/stream``."""


@dataclass(frozen=True, slots=True)
class Event:
    """One live event."""

    id: int
    """Monotonic id (used as the SSE ``id:`` field)."""
    kind: str
    """One of :data:`EVENT_KINDS` (the SSE ``event:`` field)."""
    data: dict[str, Any]
    """JSON-serialisable payload."""
    time_s: float = field(default_factory=time.time)
    """Wall-clock time the event was published [s since epoch]."""

    def to_sse(self) -> str:
        """Return the event in the text/event-stream wire format."""
        payload = json.dumps(self.data, separators=(",", ":"), default=str)
        return f"id: {self.id}\nevent: {self.kind}\ndata: {payload}\n\n"


class EventBus:
    """In-process publish/subscribe with bounded per-subscriber queues.

    A slow subscriber loses its oldest events (never blocks the publisher); a short
    replay buffer lets a reconnecting client resume from ``Last-Event-ID``.
    """

    def __init__(self, queue_size: int = 256, replay_size: int = 256) -> None:
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._replay: deque[Event] = deque(maxlen=replay_size)
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dropped = 0
        """Events dropped because a subscriber's queue was full."""

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the event loop that owns the subscribers' queues."""
        self._loop = loop

    def publish_threadsafe(self, kind: str, data: dict[str, Any]) -> None:
        """Publish from a worker thread (a plain ``def`` route) or from the loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            logger.debug("event %s not published: no running loop", kind)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.publish(kind, data)
        else:
            loop.call_soon_threadsafe(self.publish, kind, data)

    @property
    def subscriber_count(self) -> int:
        """Number of connected subscribers."""
        return len(self._subscribers)

    def publish(self, kind: str, data: dict[str, Any]) -> Event:
        """Publish an event to every subscriber (call from the event loop)."""
        event = Event(id=next(self._ids), kind=kind, data=data)
        self._replay.append(event)
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
                self.dropped += 1
            queue.put_nowait(event)
        return event

    def subscribe(self, last_event_id: int | None = None) -> asyncio.Queue[Event]:
        """Register a subscriber; replay what it missed after ``last_event_id``."""
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=self._queue_size)
        if last_event_id is not None:
            for event in self._replay:
                if event.id > last_event_id and not queue.full():
                    queue.put_nowait(event)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        """Remove a subscriber."""
        self._subscribers.discard(queue)
