"""Check what reaches the routes: body size, UTF-8, finite JSON numbers, NUL; headers.

FastAPI parses JSON bodies with :func:`json.loads`, which accepts ``NaN``,
``Infinity`` and ``1e309`` (read as infinity) and fails with a plain ``ValueError``
on non-UTF-8 bytes or on integers of more than 4300 digits. Those inputs then gave a
500 (an answer echoing NaN cannot be written as JSON) or an undocumented 400. The
middleware checks each body once, before any route sees it, and answers 413 or 422
naming the field.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from starlette.types import Message, Receive

logger = logging.getLogger(__name__)

MAX_NUMBER_DIGITS = 400
"""Longest number literal accepted in a JSON body [characters]."""

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)
"""Headers sent with every answer."""
CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    b"frame-ancestors 'none'"
)
"""Content-Security-Policy of the dashboard and every API answer."""
DOCS_CSP = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: "
    b"https://fastapi.tiangolo.com; connect-src 'self'; object-src 'none'; "
    b"base-uri 'none'; frame-ancestors 'none'"
)
"""Content-Security-Policy of the interactive docs (Swagger UI and ReDoc from a CDN)."""
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})

_KEY_RE = re.compile(r"bfk_([0-9a-f]{12})_[A-Za-z0-9_-]+")


class BodyTooLargeError(Exception):
    """The request body is larger than the limit."""


class _Bad:
    """Marks a JSON value that is not accepted (NaN, ±Infinity, a huge number)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_constant(text: str) -> _Bad:
    return _Bad(text)


def _parse_float(text: str) -> float | _Bad:
    if len(text) > MAX_NUMBER_DIGITS:
        return _Bad(text[:20] + "…")
    value = float(text)
    return value if math.isfinite(value) else _Bad(text)


def _parse_int(text: str) -> int | _Bad:
    if len(text) > MAX_NUMBER_DIGITS:
        return _Bad(text[:20] + "…")
    return int(text)


def _find_bad(value: Any, loc: list[str | int]) -> tuple[list[str | int], str] | None:
    if isinstance(value, _Bad):
        return loc, (
            f"{_name(loc)}={value.text} is not a finite number: JSON numbers must be "
            f"finite (no NaN or Infinity), within ±1.7e308 and at most "
            f"{MAX_NUMBER_DIGITS} characters long"
        )
    if isinstance(value, str):
        if "\x00" in value:
            return loc, f"{_name(loc)} contains a NUL character (\\u0000)"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if "\x00" in k:
                return loc, f"a key of {_name(loc)} contains a NUL character (\\u0000)"
            found = _find_bad(v, [*loc, k])
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _find_bad(v, [*loc, i])
            if found is not None:
                return found
    return None


def _name(loc: list[str | int]) -> str:
    path = ""
    for part in loc[1:]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path.lstrip(".") or "body"


def check_json_body(body: bytes) -> tuple[list[str | int], str, str] | None:
    """Return ``(loc, message, type)`` for a body the API refuses, else None.

    Parameters
    ----------
    body
        The raw request body of a JSON request.

    Notes
    -----
    Syntax errors are left to FastAPI (422 ``json_invalid`` with the position); this
    only catches what :func:`json.loads` accepts but the API must not: bytes that are
    not UTF-8, NaN/Infinity, numbers that overflow a double or are absurdly long, and
    NUL characters (PostgreSQL text cannot hold them).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = (
            f"the body is not UTF-8 (byte 0x{body[exc.start]:02x} at offset "
            f"{exc.start}); send JSON encoded as UTF-8"
        )
        return ["body"], msg, "utf8_invalid"
    try:
        parsed = json.loads(
            text,
            parse_constant=_parse_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except RecursionError:
        msg = "the body nests arrays or objects too deeply to be read"
        return ["body"], msg, "json_invalid"
    except ValueError:
        return None  # FastAPI answers 422 json_invalid naming the position
    found = _find_bad(parsed, ["body"])
    if found is None:
        return None
    return found[0], found[1], "value_error"


def check_query(query_string: bytes) -> tuple[list[str | int], str, str] | None:
    """Return ``(loc, message, type)`` when a query parameter holds a NUL or bad bytes."""
    if (
        b"%" not in query_string
        and b"\x00" not in query_string
        and query_string.isascii()
    ):
        return None  # nothing escaped: no NUL, and ASCII is UTF-8
    try:
        text = query_string.decode("latin-1")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return ["query"], "the query string is not valid UTF-8", "utf8_invalid"
    for name, value in pairs:
        if "\x00" in name or "\x00" in value:
            return (
                ["query", name.replace("\x00", "")],
                f"query parameter {name.replace(chr(0), '')!r} contains a NUL "
                "character (%00)",
                "value_error",
            )
    return None


async def read_body(receive: Receive, limit: int) -> tuple[bytes, list[Message]]:
    """Read the whole request body (chunked or not) up to ``limit`` bytes.

    Returns the body and any non-body message received on the way (a disconnect).

    Raises
    ------
    BodyTooLargeError
        As soon as more than ``limit`` bytes have arrived.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), [message]
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            msg = f"request body over {limit} bytes"
            raise BodyTooLargeError(msg)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), []


def redact_keys(text: str) -> str:
    """Return ``text`` with every API key replaced by ``<key-PREFIX redacted>``."""
    return _KEY_RE.sub(r"<key-\1 redacted>", text)


class RedactKeysFilter(logging.Filter):
    """Remove API key secrets from log records (uvicorn's access log writes URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record's arguments and message in place; keep the record."""
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_keys(a) if isinstance(a, str) and "bfk_" in a else a
                for a in record.args
            )
        if isinstance(record.msg, str) and "bfk_" in record.msg:
            record.msg = redact_keys(record.msg)
        return True


def header_list(path: str) -> list[tuple[bytes, bytes]]:
    """Return the security headers for an answer to ``path``."""
    csp = DOCS_CSP if path in DOCS_PATHS else CSP
    return [*SECURITY_HEADERS, (b"content-security-policy", csp)]
