"""Create, look up and revoke API keys; only a hash of each key is stored.

A key reads ``bfk_<prefix>_<secret>``: ``prefix`` (12 hex characters) is public and
indexes the row, ``secret`` (43 url-safe characters, 256 bits) is never stored; the row
holds ``sha256(key)``. With 256 bits of entropy a fast hash is enough (no dictionary to
attack), and it keeps each authenticated request well under a millisecond. A key may
carry an expiry; an expired key authenticates nothing.

The dashboard exchanges a key for a *session* (``bfs_<secret>``, kept in an HttpOnly
cookie): only its hash is stored, in ``api_sessions``, with its own short expiry. A
session is valid while it has not expired and its key is neither revoked nor expired.
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
from fleet.store.tables import API_KEY_ROLES, UtcDateTime, api_keys, metadata

logger = logging.getLogger(__name__)

KEY_PATTERN = re.compile(r"^bfk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
"""The grammar of an API key."""

ROLE_RANK = {"viewer": 0, "scheduler": 1, "admin": 2}
"""Roles ordered by what they may do; a higher role may do all a lower one may."""
SESSION_PATTERN = re.compile(r"^bfs_[A-Za-z0-9_-]{43}$")
"""The grammar of a session token."""

api_sessions = sa.Table(
    "api_sessions",
    metadata,
    sa.Column("hash", sa.String(80), primary_key=True),
    sa.Column(
        "key_id",
        sa.String(64),
        sa.ForeignKey("api_keys.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Index(None, "key_id"),
    sa.Index(None, "expires_at"),
)
"""Dashboard sessions (only a hash of each token is stored)."""


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
    expires_at: dt.datetime | None = None
    """Expiry time (UTC), or None for a key that does not expire."""

    def active(self, now: dt.datetime) -> bool:
        """Return True when the key is neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (
            self.expires_at is None or now < self.expires_at
        )


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
        expires_at=m["expires_at"],
    )


def create_key(
    conn: sa.Connection,
    *,
    role: str,
    note: str | None = None,
    expires_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> NewKey:
    """Create a key with ``role``; return it with its secret (shown once).

    Parameters
    ----------
    expires_at
        When the key stops working (aware); None for a key that does not expire.

    Raises
    ------
    FleetInputError
        If ``role`` is not a known role, ``note`` is longer than 500 characters or
        ``expires_at`` is naive or not in the future.
    """
    _check_role(role)
    if note is not None and len(note) > 500:
        msg = f"note has {len(note)} characters; at most 500 are allowed"
        raise FleetInputError(msg)
    created = now or dt.datetime.now(dt.UTC)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            msg = f"expires_at={expires_at.isoformat()} has no time zone"
            raise FleetInputError(msg)
        if expires_at <= created:
            msg = (
                f"expires_at={expires_at.isoformat()} is not after now "
                f"({created.isoformat()})"
            )
            raise FleetInputError(msg)
    prefix = secrets.token_hex(6)
    secret = f"bfk_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        id=f"key-{prefix}",
        prefix=prefix,
        role=role,
        created_at=created,
        revoked_at=None,
        note=note,
        expires_at=expires_at,
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
            expires_at=expires_at,
        )
    )
    logger.info("created API key %s with role %s", key.id, role)
    return NewKey(key=key, secret=secret)


def authenticate(
    conn: sa.Connection, secret: str, *, now: dt.datetime | None = None
) -> ApiKey | None:
    """Return the valid (unrevoked, unexpired) key matching ``secret``, or None."""
    match = KEY_PATTERN.match(secret)
    if match is None:
        return None
    row = conn.execute(
        sa.select(api_keys).where(api_keys.c.prefix == match.group(1))
    ).first()
    if row is None:
        return None
    if not hmac.compare_digest(str(row._mapping["hash"]), hash_key(secret)):
        return None
    key = _row_to_key(row)
    return key if key.active(now or dt.datetime.now(dt.UTC)) else None


def key_is_active(
    conn: sa.Connection, key_id: str, *, now: dt.datetime | None = None
) -> bool:
    """Return True when the key ``key_id`` exists and is neither revoked nor expired."""
    key = get_key(conn, key_id)
    return key is not None and key.active(now or dt.datetime.now(dt.UTC))


def create_session(
    conn: sa.Connection,
    key: ApiKey,
    *,
    ttl_s: float,
    now: dt.datetime | None = None,
) -> tuple[str, dt.datetime]:
    """Open a session for ``key``; return its token (shown once) and expiry.

    The session ends after ``ttl_s`` seconds or when the key expires, whichever is
    first. Expired sessions of every key are deleted on the way.
    """
    created = now or dt.datetime.now(dt.UTC)
    expires = created + dt.timedelta(seconds=ttl_s)
    if key.expires_at is not None:
        expires = min(expires, key.expires_at)
    token = f"bfs_{secrets.token_urlsafe(32)}"
    conn.execute(sa.delete(api_sessions).where(api_sessions.c.expires_at <= created))
    conn.execute(
        sa.insert(api_sessions).values(
            hash=hash_key(token), key_id=key.id, created_at=created, expires_at=expires
        )
    )
    logger.info("opened a session for key %s until %s", key.id, expires.isoformat())
    return token, expires


def session_key(
    conn: sa.Connection, token: str, *, now: dt.datetime | None = None
) -> tuple[ApiKey, dt.datetime] | None:
    """Return the key of a valid session and the session's expiry, or None."""
    if SESSION_PATTERN.match(token) is None:
        return None
    when = now or dt.datetime.now(dt.UTC)
    row = conn.execute(
        sa.select(api_keys, api_sessions.c.expires_at.label("session_expires_at"))
        .join(api_sessions, api_sessions.c.key_id == api_keys.c.id)
        .where(api_sessions.c.hash == hash_key(token))
    ).first()
    if row is None or row._mapping["session_expires_at"] <= when:
        return None
    key = _row_to_key(row)
    return (key, row._mapping["session_expires_at"]) if key.active(when) else None


def end_session(conn: sa.Connection, token: str) -> bool:
    """Delete a session; return True when it existed."""
    result = conn.execute(
        sa.delete(api_sessions).where(api_sessions.c.hash == hash_key(token))
    )
    return bool(result.rowcount)


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
