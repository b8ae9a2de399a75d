"""Admin: API keys and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from fleet.api.deps import AdminKey, KeyCacheDep, StoreDep
from fleet.api.errors import NotFoundError
from fleet.api.routers._common import AUTH_RESPONSES, NOT_FOUND
from fleet.api.schemas import (
    AuditEntryOut,
    AuditListOut,
    KeyIn,
    KeyListOut,
    KeyOut,
    NewKeyOut,
)
from fleet.store import audit
from fleet.store import keys as key_store

router = APIRouter(prefix="/v1", tags=["admin"], responses=AUTH_RESPONSES)


def _key_out(key: key_store.ApiKey) -> KeyOut:
    return KeyOut(
        key_id=key.id,
        prefix=key.prefix,
        role=key.role,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
        note=key.note,
        expires_at=key.expires_at,
    )


@router.get("/keys", response_model=KeyListOut)
def list_keys(
    engine: StoreDep,
    _key: AdminKey,
    include_revoked: bool = False,
) -> KeyListOut:
    """List the API keys (never their secrets)."""
    with engine.connect() as conn:
        keys = key_store.list_keys(conn, include_revoked=include_revoked)
    return KeyListOut(items=[_key_out(k) for k in keys])


@router.post("/keys", response_model=NewKeyOut, status_code=201)
def create_key(body: KeyIn, engine: StoreDep, key: AdminKey) -> NewKeyOut:
    """Create a key; its secret is in this answer only. Audit-logged."""
    with engine.begin() as conn:
        new = key_store.create_key(
            conn, role=body.role, note=body.note, expires_at=body.expires_at
        )
        audit.record(
            conn,
            actor=key.id,
            action="key.create",
            object_type="api_key",
            object_id=new.key.id,
            detail={
                "role": body.role,
                "expires_at": None
                if body.expires_at is None
                else body.expires_at.isoformat(),
            },
        )
    return NewKeyOut(**_key_out(new.key).model_dump(), secret=new.secret)


@router.delete("/keys/{key_id}", response_model=KeyOut, responses=NOT_FOUND)
def revoke_key(
    key_id: Annotated[str, Path(pattern=r"^key-[0-9a-f]{12}$")],
    engine: StoreDep,
    key: AdminKey,
    cache: KeyCacheDep,
) -> KeyOut:
    """Revoke a key (idempotent). Audit-logged."""
    with engine.begin() as conn:
        if key_store.get_key(conn, key_id) is None:
            msg = f"key_id={key_id!r}: no such API key"
            raise NotFoundError(msg)
        revoked = key_store.revoke_key(conn, key_id)
        audit.record(
            conn,
            actor=key.id,
            action="key.revoke",
            object_type="api_key",
            object_id=key_id,
        )
    cache.clear()
    return _key_out(revoked)


@router.get("/audit", response_model=AuditListOut)
def audit_log(
    engine: StoreDep,
    _key: AdminKey,
    object_type: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditListOut:
    """Audit log entries, newest first."""
    entries = audit.list_entries(
        engine, object_type=object_type, actor=actor, limit=limit
    )
    return AuditListOut(
        items=[
            AuditEntryOut(
                id=e.id,
                ts=e.ts,
                actor=e.actor,
                action=e.action,
                object_type=e.object_type,
                object_id=e.object_id,
                detail=e.detail,
            )
            for e in entries
        ]
    )
