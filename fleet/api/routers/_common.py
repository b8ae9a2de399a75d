"""Helpers shared by the routers: documented error answers, time and market parsing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fleet.api.errors import InputError
from fleet.api.schemas import ErrorOut

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing, unknown or revoked API key."},
    403: {"model": ErrorOut, "description": "The key's role may not do this."},
}
_ERROR_JSON = {
    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}
}
AUTH_RESPONSES_NON_JSON: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "Missing, unknown or revoked API key.",
        "content": _ERROR_JSON,
    },
    403: {"description": "The key's role may not do this.", "content": _ERROR_JSON},
}
"""AUTH_RESPONSES for routes whose success answer is not JSON (metrics, stream)."""
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such object."}
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorOut, "description": "The store is unavailable."}
}

KNOWN_MARKETS = ("ERCOT", "CAISO", "PJM")
"""Markets the API accepts in paths (case-insensitive)."""


def utc_now() -> dt.datetime:
    """Return the current time, aware UTC."""
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime, field: str, where: str = "query") -> dt.datetime:
    """Return ``value`` as aware UTC; naive times are refused naming ``field``."""
    if value.tzinfo is None or value.utcoffset() is None:
        msg = (
            f"{field}={value.isoformat()} has no time zone; give UTC (…Z) or an offset"
        )
        raise InputError(msg, (where, field))
    try:
        return value.astimezone(dt.UTC)
    except (OverflowError, ValueError) as exc:
        msg = f"{field}={value.isoformat()} is out of range"
        raise InputError(msg, (where, field)) from exc


def market_name(market: str, where: str = "path") -> str:
    """Return the canonical (upper-case) market name or refuse it naming ``market``."""
    upper = market.upper()
    if upper not in KNOWN_MARKETS:
        msg = f"market={market!r} is not one of {', '.join(KNOWN_MARKETS)}"
        raise InputError(msg, (where, "market"))
    return upper


def check_range(
    start: dt.datetime, end: dt.datetime, *, max_days: float, where: str = "query"
) -> None:
    """Refuse ``end <= start`` or a range longer than ``max_days``, naming ``end``."""
    if end <= start:
        msg = f"end={end.isoformat()} must be after start={start.isoformat()}"
        raise InputError(msg, (where, "end"))
    if (end - start).total_seconds() > max_days * 86400.0:
        msg = (
            f"end - start = {(end - start).total_seconds() / 86400.0:.2f} days; "
            f"at most {max_days:g} days per request"
        )
        raise InputError(msg, (where, "end"))
