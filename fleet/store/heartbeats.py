"""Ingest workers' heartbeats: each live worker says it is alive every few seconds.

A worker that is killed stops writing; readiness (``/readyz``), ``/metrics`` and the
operator's alert read :func:`ingest_liveness`. A worker that stops cleanly marks its row
``stopped`` so that a scale-down is not mistaken for a failure.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from fleet.store.dml import Bind, transaction
from fleet.store.ops_tables import ingest_heartbeats

logger = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
"""How often a worker writes its heartbeat [s]."""
DEAD_AFTER_S = 10.0
"""A worker silent for this long is dead [s]."""


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class WorkerCounters:
    """What a worker reports with each heartbeat."""

    received: int
    """Messages received since start."""
    stored: int
    """Messages committed (stored or quarantined) since start."""
    last_commit_ms: int | None
    """Time of the last commit [ms since epoch]."""


def beat(
    bind: Bind,
    *,
    client_id: str,
    started_at_ms: int,
    counters: WorkerCounters,
    now_ms: int,
    stopped: bool = False,
) -> None:
    """Insert or update one worker's heartbeat row."""
    values = {
        "host": socket.gethostname()[:128],
        "started_at_ms": started_at_ms,
        "last_seen_ms": now_ms,
        "last_commit_ms": counters.last_commit_ms,
        "received": counters.received,
        "stored": counters.stored,
        "stopped": stopped,
    }
    with transaction(bind) as conn:
        updated = conn.execute(
            sa.update(ingest_heartbeats)
            .where(ingest_heartbeats.c.client_id == client_id)
            .values(**values)
        ).rowcount
        if not updated:
            conn.execute(
                sa.insert(ingest_heartbeats).values(client_id=client_id, **values)
            )


class Heartbeat:
    """Write a worker's heartbeat on a daemon thread until stopped.

    Parameters
    ----------
    bind
        The store.
    client_id
        The worker's MQTT client id (its identity).
    counters
        Called on each beat for the worker's counters.
    interval_s
        Seconds between beats.
    """

    def __init__(
        self,
        bind: Bind,
        client_id: str,
        counters: Callable[[], WorkerCounters],
        *,
        interval_s: float = HEARTBEAT_S,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.bind = bind
        self.client_id = client_id
        self.counters = counters
        self.interval_s = interval_s
        self.clock = clock
        self.started_at_ms = clock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{client_id}", daemon=True
        )

    def start(self) -> None:
        """Write the first beat and start the thread."""
        self._beat()
        self._thread.start()

    def _beat(self, stopped: bool = False) -> None:
        try:
            beat(
                self.bind,
                client_id=self.client_id,
                started_at_ms=self.started_at_ms,
                counters=self.counters(),
                now_ms=self.clock(),
                stopped=stopped,
            )
        except sa.exc.SQLAlchemyError as exc:
            logger.warning("ingest heartbeat not written: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._beat()

    def stop(self) -> None:
        """Stop beating and mark the worker stopped (a clean shutdown)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._beat(stopped=True)


@dataclass(frozen=True, slots=True)
class IngestLiveness:
    """The ingest tier as the store sees it."""

    workers: int
    """Workers that have ever registered and not stopped cleanly."""
    alive: int
    """Of those, the ones seen within :data:`DEAD_AFTER_S`."""
    dead: tuple[str, ...]
    """Client ids of workers that went silent without stopping."""
    newest_beat_age_s: float | None
    """Age of the newest heartbeat [s] (None: no worker ever registered)."""
    lag_s: float | None
    """Age of the newest commit of a live worker [s] (None: none yet)."""

    @property
    def ok(self) -> bool:
        """False when workers registered but none is alive now."""
        return self.workers == 0 or self.alive > 0


def ingest_liveness(
    bind: Bind, *, now_ms: int | None = None, dead_after_s: float = DEAD_AFTER_S
) -> IngestLiveness:
    """Read the heartbeats and say whether the ingest tier is alive."""
    now = _now_ms() if now_ms is None else now_ms
    with transaction(bind) as conn:
        rows = conn.execute(sa.select(ingest_heartbeats)).mappings().all()
    active = [r for r in rows if not r["stopped"]]
    limit = dead_after_s * 1000
    alive = [r for r in active if now - int(r["last_seen_ms"]) <= limit]
    dead = tuple(sorted(str(r["client_id"]) for r in active if r not in alive))
    newest = max((int(r["last_seen_ms"]) for r in rows), default=None)
    commits = [int(r["last_commit_ms"]) for r in alive if r["last_commit_ms"]]
    return IngestLiveness(
        workers=len(active),
        alive=len(alive),
        dead=dead,
        newest_beat_age_s=None if newest is None else (now - newest) / 1000,
        lag_s=(now - max(commits)) / 1000 if commits else None,
    )
