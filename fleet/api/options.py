"""Limits and intervals of the API that are not platform settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ApiOptions:
    """Bounds and timings of one API app."""

    history_max_days: float = 31.0
    """Longest time range a telemetry history query may span [days]."""
    page_size_max: int = 5000
    """Most points or rows one page may hold."""
    poll_interval_s: float = 2.0
    """How often the store poller looks for new schedules, setpoints, state, alerts [s]."""
    sse_ping_s: float = 15.0
    """Keep-alive comment interval on ``/v1/stream`` [s]."""
    sse_max_subscribers: int = 200
    """Most concurrent stream clients; more get 503."""
    auth_cache_s: float = 5.0
    """How long a successful key check is reused [s] (0 disables the cache)."""
    stale_after_s: float = 300.0
    """Age beyond which a site's newest sample is stale and left out of totals [s]."""
    session_ttl_s: float = 8 * 3600.0
    """Life of a dashboard session (the cookie a key is exchanged for) [s]."""
    stream_auth_check_s: float = 5.0
    """How often an open ``/v1/stream`` re-checks its key and session [s]; a revoked
    or expired key's stream closes within this delay."""
    broker_check: bool = True
    """Connect an MQTT client for ``/readyz`` when the settings name a broker."""
