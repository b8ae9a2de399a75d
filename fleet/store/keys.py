"""Create, look up and revoke API keys; only a hash of each key is stored.

A key reads ``bfk_<prefix>_<secret>``: ``prefix`` (12 hex characters) is public and
indexes the row, ``secret`` (43 url-safe characters, 256 bits) is never stored; the row
holds ``sha256(key)``. With 256 bits of entropy a fast hash is enough (no dictionary to
attack), and it keeps each authenticated request well under a millisecond.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from fleet.errors import FleetInputError
from fleet.store.tables import API_KEY_ROLES, api_keys

logger = logging.getLogger(__name__)

KEY_PATTERN = re.compile(r"^bfk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
"""The grammar of an API key."""

ROLE_RANK = {"viewer": 0, "scheduler": 1, "admin": 2}
"""Roles ordered by what they may do; a higher role may do all a lower one may."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One stored API key (without its secret)."""

    id: str
    """Key id, recorded as the actor in the audit log."""
    prefix: str
    """Public part of the key (12 hex characters)."""
    role: str
    """``viewer``, ``scheduler`` or ``admin``."""
    created_at: dt.datetime
    """Creation time (UTC)."""
    revoked_at: dt.datetime | None
    """Revocation time (UTC), or None while the key is valid."""
    note: str | None
    """Free text given at creation."""


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly created key: ``secret`` is shown once and never stored."""

    key: ApiKey
    """The stored part."""
    secret: str
    """The full key string to hand to the client."""


def hash_key(secret: str) -> str:
    """Return the stored hash of a full key string (``sha256:<hex>``)."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def _check_role(role: str) -> None:
    if role not in API_KEY_ROLES:
        msg = f"role={role!r} is not one of {', '.join(API_KEY_ROLES)}"
        raise FleetInputError(msg)


def _row_to_key(row: sa.Row[tuple[object, ...]]) -> ApiKey:
    m = row._mapping
    return ApiKey(
        id=str(m["id"]),
        prefix=str(m["prefix"]),
        role=str(m["role"]),
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
        note=m["note"],
    )


def create_key(
    conn: sa.Connection,
    *,
    role: str,
    note: str | None = None,
    now: dt.datetime | None = None,
) -> NewKey:
    """Create a key with ``role``; return it with its secret (shown once).

    Raises
    ------
    FleetInputError
        If ``role`` is not a known role or ``note`` is longer than 500 characters.
    """
    _check_role(role)
    if note is not None and len(note) > 500:
        msg = f"note has {len(note)} characters; at most 500 are allowed"
        raise FleetInputError(msg)
    created = now or dt.datetime.now(dt.UTC)
    prefix = secrets.token_hex(6)
    secret = f"bfk_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        id=f"key-{prefix}",
        prefix=prefix,
        role=role,
        created_at=created,
        revoked_at=None,
        note=note,
    )
    conn.execute(
        sa.insert(api_keys).values(
            id=key.id,
            prefix=prefix,
            hash=hash_key(secret),
            role=role,
            created_at=created,
            revoked_at=None,
            note=note,
        )
    )
    logger.info("created API key %s with role %s", key.id, role)
    return NewKey(key=key, secret=secret)


def authenticate(conn: sa.Connection, secret: str) -> ApiKey | None:
    """Return the valid (unrevoked) key matching ``secret``, or None."""
    match = KEY_PATTERN.match(secret)
    if match is None:
        return None
    row = conn.execute(
        sa.select(api_keys).where(api_keys.c.prefix == match.group(1))
    ).first()
    if row is None or row._mapping["revoked_at"] is not None:
        return None
    if not hmac.compare_digest(str(row._mapping["hash"]), hash_key(secret)):
        return None
    return _row_to_key(row)


def get_key(conn: sa.Connection, key_id: str) -> ApiKey | None:
    """Return the key with id ``key_id`` (revoked or not), or None."""
    row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
    return None if row is None else _row_to_key(row)


def list_keys(conn: sa.Connection, *, include_revoked: bool = False) -> list[ApiKey]:
    """Return the stored keys, oldest first."""
    query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    return [_row_to_key(row) for row in conn.execute(query)]


def revoke_key(
    conn: sa.Connection, key_id: str, *, now: dt.datetime | None = None
) -> ApiKey:
    """Revoke the key ``key_id`` (idempotent); return it.

    Raises
    ------
    FleetInputError
        If no key has that id.
    """
    key = get_key(conn, key_id)
    if key is None:
        msg = f"key_id={key_id!r}: no such API key"
        raise FleetInputError(msg)
    if key.revoked_at is not None:
        return key
    when = now or dt.datetime.now(dt.UTC)
    conn.execute(
        sa.update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=when)
    )
    logger.info("revoked API key %s", key_id)
    return get_key(conn, key_id) or key


def role_allows(role: str, required: str) -> bool:
    """Return True when a key of ``role`` may do what ``required`` may."""
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[required]
