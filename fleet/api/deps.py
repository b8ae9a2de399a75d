"""Dependencies of the API routes, as Annotated aliases (StoreDep, ViewerKey, …)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import TYPE_CHECKING, Annotated

import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPBearer

from fleet.api.errors import AuthError, ForbiddenError
from fleet.store import keys as key_store

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from fastapi.dependencies.models import Dependant

    from fleet.api.events import EventBus
    from fleet.api.metrics import ApiMetrics
    from fleet.api.options import ApiOptions

_bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer bfk_…` (create keys with `bessfleet keys create`).",
)
_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The API key in a header."
)
SESSION_COOKIE = "bessfleet_session"
"""Name of the dashboard's session cookie (HttpOnly, SameSite=Strict)."""
CSRF_HEADER = "X-Requested-With"
"""Header a cookie-authenticated write must carry (a cross-site form cannot set it)."""
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description=(
        "Dashboard session from `POST /v1/session`; writes with it also need the "
        f"`{CSRF_HEADER}` header."
    ),
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_engine(request: Request) -> sa.Engine:
    """Return the store engine the lifespan created."""
    engine: sa.Engine = request.app.state.engine
    return engine


async def get_bus(request: Request) -> EventBus:
    """Return the app's live event bus."""
    bus: EventBus = request.app.state.bus
    return bus


async def get_options(request: Request) -> ApiOptions:
    """Return the app's API options (limits, intervals)."""
    options: ApiOptions = request.app.state.options
    return options


async def get_metrics(request: Request) -> ApiMetrics:
    """Return the app's in-process metrics."""
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


StoreDep = Annotated[sa.Engine, Depends(get_engine)]
BusDep = Annotated["EventBus", Depends(get_bus)]
OptionsDep = Annotated["ApiOptions", Depends(get_options)]
MetricsDep = Annotated["ApiMetrics", Depends(get_metrics)]


class KeyCache:
    """Recently authenticated keys by hash, kept ``ttl_s`` s (bounded; cleared on revoke).

    A key revoked through the API stops working at once (the cache is cleared); one
    revoked from the CLI in another process stops working within ``ttl_s``.
    """

    def __init__(self, ttl_s: float, max_entries: int = 1024) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, key_store.ApiKey]] = {}

    def get(self, secret: str) -> key_store.ApiKey | None:
        """Return the cached key for ``secret`` (a key or a session) if still fresh."""
        entry = self._entries.get(key_store.hash_key(secret))
        if entry is None or time.monotonic() - entry[0] > self.ttl_s:
            return None
        if not entry[1].active(dt.datetime.now(dt.UTC)):
            return None
        return entry[1]

    def put(self, secret: str, key: key_store.ApiKey) -> None:
        """Remember a successful authentication."""
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key_store.hash_key(secret)] = (time.monotonic(), key)

    def clear(self) -> None:
        """Forget every cached key (after a revocation)."""
        self._entries.clear()


async def get_key_cache(request: Request) -> KeyCache:
    """Return the app's authentication cache."""
    cache: KeyCache = request.app.state.key_cache
    return cache


KeyCacheDep = Annotated[KeyCache, Depends(get_key_cache)]


def _lookup(engine: sa.Engine, secret: str) -> key_store.ApiKey | None:
    with engine.connect() as conn:
        return key_store.authenticate(conn, secret)


def _lookup_session(engine: sa.Engine, secret: str) -> key_store.ApiKey | None:
    with engine.connect() as conn:
        found = key_store.session_key(conn, secret)
    return None if found is None else found[0]


SECURITY_SCHEMES = (_bearer, _header, _cookie)
"""The ways a request may carry its key, in the OpenAPI document's order."""
_AUTH_CALLS: set[Callable[..., object]] = set()
"""The dependencies that authenticate (their routes need a key in the OpenAPI)."""


async def _authenticate(request: Request) -> key_store.ApiKey:
    # One dependency reading the three schemes itself: FastAPI's per-request cost
    # grows with every sub-dependency (about 30 us each), and the schemes are
    # added to the OpenAPI document by ``fleet.api.app`` (see ``uses_auth``).
    header_key = await _header(request)
    bearer = None if header_key else await _bearer(request)
    secret = header_key or (bearer.credentials if bearer is not None else None)
    if secret:
        secret = secret.strip()
        lookup: Callable[[sa.Engine, str], key_store.ApiKey | None] = _lookup
        request.state.session_token = None
    elif session := await _cookie(request):
        if request.method not in SAFE_METHODS and CSRF_HEADER.lower() not in {
            k.lower() for k in request.headers
        }:
            msg = f"a write with the session cookie needs the {CSRF_HEADER} header"
            raise ForbiddenError(msg)
        secret = session.strip()
        lookup = _lookup_session
        request.state.session_token = secret
    else:
        msg = (
            "missing API key: send `Authorization: Bearer <key>` or `X-API-Key` "
            "(or sign in to the dashboard)"
        )
        raise AuthError(msg)
    cache: KeyCache = request.app.state.key_cache
    cached = cache.get(secret) if cache.ttl_s > 0 else None
    if cached is not None:
        return cached
    engine: sa.Engine = request.app.state.engine
    key = await asyncio.to_thread(lookup, engine, secret)
    if key is None:
        msg = (
            "invalid, expired or revoked API key"
            if lookup is _lookup
            else "session expired or ended; sign in again"
        )
        raise AuthError(msg)
    cache.put(secret, key)
    return key


_AUTH_CALLS.add(_authenticate)


def _require(role: str) -> Callable[[Request], Awaitable[key_store.ApiKey]]:
    async def dependency(request: Request) -> key_store.ApiKey:
        key = await _authenticate(request)
        if not key_store.role_allows(key.role, role):
            msg = f"key {key.id} has role {key.role!r}; this needs role {role!r}"
            raise ForbiddenError(msg)
        return key

    dependency.__name__ = f"require_{role}"
    _AUTH_CALLS.add(dependency)
    return dependency


def uses_auth(dependant: Dependant) -> bool:
    """Return whether a route's dependency tree authenticates the request."""
    return dependant.call in _AUTH_CALLS or any(
        uses_auth(d) for d in dependant.dependencies
    )


AnyKey = Annotated[key_store.ApiKey, Depends(_authenticate)]
"""Any valid key or session."""
ViewerKey = Annotated[key_store.ApiKey, Depends(_require("viewer"))]
"""Any valid key (viewer, scheduler or admin)."""
SchedulerKey = Annotated[key_store.ApiKey, Depends(_require("scheduler"))]
"""A scheduler or admin key."""
AdminKey = Annotated[key_store.ApiKey, Depends(_require("admin"))]
"""An admin key."""
