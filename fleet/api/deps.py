"""Dependencies of the API routes, as Annotated aliases (StoreDep, ViewerKey, …)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import sqlalchemy as sa
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from fleet.api.errors import AuthError, ForbiddenError
from fleet.store import keys as key_store

if TYPE_CHECKING:
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


def get_engine(request: Request) -> sa.Engine:
    """Return the store engine the lifespan created."""
    engine: sa.Engine = request.app.state.engine
    return engine


def get_bus(request: Request) -> EventBus:
    """Return the app's live event bus."""
    bus: EventBus = request.app.state.bus
    return bus


def get_options(request: Request) -> ApiOptions:
    """Return the app's API options (limits, intervals)."""
    options: ApiOptions = request.app.state.options
    return options


def get_metrics(request: Request) -> ApiMetrics:
    """Return the app's in-process metrics."""
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


StoreDep = Annotated[sa.Engine, Depends(get_engine)]
BusDep = Annotated["EventBus", Depends(get_bus)]
OptionsDep = Annotated["ApiOptions", Depends(get_options)]
MetricsDep = Annotated["ApiMetrics", Depends(get_metrics)]


def _authenticate(
    engine: StoreDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header_key: Annotated[str | None, Security(_header)],
) -> key_store.ApiKey:
    secret = header_key or (bearer.credentials if bearer is not None else None)
    if not secret:
        msg = "missing API key: send `Authorization: Bearer <key>` or `X-API-Key`"
        raise AuthError(msg)
    with engine.connect() as conn:
        key = key_store.authenticate(conn, secret.strip())
    if key is None:
        msg = "invalid or revoked API key"
        raise AuthError(msg)
    return key


def _require(role: str) -> object:
    def dependency(
        key: Annotated[key_store.ApiKey, Depends(_authenticate)],
    ) -> key_store.ApiKey:
        if not key_store.role_allows(key.role, role):
            msg = f"key {key.id} has role {key.role!r}; this needs role {role!r}"
            raise ForbiddenError(msg)
        return key

    dependency.__name__ = f"require_{role}"
    return dependency


ViewerKey = Annotated[key_store.ApiKey, Depends(_require("viewer"))]
"""Any valid key (viewer, scheduler or admin)."""
SchedulerKey = Annotated[key_store.ApiKey, Depends(_require("scheduler"))]
"""A scheduler or admin key."""
AdminKey = Annotated[key_store.ApiKey, Depends(_require("admin"))]
"""An admin key."""
