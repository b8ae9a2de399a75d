"""Dashboard sign-in: exchange an API key for a short-lived HttpOnly session cookie."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Cookie, Request, Response

from fleet.api.deps import SESSION_COOKIE, AnyKey, KeyCacheDep, OptionsDep, StoreDep
from fleet.api.errors import AuthError
from fleet.api.schemas import ErrorOut, SessionIn, SessionOut
from fleet.store import audit
from fleet.store import keys as key_store

router = APIRouter(prefix="/v1", tags=["session"])


def _open(
    engine: sa.Engine, secret: str, ttl_s: float
) -> tuple[key_store.ApiKey, str, dt.datetime] | None:
    with engine.begin() as conn:
        key = key_store.authenticate(conn, secret)
        if key is None:
            return None
        token, expires = key_store.create_session(conn, key, ttl_s=ttl_s)
        audit.record(
            conn,
            actor=key.id,
            action="session.create",
            object_type="api_key",
            object_id=key.id,
            detail={"expires_at": expires.isoformat()},
        )
    return key, token, expires


@router.post(
    "/session",
    response_model=SessionOut,
    responses={
        401: {"model": ErrorOut, "description": "Unknown, expired or revoked key."}
    },
)
async def sign_in(
    body: SessionIn,
    request: Request,
    response: Response,
    engine: StoreDep,
    options: OptionsDep,
) -> SessionOut:
    """Exchange an API key (in the body, never the URL) for a session cookie.

    The cookie is HttpOnly and SameSite=Strict (Secure over HTTPS); it lasts
    ``session_ttl_s`` (8 h by default) or until the key expires or is revoked.
    """
    opened = await asyncio.to_thread(
        _open, engine, body.key.strip(), options.session_ttl_s
    )
    if opened is None:
        msg = "invalid, expired or revoked API key"
        raise AuthError(msg)
    key, token, expires = opened
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max(1, int((expires - dt.datetime.now(dt.UTC)).total_seconds())),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.headers["Cache-Control"] = "no-store"
    return SessionOut(
        key_id=key.id, role=key.role, key_expires_at=key.expires_at, expires_at=expires
    )


def _session_expiry(engine: sa.Engine, token: str) -> dt.datetime | None:
    with engine.connect() as conn:
        found = key_store.session_key(conn, token)
    return None if found is None else found[1]


@router.get(
    "/session",
    response_model=SessionOut,
    responses={401: {"model": ErrorOut, "description": "Not signed in."}},
)
async def whoami(request: Request, key: AnyKey, engine: StoreDep) -> SessionOut:
    """Return the key (and session) this request is authenticated with."""
    token = getattr(request.state, "session_token", None)
    expires = (
        None
        if token is None
        else await asyncio.to_thread(_session_expiry, engine, token)
    )
    return SessionOut(
        key_id=key.id, role=key.role, key_expires_at=key.expires_at, expires_at=expires
    )


def _end(engine: sa.Engine, token: str) -> None:
    with engine.begin() as conn:
        key_store.end_session(conn, token)


@router.delete("/session", status_code=204)
async def sign_out(
    response: Response,
    engine: StoreDep,
    cache: KeyCacheDep,
    session: Annotated[str | None, Cookie(alias=SESSION_COOKIE, max_length=100)] = None,
) -> None:
    """End the dashboard session and clear its cookie (idempotent)."""
    if session:
        await asyncio.to_thread(_end, engine, session.strip())
        cache.clear()
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
